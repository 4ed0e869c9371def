//! The `stockade.vet/1` JSON contract.

use serde::Serialize;

use crate::vet::{Finding, Verdict, Vetting};

pub const VET_SCHEMA: &str = "stockade.vet/1";

#[derive(Serialize)]
struct VetDocument<'a> {
    schema: &'static str,
    plugin: PluginRef,
    verdict: Verdict,
    findings: &'a [Finding],
}

#[derive(Serialize)]
struct PluginRef {
    path: String,
    sha256: String,
    size: usize,
}

/// One vetting as a single line of JSON (several make JSON Lines).
pub fn vet_line(vetting: &Vetting) -> String {
    let document = VetDocument {
        schema: VET_SCHEMA,
        plugin: PluginRef {
            path: crate::text::display_path(&vetting.path),
            sha256: vetting.sha256.to_string(),
            size: vetting.size,
        },
        verdict: vetting.verdict(),
        findings: &vetting.findings,
    };
    serde_json::to_string(&document).expect("the vet document serialises")
}
