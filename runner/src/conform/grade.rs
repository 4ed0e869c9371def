//! Grading: what a worker reported and what the operating system measured of it, held against
//! what the case expects. Nothing here reads a sandbox's own counters.

use std::time::Duration;

use crate::code::Code;
use crate::sandbox::Stage;

use super::accounting::millis;
use super::case::{CallSpec, Case};
use super::model::{HostFigures, Observed, Step};
use super::protocol::StepReport;
use super::supervisor::{Caps, Figures};

/// Wall time a call may take past its timeout: a generous absolute slack, so that a busy
/// machine (a 300 ms call measured at 412 ms beside a build) cannot fail it, while a host call
/// that blocks past the deadline (they overrun by seconds and use no CPU) still does.
pub const WALL_SLACK: Duration = Duration::from_secs(1);
/// CPU a call may use after its deadline: the time the deadline takes to stop a spinning
/// plugin. CPU is not inflated by a busy machine the way wall time is, so this bound is tight.
pub const CPU_AFTER_DEADLINE_SLACK: Duration = Duration::from_millis(100);
/// What a worker holds besides its plugins' memory (the binary, the engine, compiled code,
/// the host's own heap): measured over the bundled corpus, with headroom.
pub const RSS_OVERHEAD: u64 = 48 << 20;
/// What loading one module may take past its compile timeout (reading, vetting, linking, and
/// starting the worker) within the hard wall cap.
const LOAD_SLACK: Duration = Duration::from_secs(2);

/// The peak RSS a case's worker may reach: the case's `max-host-rss`, or the memory limit per
/// plugin plus the fixed overhead.
pub fn rss_bound(case: &Case) -> u64 {
    case.file.max_host_rss.map(|b| b.get()).unwrap_or_else(|| {
        (case.modules().len() as u64).saturating_mul(case.policy.limits.memory.get()).saturating_add(RSS_OVERHEAD)
    })
}

/// The hard caps past which the worker is killed: twice the RSS bound, and the longest the
/// case may take with every module compiling up to its compile timeout and every call
/// running up to its wall bound.
pub fn caps(case: &Case) -> Caps {
    let limits = &case.policy.limits;
    let per_call = limits.timeout.get() + WALL_SLACK;
    let calls: u32 = case.file.calls.iter().map(|c| c.repeat.unwrap_or(1).max(1)).sum();
    let loads = (limits.compile_timeout.get() + LOAD_SLACK) * case.modules().len() as u32;
    Caps { wall: loads + per_call * calls, rss_bytes: rss_bound(case).saturating_mul(2) }
}

pub fn host_figures(figures: &Figures, rss_bound_bytes: u64) -> HostFigures {
    HostFigures {
        peak_rss_bytes: figures.peak_rss_bytes,
        rss_bound_bytes,
        user_cpu_ms: millis(figures.user_cpu),
        system_cpu_ms: millis(figures.system_cpu),
        wall_ms: millis(figures.wall),
        measured_by: if figures.by_wait4 { "wait4" } else { "proc" }.into(),
    }
}

/// How a step's outcome is held to the case's expectation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judging {
    /// Stockade's own sandbox: the exact code at the exact stage.
    Stockade,
    /// Another host, through an adapter: its codes are a mapping of its errors, so an attack it
    /// stopped with another code (or at another stage) is contained, and said so in a note.
    AnotherHost,
}

impl Judging {
    /// Whether a mismatch is only a difference of words: the case expected the host to stop
    /// something, and it did, some other way.
    fn stopped_differently(self, expected: Observed, actual: Observed) -> bool {
        self == Judging::AnotherHost && expected.code != Code::Ok && actual.code != Code::Ok && expected != actual
    }
}

/// Every way the case's run fell short: its steps against the case (into `problems`, or into
/// `notes` when another host stopped an attack with other words). Returns the report's steps.
pub fn steps(case: &Case, reported: &[StepReport], judging: Judging, problems: &mut Vec<String>, notes: &mut Vec<String>) -> Vec<Step> {
    let modules = case.modules();
    let mut steps = Vec::new();
    let mut reported = reported.iter();
    for (index, module) in modules.iter().enumerate() {
        let main = index == 0;
        let name = if main { "load".to_string() } else { format!("load {}", file_name(module)) };
        let expected = if main { case.file.expect_load } else { Code::Ok };
        let Some(report) = reported.next() else {
            problems.push(format!("{name}: the worker reported nothing for it"));
            return steps;
        };
        let findings: &[Code] = if main { &case.file.findings } else { &[] };
        let allowed: &[Code] = if main { &case.file.allowed_load_errors } else { &[] };
        let step = load_step(name, expected, report, findings, allowed, judging, problems, notes);
        let loaded = report.refused_by.is_empty() && report.code == Code::Ok && report.error.is_none();
        steps.push(step);
        if !loaded {
            return steps;
        }
    }
    let several_plugins = modules.len() > 1;
    let timeout = case.policy.limits.timeout.get();
    for spec in &case.file.calls {
        let repeat = spec.repeat.unwrap_or(1).max(1);
        for round in 1..=repeat {
            let mut name = format!("call {}", spec.function);
            if several_plugins {
                let module = spec.plugin.as_ref().map_or_else(|| case.module.clone(), |p| case.dir.join(p));
                name.push_str(&format!(" in {}", file_name(&module)));
            }
            if repeat > 1 {
                name.push_str(&format!(" #{round}"));
            }
            let Some(report) = reported.next() else {
                problems.push(format!("{name}: the worker reported nothing for it"));
                return steps;
            };
            let expected = Observed { code: spec.expect, stage: spec.expected_stage() };
            let actual = Observed { code: report.code, stage: report.stage };
            let differently = judging.stopped_differently(expected, actual);
            if differently {
                notes.push(format!("{name}: stopped with {actual} where Stockade says {expected}"));
            }
            let step_problems = check_call(spec, report, timeout, case.policy.limits.output.get(), !differently);
            problems.extend(step_problems.into_iter().map(|p| format!("{name}: {p}")));
            steps.push(Step {
                name,
                expected: Observed { code: spec.expect, stage: spec.expected_stage() },
                actual: Observed { code: report.code, stage: report.stage },
                output: report.output.as_deref().map(|o| shorten(o, report.output_bytes)),
                error: report.error.as_deref().map(bounded),
                findings: Vec::new(),
                wall_ms: report.wall_ms,
                cpu_ms: report.cpu_ms,
                cpu_after_deadline_ms: Some(cpu_after_deadline(report, timeout)),
            });
        }
    }
    if reported.next().is_some() {
        problems.push("the worker reported more steps than the case has".into());
    }
    steps
}

/// The load step of one module against `expected`; `findings` must all be among the vetting's
/// findings, and a refusal may carry no error but `expected` and the `allowed` ones.
#[allow(clippy::too_many_arguments)]
fn load_step(
    name: String,
    expected: Code,
    report: &StepReport,
    findings: &[Code],
    allowed: &[Code],
    judging: Judging,
    problems: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Step {
    for code in findings.iter().filter(|code| !report.findings.contains(code)) {
        problems.push(format!("vetting did not report `{code}` (it reported: {})", codes(&report.findings)));
    }
    let (actual, error) = if report.refused_by.is_empty() {
        (report.code, report.error.as_deref().map(bounded))
    } else {
        // Refused for several reasons: the expected one, if it is among them, is the answer,
        // and every other must be one the case allows.
        let errors = &report.refused_by;
        let code = if errors.contains(&expected) { expected } else { errors[0] };
        let extra: Vec<Code> = errors.iter().copied().filter(|c| *c != expected && !allowed.contains(c)).collect();
        if code == expected && !extra.is_empty() {
            problems.push(format!(
                "load: refused with `{expected}` as expected, but also with {} (a case lists the extra codes it allows in `allowed-load-errors`)",
                codes(&extra)
            ));
        }
        (code, Some(format!("refused: {}", codes(errors))))
    };
    let (expected_at, actual_at) = (Observed { code: expected, stage: Stage::Load }, Observed { code: actual, stage: Stage::Load });
    if judging.stopped_differently(expected_at, actual_at) {
        // The refusal was the point; which words the host used for it is not.
        notes.push(format!("{name}: stopped with {actual_at} where Stockade says {expected_at}"));
    } else if actual != expected || (actual == Code::Ok && error.is_some()) {
        let detail = error.as_deref().map_or(String::new(), |e| format!(" ({e})"));
        problems.push(format!("load: expected `{expected}`, got `{actual}`{detail}"));
    }
    Step {
        name,
        expected: expected_at,
        actual: actual_at,
        output: None,
        error,
        findings: report.findings.clone(),
        wall_ms: report.wall_ms,
        cpu_ms: report.cpu_ms,
        cpu_after_deadline_ms: None,
    }
}

fn cpu_after_deadline(report: &StepReport, timeout: Duration) -> f64 {
    report.cpu_after_deadline_ms.unwrap_or_else(|| (report.cpu_ms - millis(timeout)).max(0.0))
}

/// Everything about one call that differs from its expectation, and every bound it passed
/// (which is a failure of the host whatever the case expected).
fn check_call(spec: &CallSpec, report: &StepReport, timeout: Duration, output_limit: u64, exact: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let expected = Observed { code: spec.expect, stage: spec.expected_stage() };
    let actual = Observed { code: report.code, stage: report.stage };
    if exact && expected != actual {
        let error = report.error.as_deref().map_or(String::new(), |e| format!(" ({})", bounded(e)));
        problems.push(format!("expected {expected}, got {actual}{error}"));
    }
    let output = report.output.as_deref().unwrap_or_default();
    if let Some(want) = &spec.output
        && want != output
    {
        problems.push(format!("expected output {:?}, got {:?}", shorten(want, want.len() as u64), shorten(output, report.output_bytes)));
    }
    if let Some(want) = &spec.output_contains
        && !output.contains(want.as_str())
    {
        problems.push(format!("output {:?} does not contain {want:?}", shorten(output, report.output_bytes)));
    }
    if let Some(want) = &spec.error_contains
        && !report.error.as_deref().unwrap_or("").contains(want.as_str())
    {
        problems.push(format!("error {:?} does not contain {want:?}", bounded(report.error.as_deref().unwrap_or(""))));
    }
    let wall_bound = timeout + WALL_SLACK;
    if report.wall_ms > millis(wall_bound) {
        problems.push(format!("took {} ms of wall time; the bound is the timeout plus {WALL_SLACK:?}, {} ms", report.wall_ms, millis(wall_bound)));
    }
    let after = cpu_after_deadline(report, timeout);
    if after > millis(CPU_AFTER_DEADLINE_SLACK) {
        problems.push(format!(
            "used {after} ms of CPU after its deadline; at most {} ms may pass before the deadline stops it",
            millis(CPU_AFTER_DEADLINE_SLACK)
        ));
    }
    if report.output_bytes > output_limit {
        problems.push(format!("{} bytes of output passed the limit of {output_limit}", report.output_bytes));
    }
    problems
}

fn codes(codes: &[Code]) -> String {
    if codes.is_empty() {
        return "no findings".into();
    }
    codes.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// A host's error text as reports show it: what another host (through an adapter) returns is
/// not bounded by Stockade's limits, and 60 MiB of error text rendered into five reports made
/// them a gigabyte.
fn bounded(text: &str) -> String {
    shorten(text, text.len() as u64)
}

/// Output as reports show it: cut at 200 characters.
fn shorten(text: &str, bytes: u64) -> String {
    crate::text::cut(text, 200, bytes)
}
