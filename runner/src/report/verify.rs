//! `stockade verify`'s report: verified (who signed, what was checked, when) or refused (the
//! code and why), for people and as `stockade.verify/1`.

use std::fmt::Write;

use serde::Serialize;

use crate::signature::{Refusal, Signer, Verified};
use crate::text::escape;

pub const VERIFY_SCHEMA: &str = "stockade.verify/1";

/// `stockade.verify/1` (its JSON Schema: reports/verify.schema.json). Fields in name order,
/// as the document has always been written.
#[derive(Serialize)]
#[serde(untagged)]
enum Document<'a> {
    Verified { checks: &'a [&'static str], file: &'a str, schema: &'static str, signer: &'a Signer, times: &'a [String], verified: bool },
    Refused { code: &'static str, file: &'a str, reason: String, schema: &'static str, verified: bool },
}

/// The finding code a refusal is reported as, as `vet` reports it.
pub fn refusal_code(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::Malformed(_) | Refusal::Invalid(_) => "signature-invalid",
        Refusal::Untrusted(_) => "signer-untrusted",
    }
}

pub fn json(file: &str, outcome: &Result<Verified, Refusal>) -> String {
    let document = match outcome {
        Ok(verified) => Document::Verified { checks: &verified.checks, file, schema: VERIFY_SCHEMA, signer: &verified.signer, times: &verified.times, verified: true },
        Err(refusal) => Document::Refused { code: refusal_code(refusal), file, reason: refusal.to_string(), schema: VERIFY_SCHEMA, verified: false },
    };
    serde_json::to_string(&document).expect("the verify document serializes")
}

pub fn human(file: &str, outcome: &Result<Verified, Refusal>) -> String {
    let mut out = String::new();
    match outcome {
        Ok(verified) => {
            let signer = match &verified.signer {
                Signer::Key { fingerprint } => format!("key sha256:{fingerprint}"),
                Signer::Keyless { identity, issuer } => format!("{} (issuer {})", escape::line(identity), escape::line(issuer.as_deref().unwrap_or("none"))),
            };
            let _ = writeln!(out, "Verified OK {}: signed by {signer}", escape::line(file));
            for check in &verified.checks {
                let _ = writeln!(out, "  checked: {check}");
            }
            for time in &verified.times {
                let _ = writeln!(out, "  signed at: {time}");
            }
        }
        Err(refusal) => {
            let _ = writeln!(out, "REFUSED {}: {}", escape::line(file), escape::line(&refusal.to_string()));
        }
    }
    out
}
