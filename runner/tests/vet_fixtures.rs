//! Every static code, produced by a fixture; every shipped policy, exercised.

mod common;

use std::collections::BTreeSet;

use stockade::code::Stage;
use stockade::vet::Verdict;
use stockade::{Code, Policy};

use common::*;

#[derive(Clone, Copy, Debug)]
enum Under {
    Default,
    Shipped(&'static str),
    /// The fixture's own policy.toml.
    Own,
}

struct Case {
    fixture: &'static str,
    under: Under,
    codes: &'static [Code],
    verdict: Verdict,
}

const fn case(fixture: &'static str, under: Under, codes: &'static [Code], verdict: Verdict) -> Case {
    Case { fixture, under, codes, verdict }
}

use Code::*;
use Under::*;
use Verdict::{Fail, Pass};

const CASES: &[Case] = &[
    case("benign-extism", Default, &[], Pass),
    case("benign-extism", Shipped("registry-strict"), &[SignatureMissing], Fail),
    case("benign-extism", Shipped("permissive-dev"), &[], Pass),
    case("malformed-wat", Default, &[Malformed], Fail),
    case("invalid", Default, &[Invalid], Fail),
    case("feature-denied", Default, &[FeatureDenied], Fail),
    case("feature-denied", Shipped("permissive-dev"), &[], Pass),
    case("unknown-import", Default, &[UnknownImport, UnknownImport], Fail),
    case("undeclared-capability", Default, &[UndeclaredCapability], Fail),
    case("undeclared-capability", Shipped("permissive-dev"), &[UndeclaredCapability], Pass),
    case("capability-denied", Default, &[CapabilityDenied], Fail),
    case("capability-denied", Shipped("permissive-dev"), &[], Pass),
    case("unused-capability", Default, &[UnusedCapability], Pass),
    case("unused-capability", Shipped("permissive-dev"), &[UnusedCapability], Pass),
    case("missing-export", Default, &[MissingExport], Fail),
    case("module-too-large", Own, &[ModuleTooLarge], Fail),
    case("module-too-large", Default, &[], Pass),
    case("too-many-functions", Own, &[TooManyFunctions], Fail),
    case("function-too-large", Own, &[FunctionTooLarge, FunctionTooLarge], Fail),
    case("memory-too-large", Default, &[MemoryTooLarge], Fail),
    case("memory-too-large", Shipped("permissive-dev"), &[], Pass),
    case("table-too-large", Default, &[TableTooLarge], Fail),
    case("data-too-large", Own, &[DataTooLarge], Fail),
    case("start-function", Default, &[StartFunction], Pass),
    case("start-function", Shipped("registry-strict"), &[StartFunction, SignatureMissing], Fail),
    case("manifest-unknown-field", Default, &[ManifestInvalid], Fail),
    case("manifest-wrong-type", Default, &[ManifestInvalid], Fail),
    case("manifest-embedded-bad", Default, &[ManifestInvalid], Fail),
    case("manifest-embedded-good", Default, &[], Pass),
    case("host-incompatible", Default, &[HostIncompatible], Fail),
    case("no-manifest-wasi", Default, &[CapabilityDenied, CapabilityDenied], Fail),
    case("no-manifest-wasi", Shipped("permissive-dev"), &[], Pass),
    case("sockets", Default, &[CapabilityDenied], Fail),
    case("sockets", Shipped("permissive-dev"), &[CapabilityDenied], Fail),
    case("host-function", Default, &[CapabilityDenied], Fail),
    case("component", Default, &[CapabilityDenied], Fail),
    case("component", Shipped("registry-strict"), &[FeatureDenied, CapabilityDenied, CapabilityDenied, SignatureMissing], Fail),
    case("signature-required", Shipped("registry-strict"), &[SignatureMissing], Fail),
    case("signature-unverifiable", Shipped("registry-strict"), &[SignatureInvalid], Fail),
    case("import-type-mismatch", Default, &[ImportTypeMismatch], Fail),
    case("import-type-mismatch", Shipped("permissive-dev"), &[ImportTypeMismatch], Fail),
    case("extism-unknown-name", Default, &[UnknownImport], Fail),
    case("too-many-custom-sections", Own, &[TooManyCustomSections], Fail),
    case("too-many-custom-sections", Default, &[], Pass),
    case("custom-sections-too-large", Own, &[CustomSectionsTooLarge], Fail),
    case("function-too-complex", Own, &[FunctionTooComplex], Fail),
    case("function-too-complex", Default, &[], Pass),
    case("module-too-complex", Own, &[ModuleTooComplex], Fail),
    case("engine-limit", Own, &[EngineLimit], Fail),
    case("too-many-imports", Own, &[TooManyImports], Fail),
    case("too-many-imports", Default, &[], Pass),
    case("too-many-exports", Own, &[TooManyExports], Fail),
    case("too-many-types", Own, &[TooManyTypes], Fail),
    case("too-many-globals", Own, &[TooManyGlobals], Fail),
    case("too-many-globals", Default, &[], Pass),
    case("too-many-segments", Own, &[TooManySegments], Fail),
    case("too-many-segments", Default, &[], Pass),
];

/// Static codes no fixture can produce yet, and why. Keep this list short and honest.
const NOT_YET_PRODUCED: &[(Code, &str)] = &[
    (SignerUntrusted, "needs Sigstore verification, which this build does not have (it fails closed with signature-invalid)"),
    (CompileTimeout, "produced when compiling, by the sandbox"),
];

fn policy_for(case: &Case) -> Policy {
    match case.under {
        Default => Policy::builtin_default(),
        Shipped(name) => shipped_policy(name),
        Own => Policy::from_path(&fixture(case.fixture).join("policy.toml")).expect("fixture policy parses"),
    }
}

#[test]
fn every_fixture_gives_its_codes_and_verdict() {
    let mut failures = Vec::new();
    for case in CASES {
        let vetting = vet_path(&fixture_module(case.fixture), &policy_for(case));
        let mut got: Vec<Code> = vetting.findings.iter().map(|f| f.code).collect();
        let mut want = case.codes.to_vec();
        got.sort();
        want.sort();
        if got != want || vetting.verdict() != case.verdict {
            failures.push(format!(
                "{} under {:?}: want {want:?} {:?}, got {got:?} {:?}\n{:#?}",
                case.fixture,
                case.under,
                case.verdict,
                vetting.verdict(),
                vetting.findings
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_static_code_has_a_fixture() {
    let produced: BTreeSet<Code> = CASES.iter().flat_map(|c| c.codes.iter().copied()).collect();
    for &code in Code::ALL.iter().filter(|c| c.stage() == Stage::Static) {
        let excused = NOT_YET_PRODUCED.iter().any(|(c, _)| *c == code);
        assert!(produced.contains(&code) || excused, "no fixture produces `{code}`");
        assert!(!(produced.contains(&code) && excused), "`{code}` is produced now; take it off NOT_YET_PRODUCED");
    }
}

#[test]
fn every_shipped_policy_is_exercised() {
    for name in ["registry-strict", "permissive-dev"] {
        assert!(CASES.iter().any(|c| matches!(c.under, Shipped(n) if n == name)), "{name} is not exercised");
    }
    assert!(CASES.iter().any(|c| matches!(c.under, Default)));
    // A field a policy leaves out takes default.toml's value (README): the fallbacks coded in
    // Rust and the values written in the file are two sources, and must agree.
    let minimal = Policy::from_toml("[policy]\nname = \"minimal\"\n", stockade::document::Origin::File("minimal.toml".into())).unwrap();
    let file = shipped_policy("default");
    assert_eq!(minimal.limits, file.limits, "limits left out fall back to default.toml's");
    assert_eq!(format!("{:?}", minimal.features), format!("{:?}", file.features), "features left out fall back to default.toml's");
}

#[test]
fn findings_say_where_and_what() {
    let default = Policy::builtin_default();
    let v = vet_path(&fixture_module("manifest-unknown-field"), &default);
    let f = &v.findings[0];
    let location = f.location.as_ref().expect("a manifest file finding has a text location");
    assert!(location.path.ends_with("plugin.toml"));
    assert_eq!(location.line, Some(4));
    assert!(f.message.contains("unknown field `capabilites`"), "{}", f.message);

    let v = vet_path(&fixture_module("manifest-wrong-type"), &default);
    let f = &v.findings[0];
    assert_eq!(f.location.as_ref().unwrap().line, Some(6));
    assert!(f.message.contains("field `limits.memory`"), "{}", f.message);

    let v = vet_path(&fixture_module("manifest-embedded-bad"), &default);
    let f = &v.findings[0];
    assert!(f.offset.is_some(), "an embedded manifest's error points into the module");
    assert!(f.message.contains("field `version`"), "{}", f.message);

    let v = vet_path(&fixture_module("malformed-wat"), &default);
    let f = &v.findings[0];
    assert_eq!(f.offset, Some(64), "{}", f.message);
    assert!(f.message.contains("line 4"), "{}", f.message);

    let v = vet_path(&fixture_module("undeclared-capability"), &default);
    let f = &v.findings[0];
    assert_eq!(f.import.as_ref().unwrap().name, "config_get");
    assert_eq!(f.capability.as_deref(), Some("config"));

    let v = vet_path(&fixture_module("capability-denied"), &default);
    let f = &v.findings[0];
    assert_eq!(f.capability.as_deref(), Some("http:api.example.com"));
    assert!(f.help.as_deref().unwrap().contains("[capabilities] http"));
}

#[test]
fn severity_overrides_apply_and_allow_drops() {
    let mut policy = Policy::builtin_default();
    policy.severity.insert(UnusedCapability, stockade::policy::Level::Error);
    let v = vet_path(&fixture_module("unused-capability"), &policy);
    assert_eq!(v.findings[0].severity, stockade::Severity::Error);
    assert_eq!(v.verdict(), Fail);
    policy.severity.insert(UnusedCapability, stockade::policy::Level::Allow);
    assert!(vet_path(&fixture_module("unused-capability"), &policy).findings.is_empty());
}
