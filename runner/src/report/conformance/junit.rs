//! `conformance.xml`: JUnit XML in the Jenkins dialect, one test suite per attack class.

use std::fmt::Write;

use super::escape_xml as x;
use crate::conform::{Conformance, Verdict};

pub fn render(c: &Conformance) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let s = &c.summary;
    let _ = writeln!(
        out,
        "<testsuites name=\"stockade conform\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{:.3}\" timestamp=\"{}\">",
        s.total,
        s.failed + s.xpass,
        s.xfail + s.not_applicable,
        c.duration_ms / 1000.0,
        x(&c.started_at)
    );
    for (class, n) in &s.classes {
        let cases: Vec<_> = c.cases.iter().filter(|case| &case.class == class).collect();
        let time: f64 = cases.iter().map(|case| case.duration_ms).sum::<f64>() / 1000.0;
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{time:.3}\" timestamp=\"{}\">",
            x(class),
            n.total,
            n.failed + n.xpass,
            n.xfail + n.not_applicable,
            x(&c.started_at)
        );
        let _ = writeln!(out, "    <properties>");
        let _ = writeln!(out, "      <property name=\"policy\" value=\"{}\"/>", x(&c.policy.name));
        let _ = writeln!(out, "      <property name=\"policy.sha256\" value=\"{}\"/>", x(&c.policy.sha256));
        let _ = writeln!(out, "      <property name=\"corpus.sha256\" value=\"{}\"/>", x(&c.corpus.sha256));
        let _ = writeln!(out, "    </properties>");
        for case in cases {
            let _ = write!(
                out,
                "    <testcase classname=\"corpus.{}\" name=\"{}\" time=\"{:.3}\"",
                x(class),
                x(&case.id),
                case.duration_ms / 1000.0
            );
            let details = format!(
                "{}\nexpected: {}\nactual: {}\n{}",
                case.description,
                super::expectation(case),
                super::actual(case),
                case.problems.join("\n")
            );
            let figures = format!("      <system-out>{}</system-out>\n    </testcase>", x(&super::host_line(case)));
            match case.verdict {
                Verdict::Pass => {
                    let _ = writeln!(out, ">\n{figures}");
                }
                Verdict::Xfail => {
                    let reason = case.xfail_reason.as_deref().unwrap_or("");
                    let _ = writeln!(out, ">\n      <skipped message=\"expected failure: {}\"/>\n{figures}", x(reason));
                }
                Verdict::NotApplicable => {
                    let reason = case.problems.first().map(String::as_str).unwrap_or("not applicable");
                    let _ = writeln!(out, ">\n      <skipped message=\"{}\"/>\n{figures}", x(reason));
                }
                Verdict::Fail | Verdict::Xpass => {
                    let message = case.problems.first().map(String::as_str).unwrap_or("failed");
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n{figures}",
                        x(message),
                        case.fault.map_or(case.verdict.as_str(), |code| code.as_str()),
                        x(&details)
                    );
                }
            }
        }
        let _ = writeln!(out, "  </testsuite>");
    }
    out.push_str("</testsuites>\n");
    out
}
