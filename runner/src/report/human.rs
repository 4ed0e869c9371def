//! Output for people: a diagnostic per finding, in the style of rustc and cargo-deny, and a
//! verdict line. Styled with ANSI codes; the caller's stream strips them where colour is off.

use std::fmt::Write;

use anstyle::{AnsiColor, Style};

use crate::text::escape::line as esc;
use crate::code::Severity;
use crate::vet::{Finding, Verdict, Vetting};

const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();

fn severity_style(severity: Severity) -> Style {
    match severity {
        Severity::Error => AnsiColor::Red.on_default().bold(),
        Severity::Warning => AnsiColor::Yellow.on_default().bold(),
        Severity::Note => AnsiColor::Cyan.on_default().bold(),
    }
}

/// Wraps `text` in `style` (or not, when `color` is off).
pub fn paint(style: Style, text: impl std::fmt::Display, color: bool) -> String {
    if color { format!("{style}{text}{style:#}") } else { text.to_string() }
}

/// Renders one vetting: its findings, then the verdict line.
pub fn vetting(v: &Vetting, color: bool) -> String {
    let mut out = String::new();
    let path = esc(&crate::text::display_path(&v.path)).into_owned();
    for finding in &v.findings {
        out.push_str(&self::finding(finding, &path, color));
    }
    let verdict = match v.verdict() {
        Verdict::Pass => paint(AnsiColor::Green.on_default().bold(), "PASS", color),
        Verdict::Fail => paint(AnsiColor::Red.on_default().bold(), "FAIL", color),
    };
    let counts = counts(v);
    let _ = writeln!(out, "{verdict} {} under policy `{}`: {counts}", paint(BOLD, &path, color), v.policy_name);
    out
}

fn counts(v: &Vetting) -> String {
    let parts: Vec<String> = [Severity::Error, Severity::Warning, Severity::Note]
        .into_iter()
        .filter_map(|s| {
            let n = v.count(s);
            (n > 0).then(|| format!("{n} {}{}", s.as_str(), if n == 1 { "" } else { "s" }))
        })
        .collect();
    if parts.is_empty() { "no findings".to_string() } else { parts.join(", ") }
}

pub fn finding(f: &Finding, module_path: &str, color: bool) -> String {
    let mut out = String::new();
    let head = paint(severity_style(f.severity), format!("{}[{}]", f.severity, f.code), color);
    let _ = writeln!(out, "{head}: {}", paint(BOLD, esc(&f.message), color));
    let arrow = paint(DIM, "-->", color);
    match (&f.location, f.offset) {
        (Some(loc), _) => {
            let position = match (loc.line, loc.column) {
                (Some(line), Some(column)) => format!(":{line}:{column}"),
                (Some(line), None) => format!(":{line}"),
                _ => String::new(),
            };
            let _ = writeln!(out, "  {arrow} {}{position}", esc(&loc.path));
        }
        (None, Some(offset)) => {
            let _ = writeln!(out, "  {arrow} {module_path} (offset {offset:#x})");
        }
        (None, None) => {
            let _ = writeln!(out, "  {arrow} {module_path}");
        }
    }
    if let Some(help) = &f.help {
        let _ = writeln!(out, "   {} {}", paint(DIM, "= help:", color), esc(help));
    }
    out.push('\n');
    out
}
