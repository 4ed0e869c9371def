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
