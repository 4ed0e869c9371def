//! `stockade inspect`: everything the loader learned about a plugin, for its author.

use std::fmt::Write;

use serde::Serialize;

use crate::analyze::{Analysis, ModuleKind};
use crate::capability::ImportClass;
use crate::document::Origin;
use crate::manifest::Manifest;
use crate::policy::Policy;
use crate::signature::{Checked, FileVerdict};
use crate::units::Bytes;
use crate::vet::{Finding, ManifestStatus, Verdict, Vetting};

use crate::text::escape::line as esc;
use super::human::paint;

pub const INSPECT_SCHEMA: &str = "stockade.inspect/1";

/// How one import is served.
fn class_and_grant(class: &ImportClass, policy: &Policy, manifest: Option<&Manifest>) -> (String, &'static str) {
    match class {
        ImportClass::Core => ("(core ABI)".to_string(), "always"),
        ImportClass::Unknown => ("unknown".to_string(), "no"),
        ImportClass::Needs(need) => {
            let granted = crate::grant::PluginGrants::new(policy, manifest).allows(need);
            (need.to_string(), if granted { "yes" } else { "no" })
        }
    }
}

fn manifest_source(status: &ManifestStatus) -> String {
    match status {
        ManifestStatus::Absent => {
            "none found (no plugin.toml beside the module, no `stockade.manifest` section): the plugin \
             is taken to declare exactly what it imports"
                .to_string()
        }
        ManifestStatus::Loaded { origin: Origin::Section { .. }, .. } => "embedded `stockade.manifest` section".to_string(),
        ManifestStatus::Loaded { origin, .. } => origin.to_string(),
        ManifestStatus::Invalid(error) => format!("invalid: {error}"),
    }
}

/// The human rendering.
pub fn human(v: &Vetting, policy: &Policy, color: bool) -> String {
    let bold = anstyle::Style::new().bold();
    let heading = |out: &mut String, title: &str| {
        let _ = writeln!(out, "\n{}", paint(bold, title, color));
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", paint(bold, esc(&crate::text::display_path(&v.path)), color));
    let _ = writeln!(out, "  size      {} bytes", v.size);
    let _ = writeln!(out, "  sha256    {}", v.sha256);
    let _ = writeln!(out, "  manifest  {}", esc(&manifest_source(&v.manifest)));
    let _ = writeln!(out, "  policy    {}", policy.name());
    let manifest = v.manifest.manifest();
    if let Some(m) = manifest {
        let host = m.host.as_ref().map_or("any".to_string(), |h| h.to_string());
        let _ = writeln!(out, "  plugin    {} {} (host API {host})", esc(&m.name), m.version);
        if let Some(d) = &m.description {
            let _ = writeln!(out, "            {}", esc(d));
        }
    }

    let Some(a) = &v.analysis else {
        heading(&mut out, "Not analysed");
        for f in &v.findings {
            let _ = writeln!(out, "  {}[{}]: {}", f.severity, f.code, esc(&f.message));
        }
        return out;
    };
    let kind = match a.kind {
        ModuleKind::Module => "core module",
        ModuleKind::Component => "component",
    };
    let abis: Vec<String> = a.abis().iter().map(|abi| format!("{abi:?}")).collect();
    let _ = writeln!(out, "  kind      {kind}{}", if abis.is_empty() { String::new() } else { format!(" ({})", abis.join(", ")) });

    heading(&mut out, "Imports");
    if a.imports.is_empty() {
        let _ = writeln!(out, "  (none)");
    } else {
        let width = a.imports.iter().map(|i| esc(&i.display_name()).chars().count()).max().unwrap_or(0).clamp(6, 64);
        let _ = writeln!(out, "  {:<width$}  {:<10}  {:<22}  granted", "import", "offset", "capability");
        for import in &a.imports {
            let (capability, granted) = class_and_grant(&import.class, policy, manifest);
            let _ = writeln!(
                out,
                "  {:<width$}  {:<10}  {:<22}  {granted}",
                esc(&import.display_name()),
                format!("{:#x}", import.offset),
                capability
            );
        }
    }

    heading(&mut out, "Exports");
    if a.exports.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for export in &a.exports {
        let _ = writeln!(out, "  {:<32}  {:?}", esc(&export.name), export.kind);
    }

    heading(&mut out, "Memories and tables");
    for m in &a.memories {
        let max = m.maximum_bytes().map_or("no maximum".to_string(), |b| format!("max {}", Bytes(b)));
        let flags = [(m.imported, "imported"), (m.memory64, "64-bit"), (m.shared, "shared")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| *name)
            .collect::<Vec<_>>();
        let flags = if flags.is_empty() { String::new() } else { format!(", {}", flags.join(", ")) };
        let _ = writeln!(out, "  memory  initial {} ({} pages), {max}{flags}", Bytes(m.initial_bytes()), m.initial);
    }
    for t in &a.tables {
        let max = t.maximum.map_or("no maximum".to_string(), |m| format!("max {m}"));
        let _ = writeln!(out, "  table   initial {} elements, {max}{}", t.initial, if t.imported { ", imported" } else { "" });
    }
    if a.memories.is_empty() && a.tables.is_empty() {
        let _ = writeln!(out, "  (none)");
    }

    heading(&mut out, "Code and data");
    let largest = a.bodies.iter().max_by_key(|b| b.size);
    let _ = writeln!(out, "  functions        {} defined, {} imported", a.defined_functions, a.imported_functions);
    if let Some(b) = largest {
        let _ = writeln!(out, "  largest body     {} bytes (function {}, offset {:#x})", b.size, b.index, b.offset);
    }
    let _ = writeln!(out, "  most locals      {}", a.bodies.iter().map(|b| b.locals).max().unwrap_or(0));
    let _ = writeln!(out, "  data             {} bytes in {} segments", a.data_bytes, a.data_segments);
    let start = a.start.as_ref().map_or("none".to_string(), |s| format!("function {}", s.function));
    let _ = writeln!(out, "  start function   {start}");
    if a.nested_modules > 0 {
        let _ = writeln!(out, "  nested modules   {}", a.nested_modules);
    }

    heading(&mut out, "Limits (manifest asks / policy caps)");
    let asked = manifest.map(|m| &m.limits);
    let _ = writeln!(
        out,
        "  memory   {} / {}",
        asked.and_then(|l| l.memory).map_or("-".to_string(), |b| b.to_string()),
        policy.limits.memory
    );
    let _ = writeln!(
        out,
        "  timeout  {} / {}",
        asked.and_then(|l| l.timeout).map_or("-".to_string(), |t| t.to_string()),
        policy.limits.timeout
    );

    heading(&mut out, "Signatures");
    signatures(&mut out, v, policy);

    heading(&mut out, "Custom sections");
    if a.custom_sections.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for c in &a.custom_sections {
        let _ = writeln!(out, "  {:<32}  {} bytes at {:#x}", esc(&c.name), c.size, c.offset);
    }
    let unlisted = a.custom_section_count.saturating_sub(a.custom_sections.len() as u64);
    if unlisted > 0 {
        let _ = writeln!(out, "  … and {unlisted} more ({} custom sections, {} bytes in all)", a.custom_section_count, a.custom_section_bytes);
    }

    heading(&mut out, "Verdict");
    let verdict = match v.verdict() {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
    };
    let _ = writeln!(out, "  {verdict} ({} findings; `stockade vet` explains each)", v.findings.len());
    out
}

/// Who signed, when, and what was checked, file by file; then what the policy asks for.
fn signatures(out: &mut String, v: &Vetting, policy: &Policy) {
    for checked in &v.signatures {
        let path = crate::text::display_path(&checked.path);
        let name = esc(&path);
        match &checked.verdict {
            FileVerdict::Verified(verified) => {
                let _ = writeln!(out, "  {name}  verified: signed by {}", esc(&verified.signer.to_string()));
                for time in &verified.times {
                    let _ = writeln!(out, "    signed at  {time}");
                }
                for check in &verified.checks {
                    let _ = writeln!(out, "    checked    {check}");
                }
            }
            FileVerdict::Invalid { reason } => {
                let _ = writeln!(out, "  {name}  does not verify: {}", esc(reason));
            }
            FileVerdict::UnknownKey { hint } => {
                let _ = writeln!(out, "  {name}  signed with a key the policy does not hold (hint {}); not checked", esc(hint));
            }
            FileVerdict::Unattributed => {
                let _ = writeln!(out, "  {name}  verifies with no key the policy holds; not checked");
            }
        }
    }
    if v.signatures.is_empty() {
        let _ = writeln!(out, "  (none beside the module)");
    }
    let required = if policy.signatures.required { "requires a signature" } else { "does not require a signature" };
    let trusted = match policy.signatures.trusted().rule_text() {
        Some(rule) => format!("trusts {rule}"),
        None => "trusts no signer".to_string(),
    };
    let _ = writeln!(out, "  policy `{}` {required}; it {trusted}", policy.name());
}

#[derive(Serialize)]
struct InspectDocument<'a> {
    schema: &'static str,
    path: String,
    sha256: &'a str,
    size: usize,
    manifest_source: String,
    manifest: Option<&'a Manifest>,
    analysis: Option<&'a Analysis>,
    signatures: &'a [Checked],
    verdict: Verdict,
    findings: &'a [Finding],
}

/// The JSON rendering (`stockade.inspect/1`).
pub fn json(v: &Vetting) -> String {
    let document = InspectDocument {
        schema: INSPECT_SCHEMA,
        path: crate::text::display_path(&v.path),
        sha256: v.sha256.as_str(),
        size: v.size,
        manifest_source: manifest_source(&v.manifest),
        manifest: v.manifest.manifest(),
        analysis: v.analysis.as_ref(),
        signatures: &v.signatures,
        verdict: v.verdict(),
        findings: &v.findings,
    };
    serde_json::to_string_pretty(&document).expect("the inspect document serialises")
}
