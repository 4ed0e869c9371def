//! `conformance.md`: for a pull request comment or an audit file.

use std::fmt::Write;

use crate::conform::{Conformance, Verdict};

/// Pipes and line breaks would break a table cell; control characters are escaped.
fn cell(text: &str) -> String {
    crate::text::escape::line(text).replace('|', "\\|")
}

pub fn render(c: &Conformance) -> String {
    let mut out = String::new();
    let s = &c.summary;
    let _ = writeln!(out, "# Stockade conformance: {}\n", s.verdict_word());
    let _ = writeln!(out, "{}.\n", s.sentence());
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| tool | {} {} (wasmtime {}, wasmparser {}) |", c.tool.name, c.tool.version, c.tool.wasmtime, c.tool.wasmparser);
    let _ = writeln!(out, "| host | {} |", cell(&super::host_under_test(c)));
    let _ = writeln!(out, "| policy | `{}` sha256 `{}` |", cell(&c.policy.name), c.policy.sha256);
    let _ = writeln!(out, "| corpus | `{}` sha256 `{}` |", cell(&c.corpus.name), c.corpus.sha256);
    if let Some(p) = &c.partition {
        let _ = writeln!(out, "| partition | {p} |");
    }
    let _ = writeln!(out, "| started | {} |", c.started_at);
    let _ = writeln!(out, "| duration | {:.1} s |\n", c.duration_ms / 1000.0);

    let _ = writeln!(out, "## By attack class\n");
    let _ = writeln!(out, "| class | cases | pass | fail | xfail | xpass | n/a |\n|---|---:|---:|---:|---:|---:|---:|");
    for (class, n) in &s.classes {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(class),
            n.total,
            n.passed,
            n.failed,
            n.xfail,
            n.xpass,
            n.not_applicable
        );
    }

    let _ = writeln!(out, "\n## Highest cost\n\nNote: {}.\n", super::MEASURED_WHERE);
    let _ = writeln!(out, "| case | peak RSS | bound | CPU | wall |\n|---|---:|---:|---:|---:|");
    let mut costly = super::top(c, 5, |k| k.host.peak_rss_bytes as f64);
    costly.extend(super::top(c, 5, super::cpu_ms).into_iter().filter(|k| !costly.iter().any(|x| x.id == k.id)).collect::<Vec<_>>());
    for case in costly {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {:.0} ms | {:.0} ms |",
            case.id,
            super::mib(case.host.peak_rss_bytes),
            super::mib(case.host.rss_bound_bytes),
            super::cpu_ms(case),
            case.host.wall_ms
        );
    }

    let failing: Vec<_> = c.cases.iter().filter(|case| case.verdict != Verdict::Pass).collect();
    // Not-applicable cases are listed with the rest: they did not pass, and say why.
    if !failing.is_empty() {
        let _ = writeln!(out, "\n## Cases that did not pass\n");
        for case in failing {
            let _ = writeln!(out, "### `{}`: {}\n", case.id, case.verdict.as_str());
            let _ = writeln!(out, "{} (class `{}`)\n", case.description, case.class);
            if let Some(reason) = &case.xfail_reason {
                let _ = writeln!(out, "Expected failure: {reason}\n");
            }
            for problem in &case.problems {
                let _ = writeln!(out, "- {}", crate::text::escape::line(problem));
            }
            out.push('\n');
        }
    }

    let differently: Vec<_> = c.cases.iter().filter(|case| !case.notes.is_empty()).collect();
    if !differently.is_empty() {
        let _ = writeln!(out, "\n## Stopped with other codes\n\nThe host under test stopped these attacks in its own words:\n");
        for case in differently {
            for note in &case.notes {
                let _ = writeln!(out, "- `{}`: {}", case.id, crate::text::escape::line(note));
            }
        }
    }

    let _ = writeln!(out, "\n## All cases\n");
    let _ = writeln!(out, "| case | class | verdict | expected | actual | peak RSS | CPU |\n|---|---|---|---|---|---:|---:|");
    for case in &c.cases {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {:.0} ms |",
            case.id,
            cell(&case.class),
            case.verdict.as_str(),
            cell(&super::expectation(case)),
            cell(&super::actual(case)),
            super::mib(case.host.peak_rss_bytes),
            super::cpu_ms(case)
        );
    }
    out
}
