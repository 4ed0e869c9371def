//! Snapshots of what people and programs read: human and JSON output of `vet`, `inspect`
//! and SARIF. A change to any of them shows up as a diff to review.

mod common;

use stockade::Policy;
use stockade::report;

use common::*;

const FIXTURES: &[&str] = &[
    "benign-extism",
    "capability-denied",
    "undeclared-capability",
    "unused-capability",
    "unknown-import",
    "no-manifest-wasi",
    "malformed-wat",
    "feature-denied",
    "manifest-wrong-type",
    "manifest-embedded-bad",
    "component",
];

#[test]
fn vet_human_and_json() {
    let policy = Policy::builtin_default();
    for name in FIXTURES {
        let vetting = vet_path(&fixture_module(name), &policy);
        insta::assert_snapshot!(format!("vet_human__{name}"), report::human::vetting(&vetting, false));
        let json: serde_json::Value = serde_json::from_str(&report::json::vet_line(&vetting)).unwrap();
        insta::assert_json_snapshot!(format!("vet_json__{name}"), json);
    }
}

#[test]
fn vet_under_registry_strict() {
    let policy = shipped_policy("registry-strict");
    let vetting = vet_path(&fixture_module("start-function"), &policy);
    insta::assert_snapshot!(report::human::vetting(&vetting, false));
}

#[test]
fn inspect_human_and_json() {
    let policy = Policy::builtin_default();
    for path in ["../corpus/guests/extism-greet/extism-greet.wasm", "tests/fixtures/vet/component/plugin.wat"] {
        let vetting = vet_path(std::path::Path::new(path), &policy);
        let name = path.split('/').rev().nth(1).unwrap();
        insta::assert_snapshot!(format!("inspect_human__{name}"), report::inspect::human(&vetting, &policy, false));
        let json: serde_json::Value = serde_json::from_str(&report::inspect::json(&vetting)).unwrap();
        insta::assert_json_snapshot!(format!("inspect_json__{name}"), json);
    }
}

#[test]
fn sarif() {
    let policy = Policy::builtin_default();
    let vettings: Vec<_> = ["capability-denied", "manifest-unknown-field"]
        .iter()
        .map(|name| vet_path(&fixture_module(name), &policy))
        .collect();
    let mut document = report::sarif::document(&vettings);
    // The rules are the code catalog, checked elsewhere; the snapshot is about results.
    document["runs"][0]["tool"]["driver"]["rules"] = serde_json::json!("<catalog>");
    insta::assert_json_snapshot!(document, {
        ".runs[0].tool.driver.version" => "[version]",
        ".runs[0].tool.driver.semanticVersion" => "[version]",
    });
}

/// What `vet` and `inspect` print about signatures, from the binary: the corpus's signed plugin,
/// a copy with its code changed, and one signed with another key, under a policy that trusts
/// the registry's key.
#[test]
fn signatures_from_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let key = std::path::Path::new("../corpus/signatures/signed-plugin/registry.pub").canonicalize().unwrap();
    std::fs::write(
        &policy,
        format!("[policy]\nname = \"registry\"\n[signatures]\nrequired = true\n[signatures.signers]\nanyOf = [{{ pubKey = {{ key = {:?} }} }}]\n", key.to_str().unwrap()),
    )
    .unwrap();
    let policy = policy.to_str().unwrap();
    for case in ["signed-plugin", "code-changed", "wrong-key"] {
        let plugin = format!("../corpus/signatures/{case}/plugin.wasm");
        let text = |args: &[&str]| String::from_utf8(stockade(args).stdout).unwrap();
        insta::assert_snapshot!(format!("signatures_vet_human__{case}"), text(&["vet", "--policy", policy, &plugin]));
        let json: serde_json::Value = serde_json::from_str(&text(&["vet", "--format", "json", "--policy", policy, &plugin])).unwrap();
        insta::assert_json_snapshot!(format!("signatures_vet_json__{case}"), json);
        let human = text(&["inspect", "--policy", policy, &plugin]);
        let section = &human[human.find("Signatures").unwrap()..human.find("Custom sections").unwrap()];
        insta::assert_snapshot!(format!("signatures_inspect_human__{case}"), section);
        let json: serde_json::Value = serde_json::from_str(&text(&["inspect", "--format", "json", "--policy", policy, &plugin])).unwrap();
        insta::assert_json_snapshot!(format!("signatures_inspect_json__{case}"), json["signatures"]);
    }
}

/// `stockade plan` on a directory with every kind of problem, human and JSON, from the binary.
#[test]
fn plan_from_the_binary() {
    let out = stockade(&["plan", "tests/fixtures/plan"]);
    assert_eq!(code(&out), 1);
    insta::assert_snapshot!("plan_human", String::from_utf8(out.stdout).unwrap());
    let out = stockade(&["plan", "tests/fixtures/plan", "--format", "json", "--host-version", "9.1.0"]);
    assert_eq!(code(&out), 1);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["schema"], "stockade.plan/1");
    insta::assert_json_snapshot!("plan_json_host_9", json);
}
