//! The loader on arbitrary bytes: binary, text and embedded manifests all go through `vet`,
//! which must return a verdict (never panic), and whose idea of validity must agree with an
//! independent validator: WABT's `wasm-validate` (scripts/install-wabt.sh), which shares no
//! code with wasmparser. wasmtime's own validation would be the same wasmparser and prove
//! nothing. Without wasm-validate on the PATH only the first property is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

use stockade::Policy;
use stockade::code::Code;
use stockade::source::PluginFile;
use stockade::vet::{VetOptions, Verdict};

/// WABT's verdict under the default policy's features (WABT's defaults plus tail calls and
/// extended constants). `lenient` ignores custom sections' errors: WABT otherwise rejects a
/// malformed name section, which the spec ignores, and with the flag accepts a custom section
/// whose own name does not decode, which the spec calls malformed. So lenient WABT rejecting
/// means invalid, and strict WABT accepting means valid.
fn wabt_accepts(binary: &[u8], lenient: bool) -> Option<bool> {
    let path = std::env::temp_dir().join(format!("stockade-fuzz-{}.wasm", std::process::id()));
    std::fs::write(&path, binary).ok()?;
    let mut command = std::process::Command::new("wasm-validate");
    command.args(["--enable-tail-call", "--enable-extended-const"]);
    if lenient {
        command.arg("--ignore-custom-section-errors");
    }
    let status = command.arg(&path).stderr(std::process::Stdio::null()).status().ok()?;
    Some(status.success())
}

fuzz_target!(|data: &[u8]| {
    let policy = Policy::builtin_default();
    // The first byte picks how the input is named, so the text path is fuzzed too.
    let name = if data.first().is_some_and(|b| b & 1 == 1) { "fuzz.wat" } else { "fuzz.wasm" };
    let file = PluginFile::new(std::path::PathBuf::from("/nonexistent").join(name), data.to_vec());
    let vetting = stockade::vet(&file, &VetOptions::new(&policy)).expect("no file is read");
    // WABT has no component model: core modules only (version 1).
    let Ok(binary) = file.binary() else { return };
    if binary.get(4..8) != Some(&[1, 0, 0, 0][..]) {
        return;
    }
    if vetting.verdict() == Verdict::Pass {
        assert_ne!(wabt_accepts(&binary, true), Some(false), "vet passed a module WABT rejects");
    }
    // WABT 1.0.32 accepts a function body whose bytes end before its blocks are closed (the
    // spec's `expr` ends with its own `end`; tests/robustness.rs pins vet's refusal): that one
    // divergence is WABT's.
    let called_invalid = vetting.findings.iter().any(|f| {
        matches!(f.code, Code::Malformed | Code::Invalid) && !f.message.contains("control frames remain at end of function body")
    });
    if called_invalid {
        assert_ne!(wabt_accepts(&binary, false), Some(true), "WABT accepts a module vet calls invalid");
    }
});
