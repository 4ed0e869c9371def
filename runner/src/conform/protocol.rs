//! The worker protocol: how `stockade conform` hands a case to the process that runs it, and
//! what comes back. Documented for adapter authors in corpus/README.md ("The worker
//! protocol"); the types here are that document.
//!
//! A worker reads one request per line (JSON) on stdin and answers each with one response line
//! on stdout, in order, until stdin closes. It reports what the host it drives did at each step
//! and what the operating system says that step cost (`getrusage`, the monotonic clock); it
//! never grades anything. `conform` grades, and measures the worker from outside on top.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::code::Code;
use crate::sandbox::Stage;

use super::accounting::{StepClock, millis};

pub const WORKER_PROTOCOL: &str = "stockade.worker/1";

/// One case, resolved: every path absolute, every placeholder replaced.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct WorkerRequest {
    pub protocol: String,
    /// The case id, for messages.
    pub id: String,
    /// The case's directory.
    pub dir: String,
    /// The run's policy with the case's overrides, as Stockade reads a policy file (the same
    /// keys, in JSON).
    pub policy: serde_json::Value,
    /// Just the keys the case sets over the run's policy: a host that cannot express one of
    /// them answers `not-applicable`.
    pub policy_overrides: serde_json::Value,
    /// A manifest to use instead of the module's own.
    #[serde(default)]
    pub manifest: Option<String>,
    /// Host-given configuration.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Load and run even when vetting refuses (a Stockade notion; other hosts do not vet).
    #[serde(default)]
    pub skip_static_check: bool,
    /// The modules to load, in order; the first is the case's plugin.
    pub modules: Vec<String>,
    /// The calls, in order.
    pub calls: Vec<CallRequest>,
}

impl WorkerRequest {
    /// The policy, read as Stockade reads a policy file (every range and rule checked).
    pub fn policy(&self) -> Result<crate::policy::Policy, String> {
        crate::worker::policy_from_wire(&self.policy, "the worker request")
    }

    /// The keys the case sets over the run's policy, dotted (`limits.timeout`).
    pub fn overridden_keys(&self) -> Vec<String> {
        fn walk(prefix: &str, value: &serde_json::Value, keys: &mut Vec<String>) {
            match value.as_object() {
                Some(table) => {
                    for (key, value) in table {
                        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                        walk(&path, value, keys);
                    }
                }
                None => keys.push(prefix.to_string()),
            }
        }
        let mut keys = Vec::new();
        walk("", &self.policy_overrides, &mut keys);
        keys
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CallRequest {
    /// Index into `modules`.
    pub module: usize,
    pub function: String,
    /// The input: `input` repeated `input-repeat` times.
    pub input: String,
    pub input_repeat: u32,
    /// Arguments of a plain core export.
    #[serde(default)]
    pub args: Vec<String>,
    /// The same call this many times; one step each.
    pub repeat: u32,
}

impl CallRequest {
    /// The size was checked against `MAX_CASE_INPUT` when the case was read.
    pub fn input_bytes(&self) -> Vec<u8> {
        self.input.repeat(self.input_repeat as usize).into_bytes()
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct WorkerResponse {
    pub protocol: String,
    /// The request's `id`, echoed: the supervisor takes only the answer to the case it sent,
    /// and drops (and records) any other line, such as a second answer to an earlier case.
    #[serde(default)]
    pub id: String,
    /// The host that ran the case: name and version.
    pub host: String,
    /// Set when the host cannot express the case (a capability manifest, a policy key it has
    /// no equivalent of): the case is `not-applicable`, never passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_applicable: Option<String>,
    /// One per module loaded, then one per call made (repeats each their own), in request
    /// order; a worker stops at the first module that does not load.
    #[serde(default)]
    pub steps: Vec<StepReport>,
    /// The worker ends after this answer (its watchdog ended a call at the deadline): the next
    /// case goes to a new worker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retiring: bool,
}

/// What one step came to, and what it cost by the operating system's accounting.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StepReport {
    pub code: Code,
    pub stage: Stage,
    /// The host's own words: an error message, a trap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Loading: every static finding's code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Code>,
    /// Loading: the codes that refused the module (error severity), when it was refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_by: Vec<Code>,
    /// A call's output as text (invalid UTF-8 replaced), and its length in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default)]
    pub output_bytes: u64,
    /// The monotonic clock around the step.
    pub wall_ms: f64,
    /// `getrusage(RUSAGE_SELF)` user + system CPU around the step, every thread of the worker.
    pub cpu_ms: f64,
    /// CPU used after the call's deadline (its start plus the policy's timeout), by the same
    /// accounting: 0 when it ended in time. Left out, `conform` takes `cpu-ms` minus the
    /// timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_after_deadline_ms: Option<f64>,
}

impl StepReport {
    /// A step that came to `code` at `stage`, with the wall time and CPU `clock` has counted
    /// since it started; every other field empty.
    pub fn measured(clock: &StepClock, code: Code, stage: Stage) -> StepReport {
        let (wall, cpu) = clock.read();
        StepReport {
            code,
            stage,
            error: None,
            findings: Vec::new(),
            refused_by: Vec::new(),
            output: None,
            output_bytes: 0,
            wall_ms: millis(wall),
            cpu_ms: millis(cpu),
            cpu_after_deadline_ms: None,
        }
    }

    /// With a call's output: as text (invalid UTF-8 replaced) and its length in bytes.
    pub fn with_output(mut self, output: Option<&[u8]>) -> StepReport {
        self.output_bytes = output.map_or(0, |o| o.len() as u64);
        self.output = output.map(|o| String::from_utf8_lossy(o).into_owned());
        self
    }
}
