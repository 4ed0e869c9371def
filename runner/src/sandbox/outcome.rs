//! What a call came to: a runtime code, the output, and what it cost.

use serde::Serialize;
use wasmtime::{Store, Trap};

use super::{State, TableLimit};
use crate::abi::HostFault;
use crate::code::Code;

/// Figures for one call.
#[derive(Clone, Debug, Default, Serialize)]
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
    pub logs: Vec<(&'static str, String)>,
    pub stats: Stats,
}

impl Outcome {
    pub fn ok(output: Vec<u8>) -> Outcome {
        Outcome { code: Code::Ok, stage: Stage::Call, output: Some(output), error: None, logs: Vec::new(), stats: Stats::default() }
    }

    pub fn failed(code: Code, message: impl Into<String>) -> Outcome {
        Outcome { code, stage: Stage::Call, output: None, error: Some(message.into()), logs: Vec::new(), stats: Stats::default() }
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

/// Classifies what a trap or a refused host call means.
pub fn classify(error: &wasmtime::Error) -> (Code, String) {
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
    // wasmtime-wasi's memory pipe refuses a write past its capacity with this trap; the
    // pipes are sized to the output limit. (Pinned dependency; a test covers the wording.)
    if format!("{error:#}").contains("write beyond capacity of MemoryOutputPipe") {
        return (Code::OutputTooLarge, "stdout or stderr past the output limit".to_string());
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => (Code::Timeout, "the call ran past its deadline".to_string()),
        Some(Trap::OutOfFuel) => (Code::FuelExhausted, "the call used all its fuel".to_string()),
        Some(Trap::StackOverflow) => (Code::StackOverflow, "the wasm stack was exhausted".to_string()),
        Some(trap) => (Code::Trap, format!("{trap:?}: {trap}")),
        None => (Code::Trap, format!("{error:#}").replace('\n', " ")),
    }
}

pub(super) fn from_error(error: &wasmtime::Error, store: &mut Store<State>, mut stats: super::Stats) -> Outcome {
    let (code, message) = classify(error);
    if code == Code::Ok {
        // A WASI program that called proc_exit(0) finished normally.
        let output = store.data().stdout().unwrap_or_default();
        stats.output_bytes = output.len() as u64;
        return finish(Outcome::ok(output), store, stats);
    }
    finish(Outcome::failed(code, message), store, stats)
}

/// Adds what the store knows (fuel used, peak memory, logs) to an outcome.
pub(super) fn finish(mut outcome: Outcome, store: &mut Store<State>, mut stats: Stats) -> Outcome {
    // Whatever else happened (a plugin spinning on a refused write ends in a timeout), output
    // past the limit is what the plugin did wrong.
    if store.data().stdio_overflowed() {
        outcome = Outcome::failed(Code::OutputTooLarge, "stdout or stderr past the output limit");
    }
    if let Some(given) = store.data().limiter.fuel_given {
        stats.instructions = store.get_fuel().ok().map(|left| given.saturating_sub(left));
    }
    stats.peak_memory_bytes = store.data().limiter.peak_memory;
    outcome.logs = std::mem::take(&mut store.data_mut().extism.logs);
    outcome.logs.extend(store.data().stderr_lines());
    outcome.stats = stats;
    outcome
}
