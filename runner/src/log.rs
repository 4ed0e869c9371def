//! A call's log lines (Extism `log_*` and a WASI program's stderr), kept compactly and capped.
//!
//! A line costs its text plus [`LOG_LINE_COST`] against the log cap (the output limit), so a
//! flood of empty lines is stopped as early as a flood of long ones, and whatever renders the
//! lines (terminal, JSON, reports) handles O(the output limit) bytes, not O(lines × overhead).

use serde::ser::{Serialize, SerializeSeq, Serializer};

use crate::fault::HostFault;
use crate::budget::LOG_LINE_COST;

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "stderr"];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Logs {
    text: String,
    /// Per line: its level (an index into LEVELS) and where its text ends in `text`.
    lines: Vec<(u8, u32)>,
    cap: u64,
    cost: u64,
}

impl Logs {
    pub fn new(cap: u64) -> Logs {
        Logs { cap, ..Logs::default() }
    }

    /// What the kept lines cost, as charged.
    pub fn cost(&self) -> u64 {
        self.cost
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Keeps a line, or refuses it with `output-too-large` when it would pass the cap.
    pub fn push(&mut self, level: &str, bytes: &[u8]) -> Result<(), HostFault> {
        let cost = self.cost.saturating_add(bytes.len() as u64 + LOG_LINE_COST);
        if cost > self.cap {
            return Err(HostFault::OutputTooLarge(format!(
                "more than {} bytes of logs (each line counts {LOG_LINE_COST} bytes beside its text)",
                self.cap
            )));
        }
        let level = LEVELS.iter().position(|l| *l == level).unwrap_or(2) as u8;
        self.text.push_str(&String::from_utf8_lossy(bytes));
        let end = u32::try_from(self.text.len())
            .map_err(|_| HostFault::OutputTooLarge("more than 4 GiB of logs".to_string()))?;
        self.lines.push((level, end));
        self.cost = cost;
        Ok(())
    }

    /// Adds captured stderr, a line per line, under the same cap.
    pub fn push_stderr(&mut self, stderr: &[u8]) -> Result<(), HostFault> {
        if stderr.is_empty() {
            return Ok(());
        }
        let stderr = stderr.strip_suffix(b"\n").unwrap_or(stderr);
        for line in stderr.split(|&b| b == b'\n') {
            self.push("stderr", line.strip_suffix(b"\r").unwrap_or(line))?;
        }
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        let mut start = 0usize;
        self.lines.iter().map(move |&(level, end)| {
            let line = &self.text[start..end as usize];
            start = end as usize;
            (LEVELS[usize::from(level)], line)
        })
    }
}

/// As before the compact form: a list of `[level, text]` pairs.
impl Serialize for Logs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.lines.len()))?;
        for line in self.iter() {
            seq.serialize_element(&line)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_cost_their_overhead() {
        let mut logs = Logs::new(1024);
        let mut kept = 0;
        while logs.push("info", b"").is_ok() {
            kept += 1;
        }
        assert_eq!(kept, 1024 / LOG_LINE_COST);
        let mut logs = Logs::new(1 << 20);
        logs.push("warn", b"a").unwrap();
        logs.push_stderr(b"x\r\ny\n").unwrap();
        let lines: Vec<_> = logs.iter().collect();
        assert_eq!(lines, vec![("warn", "a"), ("stderr", "x"), ("stderr", "y")]);
        assert_eq!(serde_json::to_string(&logs).unwrap(), r#"[["warn","a"],["stderr","x"],["stderr","y"]]"#);
        let mut logs = Logs::new(1 << 20);
        assert!(logs.push_stderr(&vec![b'\n'; 1 << 20]).is_err(), "a megabyte of newlines is over the cap");
    }
}
