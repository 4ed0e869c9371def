//! `vet` passes a module under a policy if and only if the sandbox really compiles, links and
//! instantiates it under that policy: generated modules (imports from the catalog with right
//! and wrong types, unknown names, tables, memories, globals, custom sections, manifests that
//! declare some of what they use) against generated policies.
//!
//! Some refusals are the policy's judgement rather than what the engine can load: a declared
//! capability the policy does not grant (or that nothing uses), and the static bounds that
//! protect the loader and the compiler (custom sections, function and module size, control
//! flow, data size). A module refused only for those would load, so the property is: vet passes
//! ⇒ the sandbox instantiates; and the sandbox instantiates ⇔ vet finds no error about
//! loading it (its imports and their grants and types, memories, tables, features, validity).

use proptest::prelude::*;

use stockade::capability::{CATALOG, Names};
use stockade::policy::Policy;
use stockade::sandbox::{Load, LoadOptions, Sandbox};
use stockade::source::PluginFile;
use stockade::vet::{VetOptions, Verdict};
use stockade::{Code, Severity};

/// Every function the catalog names, with its type as wasm text.
fn catalogued() -> Vec<(String, String, String)> {
    CATALOG
        .iter()
        .filter_map(|row| {
            let Names::Exact(name) = row.names else { return None };
            let (params, results) = row.signature?;
            let list = |types: &[wasmparser::ValType]| types.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" ");
            Some((row.module.to_string(), name.to_string(), format!("(param {}) (result {})", list(params), list(results))))
        })
        .collect()
}

#[derive(Clone, Debug)]
enum ImportSpec {
    /// A catalogued function, with its own type or a wrong one.
    Catalogued { index: usize, wrong_type: bool },
    /// A name nobody defines.
    Unknown(&'static str, &'static str),
    /// A host function under `extism:host/user`.
    HostFunction,
}

#[derive(Clone, Debug)]
struct ModuleSpec {
    imports: Vec<ImportSpec>,
    tables: Vec<u32>,
    memories: Vec<u32>,
    globals: u32,
    custom_sections: u32,
    /// Capabilities the manifest declares, when there is one.
    manifest: Option<Vec<&'static str>>,
}

/// The codes that say a module cannot be loaded under the policy (with `capability-denied`
/// when it is about an import, not about a declaration).
const LOADING: &[Code] = &[
    Code::Malformed,
    Code::Invalid,
    Code::FeatureDenied,
    Code::UnknownImport,
    Code::ImportTypeMismatch,
    Code::UndeclaredCapability,
    Code::MemoryTooLarge,
    Code::TableTooLarge,
    Code::EngineLimit,
];

const CAPABILITIES: &[&str] = &["log", "config", "vars", "clock", "random", "stdio", "env", "http:example.com", "net"];

fn module_spec() -> impl Strategy<Value = ModuleSpec> {
    let n = catalogued().len();
    let import = prop_oneof![
        8 => (0..n, prop::bool::weighted(0.15)).prop_map(|(index, wrong_type)| ImportSpec::Catalogued { index, wrong_type }),
        1 => prop::sample::select(vec![("extism:host/env", "log_fatal"), ("wasi_snapshot_preview1", "fd_fake"), ("env", "memcpy")])
            .prop_map(|(m, f)| ImportSpec::Unknown(m, f)),
        1 => Just(ImportSpec::HostFunction),
    ];
    (
        prop::collection::vec(import, 0..6),
        prop::collection::vec(prop_oneof![4 => 0u32..5, 1 => Just(20_000u32)], 0..4),
        prop::collection::vec(prop_oneof![4 => 0u32..3, 1 => Just(2_000u32)], 0..3),
        prop_oneof![3 => 0u32..4, 1 => Just(5_000u32)],
        prop_oneof![3 => 0u32..3, 1 => Just(1_500u32)],
        prop::option::of(prop::sample::subsequence(CAPABILITIES.to_vec(), 0..CAPABILITIES.len())),
    )
        .prop_map(|(imports, tables, memories, globals, custom_sections, manifest)| ModuleSpec {
            imports,
            tables,
            memories,
            globals,
            custom_sections,
            manifest,
        })
}

fn wat(spec: &ModuleSpec) -> String {
    let catalog = catalogued();
    let mut out = String::from("(module\n");
    for (i, import) in spec.imports.iter().enumerate() {
        let line = match import {
            ImportSpec::Catalogued { index, wrong_type } => {
                let (module, name, ty) = &catalog[*index];
                let ty = if *wrong_type { "(param f32) (result f64)" } else { ty.as_str() };
                format!("(import \"{module}\" \"{name}\" (func $i{i} {ty}))")
            }
            ImportSpec::Unknown(module, name) => format!("(import \"{module}\" \"{name}\" (func $i{i}))"),
            ImportSpec::HostFunction => format!("(import \"extism:host/user\" \"kv_get\" (func $i{i} (param i64) (result i64)))"),
        };
        out.push_str(&line);
        out.push('\n');
    }
    for t in &spec.tables {
        out.push_str(&format!("(table {t} funcref)\n"));
    }
    for m in &spec.memories {
        out.push_str(&format!("(memory {m})\n"));
    }
    for g in 0..spec.globals {
        out.push_str(&format!("(global (mut i32) (i32.const {g}))\n"));
    }
    out.push_str("(func (export \"run\") (result i32) (i32.const 0))\n");
    for c in 0..spec.custom_sections {
        out.push_str(&format!("(@custom \"c{c}\" \"x\")\n"));
    }
    out.push(')');
    out
}

fn policy_spec() -> impl Strategy<Value = (usize, Vec<&'static str>, bool)> {
    (0usize..3, prop::sample::subsequence(vec!["log", "config", "vars", "clock", "random", "stdio", "env"], 0..7), any::<bool>())
}

fn policy(base: usize, allow: &[&str], undeclared_is_warning: bool) -> Policy {
    let name = ["default", "permissive-dev", "custom"][base];
    let text = match name {
        "custom" => {
            let allow = allow.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
            let severity = if undeclared_is_warning { "[severity]\nundeclared-capability = \"warning\"\n" } else { "" };
            format!("[policy]\nname = \"custom\"\n[capabilities]\nallow = [{allow}]\nhttp = [\"example.com\"]\n{severity}")
        }
        shipped => std::fs::read_to_string(format!("../policies/{shipped}.toml")).unwrap(),
    };
    Policy::from_toml(&text, stockade::document::Origin::File(format!("{name}.toml"))).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn vet_passes_exactly_what_the_sandbox_instantiates(spec in module_spec(), (base, allow, lenient) in policy_spec()) {
        let mut policy = policy(base, &allow, lenient);
        let dir = tempfile::tempdir().unwrap();
        // The shipped policies' directories are relative to an author's checkout; here they
        // are made, so that only the module decides.
        for (i, grant) in policy.capabilities.fs.iter_mut().enumerate() {
            let host = dir.path().join(format!("fs{i}"));
            std::fs::create_dir(&host).unwrap();
            grant.host = host.display().to_string();
        }
        let module = dir.path().join("plugin.wat");
        std::fs::write(&module, wat(&spec)).unwrap();
        if let Some(declared) = &spec.manifest {
            let caps = declared.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
            std::fs::write(dir.path().join("plugin.toml"), format!("name = \"p\"\nversion = \"1.0.0\"\ncapabilities = [{caps}]\n")).unwrap();
        }
        let file = PluginFile::read(&module).unwrap();
        let vetting = stockade::vet(&file, &VetOptions::new(&policy)).unwrap();
        let sandbox = Sandbox::new(&policy).unwrap();
        let options = LoadOptions { skip_static_check: true, ..LoadOptions::default() };
        let runs = match sandbox.load(&file, &options).unwrap() {
            Load::Ready(plugin) => plugin.instantiate().map_err(|o| format!("{}: {}", o.code, o.error.unwrap_or_default())),
            Load::Failed(outcome) => Err(format!("{}: {}", outcome.code, outcome.error.unwrap_or_default())),
            // Nothing to link at all: the bytes did not analyse.
            Load::Refused(_) => Err("not analysed".to_string()),
        };
        let passes = vetting.verdict() == Verdict::Pass;
        let about_loading = vetting.findings.iter().any(|f| {
            f.severity == Severity::Error
                && match f.code {
                    Code::CapabilityDenied => f.import.is_some(),
                    code => LOADING.contains(&code),
                }
        });
        if passes {
            prop_assert!(runs.is_ok(), "vet passed, but the sandbox: {:?}\n{}", runs, wat(&spec));
        }
        prop_assert_eq!(
            !about_loading,
            runs.is_ok(),
            "vet {:?} ({:?}) but the sandbox: {:?}\n{}",
            vetting.verdict(),
            vetting.findings.iter().map(|f| (f.code, f.severity)).collect::<Vec<_>>(),
            runs,
            wat(&spec)
        );
    }
}

/// At the memory limit's edge vet and the sandbox agree: what instantiating charges (linear
/// memory, 8 bytes a table element, the instance's own state) is what vet adds up, so a
/// module vet passes instantiates and one it refuses as `memory-too-large` does not.
#[test]
fn vet_and_the_sandbox_agree_at_the_memory_limit() {
    let text = "[policy]\nname = \"edge\"\n[limits]\nmemory = \"128KiB\"\ntables = 100000\n";
    let policy = Policy::from_toml(text, stockade::document::Origin::File("edge.toml".into())).unwrap();
    let sandbox = Sandbox::new(&policy).unwrap();
    for (module, fits) in [
        ("(module (memory 1))", true),
        ("(module (memory 2))", false),
        ("(module (memory 1) (table 1000 funcref))", true),
        ("(module (memory 1) (table 8000 funcref))", false),
        ("(module (memory 1) (global i32 (i32.const 0)))", true),
    ] {
        let file = PluginFile::new("/nonexistent/edge.wat", module.as_bytes().to_vec());
        let vetting = stockade::vet(&file, &VetOptions::new(&policy)).unwrap();
        let refused_for_memory = vetting.findings.iter().any(|f| f.code == Code::MemoryTooLarge);
        assert_eq!(!refused_for_memory, fits, "vet of {module}: {:?}", vetting.findings.iter().map(|f| &f.message).collect::<Vec<_>>());
        let options = LoadOptions { skip_static_check: true, ..LoadOptions::default() };
        let runs = match sandbox.load(&file, &options).unwrap() {
            Load::Ready(plugin) => plugin.instantiate().map_err(|o| o.code),
            Load::Failed(outcome) => Err(outcome.code),
            Load::Refused(_) => panic!("{module} did not analyse"),
        };
        assert_eq!(runs.is_ok(), fits, "the sandbox on {module}: {runs:?}");
    }
}
