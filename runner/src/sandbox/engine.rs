//! The wasmtime engines plugins run on: one per distinct engine configuration per process,
//! one epoch ticker for all of them, and bounded compilation.
//!
//! What differs per plugin or per call (memory, tables, timeout, fuel amount, grants) lives in
//! the store and its limiter; only what changes code generation or the instance allocator is
//! engine configuration. Building an engine is costly (a pooling allocator maps and protects
//! every slot's guard pages up front), so `run`, `conform`'s workers and hosts that load many
//! plugins take the same engine for the same [`EngineSpec`] from [`shared`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, Module, PoolingAllocationConfig, Strategy};

use super::Outcome;
use crate::code::Code;
use crate::policy::{Compiler, Policy};

/// How often the epoch ticker ticks; deadlines are rounded up to it.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(5);
/// The epoch deadline for a timeout: rounded up to whole ticks, and one more, since the
/// current tick may be about to end.
pub(super) fn epoch_ticks(timeout: Duration) -> u64 {
    timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64 + 1
}

/// wasmparser's own limit on tables per module.
const MAX_TABLES_PER_MODULE: u32 = 100;
/// Bytes of instance metadata (VMContext: globals, function references, imports) one instance
/// may need; the default (1 MiB) refused 70,000 globals that validate.
const MAX_INSTANCE_METADATA: usize = 64 << 20;
/// Compiled modules one engine keeps in memory by module hash, so that a plugin loaded again
/// in the same process (another case of the corpus, a hot reload) costs a lookup. Bounded so
/// that a long-lived worker does not grow without end; the oldest goes first.
const REMEMBERED_MODULES: usize = 256;

/// How instances get their memories, tables and stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Allocation {
    /// Mapped when an instance is created, unmapped when it goes: nothing up front, so the
    /// fastest for a process that creates a handful of instances (`stockade run`).
    OnDemand,
    /// Slots for this many live instances, memories, tables and fiber stacks, reserved when
    /// the engine is built and reused after: cheaper per instance, for processes that create
    /// many (conform's workers, hosts). A caller holding more instances at once than this gets
    /// an error at instantiation, so size it for the instances held at once, not for the
    /// instances created over time.
    Pooling { instances: u32 },
}

/// Everything an engine is built from. Two sandboxes with equal specs share one engine.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EngineSpec {
    features: u64,
    fuel: bool,
    /// Epoch checks in the code; off where the process is the deadline's boundary.
    epochs: bool,
    stack: usize,
    compiler: Compiler,
    allocation: Allocation,
    /// The pool's per-slot sizes (unused on demand, where the limiter alone bounds memory).
    memories_per_module: u32,
    max_memory_size: usize,
    table_elements: usize,
    /// A module's functions compile on the compile pool; off, one at a time on the compile
    /// thread (see [`crate::sandbox::SandboxOptions::serial_compile`]).
    parallel_compile: bool,
}

impl EngineSpec {
    /// The engine `policy` needs with `compiler` (Cranelift or Winch, never `auto`).
    pub fn new(policy: &Policy, compiler: Compiler, allocation: Allocation, epochs: bool, parallel_compile: bool) -> EngineSpec {
        let limits = &policy.limits;
        let pooled = matches!(allocation, Allocation::Pooling { .. });
        let mut features = policy.features.wasm_features();
        if compiler == Compiler::Winch {
            // Only what Winch compiles: a module that needs more fails this engine's
            // validation and is compiled by Cranelift instead.
            features &= crate::features::WINCH_FEATURES;
        }
        EngineSpec {
            features: features.bits(),
            fuel: limits.fuel.is_some(),
            epochs,
            stack: usize::try_from(limits.stack.get()).unwrap_or(usize::MAX),
            compiler,
            allocation,
            memories_per_module: if pooled { limits.memories } else { 0 },
            max_memory_size: if pooled { usize::try_from(limits.memory.get()).unwrap_or(usize::MAX) } else { 0 },
            table_elements: if pooled { usize::try_from(limits.tables).unwrap_or(usize::MAX) } else { 0 },
            parallel_compile,
        }
    }

    fn config(&self) -> Config {
        let mut config = Config::new();
        // Exactly the policy's features: everything off, then what the policy allows on.
        config.wasm_features(wasmparser::WasmFeatures::all(), false);
        config.wasm_features(wasmparser::WasmFeatures::from_bits_truncate(self.features), true);
        config.wasm_component_model(false);
        config.epoch_interruption(self.epochs);
        config.consume_fuel(self.fuel);
        config.strategy(match self.compiler {
            Compiler::Winch => Strategy::Winch,
            Compiler::Cranelift | Compiler::Auto => Strategy::Cranelift,
        });
        config.max_wasm_stack(self.stack);
        // Native unwind tables only serve outside unwinders (debuggers, profilers) walking
        // through wasm frames: wasmtime's traps and backtraces do not use them, and a panic in
        // a host function is caught before it reaches wasm. Registering them with libgcc was a
        // call per function on every load, and they were 6% of every cached artifact.
        config.native_unwind_info(false);
        config.parallel_compilation(self.parallel_compile);
        // WASI calls run on a fiber (so that they can be abandoned at the deadline); its stack
        // holds the wasm stack and the host's frames.
        config.async_stack_size(self.stack.saturating_add(1 << 20).max(2 << 20));
        if let Allocation::Pooling { instances } = self.allocation {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_core_instances(instances)
                .total_memories(instances.saturating_mul(self.memories_per_module))
                .total_tables(instances.saturating_mul(MAX_TABLES_PER_MODULE))
                .total_stacks(instances)
                .max_memories_per_module(self.memories_per_module)
                // As many tables as wasmparser lets a module have, and room for the instance
                // metadata of any module the static limits admit: the pool must not refuse
                // what `vet` passed.
                .max_tables_per_module(MAX_TABLES_PER_MODULE)
                .max_core_instance_size(MAX_INSTANCE_METADATA)
                .max_memory_size(self.max_memory_size)
                .table_elements(self.table_elements);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        } else {
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            // A copy-on-write image of the module's data costs a memfd and a copy of every
            // segment when the module is loaded, and pays off only over many instances: not
            // for the handful a one-shot process makes.
            config.memory_init_cow(false);
        }
        config
    }
}

/// An engine and the compiled modules it remembers.
#[derive(Clone)]
pub struct SharedEngine {
    pub engine: Engine,
    modules: Arc<Mutex<RememberedModules>>,
    parallel_compile: bool,
}

#[derive(Default)]
struct RememberedModules {
    by_key: HashMap<String, Module>,
    order: VecDeque<String>,
}

impl SharedEngine {
    /// The compiled module for `key` if this engine compiled or loaded it before.
    pub fn remembered(&self, key: &str) -> Option<Module> {
        self.modules.lock().unwrap_or_else(|p| p.into_inner()).by_key.get(key).cloned()
    }

    pub fn remember(&self, key: &str, module: &Module) {
        let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if modules.by_key.insert(key.to_string(), module.clone()).is_none() {
            modules.order.push_back(key.to_string());
            while modules.order.len() > REMEMBERED_MODULES {
                let oldest = modules.order.pop_front().expect("longer than the bound");
                modules.by_key.remove(&oldest);
            }
        }
    }
}

/// Drops every module the process's engines remember, so that the next load of any plugin
/// compiles it again.
pub fn forget_compiled_modules() {
    for shared in ENGINES.lock().unwrap_or_else(|p| p.into_inner()).values() {
        *shared.modules.lock().unwrap_or_else(|p| p.into_inner()) = RememberedModules::default();
    }
}

static ENGINES: LazyLock<Mutex<HashMap<EngineSpec, SharedEngine>>> = LazyLock::new(Default::default);

/// The process's engine for `spec`, built on first use.
pub fn shared(spec: &EngineSpec) -> wasmtime::Result<SharedEngine> {
    let mut engines = ENGINES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(shared) = engines.get(spec) {
        return Ok(shared.clone());
    }
    let engine = Engine::new(&spec.config())?;
    let shared = SharedEngine { engine, modules: Arc::default(), parallel_compile: spec.parallel_compile };
    engines.insert(spec.clone(), shared.clone());
    // Code without epoch checks never reads the epoch: a process whose engines all leave the
    // deadline to the process (a `run`, a worker) has no ticker waking it every tick.
    if spec.epochs {
        EPOCH_TICKER.get_or_init(start_epoch_ticker);
    }
    Ok(shared)
}

static EPOCH_TICKER: std::sync::OnceLock<()> = std::sync::OnceLock::new();

/// One ticker thread for every engine of the process.
///
/// The epoch follows the clock, not the count of wake-ups: on a busy machine the thread wakes
/// late, and one increment per wake-up would let every deadline slip by the sum of those
/// delays (a 300 ms deadline stopped a spinning plugin only after 120 ms more of CPU beside a
/// build). Each wake-up brings every engine's epoch up to the ticks the clock says have
/// passed. Deadlines are set relative to an engine's current epoch, so an engine created after
/// the ticker started is ticked from then on alike.
fn start_epoch_ticker() {
    std::thread::Builder::new()
        .name("stockade-epoch".into())
        .spawn(move || {
            let start = std::time::Instant::now();
            let mut ticks: u64 = 0;
            loop {
                let due = (start.elapsed().as_nanos() / EPOCH_TICK.as_nanos()) as u64;
                if ticks < due {
                    let engines: Vec<Engine> =
                        ENGINES.lock().unwrap_or_else(|p| p.into_inner()).values().map(|s| s.engine.clone()).collect();
                    for _ in ticks..due {
                        for engine in &engines {
                            engine.increment_epoch();
                        }
                    }
                    ticks = due;
                }
                let next = start + Duration::from_nanos((ticks + 1).saturating_mul(EPOCH_TICK.as_nanos() as u64));
                std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
            }
        })
        .expect("the epoch ticker thread starts");
}

/// How many functions compile at once. The static limits (`function-control-flow`,
/// `control-flow`) bound what one function and the whole module cost; this bounds how many
/// functions' costs add up at a time, whatever the machine's core count.
const COMPILE_THREADS: usize = 2;

static COMPILE_POOL: LazyLock<rayon::ThreadPool> = LazyLock::new(|| {
    rayon::ThreadPoolBuilder::new()
        .num_threads(COMPILE_THREADS)
        .thread_name(|i| format!("stockade-compile-{i}"))
        .build()
        .expect("the compile pool starts")
});

type CompileJob = Box<dyn FnOnce() + Send>;

/// Compile threads waiting for work. A compile that is given up on at its timeout keeps its
/// thread until it finishes, so the caller must never wait for a thread to come free: it
/// takes an idle one or starts one. Reusing them saves a thread start per module, which is
/// most of what a small module's load costs beyond compiling it.
static IDLE_COMPILE_THREADS: Mutex<Vec<std::sync::mpsc::Sender<CompileJob>>> = Mutex::new(Vec::new());
/// Idle compile threads kept; more end when their compile is done.
const KEPT_COMPILE_THREADS: usize = 2;

fn run_on_compile_thread(job: CompileJob) -> std::io::Result<()> {
    let idle = IDLE_COMPILE_THREADS.lock().unwrap_or_else(|p| p.into_inner()).pop();
    let job = match idle {
        Some(thread) => match thread.send(job) {
            Ok(()) => return Ok(()),
            Err(returned) => returned.0,
        },
        None => job,
    };
    let (send, receive) = std::sync::mpsc::channel::<CompileJob>();
    send.send(job).expect("the receiver is held here");
    std::thread::Builder::new().name("stockade-compile".into()).spawn(move || {
        while let Ok(job) = receive.recv() {
            job();
            let mut idle = IDLE_COMPILE_THREADS.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() >= KEPT_COMPILE_THREADS {
                return;
            }
            idle.push(send.clone());
        }
    })?;
    Ok(())
}

/// The compile timeout of one load, however many compilers it takes: a Cranelift compile
/// after Winch gave up gets what is left, and a timeout names the policy's figure.
#[derive(Clone, Copy)]
pub(super) struct CompileLimit {
    timeout: Duration,
    deadline: std::time::Instant,
}

impl CompileLimit {
    pub fn starting_now(timeout: Duration) -> CompileLimit {
        CompileLimit { timeout, deadline: std::time::Instant::now() + timeout }
    }
}

/// Compiles on a compile thread and stops waiting at the load's compile deadline.
///
/// Neither compiler can be interrupted, so a timed-out compile finishes in the background and
/// its result is dropped; the caller gets `compile-timeout` on time.
pub(super) fn compile_bounded(shared: &SharedEngine, bytes: Arc<[u8]>, limit: CompileLimit) -> Result<Module, Outcome> {
    let (send, receive) = std::sync::mpsc::sync_channel(1);
    let (engine, parallel) = (shared.engine.clone(), shared.parallel_compile);
    // Functions compile in parallel on the compile pool only: compile memory is transient per
    // function in flight, so the pool's size bounds it on any machine. An engine that compiles
    // serially does so on the compile thread, without waking the pool.
    let job: CompileJob = Box::new(move || {
        let module = if parallel { COMPILE_POOL.install(|| Module::new(&engine, &bytes)) } else { Module::new(&engine, &bytes) };
        let _ = send.send((module, std::time::Instant::now()));
    });
    run_on_compile_thread(job).map_err(|e| Outcome::failed(Code::CompileTimeout, format!("cannot start the compiler thread: {e}")))?;
    judge_compile(receive.recv_timeout(limit.deadline.saturating_duration_since(std::time::Instant::now())), &limit)
}

/// What the compile thread answered (the module, and when it finished), or that it did not.
type CompileAnswer = Result<(wasmtime::Result<Module>, std::time::Instant), std::sync::mpsc::RecvTimeoutError>;

fn judge_compile(answer: CompileAnswer, limit: &CompileLimit) -> Result<Module, Outcome> {
    let timed_out = || {
        Outcome::failed(Code::CompileTimeout, format!("compiling took longer than {}", humantime::format_duration(limit.timeout)))
    };
    match answer {
        // A thread kept from the CPU past the deadline finds the answer waiting when it wakes:
        // when the compiler finished, not when the answer was seen, says whether it was in time
        // (the corpus's 1 ms case came back `ok` under a loaded CI machine without this).
        Ok((_, finished)) if finished > limit.deadline => Err(timed_out()),
        Ok((Ok(module), _)) => Ok(module),
        Ok((Err(error), _)) => Err(Outcome::failed(engine_refusal_code(&error), format!("the engine rejected the module: {error:#}"))),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(timed_out()),
        // The compiler thread ended without an answer: it panicked.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err(Outcome::failed(Code::Invalid, "the compiler failed on the module without saying why".to_string()))
        }
    }
}

/// What a module needs from the instance allocator, against the policy's limits: the check
/// the pooling allocator makes at compile time, made for every allocator alike so that a
/// module's fate does not depend on which one runs it. Only reachable when the static check
/// was skipped or missed something (vet refuses these first).
pub(super) fn exceeds_limits(module: &Module, policy: &Policy) -> Option<Outcome> {
    let limits = &policy.limits;
    let needs = module.resources_required();
    if needs.num_memories > limits.memories {
        let message = format!("the module defines {} memories; the limit is {}", needs.num_memories, limits.memories);
        return Some(Outcome::failed(Code::MemoryLimit, message));
    }
    if let Some(initial) = needs.max_initial_memory_size
        && initial > limits.memory.get()
    {
        let message = format!("a memory starts at {initial} bytes; the limit is {}", limits.memory);
        return Some(Outcome::failed(Code::MemoryLimit, message));
    }
    if let Some(initial) = needs.max_initial_table_size
        && initial > limits.tables
    {
        let message = format!("a table starts with {initial} elements; the limit is {}", limits.tables);
        return Some(Outcome::failed(Code::TableLimit, message));
    }
    None
}

/// Why the engine refused to compile a module that validated. A pooling allocator checks
/// every module against the slots it was sized with (the policy's memory size, memories per
/// module and table elements): that refusal is the runtime's own limit, reached when the
/// static check was skipped or missed something. (Pinned wasmtime; a corpus case covers each
/// wording.)
fn engine_refusal_code(error: &wasmtime::Error) -> Code {
    let message = format!("{error:#}");
    if message.contains("pooling allocator requirements") {
        if message.contains("module memory") {
            return Code::MemoryLimit;
        }
        if message.contains("module table") {
            return Code::TableLimit;
        }
    }
    Code::Invalid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compile_that_finished_after_its_deadline_timed_out_however_late_it_was_seen() {
        let engine = Engine::default();
        let compiled = || Module::new(&engine, b"\0asm\x01\0\0\0");
        let limit = CompileLimit::starting_now(Duration::from_millis(1));
        let late = judge_compile(Ok((compiled(), limit.deadline + Duration::from_millis(3))), &limit);
        assert_eq!(late.err().map(|outcome| outcome.code), Some(Code::CompileTimeout));
        let in_time = judge_compile(Ok((compiled(), limit.deadline - Duration::from_micros(100))), &limit);
        assert!(in_time.is_ok());
        let unanswered = judge_compile(Err(std::sync::mpsc::RecvTimeoutError::Timeout), &limit);
        assert_eq!(unanswered.err().map(|outcome| outcome.code), Some(Code::CompileTimeout));
    }
}
