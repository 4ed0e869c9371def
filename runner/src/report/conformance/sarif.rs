//! `findings.sarif`: SARIF 2.1.0, one rule per code, one result per case: `pass` or `fail`
//! against the code the case expected, located at its `case.toml`. An expected failure is a
//! failing result with an external suppression that carries its reason.

use serde_json::{Value, json};

use crate::code::Code;
use crate::conform::{CaseResult, Conformance, Verdict};
use crate::report::sarif::{SARIF_SCHEMA, level, rules_for, tool};

/// The code a case is about: the worker's fault, the first step that went wrong, else its last
/// expectation.
fn rule_of(case: &CaseResult) -> Code {
    if let Some(fault) = case.fault {
        return fault;
    }
    let wrong = case.steps.iter().find(|s| s.expected != s.actual);
    wrong.or(case.steps.last()).map_or(Code::Ok, |s| s.expected.code)
}

pub fn render(c: &Conformance) -> String {
    let codes: Vec<Code> = Code::ALL.to_vec();
    let results: Vec<Value> = c
        .cases
        .iter()
        .map(|case| {
            let code = rule_of(case);
            let text = if case.problems.is_empty() {
                format!("{}: {} ({})", case.id, case.description, super::actual(case))
            } else {
                format!("{}: {}", case.id, case.problems.join("; "))
            };
            let mut result = json!({
                "ruleId": code.as_str(),
                "ruleIndex": codes.iter().position(|c| *c == code).unwrap_or(0),
                "kind": match case.verdict { Verdict::Pass => "pass", Verdict::NotApplicable => "notApplicable", _ => "fail" },
                "level": if matches!(case.verdict, Verdict::Pass | Verdict::NotApplicable) { "none" } else { level(crate::code::Severity::Error) },
                "message": { "text": text },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": format!("{}/{}/case.toml", c.corpus.name.trim_end_matches('/'), case.id) },
                        "region": { "startLine": 1 },
                    }
                }],
                "properties": {
                    "class": case.class,
                    "verdict": case.verdict.as_str(),
                    "durationMs": case.duration_ms,
                    "fault": case.fault.map(|code| code.as_str()),
                    "host": case.host,
                },
            });
            if let Some(reason) = &case.xfail_reason {
                result["suppressions"] = json!([{ "kind": "external", "justification": reason }]);
            }
            result
        })
        .collect();
    let document = json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": tool(rules_for(&codes)),
            "automationDetails": { "id": format!("stockade-conform/{}/", c.policy.name) },
            "properties": {
                "host": c.host,
                "adapter": c.adapter,
                "measured": super::MEASURED_WHERE,
                "policy": c.policy,
                "corpus": c.corpus,
            },
            "results": results,
        }]
    });
    let mut text = serde_json::to_string_pretty(&document).expect("SARIF serialises");
    text.push('\n');
    text
}
