//! The conformance document: everything one run (or a merge of shards) found, which every
//! report is rendered from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::code::Code;
use crate::sandbox::Stage;

pub const CONFORMANCE_SCHEMA: &str = "stockade.conformance/2";

/// Everything one run (or a merge of shards) found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Conformance {
    pub schema: String,
    pub tool: Tool,
    /// The host the cases ran on, as its workers named it: Stockade's own sandbox, or another
    /// host through an adapter.
    pub host: String,
    /// The adapter program, when the cases ran through one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    pub policy: Digested,
    pub corpus: Digested,
    /// `K/N` when this run was one shard of a partitioned corpus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// For a merge: the shards it was made from, each with the digest of its report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardReport>,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration_ms: f64,
    pub summary: Summary,
    pub cases: Vec<CaseResult>,
}

/// One shard a merged report was made from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardReport {
    pub partition: String,
    /// SHA-256 of the shard's `conformance.json`, as read.
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
    pub wasmtime: String,
    pub wasmparser: String,
}

impl Tool {
    pub fn this() -> Tool {
        Tool {
            name: "stockade".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            wasmtime: crate::WASMTIME_VERSION.into(),
            wasmparser: crate::WASMPARSER_VERSION.into(),
        }
    }
}

/// A named input and the SHA-256 it had.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digested {
    pub name: String,
    pub sha256: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    pub xfail: usize,
    pub xpass: usize,
    /// Cases the host under test cannot express (an adapter's answer): neither passed nor
    /// failed.
    pub not_applicable: usize,
    /// The same counts per attack class.
    pub classes: BTreeMap<String, Counts>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    pub xfail: usize,
    pub xpass: usize,
    pub not_applicable: usize,
}

impl Counts {
    fn add(&mut self, verdict: Verdict) {
        self.total += 1;
        match verdict {
            Verdict::Pass => self.passed += 1,
            Verdict::Fail => self.failed += 1,
            Verdict::Xfail => self.xfail += 1,
            Verdict::Xpass => self.xpass += 1,
            Verdict::NotApplicable => self.not_applicable += 1,
        }
    }
}

impl Summary {
    pub fn of(cases: &[CaseResult]) -> Summary {
        let mut all = Counts::default();
        let mut classes: BTreeMap<String, Counts> = BTreeMap::new();
        for case in cases {
            all.add(case.verdict);
            classes.entry(case.class.clone()).or_default().add(case.verdict);
        }
        Summary {
            total: all.total,
            passed: all.passed,
            failed: all.failed,
            xfail: all.xfail,
            xpass: all.xpass,
            not_applicable: all.not_applicable,
            classes,
        }
    }

    /// The counts in one sentence, as every report opens with them.
    pub fn sentence(&self) -> String {
        let mut sentence = format!(
            "{} of {} cases behaved as expected ({} failed, {} expected failures, {} unexpected passes",
            self.passed + self.xfail,
            self.total - self.not_applicable,
            self.failed,
            self.xfail,
            self.xpass
        );
        if self.not_applicable > 0 {
            sentence.push_str(&format!("; {} more not applicable to the host", self.not_applicable));
        }
        sentence.push(')');
        sentence
    }

    pub fn verdict_word(&self) -> &'static str {
        if self.holds() { "PASS" } else { "FAIL" }
    }

    /// Whether the run holds up: no failure, and no expected failure that passed (a stale
    /// expected-failure list hides nothing).
    pub fn holds(&self) -> bool {
        self.failed == 0 && self.xpass == 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    Fail,
    /// Failed, and listed as an expected failure.
    Xfail,
    /// Listed as an expected failure, yet passed: the list is out of date. Counts as failing.
    Xpass,
    /// The host under test cannot express the case (another host, through an adapter).
    NotApplicable,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Xfail => "xfail",
            Verdict::Xpass => "xpass",
            Verdict::NotApplicable => "not-applicable",
        }
    }

    pub fn is_failure(self) -> bool {
        matches!(self, Verdict::Fail | Verdict::Xpass)
    }
}

/// One case: what was expected, what happened, and, when they differ, why.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseResult {
    /// The case directory relative to the corpus.
    pub id: String,
    pub class: String,
    pub description: String,
    pub verdict: Verdict,
    pub duration_ms: f64,
    /// Every way the case fell short of its expectations; empty when it met them.
    pub problems: Vec<String>,
    /// Why the case is on the expected-failure list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xfail_reason: Option<String>,
    /// For another host: attacks it stopped with other codes than Stockade's (contained, in
    /// its own words).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Set when the worker running the case crashed, hung or passed its RSS bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Code>,
    /// What the operating system measured of the process that ran the case.
    pub host: HostFigures,
    pub steps: Vec<Step>,
}

/// A case's cost as the kernel accounts it for the worker process, never as the sandbox
/// counts it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HostFigures {
    /// Peak resident set size of the worker during the case.
    pub peak_rss_bytes: u64,
    /// The bound it was held to (`max-host-rss`, or the policy's memory limit per plugin plus
    /// the fixed overhead).
    pub rss_bound_bytes: u64,
    pub user_cpu_ms: f64,
    pub system_cpu_ms: f64,
    /// From handing the case to the worker to its answer, by this process's clock.
    pub wall_ms: f64,
    /// `wait4` (a worker that ran the case alone, or died on it) or `proc` (the case's span of
    /// a longer-lived worker: `VmHWM` reset through clear_refs before it, CPU from
    /// /proc/PID/stat, 10 ms ticks).
    pub measured_by: String,
}

/// Loading, or one call.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Step {
    /// `load`, or `call <function>` (with the plugin and repetition when there are several).
    pub name: String,
    pub expected: Observed,
    pub actual: Observed,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Static findings, for the load step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Code>,
    /// The step's wall time and CPU (every thread of the worker), by the worker's clock and
    /// `getrusage`; for a call, instantiation included.
    pub wall_ms: f64,
    pub cpu_ms: f64,
    /// CPU used after the call's deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_after_deadline_ms: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub code: Code,
    pub stage: Stage,
}

impl std::fmt::Display for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}", self.code, self.stage.as_str())
    }
}

