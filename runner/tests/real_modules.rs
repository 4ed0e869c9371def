//! Modules that nobody here wrote: built by the ordinary toolchains (corpus/guests) and shipped
//! in npm packages (fetched by scripts/fetch-third-party-wasm.sh).

mod common;

use std::path::Path;

use stockade::Code;
use stockade::Policy;
use stockade::vet::Verdict;

use common::*;

fn codes(v: &stockade::Vetting) -> Vec<Code> {
    v.findings.iter().map(|f| f.code).collect()
}

#[test]
fn extism_pdk_plugin_passes_with_its_manifest() {
    let path = Path::new("../corpus/guests/extism-greet/extism-greet.wasm");
    let v = vet_path(path, &Policy::builtin_default());
    assert_eq!(codes(&v), vec![], "{:#?}", v.findings);
    assert!(v.manifest.manifest().is_some(), "plugin.toml beside it is read");
    let analysis = v.analysis.unwrap();
    assert!(analysis.exports_function("greet") && analysis.exports_function("count_vowels"));
    assert_eq!(analysis.abis(), vec![stockade::capability::Abi::Extism]);
    // The registry refuses it only for want of a signature.
    let v = vet_path(path, &shipped_policy("registry-strict"));
    assert_eq!(codes(&v), vec![Code::SignatureMissing]);
}

#[test]
fn rust_wasip1_program_needs_env() {
    let path = Path::new("../corpus/guests/wasi-hello/wasi-hello.wasm");
    // Rust's std imports environ_get/environ_sizes_get; the default policy grants no `env`.
    let v = vet_path(path, &Policy::builtin_default());
    assert_eq!(codes(&v), vec![Code::CapabilityDenied]);
    assert_eq!(v.findings[0].capability.as_deref(), Some("env"));
    assert!(v.manifest.manifest().is_none());
    let v = vet_path(path, &shipped_policy("permissive-dev"));
    assert_eq!(v.verdict(), Verdict::Pass, "{:#?}", v.findings);
}

#[test]
fn third_party_modules_are_vetted_without_error() {
    let dir = Path::new("../target/third-party-wasm");
    let required = std::env::var_os("STOCKADE_THIRD_PARTY_WASM").is_some();
    let mut modules: Vec<_> = walk(dir);
    modules.sort();
    if modules.is_empty() {
        assert!(!required, "STOCKADE_THIRD_PARTY_WASM is set but {} holds no modules", dir.display());
        eprintln!("skipped: run scripts/fetch-third-party-wasm.sh to vet real-world npm modules");
        return;
    }
    // With the most segments a policy may allow, so that every module is analysed whole: Go's
    // runtime (esbuild) has 98,450 data segments, which the default refuses from the count.
    let mut policy = Policy::builtin_default();
    policy.limits.segments = 100_000;
    for path in &modules {
        if path.ends_with("esbuild-wasm/esbuild.wasm") {
            let v = vet_path(path, &Policy::builtin_default());
            assert_eq!(v.findings.iter().map(|f| f.code).collect::<Vec<_>>(), [Code::TooManySegments], "{}", path.display());
        }
        let v = vet_path(path, &policy);
        for f in &v.findings {
            assert!(
                !matches!(f.code, Code::Malformed | Code::Invalid),
                "{}: a published module is valid wasm, got {f:?}",
                path.display()
            );
        }
        // Browser glue (Emscripten's `a.*`, wasm-bindgen's `wbg.*`, Go's `gojs.*`) is no plugin
        // ABI: each of these modules must be refused for its imports, each named.
        assert_eq!(v.verdict(), Verdict::Fail, "{}", path.display());
        assert!(v.findings.iter().any(|f| f.code == Code::UnknownImport && f.import.is_some()), "{}", path.display());
        eprintln!("{}: {} findings", path.display(), v.findings.len());
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() { walk(&path) } else if path.extension().is_some_and(|x| x == "wasm") { vec![path] } else { vec![] }
        })
        .collect()
}
