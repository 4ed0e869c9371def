//! The audit log: one JSON object per call, one per line (JSON Lines), through a writer the host
//! chooses: `{"time", "plugin", "version", "sha256", "function", "input_bytes", "outcome",
//! "duration_ms"}`. Plugin-chosen text never reaches it (names and versions come from manifests
//! that vetting checked; the function name is the host's).

use std::io::Write;
use std::time::{Duration, SystemTime};

use crate::code::Code;

/// One call, as recorded.
pub struct Entry<'a> {
    pub plugin: &'a str,
    pub version: &'a semver::Version,
    pub sha256: &'a str,
    pub function: &'a str,
    pub input_bytes: usize,
    pub outcome: Code,
    pub duration: Duration,
}

pub struct AuditLog {
    writer: Box<dyn Write + Send>,
    /// Set when a write failed: reported once, not on every call.
    failed: bool,
}

impl AuditLog {
    pub fn new(writer: Box<dyn Write + Send>) -> AuditLog {
        AuditLog { writer, failed: false }
    }

    pub fn record(&mut self, entry: &Entry<'_>) {
        let line = serde_json::json!({
            "time": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            "plugin": entry.plugin,
            "version": entry.version.to_string(),
            "sha256": entry.sha256,
            "function": entry.function,
            "input_bytes": entry.input_bytes,
            "outcome": entry.outcome.as_str(),
            "duration_ms": entry.duration.as_secs_f64() * 1000.0,
        });
        let written = writeln!(self.writer, "{line}").and_then(|()| self.writer.flush());
        if let Err(error) = written
            && !self.failed
        {
            self.failed = true;
            tracing::error!("the audit log cannot be written: {error}");
        }
    }
}
