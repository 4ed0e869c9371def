//! What `stockade conform` prints: a table per attack class, every failing case with its
//! reasons, and the verdict line.

use std::fmt::Write;

use anstyle::AnsiColor;

use crate::conform::{Conformance, Verdict};
use crate::report::human::paint;

pub fn summary(c: &Conformance, color: bool) -> String {
    let mut out = String::new();
    let width = c.summary.classes.keys().map(String::len).max().unwrap_or(5).max(5);
    let _ = writeln!(out, "{:<width$}  {:>5}  {:>5}  {:>5}  {:>5}  {:>5}  {:>5}", "class", "cases", "pass", "fail", "xfail", "xpass", "n/a");
    for (class, n) in &c.summary.classes {
        let failed = if n.failed + n.xpass > 0 {
            paint(AnsiColor::Red.on_default().bold(), format!("{:>5}", n.failed), color)
        } else {
            format!("{:>5}", n.failed)
        };
        let _ = writeln!(
            out,
            "{class:<width$}  {:>5}  {:>5}  {failed}  {:>5}  {:>5}  {:>5}",
            n.total, n.passed, n.xfail, n.xpass, n.not_applicable
        );
    }
    let s = &c.summary;
    let _ = writeln!(
        out,
        "{:<width$}  {:>5}  {:>5}  {:>5}  {:>5}  {:>5}  {:>5}",
        "all", s.total, s.passed, s.failed, s.xfail, s.xpass, s.not_applicable
    );
    for case in c.cases.iter().filter(|case| !matches!(case.verdict, Verdict::Pass | Verdict::NotApplicable)) {
        let label = match case.verdict {
            Verdict::Xfail => paint(AnsiColor::Yellow.on_default().bold(), "XFAIL", color),
            _ => paint(AnsiColor::Red.on_default().bold(), case.verdict.as_str().to_uppercase(), color),
        };
        let _ = writeln!(out, "\n{label} {} ({})", case.id, case.class);
        if let Some(reason) = &case.xfail_reason {
            let _ = writeln!(out, "  expected failure: {reason}");
        }
        for problem in &case.problems {
            let _ = writeln!(out, "  - {}", crate::text::escape::line(problem));
        }
    }
    if let (Some(rss), Some(cpu)) = (super::top(c, 1, |k| k.host.peak_rss_bytes as f64).first(), super::top(c, 1, super::cpu_ms).first()) {
        let _ = writeln!(
            out,
            "\nhighest: peak RSS {} ({}), CPU {:.0} ms ({})\n{}",
            super::mib(rss.host.peak_rss_bytes),
            rss.id,
            super::cpu_ms(cpu),
            cpu.id,
            super::MEASURED_WHERE
        );
    }
    let scope = c.partition.as_ref().map_or(String::new(), |p| format!(", partition {p}"));
    let style = if s.holds() { AnsiColor::Green } else { AnsiColor::Red };
    let verdict = paint(style.on_default().bold(), s.verdict_word(), color);
    let _ = writeln!(out, "\n{verdict} {} on {} under policy `{}`{scope} in {:.1}s", s.sentence(), super::host_under_test(c), c.policy.name, c.duration_ms / 1000.0);
    out
}
