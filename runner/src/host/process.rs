//! Out-of-process plugins: a plugin run in a pool of worker processes, each of which loads it
//! once, compiled without epoch checks (the code runs at native wasm speed), and serves calls
//! over its pipes. A call that overruns is ended with its process (the worker's own watchdog
//! answers `timeout` and exits; the host kills what does not answer by the timeout plus a second)
//! and the worker is replaced at the next call. For compute-heavy plugins; chatty ones stay in
//! process with epochs. Host functions (closures in the host) and vars shared across instances
//! are not available out of process: each worker keeps its own vars.
//!
//! The protocol (`stockade.plugin-worker/1`), one JSON object a line: the host sends
//! `{"module", "policy", "config"}` once and gets `{"loaded": true}` or `{"error": "…"}`; then
//! `{"id", "function", "input"}` (input base64) per call, answered `{"id", "code", "output",
//! "error"}`: exactly one answer per call, carrying its call's `id` (a number the host does not
//! repeat). The host drops, and logs, a line that answers another call.
//! `stockade plugin-worker` is one such worker; a host binary can be its own with
//! [`serve_plugin`].

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::code::Code;
use crate::policy::Policy;
use crate::sandbox::{Allocation, Input, Load, LoadOptions, Sandbox, SandboxOptions};
use crate::source::PluginFile;
use crate::worker::{ProcessLimits, Worker};
pub use crate::worker::WorkerCommand;

pub const PLUGIN_WORKER_PROTOCOL: &str = "stockade.plugin-worker/1";

#[derive(Serialize, Deserialize)]
struct LoadRequest {
    protocol: String,
    module: String,
    policy: serde_json::Value,
    config: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct CallRequest {
    id: u64,
    function: String,
    input: String,
}

#[derive(Serialize, Deserialize, Default)]
struct Reply {
    /// The call answered (none for the load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    loaded: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The worker's side: loads the plugin the first line names and serves calls until stdin
/// closes. A call past its deadline is answered `timeout` by the watchdog, which then ends the
/// process.
pub fn serve_plugin(input: impl BufRead, output: impl Write + Send + 'static) -> std::io::Result<()> {
    let output: Shared = std::sync::Arc::new(Mutex::new(Box::new(output)));
    let mut lines = input.lines();
    let Some(first) = lines.next() else { return Ok(()) };
    let plugin = match load(&first?) {
        Ok(plugin) => plugin,
        Err(error) => return reply(&output, &Reply { error: Some(error), ..Reply::default() }),
    };
    reply(&output, &Reply { loaded: Some(true), ..Reply::default() })?;
    for line in lines {
        let request: CallRequest = match serde_json::from_str(&line?) {
            Ok(request) => request,
            Err(e) => {
                // Without an id the host cannot take this for any call's answer: it ends the
                // worker at the call's hard cap.
                reply(&output, &Reply { code: Some(Code::Trap), error: Some(format!("the request does not parse: {e}")), ..Reply::default() })?;
                continue;
            }
        };
        let bytes = b64().decode(&request.input).unwrap_or_default();
        let input = Input { bytes, args: Vec::new() };
        let watched = std::sync::Arc::clone(&output);
        let id = Some(request.id);
        let watchdog = plugin.deadline_by_process().then(|| {
            plugin.watchdog(&input, move |outcome| {
                let _ = reply(&watched, &Reply { id, code: Some(outcome.code), error: outcome.error, ..Reply::default() });
                std::process::exit(0);
            })
        });
        let outcome = plugin.call(&request.function, &input);
        // One answer per call: the watchdog's, if it claimed the call at its deadline.
        if let Some(watchdog) = watchdog {
            watchdog.disarm_or_wait_for_the_end();
        }
        let output_b64 = outcome.output.as_deref().map(|o| b64().encode(o));
        let error = outcome.error.map(|e| crate::text::shorten(&e, ERROR_CHARS));
        reply(&output, &Reply { id, code: Some(outcome.code), output: output_b64, error, ..Reply::default() })?;
    }
    Ok(())
}

/// A call's error text passed back to the host is cut to this many characters: the plugin
/// chooses its length (up to its memory limit), and the host holds it uncharged.
const ERROR_CHARS: usize = 4096;

/// The longest answer line a host reads from a worker: the call's output in base64, the
/// error text cut to [`ERROR_CHARS`] (each character JSON-escaped to at most six bytes) and
/// the rest of the object. A longer line is a worker not to be believed, never held.
fn max_reply_bytes(output_limit: u64) -> u64 {
    output_limit.div_ceil(3).saturating_mul(4).saturating_add(ERROR_CHARS as u64 * 6).saturating_add(4096)
}

/// The worker's standard output, shared with its watchdog.
type Shared = std::sync::Arc<Mutex<Box<dyn Write + Send>>>;

/// One answer, whole, under the lock: the watchdog's and the call's never interleave.
fn reply(out: &Shared, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply)?;
    line.push(b'\n');
    let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
    out.write_all(&line)?;
    out.flush()
}

fn load(line: &str) -> Result<crate::sandbox::Plugin, String> {
    let request: LoadRequest = serde_json::from_str(line).map_err(|e| format!("the load request does not parse: {e}"))?;
    if request.protocol != PLUGIN_WORKER_PROTOCOL {
        return Err(format!("protocol `{}`; this worker speaks {PLUGIN_WORKER_PROTOCOL}", request.protocol));
    }
    let policy = crate::worker::policy_from_wire(&request.policy, "the host's policy")?;
    let options = SandboxOptions { allocation: Allocation::OnDemand, disposable_process: true, ..SandboxOptions::default() };
    let sandbox = Sandbox::with_options(&policy, &options).map_err(|e| e.to_string())?;
    let file = PluginFile::read_within(std::path::Path::new(&request.module), policy.limits.module_size.get()).map_err(|e| e.to_string())?;
    match sandbox.load(&file, &LoadOptions { config: request.config, ..LoadOptions::default() }).map_err(|e| e.to_string())? {
        Load::Ready(plugin) => Ok(plugin),
        Load::Refused(vetting) => Err(format!("refused: {}", vetting.findings.iter().map(|f| f.code.as_str()).collect::<Vec<_>>().join(", "))),
        Load::Failed(outcome) => Err(format!("{}: {}", outcome.code, outcome.error.unwrap_or_default())),
    }
}

/// Answers to other calls a worker may write during one call before it is taken for broken.
const MAX_DROPPED_ANSWERS: usize = 16;

/// The worker processes of one out-of-process plugin.
pub struct ProcessPool {
    command: WorkerCommand,
    load: LoadRequest,
    timeout: Duration,
    /// The longest answer line believed ([`max_reply_bytes`]).
    max_reply: u64,
    idle: Mutex<Vec<Worker>>,
    /// The id of the last call sent to any of this pool's workers.
    last_call: std::sync::atomic::AtomicU64,
}

/// How long past a call's timeout the host waits for a worker before killing it: the worker's
/// watchdog answers at the timeout plus 20 ms.
const HARD_CAP: Duration = Duration::from_secs(1);

impl ProcessPool {
    /// A pool for the plugin at `module`; starts one worker to check that it loads there.
    pub fn start(command: WorkerCommand, module: &std::path::Path, policy: &Policy, config: BTreeMap<String, String>) -> Result<ProcessPool, String> {
        let load = LoadRequest { protocol: PLUGIN_WORKER_PROTOCOL.into(), module: module.display().to_string(), policy: crate::worker::policy_to_wire(policy)?, config };
        let pool = ProcessPool {
            command,
            load,
            timeout: policy.limits.timeout.get(),
            max_reply: max_reply_bytes(policy.limits.output.get()),
            idle: Mutex::new(Vec::new()),
            last_call: std::sync::atomic::AtomicU64::new(0),
        };
        let worker = pool.spawn()?;
        pool.idle.lock().unwrap_or_else(|p| p.into_inner()).push(worker);
        Ok(pool)
    }

    fn spawn(&self) -> Result<Worker, String> {
        let limits = ProcessLimits { no_core_dumps: true, ..ProcessLimits::default() };
        let mut worker = Worker::spawn(&self.command, limits, self.max_reply).map_err(|e| format!("cannot start the worker {}: {e}", self.command.program.display()))?;
        worker.send(&self.load).map_err(|e| format!("the worker would not take the plugin: {e}"))?;
        // Loading compiles the module: up to the policy's compile timeout.
        let line = worker.next_line(Duration::from_secs(60)).map_err(|e| e.to_string())?;
        let reply: Reply = serde_json::from_slice(&line).map_err(|e| format!("the worker's answer does not parse: {e}"))?;
        match (reply.loaded, reply.error) {
            (Some(true), _) => Ok(worker),
            (_, Some(error)) => Err(format!("the worker could not load the plugin: {error}")),
            _ => Err("the worker answered something else than the load".into()),
        }
    }

    /// One call in a worker: an idle one, or a new one. A worker that overran is gone with its
    /// process; the others go back to the pool.
    pub fn call(&self, function: &str, input: &[u8]) -> Result<Vec<u8>, (Code, String)> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut worker = match idle {
            Some(worker) => worker,
            None => self.spawn().map_err(|e| (Code::Crash, e))?,
        };
        let started = Instant::now();
        let id = self.last_call.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        worker.send(&CallRequest { id, function: function.into(), input: b64().encode(input) }).map_err(|e| (Code::Crash, format!("the worker would not take the call: {e}")))?;
        let mut dropped = 0;
        let pid = worker.pid();
        let drop_other = |reply: &Reply| {
            tracing::warn!(pid, call = id, answered = ?reply.id, "dropped a plugin worker's answer to another call");
            dropped += 1;
            if dropped > MAX_DROPPED_ANSWERS { Err(format!("the worker wrote more than {MAX_DROPPED_ANSWERS} answers to other calls")) } else { Ok(()) }
        };
        let reply = match worker.answer_to(&id, |reply: &Reply| reply.id, started + self.timeout + HARD_CAP, drop_other) {
            Ok(reply) => reply,
            Err(why) if started.elapsed() >= self.timeout => {
                return Err((Code::Timeout, format!("the call ran past its timeout of {:?}; its worker was killed ({why})", self.timeout)));
            }
            Err(why) => return Err((Code::Crash, why)),
        };
        let code = reply.code.unwrap_or(Code::Crash);
        if code == Code::Ok {
            self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(worker);
            return Ok(reply.output.and_then(|o| b64().decode(o).ok()).unwrap_or_default());
        }
        // After a timeout the worker has ended (its watchdog); after a trap it may be reused,
        // but a fresh one is cheaper to trust.
        Err((code, reply.error.unwrap_or_else(|| code.summary().to_string())))
    }
}
