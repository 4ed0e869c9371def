//! Whatever the bytes, vetting ends with a verdict: never a panic, never a tool error.

use proptest::prelude::*;

use stockade::Policy;
use stockade::source::{PluginFile, wat_to_wasm};
use stockade::vet::{VetOptions, Verdict};

fn seed_modules() -> Vec<Vec<u8>> {
    [
        include_str!("fixtures/vet/benign-extism/plugin.wat"),
        include_str!("fixtures/vet/no-manifest-wasi/plugin.wat"),
        include_str!("fixtures/vet/component/plugin.wat"),
        include_str!("fixtures/vet/function-too-large/plugin.wat"),
    ]
    .iter()
    .map(|text| wat_to_wasm(text).unwrap())
    .chain([std::fs::read("../corpus/guests/extism-greet/extism-greet.wasm").unwrap()])
    .collect()
}

fn vet_bytes(bytes: Vec<u8>, name: &str) -> stockade::Vetting {
    let policy = Policy::builtin_default();
    let file = PluginFile { path: std::path::PathBuf::from(name), raw: bytes };
    stockade::vet(&file, &VetOptions::new(&policy)).expect("no file is read, so no tool error")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn mutated_modules_get_a_verdict(seed in 0usize..5, edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>(), truncate in any::<bool>()) {
        let mut bytes = seed_modules().swap_remove(seed);
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            let len = cut.index(bytes.len());
            bytes.truncate(len);
        }
        let vetting = vet_bytes(bytes.clone(), "mutated.wasm");
        prop_assert!(vetting.verdict() == Verdict::Pass || !vetting.findings.is_empty(), "a failing verdict says why");
        // An oracle vet does not share: what it passes, the engine must compile and link.
        // Components are analysed, not yet run (DESIGN: "Components … run later").
        let component = vetting.analysis.as_ref().is_some_and(|a| a.kind == stockade::analyze::ModuleKind::Component);
        if vetting.verdict() == Verdict::Pass && !component {
            let policy = Policy::builtin_default();
            let sandbox = stockade::sandbox::Sandbox::new(&policy).unwrap();
            let file = PluginFile { path: std::path::PathBuf::from("mutated.wasm"), raw: bytes };
            let load = sandbox.load(&file, &stockade::sandbox::LoadOptions::default()).unwrap();
            let failed = match load {
                stockade::sandbox::Load::Ready(_) => None,
                stockade::sandbox::Load::Refused(v) => Some(format!("refused: {:?}", v.findings)),
                stockade::sandbox::Load::Failed(outcome) => Some(format!("{}: {:?}", outcome.code, outcome.error)),
            };
            prop_assert!(failed.is_none(), "vet passed a module the sandbox cannot load: {:?}", failed);
        }
    }

    #[test]
    fn arbitrary_bytes_and_text_get_a_verdict(bytes in prop::collection::vec(any::<u8>(), 0..512), text in "\\PC{0,200}") {
        let with_magic = [b"\0asm\x01\0\0\0".as_slice(), &bytes].concat();
        for (input, name) in [(bytes, "random.wasm"), (with_magic, "magic.wasm"), (format!("(module {text})").into_bytes(), "random.wat")] {
            let vetting = vet_bytes(input, name);
            prop_assert!(vetting.verdict() == Verdict::Pass || !vetting.findings.is_empty());
        }
    }
}
