//! SARIF 2.1.0, as GitHub code scanning ingests it: one run, one rule per static code.

use serde_json::{Value, json};
use sha2::Digest;

use crate::code::{Code, Severity, Stage};
use crate::vet::Vetting;

pub const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
const INFORMATION_URI: &str = "https://github.com/stockade/stockade";

pub(crate) fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

/// The rules: every static code, in catalog order, so rule indices are stable across runs.
fn rules() -> (Vec<Code>, Vec<Value>) {
    let codes: Vec<Code> = Code::ALL.iter().copied().filter(|c| c.stage() == Stage::Static).collect();
    let rules = rules_for(&codes);
    (codes, rules)
}

/// One SARIF rule per code, in the order given.
pub(crate) fn rules_for(codes: &[Code]) -> Vec<Value> {
    codes
        .iter()
        .map(|code| {
            let mut rule = json!({
                "id": code.as_str(),
                "shortDescription": { "text": code.summary() },
                "fullDescription": { "text": code.explanation() },
                "help": {
                    "text": format!("{}\n\nRun `stockade explain {code}` for more.", code.explanation()),
                },
                "defaultConfiguration": { "level": level(code.default_severity()) },
                "properties": { "tags": ["security", "webassembly"] },
            });
            // SARIF wants a name only when it says more than the id (SARIF1001).
            let name = pascal_case(code.as_str());
            if !name.eq_ignore_ascii_case(code.as_str()) {
                rule["name"] = json!(name);
            }
            rule
        })
        .collect()
}

/// The `tool` object of a SARIF run.
pub(crate) fn tool(rules: Vec<Value>) -> Value {
    json!({
        "driver": {
            "name": "stockade",
            "version": env!("CARGO_PKG_VERSION"),
            "semanticVersion": env!("CARGO_PKG_VERSION"),
            "informationUri": INFORMATION_URI,
            "rules": rules,
        }
    })
}

fn pascal_case(kebab: &str) -> String {
    kebab
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or(String::new(), |first| first.to_ascii_uppercase().to_string() + chars.as_str())
        })
        .collect()
}

/// One SARIF log holding the results of every vetting.
pub fn document(vettings: &[Vetting]) -> Value {
    let (codes, rules) = rules();
    let mut results = Vec::new();
    for vetting in vettings {
        let module_uri = crate::text::display_path(&vetting.path);
        for finding in &vetting.findings {
            let (uri, region) = match &finding.location {
                Some(loc) => {
                    let region = loc.line.map(|line| {
                        json!({ "startLine": line, "startColumn": loc.column.unwrap_or(1) })
                    });
                    (crate::text::display_path(std::path::Path::new(&loc.path)), region)
                }
                None => (module_uri.clone(), None),
            };
            let mut text = finding.message.clone();
            if let Some(offset) = finding.offset {
                text.push_str(&format!(" (offset {offset:#x})"));
            }
            if let Some(help) = &finding.help {
                text.push_str(&format!(". Help: {help}"));
            }
            let mut physical = json!({ "artifactLocation": { "uri": uri } });
            if let Some(region) = region {
                physical["region"] = region;
            }
            let fingerprint = hex::encode(sha2::Sha256::digest(
                format!("{}\0{}\0{}\0{}", finding.code, module_uri, vetting.sha256, finding.message).as_bytes(),
            ));
            let mut properties = json!({ "plugin-sha256": vetting.sha256 });
            if let Some(offset) = finding.offset {
                properties["offset"] = json!(offset);
            }
            if let Some(capability) = &finding.capability {
                properties["capability"] = json!(capability);
            }
            if let Some(import) = &finding.import {
                properties["import"] = json!({ "module": import.module, "name": import.name });
            }
            results.push(json!({
                "ruleId": finding.code.as_str(),
                "ruleIndex": codes.iter().position(|c| *c == finding.code).unwrap_or(0),
                "level": level(finding.severity),
                "message": { "text": text },
                "locations": [{ "physicalLocation": physical }],
                "partialFingerprints": { "stockadeFinding/v1": fingerprint },
                "properties": properties,
            }));
        }
    }
    json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": tool(rules),
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    })
}
