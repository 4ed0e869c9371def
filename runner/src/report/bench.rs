//! `stockade bench`'s report: each figure, and each one over its budget or regressed, for
//! people and as `stockade.bench/1`.

use std::fmt::Write;

use crate::bench::{BenchReport, FIGURES, OverBound, show};

/// `stockade.bench/1` (its JSON Schema: reports/bench.schema.json); `over` is there when a
/// budget or a baseline was checked, empty when nothing was over.
pub fn json(report: &BenchReport, over: Option<&[OverBound]>) -> String {
    // Through a value, whose keys are sorted, as the document has always been written (and
    // read back as a baseline).
    let mut document = serde_json::to_value(report).expect("the bench report serializes");
    if let Some(over) = over {
        document["over"] = serde_json::to_value(over).expect("what is over serializes");
    }
    document.to_string()
}

pub fn human(report: &BenchReport, over: &[OverBound]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} `{}`, {} calls, policy `{}`", report.plugin, report.function, report.iterations, report.policy);
    for figure in FIGURES {
        if let Some(&value) = report.figures.get(figure.name) {
            let _ = writeln!(out, "  {:<13} {:>12}  {}", figure.name, show(value, figure.unit), figure.meaning);
        }
    }
    for problem in over {
        let _ = writeln!(out, "over: {}", problem.message);
    }
    out
}
