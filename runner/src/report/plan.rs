//! `stockade plan`'s report: the load order and the problems, for people and as
//! `stockade.plan/1`.

use std::fmt::Write;

use serde::Serialize;

use crate::host::plan::{Candidate, Plan, Problem};
use crate::text::escape;

pub const PLAN_SCHEMA: &str = "stockade.plan/1";

/// `stockade.plan/1` (its JSON Schema: reports/plan.schema.json).
#[derive(Serialize)]
struct Document<'a> {
    order: &'a [String],
    problems: &'a [Problem],
    schema: &'static str,
}

pub fn json(plan: &Plan) -> String {
    serde_json::to_string(&Document { order: &plan.order, problems: &plan.problems, schema: PLAN_SCHEMA }).expect("the plan document serializes")
}

/// The plan for people: each plugin in load order with its version, each problem, the verdict.
pub fn human(plan: &Plan, candidates: &[Candidate], plugins: usize, policy: &str, host_version: &semver::Version) -> String {
    let version = |name: &str| candidates.iter().find(|c| c.manifest.name == name).map_or(String::new(), |c| format!(" {}", c.manifest.version));
    let mut out = String::new();
    let _ = writeln!(out, "load order ({} of {plugins} plugins):", plan.order.len());
    for (i, name) in plan.order.iter().enumerate() {
        let _ = writeln!(out, "  {:>3}. {name}{}", i + 1, version(name));
    }
    for problem in &plan.problems {
        let _ = writeln!(out, "error[{}]: {}", problem.code, escape::line(&problem.message));
    }
    let verdict = if plan.loads_everything() { "PASS: every plugin loads" } else { "FAIL: some plugins do not load" };
    let _ = writeln!(out, "{verdict} under policy `{policy}` for host API {host_version}");
    out
}
