//! `conformance.html`: one self-contained page (no scripts, no external resources) that an
//! auditor can open anywhere: the verdict, the digests, a chart of results per attack class,
//! and every case with its expectation and outcome.

use std::fmt::Write;

use super::escape_xml as e;
use crate::conform::Conformance;

const STYLE: &str = "
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #1d1d1f; }
h1 { margin-bottom: .2rem; } .pass { color: #17803d; } .fail { color: #c0262d; } .xfail { color: #a15c00; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; } th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #ddd; vertical-align: top; }
th { background: #f4f4f6; } td.num { text-align: right; } code { font-size: 90%; }
.badge { display: inline-block; padding: .1rem .5rem; border-radius: .3rem; color: #fff; font-weight: 600; }
.badge.pass { background: #17803d; } .badge.fail, .badge.xpass { background: #c0262d; } .badge.xfail { background: #a15c00; } .badge.not-applicable { background: #77777d; }
.problems { margin: .2rem 0 0 1rem; color: #c0262d; } .meta td:first-child { width: 8rem; color: #555; }
.legend span { margin-right: 1rem; } .legend i { display: inline-block; width: .8rem; height: .8rem; margin-right: .3rem; vertical-align: middle; }
";

const PASS_COLOR: &str = "#17803d";
const FAIL_COLOR: &str = "#c0262d";
const XFAIL_COLOR: &str = "#e0a030";
const NA_COLOR: &str = "#9a9aa0";

pub fn render(c: &Conformance) -> String {
    let s = &c.summary;
    let (verdict, class) = (s.verdict_word(), if s.holds() { "pass" } else { "fail" });
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Stockade conformance: {verdict}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
    );
    let _ = writeln!(out, "<h1>Stockade conformance: <span class=\"{class}\">{verdict}</span></h1>");
    let _ = writeln!(out, "<p>{}.</p>", e(&s.sentence()));
    let _ = writeln!(out, "<table class=\"meta\">");
    let _ = writeln!(out, "<tr><td>tool</td><td>{} {} (wasmtime {}, wasmparser {})</td></tr>", e(&c.tool.name), e(&c.tool.version), e(&c.tool.wasmtime), e(&c.tool.wasmparser));
    let _ = writeln!(out, "<tr><td>host</td><td>{}</td></tr>", e(&super::host_under_test(c)));
    let _ = writeln!(out, "<tr><td>policy</td><td><code>{}</code> sha256 <code>{}</code></td></tr>", e(&c.policy.name), e(&c.policy.sha256));
    let _ = writeln!(out, "<tr><td>corpus</td><td><code>{}</code> sha256 <code>{}</code></td></tr>", e(&c.corpus.name), e(&c.corpus.sha256));
    if let Some(p) = &c.partition {
        let _ = writeln!(out, "<tr><td>partition</td><td>{}</td></tr>", e(p));
    }
    let _ = writeln!(out, "<tr><td>started</td><td>{}</td></tr>", e(&c.started_at));
    let _ = writeln!(out, "<tr><td>duration</td><td>{:.1} s</td></tr>\n</table>", c.duration_ms / 1000.0);

    let _ = writeln!(out, "<h2>Results by attack class</h2>");
    out.push_str(&chart(c));
    let _ = writeln!(
        out,
        "<p class=\"legend\"><span><i style=\"background:{PASS_COLOR}\"></i>pass</span><span><i style=\"background:{FAIL_COLOR}\"></i>fail or unexpected pass</span><span><i style=\"background:{XFAIL_COLOR}\"></i>expected failure</span><span><i style=\"background:{NA_COLOR}\"></i>not applicable</span></p>"
    );

    let _ = writeln!(out, "<h2>Highest cost</h2>\n<p><small>{}.</small></p>", e(super::MEASURED_WHERE));
    for (title, cases) in [
        ("peak RSS", super::top(c, 10, |k| k.host.peak_rss_bytes as f64)),
        ("CPU", super::top(c, 10, super::cpu_ms)),
    ] {
        let _ = writeln!(
            out,
            "<table class=\"top\">\n<tr><th>highest {title}</th><th>peak RSS</th><th>bound</th><th>CPU</th><th>wall</th></tr>"
        );
        for case in cases {
            let _ = writeln!(
                out,
                "<tr><td><a href=\"#{}\"><code>{}</code></a></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.0} ms</td><td class=\"num\">{:.0} ms</td></tr>",
                e(&case.id),
                e(&case.id),
                super::mib(case.host.peak_rss_bytes),
                super::mib(case.host.rss_bound_bytes),
                super::cpu_ms(case),
                case.host.wall_ms
            );
        }
        out.push_str("</table>\n");
    }

    let _ = writeln!(out, "<h2>Cases</h2>\n<table>\n<tr><th>case</th><th>class</th><th>verdict</th><th>expected</th><th>actual</th><th>peak RSS</th><th>CPU</th><th>wall</th></tr>");
    for case in &c.cases {
        let _ = write!(
            out,
            "<tr id=\"{}\"><td><code>{}</code><br><small>{}</small>",
            e(&case.id),
            e(&case.id),
            e(&case.description)
        );
        if !case.problems.is_empty() || case.xfail_reason.is_some() {
            out.push_str("<ul class=\"problems\">");
            if let Some(reason) = &case.xfail_reason {
                let _ = write!(out, "<li>expected failure: {}</li>", e(reason));
            }
            for problem in &case.problems {
                let _ = write!(out, "<li>{}</li>", e(problem));
            }
            out.push_str("</ul>");
        }
        let verdict = case.verdict.as_str();
        let _ = writeln!(
            out,
            "</td><td>{}</td><td><span class=\"badge {verdict}\">{verdict}</span></td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{:.0} ms</td><td class=\"num\">{:.0} ms</td></tr>",
            e(&case.class),
            lines(case, |s| s.expected.to_string()),
            lines(case, |s| s.actual.to_string()),
            super::mib(case.host.peak_rss_bytes),
            super::cpu_ms(case),
            case.host.wall_ms
        );
    }
    out.push_str("</table>\n</body>\n</html>\n");
    out
}

fn lines(case: &crate::conform::CaseResult, side: impl Fn(&crate::conform::Step) -> String) -> String {
    super::steps(case, side).iter().map(|line| e(line)).collect::<Vec<_>>().join("<br>")
}

/// A horizontal stacked bar per class: passed, failed (and unexpected passes), expected failures.
fn chart(c: &Conformance) -> String {
    let classes = &c.summary.classes;
    let most = classes.values().map(|n| n.total).max().unwrap_or(1).max(1);
    let (label_width, bar_width, row) = (190.0, 520.0, 26.0);
    let height = row * classes.len() as f64 + 30.0;
    let mut svg = format!(
        "<svg role=\"img\" aria-label=\"cases per attack class by verdict\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-size=\"13\" font-family=\"system-ui, sans-serif\">\n",
        label_width + bar_width + 60.0
    );
    for (i, (class, n)) in classes.iter().enumerate() {
        let y = i as f64 * row + 4.0;
        let _ = writeln!(svg, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", label_width - 8.0, y + 15.0, e(class));
        let mut x = label_width;
        for (count, color, what) in [(n.passed, PASS_COLOR, "pass"), (n.failed + n.xpass, FAIL_COLOR, "fail"), (n.xfail, XFAIL_COLOR, "xfail"), (n.not_applicable, NA_COLOR, "not applicable")] {
            if count == 0 {
                continue;
            }
            let width = bar_width * count as f64 / most as f64;
            let _ = writeln!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y}\" width=\"{width:.1}\" height=\"{}\" fill=\"{color}\"><title>{}: {count} {what}</title></rect>",
                row - 8.0,
                e(class)
            );
            x += width;
        }
        let _ = writeln!(svg, "<text x=\"{:.1}\" y=\"{}\">{}/{}</text>", x + 6.0, y + 15.0, n.passed, n.total);
    }
    let axis_y = classes.len() as f64 * row + 18.0;
    let _ = writeln!(svg, "<text x=\"{label_width}\" y=\"{axis_y}\" fill=\"#555\">cases (longest bar: {most})</text>");
    svg.push_str("</svg>\n");
    svg
}
