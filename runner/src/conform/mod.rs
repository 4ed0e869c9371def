//! The conformance kit: run the corpus of hostile and benign plugins, each against what must
//! happen to it, and keep the evidence in one [`Conformance`] document that every report is
//! rendered from (and that shards of a partitioned run merge into).

pub mod accounting;
pub mod case;
mod grade;
pub mod loopback;
mod merge;
mod model;
pub mod protocol;
pub mod supervisor;
pub mod worker;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::policy::Policy;

pub use case::{Case, CaseDir, CaseError, CaseFile};
pub use grade::{CPU_AFTER_DEADLINE_SLACK, RSS_OVERHEAD, WALL_SLACK};
pub use merge::{MergeError, merge};
pub use model::*;
pub use crate::worker::WorkerCommand;

use accounting::millis;
use protocol::{CallRequest, WORKER_PROTOCOL, WorkerRequest};
use supervisor::{Ran, Supervisor};
/// The expected-failure list read from the corpus when no other is given.
pub const XFAIL_FILE: &str = "xfail.toml";
/// What `{http}` stands for while cases are only read, before any server is started.
const PLAN_HTTP: &str = "127.0.0.1:9";
/// What `{scratch}` stands for while planning.
const PLAN_SCRATCH: &str = "/nonexistent-scratch";

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
        let text = crate::source::read_regular_text(path, crate::source::MAX_DOCUMENT_BYTES)
            .map_err(|source| CaseError::Read { path: path.display().to_string(), error: source })?;
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
    /// The worker program cases run in: `stockade worker`, or an adapter for another host.
    pub worker: WorkerCommand,
    /// The adapter's name, when the worker is one (reports say which host they judge).
    pub adapter: Option<String>,
    /// Cases one worker process runs before it is replaced; `None`: as many as it can.
    pub cases_per_worker: Option<usize>,
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

/// Runs the planned cases, `jobs` at a time, each in a worker process.
pub fn run(options: &RunOptions, cases: &[CaseDir]) -> Result<Conformance, CaseError> {
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let started = Instant::now();
    let corpus_sha256 = corpus_digest(options.corpus)?;
    let next = AtomicUsize::new(0);
    // Each case's result with the host that ran it, in planned order.
    type Slot = Option<Result<(CaseResult, String), CaseError>>;
    let results: Mutex<Vec<Slot>> = Mutex::new(cases.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for i in 0..options.jobs.max(1).min(cases.len().max(1)) {
            let (next, results) = (&next, &results);
            let spawned = std::thread::Builder::new().name(format!("stockade-conform-{i}")).spawn_scoped(scope, move || {
                let mut supervisor = Supervisor::new(options.worker.clone(), options.cases_per_worker);
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(found) = cases.get(index) else { return };
                    let result = run_case(found, options, &mut supervisor);
                    if let Ok((case, _)) = &result {
                        (options.on_case_done)(case);
                    }
                    results.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(result);
                }
            });
            if let Err(e) = spawned {
                results.lock().unwrap_or_else(|e| e.into_inner())[0] =
                    Some(Err(CaseError::Read { path: "a conform thread".into(), error: e }));
            }
        }
    });
    let mut done = Vec::new();
    let mut hosts: Vec<String> = Vec::new();
    for result in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        let Some(result) = result else {
            return Err(CaseError::Invalid { path: "conform".into(), message: "a case was never run".into() });
        };
        let (case, host) = result?;
        if !host.is_empty() && !hosts.contains(&host) {
            hosts.push(host);
        }
        done.push(case);
    }
    Ok(Conformance {
        schema: CONFORMANCE_SCHEMA.into(),
        tool: Tool::this(),
        host: hosts.join(", "),
        adapter: options.adapter.clone(),
        policy: options.policy_digest.clone(),
        corpus: Digested { name: crate::text::display_path(options.corpus), sha256: corpus_sha256 },
        partition: options.partition.map(|p| p.to_string()),
        shards: Vec::new(),
        started_at,
        duration_ms: millis(started.elapsed()),
        summary: Summary::of(&done),
        cases: done,
    })
}

/// SHA-256 over every file of the corpus (path and content), build trees left out.
fn corpus_digest(corpus: &Path) -> Result<String, CaseError> {
    fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), CaseError> {
        let read_error = |source| CaseError::Read { path: dir.display().to_string(), error: source };
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
        let relative = crate::text::display_path(file.strip_prefix(corpus).unwrap_or(&file));
        // A symlink is hashed as its target path, not followed: cases plant links that point out.
        let content = match std::fs::read_link(&file) {
            Ok(target) => target.to_string_lossy().into_owned().into_bytes(),
            Err(_) => crate::source::read_regular(&file, crate::source::MAX_MODULE_BYTES).map_err(|source| CaseError::Read { path: file.display().to_string(), error: source })?,
        };
        hasher.update(format!("{relative}\0{}\n", hex::encode(Sha256::digest(&content))).as_bytes());
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A fresh scratch directory for a case, with the FIFOs, sockets and files it asks for.
fn make_scratch(case: &Case) -> Result<tempfile::TempDir, CaseError> {
    let error = |path: &std::path::Path, source| CaseError::Read { path: path.display().to_string(), error: source };
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
    for index in 0..case.file.scratch_files {
        let path = dir.path().join(format!("entry-{index:07}"));
        std::fs::File::create_new(&path).map_err(|e| error(&path, e))?;
    }
    Ok(dir)
}


/// Runs one case in a worker: its loopback server and scratch directory made here, where they
/// can be watched; the case handed to the worker; the answer graded against the case and the
/// worker's figures. A case that cannot be read, or a worker that cannot be started, is a tool
/// error; anything the plugin or the host does is a result. Also returns the host's name.
fn run_case(found: &CaseDir, options: &RunOptions, supervisor: &mut Supervisor) -> Result<(CaseResult, String), CaseError> {
    let probe = Case::read(found, options.policy, PLAN_HTTP, PLAN_SCRATCH)?;
    let server = if probe.uses_http {
        Some(loopback::Loopback::start().map_err(|source| CaseError::Read { path: "127.0.0.1".into(), error: source })?)
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
    let request = request(&case)?;
    let rss_bound = grade::rss_bound(&case);
    let (ran, figures) = supervisor
        .run(&request, grade::caps(&case))
        .map_err(|e| CaseError::Invalid { path: options.worker.program.display().to_string(), message: e.to_string() })?;
    let host = grade::host_figures(&figures, rss_bound);
    let mut problems = Vec::new();
    let mut fault = None;
    let mut host_name = String::new();
    let mut not_applicable = None;
    let mut notes = Vec::new();
    let judging = if options.adapter.is_some() { grade::Judging::AnotherHost } else { grade::Judging::Stockade };
    let steps = match ran {
        Ran::Answered(response, dropped) => {
            notes.extend(dropped);
            host_name = response.host.clone();
            not_applicable = response.not_applicable.clone();
            grade::steps(&case, &response.steps, judging, &mut problems, &mut notes)
        }
        Ran::Fault { code, message } => {
            problems.push(format!("{code}: {message}"));
            fault = Some(code);
            Vec::new()
        }
    };
    if fault.is_none() && host.peak_rss_bytes > rss_bound {
        problems.push(format!(
            "{}: the worker's peak RSS was {} bytes; the bound is {rss_bound}",
            crate::code::Code::HostRssExceeded,
            host.peak_rss_bytes
        ));
        fault = Some(crate::code::Code::HostRssExceeded);
    }
    if not_applicable.is_none()
        && let (Some(expected), Some(server)) = (case.file.http_requests, &server)
    {
        let seen = server.requests();
        if seen != expected {
            problems.push(format!("the loopback server received {seen} requests; expected {expected}"));
        }
    }
    let xfail_reason = options.xfails.reason(&case.id).map(str::to_string);
    let verdict = if let Some(reason) = not_applicable {
        problems = vec![format!("not applicable to {host_name}: {reason}")];
        Verdict::NotApplicable
    } else {
        match (problems.is_empty(), xfail_reason.is_some()) {
            (true, false) => Verdict::Pass,
            (false, false) => Verdict::Fail,
            (false, true) => Verdict::Xfail,
            (true, true) => {
                problems.push("passed, but is on the expected-failure list: remove it from the list".into());
                Verdict::Xpass
            }
        }
    };
    let result = CaseResult {
        id: case.id.clone(),
        class: case.file.class.clone(),
        description: case.file.description.clone(),
        verdict,
        duration_ms: host.wall_ms,
        problems,
        xfail_reason,
        notes,
        fault,
        host,
        steps,
    };
    Ok((result, host_name))
}

/// The case as the worker protocol carries it.
fn request(case: &Case) -> Result<WorkerRequest, CaseError> {
    let invalid = |message: String| CaseError::Invalid { path: case.dir.display().to_string(), message };
    let overrides = serde_json::to_value(&case.file.policy).map_err(|e| invalid(format!("the policy does not serialize: {e}")))?;
    let modules = case.modules();
    let path = |p: &Path| crate::text::display_path(p);
    let calls = case
        .file
        .calls
        .iter()
        .map(|spec| {
            let module = spec.plugin.as_ref().map_or_else(|| case.module.clone(), |p| case.dir.join(p));
            CallRequest {
                module: modules.iter().position(|m| *m == module).unwrap_or(0),
                function: spec.function.clone(),
                input: spec.input.clone(),
                input_repeat: spec.input_repeat.unwrap_or(1),
                args: spec.args.clone(),
                repeat: spec.repeat.unwrap_or(1).max(1),
            }
        })
        .collect();
    Ok(WorkerRequest {
        protocol: WORKER_PROTOCOL.into(),
        id: case.id.clone(),
        dir: path(&case.dir),
        policy: crate::worker::policy_to_wire(&case.policy).map_err(invalid)?,
        policy_overrides: overrides,
        manifest: case.file.manifest.as_ref().map(|m| path(&case.dir.join(m))),
        config: case.file.config.clone(),
        skip_static_check: case.file.skip_static_check,
        modules: modules.iter().map(|m| path(m)).collect(),
        calls,
    })
}
