//! The conformance kit: run the corpus of hostile and benign plugins, each against what must
//! happen to it, and keep the evidence in one [`Conformance`] document that every report is
//! rendered from (and that shards of a partitioned run merge into).

pub mod case;
pub mod loopback;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::code::Code;
use crate::policy::Policy;
use crate::sandbox::{Input, Load, LoadOptions, Outcome, Plugin, Sandbox, Stage};
use crate::source::PluginFile;

pub use case::{Case, CaseDir, CaseError, CaseFile};

pub const CONFORMANCE_SCHEMA: &str = "stockade.conformance/1";
/// The expected-failure list read from the corpus when no other is given.
pub const XFAIL_FILE: &str = "xfail.toml";
/// What `{http}` stands for while cases are only read, before any server is started.
const PLAN_HTTP: &str = "127.0.0.1:9";
/// What `{scratch}` stands for while planning.
const PLAN_SCRATCH: &str = "/nonexistent-scratch";

/// Everything one run (or a merge of shards) found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Conformance {
    pub schema: String,
    pub tool: Tool,
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

/// Why shards do not merge. Every variant is a refusal of the evidence (exit 1), not a tool
/// error: the reports were read, and they do not make a whole run.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge")]
    Empty,
    #[error("{0} is not a shard of a partitioned run (it has no `partition`)")]
    NotAShard(String),
    #[error("the shards are of different partitions: {0} and {1}")]
    DifferentPartitions(String, String),
    #[error("the shards do not make the whole run: {0}")]
    Incomplete(String),
    #[error("the reports are of different runs: {0}")]
    DifferentRuns(String),
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
}

impl Counts {
    fn add(&mut self, verdict: Verdict) {
        self.total += 1;
        match verdict {
            Verdict::Pass => self.passed += 1,
            Verdict::Fail => self.failed += 1,
            Verdict::Xfail => self.xfail += 1,
            Verdict::Xpass => self.xpass += 1,
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
        Summary { total: all.total, passed: all.passed, failed: all.failed, xfail: all.xfail, xpass: all.xpass, classes }
    }

    /// The counts in one sentence, as every report opens with them.
    pub fn sentence(&self) -> String {
        format!(
            "{} of {} cases behaved as expected ({} failed, {} expected failures, {} unexpected passes)",
            self.passed + self.xfail,
            self.total,
            self.failed,
            self.xfail,
            self.xpass
        )
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
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Xfail => "xfail",
            Verdict::Xpass => "xpass",
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
    pub steps: Vec<Step>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    /// Instantiation and call, for calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<f64>,
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

/// The expected-failure list: cases known to fail, each with its reason.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Xfails {
    #[serde(default)]
    pub xfail: Vec<Xfail>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Xfail {
    pub case: String,
    pub reason: String,
}

impl Xfails {
    pub fn read(path: &Path) -> Result<Xfails, CaseError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| CaseError::Read { path: path.display().to_string(), source })?;
        Ok(crate::document::from_toml(&text, crate::document::Origin::File(path.display().to_string()))?)
    }

    fn reason(&self, id: &str) -> Option<&str> {
        self.xfail.iter().find(|x| x.case == id).map(|x| x.reason.as_str())
    }
}

/// `--partition K/N`: the K-th of N shards (1-based), cases dealt round-robin by sorted id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Partition {
    type Err = String;
    fn from_str(text: &str) -> Result<Partition, String> {
        let (k, n) = text.split_once('/').ok_or_else(|| format!("`{text}` is not K/N"))?;
        let index: usize = k.parse().map_err(|_| format!("`{k}` is not a number"))?;
        let count: usize = n.parse().map_err(|_| format!("`{n}` is not a number"))?;
        if count == 0 || index == 0 || index > count {
            return Err(format!("`{text}`: K must be between 1 and N"));
        }
        Ok(Partition { index, count })
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// What a run is asked to do.
pub struct RunOptions<'a> {
    pub corpus: &'a Path,
    pub policy: &'a Policy,
    /// The policy as the user gave it: its name and the SHA-256 of its text.
    pub policy_digest: Digested,
    pub xfails: Xfails,
    pub partition: Option<Partition>,
    pub jobs: usize,
    /// Called after each case, from the worker threads (the progress bar).
    pub on_case_done: &'a (dyn Fn(&CaseResult) + Sync),
}

/// The cases a run will take: discovered, read (so a broken case is an error before anything
/// runs), and cut to the partition.
pub fn plan(options: &RunOptions) -> Result<Vec<CaseDir>, CaseError> {
    let mut cases = case::discover(options.corpus)?;
    if cases.is_empty() {
        return Err(CaseError::Invalid {
            path: options.corpus.display().to_string(),
            message: format!("no cases: no directory under it holds a {}", case::CASE_FILE),
        });
    }
    for x in &options.xfails.xfail {
        if !cases.iter().any(|c| c.id == x.case) {
            return Err(CaseError::Invalid {
                path: XFAIL_FILE.to_string(),
                message: format!("`{}` is not a case of the corpus", x.case),
            });
        }
    }
    for found in &cases {
        Case::read(found, options.policy, PLAN_HTTP, PLAN_SCRATCH)?;
    }
    if let Some(p) = options.partition {
        cases = cases.into_iter().enumerate().filter(|(i, _)| i % p.count == p.index - 1).map(|(_, c)| c).collect();
    }
    Ok(cases)
}

/// Runs the planned cases, `jobs` at a time.
pub fn run(options: &RunOptions, cases: &[CaseDir]) -> Result<Conformance, CaseError> {
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let started = Instant::now();
    let corpus_sha256 = corpus_digest(options.corpus)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.jobs.max(1))
        .thread_name(|i| format!("stockade-conform-{i}"))
        .build()
        .map_err(|e| CaseError::Invalid { path: "--jobs".into(), message: e.to_string() })?;
    let results: Vec<Result<CaseResult, CaseError>> = pool.install(|| {
        use rayon::prelude::*;
        cases
            .par_iter()
            .map(|found| {
                let result = run_case(found, options)?;
                (options.on_case_done)(&result);
                Ok(result)
            })
            .collect()
    });
    let cases = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(Conformance {
        schema: CONFORMANCE_SCHEMA.into(),
        tool: Tool::this(),
        policy: options.policy_digest.clone(),
        corpus: Digested { name: crate::report::display_path(options.corpus), sha256: corpus_sha256 },
        partition: options.partition.map(|p| p.to_string()),
        shards: Vec::new(),
        started_at,
        duration_ms: millis(started.elapsed()),
        summary: Summary::of(&cases),
        cases,
    })
}

/// Merges the JSON reports of the shards of one partitioned run: shards 1..N of one partition,
/// each exactly once, of the same tool, policy and corpus, or a refusal that names what is
/// wrong (a missing shard must not turn into a passing run). `parts` are (report, the name it
/// was read from, the SHA-256 of its bytes).
pub fn merge(parts: Vec<(Conformance, String, String)>) -> Result<Conformance, MergeError> {
    let mut shards: Vec<(Partition, String, String)> = Vec::new();
    for (part, name, digest) in &parts {
        let partition: Partition = part
            .partition
            .as_deref()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| MergeError::NotAShard(name.clone()))?;
        if let Some((first, first_name, _)) = shards.first()
            && first.count != partition.count
        {
            return Err(MergeError::DifferentPartitions(format!("{first_name} ({first})"), format!("{name} ({partition})")));
        }
        shards.push((partition, name.clone(), digest.clone()));
    }
    let count = shards.first().map(|(p, _, _)| p.count).ok_or(MergeError::Empty)?;
    let mut problems = Vec::new();
    for index in 1..=count {
        let given: Vec<&str> = shards.iter().filter(|(p, _, _)| p.index == index).map(|(_, n, _)| n.as_str()).collect();
        match given.len() {
            0 => problems.push(format!("shard {index}/{count} is missing")),
            1 => {}
            _ => problems.push(format!("shard {index}/{count} is given {} times ({})", given.len(), given.join(", "))),
        }
    }
    if !problems.is_empty() {
        return Err(MergeError::Incomplete(problems.join("; ")));
    }
    let mut parts = parts.into_iter().map(|(part, _, _)| part);
    let mut merged = parts.next().ok_or(MergeError::Empty)?;
    for part in parts {
        for (what, a, b) in [
            ("schema", &merged.schema, &part.schema),
            ("policy", &merged.policy.sha256, &part.policy.sha256),
            ("corpus", &merged.corpus.sha256, &part.corpus.sha256),
        ] {
            if a != b {
                return Err(MergeError::DifferentRuns(format!("{what} {a} vs {b}")));
            }
        }
        if merged.tool != part.tool {
            return Err(MergeError::DifferentRuns("they were made by different builds of stockade".into()));
        }
        merged.started_at = merged.started_at.min(part.started_at);
        merged.duration_ms = merged.duration_ms.max(part.duration_ms);
        merged.cases.extend(part.cases);
    }
    merged.cases.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(w) = merged.cases.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(MergeError::DifferentRuns(format!("case `{}` is in more than one shard", w[0].id)));
    }
    shards.sort_by_key(|(p, _, _)| p.index);
    merged.shards = shards.into_iter().map(|(p, _, sha256)| ShardReport { partition: p.to_string(), sha256 }).collect();
    merged.partition = None;
    merged.summary = Summary::of(&merged.cases);
    Ok(merged)
}

fn millis(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// SHA-256 over every file of the corpus (path and content), build trees left out.
fn corpus_digest(corpus: &Path) -> Result<String, CaseError> {
    fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), CaseError> {
        let read_error = |source| CaseError::Read { path: dir.display().to_string(), source };
        for entry in std::fs::read_dir(dir).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let kind = entry.file_type().map_err(read_error)?;
            if kind.is_dir() {
                if !case::is_build_tree(&entry.file_name()) {
                    collect(&entry.path(), files)?;
                }
            } else {
                files.push(entry.path());
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    collect(corpus, &mut files)?;
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        let relative = crate::report::display_path(file.strip_prefix(corpus).unwrap_or(&file));
        // A symlink is hashed as its target path, not followed: cases plant links that point out.
        let content = match std::fs::read_link(&file) {
            Ok(target) => target.to_string_lossy().into_owned().into_bytes(),
            Err(_) => std::fs::read(&file).map_err(|source| CaseError::Read { path: file.display().to_string(), source })?,
        };
        hasher.update(format!("{relative}\0{}\n", hex::encode(Sha256::digest(&content))).as_bytes());
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A fresh scratch directory for a case, with the FIFOs and sockets it asks for.
fn make_scratch(case: &Case) -> Result<tempfile::TempDir, CaseError> {
    let error = |path: &std::path::Path, source| CaseError::Read { path: path.display().to_string(), source };
    let dir = tempfile::Builder::new().prefix("stockade-scratch-").tempdir().map_err(|e| error(std::path::Path::new("scratch"), e))?;
    for name in &case.file.scratch_fifos {
        let path = dir.path().join(name);
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| error(&path, std::io::ErrorKind::InvalidInput.into()))?;
        // SAFETY: a NUL-terminated path and a mode; mkfifo touches nothing else.
        if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
            return Err(error(&path, std::io::Error::last_os_error()));
        }
    }
    for name in &case.file.scratch_sockets {
        let path = dir.path().join(name);
        // Bound and then dropped: the socket file stays, with nobody listening.
        std::os::unix::net::UnixListener::bind(&path).map_err(|e| error(&path, e))?;
    }
    Ok(dir)
}

/// Runs one case. A case that cannot be read is a tool error; anything the plugin does is a
/// result.
fn run_case(found: &CaseDir, options: &RunOptions) -> Result<CaseResult, CaseError> {
    let started = Instant::now();
    let probe = Case::read(found, options.policy, PLAN_HTTP, PLAN_SCRATCH)?;
    let server = if probe.uses_http {
        Some(loopback::Loopback::start().map_err(|source| CaseError::Read { path: "127.0.0.1".into(), source })?)
    } else {
        None
    };
    let scratch = if probe.uses_scratch { Some(make_scratch(&probe)?) } else { None };
    let case = if server.is_some() || scratch.is_some() {
        let http = server.as_ref().map_or(PLAN_HTTP.to_string(), |s| s.authority());
        let scratch_path = scratch.as_ref().map_or(PLAN_SCRATCH.to_string(), |d| d.path().display().to_string());
        Case::read(found, options.policy, &http, &scratch_path)?
    } else {
        probe
    };
    let mut problems = Vec::new();
    let mut steps = Vec::new();
    execute(&case, &mut steps, &mut problems);
    if let (Some(expected), Some(server)) = (case.file.http_requests, &server) {
        let seen = server.requests();
        if seen != expected {
            problems.push(format!("the loopback server received {seen} requests; expected {expected}"));
        }
    }
    let passed = problems.is_empty();
    let xfail_reason = options.xfails.reason(&case.id).map(str::to_string);
    let verdict = match (passed, xfail_reason.is_some()) {
        (true, false) => Verdict::Pass,
        (false, false) => Verdict::Fail,
        (false, true) => Verdict::Xfail,
        (true, true) => {
            problems.push("passed, but is on the expected-failure list: remove it from the list".into());
            Verdict::Xpass
        }
    };
    Ok(CaseResult {
        id: case.id.clone(),
        class: case.file.class.clone(),
        description: case.file.description.clone(),
        verdict,
        duration_ms: millis(started.elapsed()),
        problems,
        xfail_reason,
        steps,
    })
}

fn execute(case: &Case, steps: &mut Vec<Step>, problems: &mut Vec<String>) {
    let sandbox = match Sandbox::new(&case.policy) {
        Ok(sandbox) => sandbox,
        Err(e) => {
            problems.push(format!("cannot create the sandbox: {e}"));
            return;
        }
    };
    let load_options = LoadOptions {
        manifest: case.file.manifest.as_ref().map(|m| case.dir.join(m)),
        config: case.file.config.clone(),
        skip_static_check: case.file.skip_static_check,
        instance_reuse: None,
    };
    let mut plugins: BTreeMap<PathBuf, Plugin> = BTreeMap::new();
    for (index, module) in case.modules().into_iter().enumerate() {
        let main = index == 0;
        let file = match PluginFile::read(&module) {
            Ok(file) => file,
            Err(e) => {
                problems.push(format!("cannot read the module: {e}"));
                return;
            }
        };
        let load = match sandbox.load(&file, &load_options) {
            Ok(load) => load,
            Err(e) => {
                problems.push(format!("cannot load {}: {e}", module.display()));
                return;
            }
        };
        let name = if main { "load".to_string() } else { format!("load {}", file_name(&module)) };
        let expected = if main { case.file.expect_load } else { Code::Ok };
        let (step, plugin) = load_step(name, expected, load, if main { &case.file.findings } else { &[] }, if main { &case.file.allowed_load_errors } else { &[] }, problems);
        steps.push(step);
        match plugin {
            Some(plugin) => plugins.insert(module, plugin),
            None => return,
        };
    }

    let several_plugins = plugins.len() > 1;
    for spec in &case.file.calls {
        let module = spec.plugin.as_ref().map_or_else(|| case.module.clone(), |p| case.dir.join(p));
        let plugin = &plugins[&module];
        let input = Input { bytes: spec.input_bytes(), args: spec.args.clone() };
        let repeat = spec.repeat.unwrap_or(1).max(1);
        for round in 1..=repeat {
            let mut name = format!("call {}", spec.function);
            if several_plugins {
                name.push_str(&format!(" in {}", file_name(&module)));
            }
            if repeat > 1 {
                name.push_str(&format!(" #{round}"));
            }
            let outcome = plugin.call(&spec.function, &input);
            let step_problems = check_call(spec, &outcome, &case.policy);
            problems.extend(step_problems.iter().map(|p| format!("{name}: {p}")));
            steps.push(Step {
                name,
                expected: Observed { code: spec.expect, stage: spec.expected_stage() },
                actual: Observed { code: outcome.code, stage: outcome.stage },
                output: outcome.output.as_deref().map(shorten),
                error: outcome.error.clone(),
                findings: Vec::new(),
                peak_memory_bytes: Some(outcome.stats.peak_memory_bytes),
                time_ms: Some((outcome.stats.instantiate_ns + outcome.stats.wall_ns) as f64 / 1e6),
            });
        }
    }
}

/// The load step of one module: what loading came to against `expected`, and the plugin
/// when it loaded. `findings` must all be among the vetting's findings.
fn load_step(
    name: String,
    expected: Code,
    load: Load,
    findings: &[Code],
    allowed_errors: &[Code],
    problems: &mut Vec<String>,
) -> (Step, Option<Plugin>) {
    let vetting = match &load {
        Load::Ready(plugin) => Some(plugin.vetting()),
        Load::Refused(vetting) => Some(&**vetting),
        Load::Failed(_) => None,
    };
    let reported: Vec<Code> = vetting.map(|v| v.findings.iter().map(|f| f.code).collect()).unwrap_or_default();
    for code in findings.iter().filter(|code| !reported.contains(code)) {
        problems.push(format!("vetting did not report `{code}` (it reported: {})", codes(&reported)));
    }
    let (actual, error, plugin) = match load {
        Load::Ready(plugin) => (Code::Ok, None, Some(plugin)),
        Load::Refused(vetting) => {
            let errors: Vec<Code> =
                vetting.findings.iter().filter(|f| f.severity == crate::code::Severity::Error).map(|f| f.code).collect();
            // Refused for several reasons: the expected one, if it is among them, is the answer,
            // and every other must be one the case allows.
            let code = if errors.contains(&expected) { expected } else { errors.first().copied().unwrap_or(Code::Ok) };
            let extra: Vec<Code> =
                errors.iter().copied().filter(|c| *c != expected && !allowed_errors.contains(c)).collect();
            if code == expected && !extra.is_empty() {
                problems.push(format!(
                    "load: refused with `{expected}` as expected, but also with {} (a case lists the extra codes it allows in `allowed-load-errors`)",
                    codes(&extra)
                ));
            }
            (code, Some(format!("refused: {}", codes(&errors))), None)
        }
        Load::Failed(outcome) => (outcome.code, outcome.error, None),
    };
    if actual != expected {
        let detail = error.as_deref().map_or(String::new(), |e| format!(" ({e})"));
        problems.push(format!("load: expected `{expected}`, got `{actual}`{detail}"));
    }
    let step = Step {
        name,
        expected: Observed { code: expected, stage: Stage::Load },
        actual: Observed { code: actual, stage: Stage::Load },
        output: None,
        error,
        findings: reported,
        peak_memory_bytes: None,
        time_ms: None,
    };
    (step, plugin)
}

/// Everything about one call's outcome that differs from its expectation, and every limit it
/// passed (which is a failure of the sandbox whatever the case expected).
fn check_call(spec: &case::CallSpec, outcome: &Outcome, policy: &Policy) -> Vec<String> {
    let mut problems = Vec::new();
    let expected = Observed { code: spec.expect, stage: spec.expected_stage() };
    let actual = Observed { code: outcome.code, stage: outcome.stage };
    if expected != actual {
        let error = outcome.error.as_deref().map_or(String::new(), |e| format!(" ({e})"));
        problems.push(format!("expected {expected}, got {actual}{error}"));
    }
    let output = outcome.output.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
    if let Some(want) = &spec.output
        && *want != output
    {
        problems.push(format!("expected output {:?}, got {:?}", shorten(want.as_bytes()), shorten(output.as_bytes())));
    }
    if let Some(want) = &spec.output_contains
        && !output.contains(want.as_str())
    {
        problems.push(format!("output {:?} does not contain {want:?}", shorten(output.as_bytes())));
    }
    if let Some(want) = &spec.error_contains
        && !outcome.error.as_deref().unwrap_or("").contains(want.as_str())
    {
        problems.push(format!("error {:?} does not contain {want:?}", outcome.error.as_deref().unwrap_or("")));
    }
    let took = std::time::Duration::from_nanos(outcome.stats.instantiate_ns + outcome.stats.wall_ns);
    if let Some(factor) = spec.within_timeout {
        let bound = policy.limits.timeout.get().mul_f64(factor);
        if took > bound {
            problems.push(format!("took {took:?}; the bound is {bound:?} ({factor}x the timeout)"));
        }
    }
    let peak = outcome.stats.peak_memory_bytes;
    if peak > policy.limits.memory.get() {
        problems.push(format!("peak memory {peak} bytes passed the limit of {}", policy.limits.memory));
    }
    if let Some(max) = spec.max_peak_memory
        && peak > max.get()
    {
        problems.push(format!("peak memory {peak} bytes; at most {max} expected"));
    }
    if outcome.stats.output_bytes > policy.limits.output.get() {
        problems.push(format!("{} bytes of output passed the limit of {}", outcome.stats.output_bytes, policy.limits.output));
    }
    problems
}

fn codes(codes: &[Code]) -> String {
    if codes.is_empty() {
        return "no findings".into();
    }
    codes.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Output as reports show it: text, cut at 200 characters.
fn shorten(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], bytes.len()),
        None => text.into_owned(),
    }
}
