//! The conformance reports, every one rendered from the one [`Conformance`] document:
//! `conformance.json` (canonical), `conformance.xml` (JUnit), `conformance.md`,
//! `conformance.html`, `findings.sarif` and `attestation.intoto.json`.

mod html;
mod intoto;
mod junit;
mod markdown;
mod sarif;
mod terminal;

use std::path::{Path, PathBuf};

use crate::conform::Conformance;

pub use terminal::summary as terminal_summary;

/// Each report's file name and how it is rendered.
/// Renders one report from the conformance model.
pub type Render = fn(&Conformance) -> String;

pub const REPORTS: [(&str, Render); 6] = [
    ("conformance.json", json),
    ("conformance.xml", junit::render),
    ("conformance.md", markdown::render),
    ("conformance.html", html::render),
    ("findings.sarif", sarif::render),
    ("attestation.intoto.json", intoto::render),
];

pub fn json(conformance: &Conformance) -> String {
    let mut text = serde_json::to_string_pretty(conformance).expect("the conformance document serialises");
    text.push('\n');
    text
}

pub use markdown::render as markdown;

/// Writes every report into `dir`, each atomically. Returns the paths written.
pub fn write_all(conformance: &Conformance, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (name, render) in REPORTS {
        let path = dir.join(name);
        crate::atomic::write(&path, &[render(conformance).as_bytes()], crate::atomic::Kind::Published)?;
        written.push(path);
    }
    Ok(written)
}

/// Escapes text for XML and HTML content and attribute values.
fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and newline are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' && c != '\r' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Each step of a case as `name: value`, for one side (expected or actual).
fn steps(case: &crate::conform::CaseResult, side: impl Fn(&crate::conform::Step) -> String) -> Vec<String> {
    case.steps.iter().map(|s| format!("{}: {}", s.name, side(s))).collect()
}

/// What a case's expectation was, in one line: every step's expected code and stage.
fn expectation(case: &crate::conform::CaseResult) -> String {
    steps(case, |s| s.expected.to_string()).join("; ")
}

/// What actually happened, in one line.
fn actual(case: &crate::conform::CaseResult) -> String {
    steps(case, |s| s.actual.to_string()).join("; ")
}

/// A case's figures as the operating system measured them, in one line.
fn host_line(case: &crate::conform::CaseResult) -> String {
    let h = &case.host;
    format!(
        "worker peak RSS {} (bound {}), CPU {:.0} ms user + {:.0} ms system, wall {:.0} ms (measured by {})",
        mib(h.peak_rss_bytes),
        mib(h.rss_bound_bytes),
        h.user_cpu_ms,
        h.system_cpu_ms,
        h.wall_ms,
        h.measured_by
    )
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// Where every figure of a case was measured, as the reports say it.
pub const MEASURED_WHERE: &str = "each case's figures were measured outside the sandbox, on the worker process that ran \
it: peak RSS by wait4 (a worker that ran the case alone) or VmHWM reset through /proc/PID/clear_refs before the case; \
CPU by wait4 or /proc/PID/stat; wall by the conform process's clock; per step, the worker's clock and getrusage";

/// The `n` cases that cost most by `key`, highest first.
fn top(c: &Conformance, n: usize, key: impl Fn(&crate::conform::CaseResult) -> f64) -> Vec<&crate::conform::CaseResult> {
    let mut cases: Vec<_> = c.cases.iter().collect();
    cases.sort_by(|a, b| key(b).total_cmp(&key(a)).then_with(|| a.id.cmp(&b.id)));
    cases.truncate(n);
    cases
}

fn cpu_ms(case: &crate::conform::CaseResult) -> f64 {
    case.host.user_cpu_ms + case.host.system_cpu_ms
}

/// The host judged, for a report's header: Stockade's own worker, or an adapter's host.
fn host_under_test(c: &Conformance) -> String {
    match &c.adapter {
        Some(adapter) => format!("{} (through the adapter {adapter})", c.host),
        None => c.host.clone(),
    }
}
