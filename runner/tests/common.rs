//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use stockade::Policy;
use stockade::source::PluginFile;
use stockade::vet::{VetOptions, Vetting};

/// A fixture directory under tests/fixtures/vet, relative to the crate (the tests' cwd), so
/// paths in rendered output are the same on every machine.
pub fn fixture(name: &str) -> PathBuf {
    Path::new("tests/fixtures/vet").join(name)
}

/// The module of a fixture: `plugin.wat` or `plugin.wasm`.
pub fn fixture_module(name: &str) -> PathBuf {
    let dir = fixture(name);
    ["plugin.wat", "plugin.wasm"].iter().map(|f| dir.join(f)).find(|p| p.exists()).unwrap_or_else(|| {
        panic!("fixture {name} has no plugin.wat or plugin.wasm")
    })
}

pub fn shipped_policy(name: &str) -> Policy {
    Policy::from_path(&Path::new("../policies").join(format!("{name}.toml"))).expect("shipped policy parses")
}

pub fn vet_path(path: &Path, policy: &Policy) -> Vetting {
    let file = PluginFile::read(path).expect("fixture is readable");
    stockade::vet(&file, &VetOptions::new(policy)).expect("vet completes")
}

/// Runs the `stockade` binary with colour off, its default module cache in the build's
/// temporary directory rather than the user's.
pub fn stockade(args: &[&str]) -> std::process::Output {
    stockade_with_env(args, &[])
}

/// [`stockade`] with more environment variables set (a state directory of the test's, say).
pub fn stockade_with_env(args: &[&str], env: &[(&str, &Path)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_stockade"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("STOCKADE_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("module-cache"))
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

pub fn code(output: &std::process::Output) -> i32 {
    output.status.code().expect("exited, not killed by a signal")
}

pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Tool errors: exit 2, exactly one line on stderr, no panic or backtrace.
pub fn assert_tool_error(output: &std::process::Output, mentions: &str) {
    let err = stderr(output);
    assert_eq!(code(output), 2, "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(mentions), "`{mentions}` not in: {err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
}

