//! `stockade run` output: the outcome, the output, and the stats with values over a limit marked.

use std::fmt::Write;

use anstyle::AnsiColor;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{Value, json};

use crate::code::Code;
use crate::policy::Limits;
use crate::sandbox::Outcome;
use crate::vet::Vetting;

use crate::text::escape;
use super::human::paint;

pub const RUN_SCHEMA: &str = "stockade.run/1";

/// `stockade.run/1`. Output is text when it is UTF-8, else `output_base64`.
///
/// Serialised straight from the outcome, not through a `serde_json::Value`: a value tree
/// costs hundreds of bytes per log line, where this costs the line's own bytes.
pub fn json(outcome: &Outcome) -> String {
    #[derive(Serialize)]
    struct Document<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        logs: Option<LogLines<'a>>,
        outcome: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        output: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        output_base64: Option<String>,
        schema: &'static str,
        stage: crate::sandbox::Stage,
        stats: &'a crate::sandbox::Stats,
    }
    struct LogLines<'a>(&'a crate::log::Logs);
    impl Serialize for LogLines<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            #[derive(Serialize)]
            struct Line<'a> {
                level: &'a str,
                message: &'a str,
            }
            serializer.collect_seq(self.0.iter().map(|(level, message)| Line { level, message }))
        }
    }
    let text = outcome.output.as_deref().map(std::str::from_utf8);
    let document = Document {
        error: outcome.error.as_deref(),
        logs: (!outcome.logs.is_empty()).then_some(LogLines(&outcome.logs)),
        outcome: outcome.code.as_str(),
        output: match text {
            Some(Ok(text)) => Some(text),
            _ => None,
        },
        output_base64: match (text, &outcome.output) {
            (Some(Err(_)), Some(bytes)) => Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            _ => None,
        },
        schema: RUN_SCHEMA,
        stage: outcome.stage,
        stats: &outcome.stats,
    };
    serde_json::to_string(&document).expect("the run document serialises")
}

/// The document for a plugin that failed vetting and was not run.
pub fn refused_json(vetting: &Vetting) -> Value {
    json!({ "schema": RUN_SCHEMA, "outcome": "refused", "findings": vetting.findings })
}

fn duration(ns: u64) -> String {
    format!("{:.1?}", std::time::Duration::from_nanos(ns))
}

/// A measured size, to a readable precision (limits print exactly, as they are written).
fn size(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

/// The human rendering: outcome line, output, logs, then stats.
pub fn human(outcome: &Outcome, function: &str, limits: &Limits, color: bool) -> String {
    let mut out = String::new();
    let head = if outcome.code == Code::Ok {
        paint(AnsiColor::Green.on_default().bold(), "ok", color)
    } else {
        paint(AnsiColor::Red.on_default().bold(), outcome.code.as_str(), color)
    };
    let stage = match outcome.stage {
        crate::sandbox::Stage::Call => String::new(),
        stage => format!(" (at {})", stage.as_str()),
    };
    let error = outcome.error.as_ref().map_or(String::new(), |e| format!(": {}", escape::line(e)));
    let _ = writeln!(out, "{head}: `{}`{stage}{error}", escape::line(function));
    // The plugin's output, a line per line behind a gutter: what the plugin prints can never
    // pass for a line of Stockade's own (a forged `PASS` in a CI log).
    if let Some(output) = &outcome.output {
        let text = String::from_utf8_lossy(output);
        for line in text.strip_suffix('\n').unwrap_or(&text).split('\n').filter(|_| !output.is_empty()) {
            let _ = writeln!(out, "  | {}", escape::line(line));
        }
    }
    for (level, line) in outcome.logs.iter() {
        let _ = writeln!(out, "  [{level}] {}", escape::line(line));
    }
    let over = |is_over: bool, text: String| {
        if is_over { paint(AnsiColor::Red.on_default().bold(), format!("{text} (over the limit)"), color) } else { text }
    };
    let s = &outcome.stats;
    let code = outcome.code;
    let _ = writeln!(out, "  stats:");
    if let Some(n) = s.instructions {
        let limit = limits.fuel.map_or(String::new(), |f| format!(" of {f}"));
        let _ = writeln!(out, "    instructions   {}", over(code == Code::FuelExhausted, format!("{n}{limit}")));
    }
    let memory = format!("{} of {}", size(s.peak_memory_bytes), limits.memory);
    let _ = writeln!(out, "    peak memory    {}", over(code == Code::MemoryLimit, memory));
    let input = format!("{} of {}", size(s.input_bytes), limits.input);
    let _ = writeln!(out, "    input          {}", over(code == Code::InputTooLarge, input));
    let output = format!("{} of {}", size(s.output_bytes), limits.output);
    let _ = writeln!(out, "    output         {}", over(code == Code::OutputTooLarge, output));
    let _ = writeln!(out, "    compile        {}", over(code == Code::CompileTimeout, duration(s.compile_ns)));
    let _ = writeln!(out, "    instantiate    {}", duration(s.instantiate_ns));
    let call = format!("{} of {}", duration(s.wall_ns), limits.timeout);
    let _ = writeln!(out, "    call           {}", over(code == Code::Timeout, call));
    out
}
