//! The loader on arbitrary bytes: binary, text and embedded manifests all go through `vet`,
//! which must return a verdict (never panic), and must never pass a module wasmparser rejects.
#![no_main]

use libfuzzer_sys::fuzz_target;

use stockade::Policy;
use stockade::source::PluginFile;
use stockade::vet::{VetOptions, Verdict};

fuzz_target!(|data: &[u8]| {
    let policy = Policy::builtin_default();
    // The first byte picks how the input is named, so the text path is fuzzed too.
    let name = if data.first().is_some_and(|b| b & 1 == 1) { "fuzz.wat" } else { "fuzz.wasm" };
    let file = PluginFile { path: std::path::PathBuf::from("/nonexistent").join(name), raw: data.to_vec() };
    let vetting = stockade::vet(&file, &VetOptions::new(&policy)).expect("no file is read");
    if vetting.verdict() == Verdict::Pass {
        // What was analysed is the binary: the input itself, or its encoding when it is text.
        let binary = file.binary().expect("a module that passed was decoded");
        let features = policy.features.wasm_features();
        let accepted = wasmparser::Validator::new_with_features(features).validate_all(&binary).is_ok();
        assert!(accepted, "vet passed a module the validator rejects");
    }
});
