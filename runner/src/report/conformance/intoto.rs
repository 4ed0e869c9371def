//! `attestation.intoto.json`: an in-toto Statement (v1) with the test-result predicate (v0.1).
//! Its subjects are the corpus and the policy, by digest, so the attestation says which
//! evidence it covers; a signer (cosign attest, for one) can wrap it in an envelope. The
//! predicate holds only test names, so its configuration names `conformance.json` by digest:
//! the document that says why each case failed is bound to the attestation.

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::conform::{Conformance, Verdict};

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const TEST_RESULT_PREDICATE: &str = "https://in-toto.io/attestation/test-result/v0.1";

pub fn render(c: &Conformance) -> String {
    let ids = |wanted: &[Verdict]| -> Vec<&str> {
        c.cases.iter().filter(|case| wanted.contains(&case.verdict)).map(|case| case.id.as_str()).collect()
    };
    let result = if !c.summary.holds() {
        "FAILED"
    } else if c.summary.xfail + c.summary.not_applicable > 0 {
        "WARNED"
    } else {
        "PASSED"
    };
    // A merged report names the shards it was made from, each by the digest of its report.
    let shards = c.shards.iter().map(|s| json!({ "name": format!("shard {}", s.partition), "digest": { "sha256": s.sha256 }, "mediaType": "application/json" }));
    let mut configuration = vec![
        json!({ "name": format!("policy:{}", c.policy.name), "digest": { "sha256": c.policy.sha256 } }),
        json!({ "name": format!("{} {}", c.tool.name, c.tool.version), "annotations": { "wasmtime": c.tool.wasmtime, "wasmparser": c.tool.wasmparser } }),
        json!({ "name": format!("host:{}", c.host), "annotations": { "adapter": c.adapter } }),
        json!({ "name": "conformance.json", "digest": { "sha256": hex::encode(Sha256::digest(super::json(c))) }, "mediaType": "application/json" }),
    ];
    configuration.extend(shards);
    let document = json!({
        "_type": STATEMENT_TYPE,
        "subject": [
            { "name": format!("corpus:{}", c.corpus.name), "digest": { "sha256": c.corpus.sha256 } },
            { "name": format!("policy:{}", c.policy.name), "digest": { "sha256": c.policy.sha256 } },
        ],
        "predicateType": TEST_RESULT_PREDICATE,
        "predicate": {
            "result": result,
            "configuration": configuration,
            "passedTests": ids(&[Verdict::Pass]),
            // Expected failures, and cases the host under test cannot express: neither passed.
            "warnedTests": ids(&[Verdict::Xfail, Verdict::NotApplicable]),
            "failedTests": ids(&[Verdict::Fail, Verdict::Xpass]),
        }
    });
    let mut text = serde_json::to_string_pretty(&document).expect("the statement serialises");
    text.push('\n');
    text
}
