//! What a call came to: a runtime code, the output, and what it cost.

use serde::Serialize;
use wasmtime::{Store, Trap};

use super::instance::{CallError, Returned, State};
use super::limiter::TableLimit;
use crate::fault::HostFault;
use crate::code::Code;
use crate::log::Logs;

/// Figures for one call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Stats {
    /// Instructions executed (fuel consumed), when the policy meters fuel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<u64>,
    /// The most the plugin's memories (linear and Extism) held at once.
    pub peak_memory_bytes: u64,
    pub input_bytes: u64,
    pub output_bytes: u64,
    /// Time in the call itself.
    pub wall_ns: u64,
    pub compile_ns: u64,
    pub instantiate_ns: u64,
    /// Which compiler made the code that ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compiler: Option<crate::policy::Compiler>,
    /// Whether the module was compiled for this load or came from a cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module_from: Option<super::cache::Source>,
    /// Bytes written to files through read-write directories in this call.
    #[serde(skip_serializing_if = "is_zero")]
    pub disk_written_bytes: u64,
    /// A write was refused because a disk quota was reached.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disk_quota_reached: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Where in a plugin's life an outcome was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Vetting, compiling or linking: nothing of the plugin ran.
    Load,
    /// Creating the instance: memories, tables, data and element segments, the start function.
    Instantiate,
    /// The exported function itself.
    Call,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Load => "load",
            Stage::Instantiate => "instantiate",
            Stage::Call => "call",
        }
    }
}

/// The outcome of a call (or of loading, when loading failed).
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub code: Code,
    pub stage: Stage,
    #[serde(skip)]
    pub output: Option<Vec<u8>>,
    pub error: Option<String>,
    /// Log lines the plugin wrote, with their level.
    pub logs: Logs,
    pub stats: Stats,
}

impl Outcome {
    pub fn ok(output: Vec<u8>) -> Outcome {
        Outcome { code: Code::Ok, stage: Stage::Call, output: Some(output), error: None, logs: Logs::default(), stats: Stats::default() }
    }

    pub fn failed(code: Code, message: impl Into<String>) -> Outcome {
        Outcome { code, stage: Stage::Call, output: None, error: Some(message.into()), logs: Logs::default(), stats: Stats::default() }
    }

    pub fn at(mut self, stage: Stage) -> Outcome {
        self.stage = stage;
        self
    }

    pub fn with_stats(mut self, stats: Stats) -> Outcome {
        self.stats = stats;
        self
    }
}

/// The longest description of a trap or a host fault an outcome keeps: what wasmtime or a host
/// function says can quote what the plugin chose (a URL, a key, function names in a backtrace).
/// The plugin's own error text is bounded by the output limit instead.
pub const MAX_FAULT_CHARS: usize = 4096;

/// Classifies what a trap or a refused host call means, in at most [`MAX_FAULT_CHARS`].
pub fn classify(error: &wasmtime::Error) -> (Code, String) {
    let (code, message) = classify_whole(error);
    let cut = crate::text::shorten(&message, MAX_FAULT_CHARS);
    (code, cut)
}

fn classify_whole(error: &wasmtime::Error) -> (Code, String) {
    // The chain starts with the error itself, then whatever wasmtime wrapped around it.
    for cause in error.chain() {
        if let Some(fault) = cause.downcast_ref::<HostFault>() {
            return (fault.code(), fault.to_string());
        }
        if let Some(limit) = cause.downcast_ref::<TableLimit>() {
            return (Code::TableLimit, limit.to_string());
        }
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return match exit.0 {
            0 => (Code::Ok, String::new()),
            status => (Code::Exit, format!("the program exited with status {status}")),
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => (Code::Timeout, "the call ran past its deadline".to_string()),
        Some(Trap::OutOfFuel) => (Code::FuelExhausted, "the call used all its fuel".to_string()),
        Some(Trap::StackOverflow) => (Code::StackOverflow, "the wasm stack was exhausted".to_string()),
        Some(trap) => (Code::Trap, format!("{trap:?}: {trap}")),
        None => (Code::Trap, format!("{error:#}").replace('\n', " ")),
    }
}

/// What an export's return (or failure) comes to, before the store's figures are added.
pub(super) fn returned(result: Result<Returned, CallError>, state: &State) -> Outcome {
    match result {
        Ok(Returned::Extism(0)) => Outcome::ok(state.kernel.output().unwrap_or_default()),
        Ok(Returned::Extism(rc)) => {
            Outcome::failed(Code::PluginError, state.kernel.error_text().unwrap_or_else(|| format!("the plugin returned {rc}")))
        }
        // An export that returns nothing (a WASI `_start`) speaks through stdout.
        Ok(Returned::Values(text)) => Outcome::ok(match state.stdout() {
            Some(stdout) if text.is_empty() => stdout,
            _ => text.into_bytes(),
        }),
        Err(CallError::Usage(message)) => Outcome::failed(Code::Trap, message),
        Err(CallError::Wasm(error)) => from_error(&error, state),
    }
}

/// The outcome a trap, a refused host call or a WASI exit comes to.
pub(super) fn from_error(error: &wasmtime::Error, state: &State) -> Outcome {
    match classify(error) {
        // A WASI program that called proc_exit(0) finished normally.
        (Code::Ok, _) => Outcome::ok(state.stdout().unwrap_or_default()),
        (code, message) => Outcome::failed(code, message),
    }
}

/// Adds what the store knows (output size, fuel used, peak memory, logs, disk writes) to an
/// outcome.
pub(super) fn finish(mut outcome: Outcome, store: &mut Store<State>, mut stats: Stats) -> Outcome {
    let stage = outcome.stage;
    if let Some(given) = store.data().limiter.fuel_given {
        stats.instructions = store.get_fuel().ok().map(|left| given.saturating_sub(left));
    }
    let state = store.data_mut();
    stats.peak_memory_bytes = state.limiter.budget.peak();
    if let Some(wasi) = &state.wasi {
        stats.disk_written_bytes = wasi.written();
        stats.disk_quota_reached = wasi.quota_reached;
    }
    let mut logs = state.kernel.take_logs();
    if let Some(stderr) = state.stderr()
        && let Err(fault) = logs.push_stderr(&stderr)
        && outcome.code == Code::Ok
    {
        outcome = Outcome::failed(fault.code(), fault.to_string()).at(stage);
    }
    stats.output_bytes = outcome.output.as_ref().map_or(0, |o| o.len() as u64);
    outcome.logs = logs;
    outcome.stats = stats;
    outcome
}
