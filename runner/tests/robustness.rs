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
    let file = PluginFile::new(name, bytes);
    stockade::vet(&file, &VetOptions::new(&policy)).expect("no file is read, so no tool error")
}

/// WABT's `wasm-validate`, an implementation of validation that shares no code with wasmparser.
/// With STOCKADE_WABT=1 (CI) a missing tool fails the test instead of skipping it.
fn wasm_validate() -> Option<&'static str> {
    let found = std::process::Command::new("wasm-validate").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var_os("STOCKADE_WABT").is_none(), "wasm-validate is not installed (scripts/install-wabt.sh)");
        eprintln!("skipped: wasm-validate is not installed (scripts/install-wabt.sh)");
        return None;
    }
    Some("wasm-validate")
}

/// WABT's verdict on a core module under the default policy's features: the ones WABT turns
/// on by default (SIMD, bulk memory, reference types, multi-value, sign extension, saturating
/// conversions) plus tail calls and extended constants; everything the policy leaves off, WABT
/// leaves off too.
///
/// WABT reads custom sections in one of two ways, neither exactly the spec's: by default it
/// rejects a malformed name section (the spec ignores custom sections' contents), and with
/// `--ignore-custom-section-errors` it accepts a custom section whose own name does not decode
/// (the spec calls that malformed). So `lenient` WABT rejecting means invalid, and strict WABT
/// accepting means valid.
fn wabt_verdict(tool: &str, bytes: &[u8], lenient: bool) -> Result<(), String> {
    let file = tempfile::Builder::new().suffix(".wasm").tempfile().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    let out = std::process::Command::new(tool)
        .args(["--enable-tail-call", "--enable-extended-const"])
        .args(lenient.then_some("--ignore-custom-section-errors"))
        .arg(file.path())
        .output()
        .unwrap();
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

/// Whether vet refused the module as not WebAssembly at all, or as not valid, for a reason WABT
/// is known to agree with. WABT 1.0.32 accepts a function body whose bytes end before its
/// blocks are all closed (`unclosed_function_bodies_are_refused` below shows vet is right: the
/// spec's `expr` ends with its own `end`); that one divergence is WABT's and is left out.
fn refused_as_invalid(vetting: &stockade::Vetting) -> bool {
    vetting.findings.iter().any(|f| {
        matches!(f.code, stockade::code::Code::Malformed | stockade::code::Code::Invalid)
            && !f.message.contains("control frames remain at end of function body")
    })
}

#[test]
fn unclosed_function_bodies_are_refused() {
    // (func block end) with the function's own `end` missing: WABT's wasm-validate accepts it.
    let module = [b"\0asm\x01\0\0\0".as_slice(), &[1, 4, 1, 0x60, 0, 0], &[3, 2, 1, 0], &[10, 6, 1, 4, 0, 0x02, 0x40, 0x0b]].concat();
    let vetting = vet_bytes(module, "unclosed.wasm");
    assert_eq!(vetting.verdict(), Verdict::Fail);
    assert!(vetting.findings.iter().any(|f| f.message.contains("control frames remain")), "{:?}", vetting.findings);
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
        // Components are analysed, not yet run (running them is still to come).
        let component = vetting.analysis.as_ref().is_some_and(|a| a.kind == stockade::analyze::ModuleKind::Component);
        if vetting.verdict() == Verdict::Pass && !component {
            let policy = Policy::builtin_default();
            let sandbox = stockade::sandbox::Sandbox::new(&policy).unwrap();
            let file = PluginFile::new("mutated.wasm", bytes);
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    /// vet against WABT on mutated core modules: what vet passes, WABT must accept; what WABT
    /// accepts, vet must not call malformed or invalid (it may refuse it for its own limits).
    #[test]
    fn vet_agrees_with_wabt_on_what_is_valid(seed in prop::sample::select(vec![0usize, 1, 3, 4]), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let Some(tool) = wasm_validate() else { return Ok(()) };
        // Core modules only: WABT has no component model (seed 2 is a component).
        let mut bytes = seed_modules().swap_remove(seed);
        for (at, value) in edits {
            // Past the header, so that every input stays a core module for both.
            let i = 8 + at.index(bytes.len() - 8);
            bytes[i] = value;
        }
        let vetting = vet_bytes(bytes.clone(), "mutated.wasm");
        if vetting.verdict() == Verdict::Pass {
            let wabt = wabt_verdict(tool, &bytes, true);
            prop_assert!(wabt.is_ok(), "vet passed a module WABT rejects ({:?}): {}", wabt, hex::encode(&bytes));
        }
        if wabt_verdict(tool, &bytes, false).is_ok() {
            prop_assert!(!refused_as_invalid(&vetting), "WABT accepts a module vet calls invalid: {:?}: {}", vetting.findings.iter().map(|f| (f.code, &f.message)).collect::<Vec<_>>(), hex::encode(&bytes));
        }
    }
}
