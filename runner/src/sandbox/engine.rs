//! The wasmtime engine a policy runs plugins on, its epoch ticker, and bounded compilation.

use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, Module, PoolingAllocationConfig};

use super::Outcome;
use crate::code::Code;
use crate::policy::Policy;

/// How often the epoch ticker ticks; deadlines are rounded up to it.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(5);
/// How many instances (and so memories and tables) may be live at once across all plugins of
/// one engine; the pooling allocator reserves address space for this many up front.
const POOL_SLOTS: u32 = 1000;
/// wasmparser's own limit on tables per module.
const MAX_TABLES_PER_MODULE: u32 = 100;
/// Bytes of instance metadata (VMContext: globals, function references, imports) one instance
/// may need; the default (1 MiB) refused 70,000 globals that validate.
const MAX_INSTANCE_METADATA: usize = 64 << 20;

/// An engine with exactly the policy's features and limits, and its epoch ticker running.
pub(super) fn new_engine(policy: &Policy) -> wasmtime::Result<Engine> {
    let limits = &policy.limits;
    let mut config = Config::new();
    // Exactly the policy's features: everything off, then what the policy allows on.
    config.wasm_features(wasmparser::WasmFeatures::all(), false);
    config.wasm_features(policy.features.wasm_features(), true);
    config.wasm_component_model(false);
    config.epoch_interruption(true);
    config.consume_fuel(limits.fuel.is_some());
    let stack = usize::try_from(limits.stack.get()).unwrap_or(usize::MAX);
    config.max_wasm_stack(stack);
    // WASI calls run on a fiber (so that they can be abandoned at the deadline); its stack
    // holds the wasm stack and the host's frames.
    config.async_stack_size(stack.saturating_add(1 << 20).max(2 << 20));
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(POOL_SLOTS)
        .total_memories(POOL_SLOTS)
        .total_tables(POOL_SLOTS)
        .total_stacks(POOL_SLOTS)
        .max_memories_per_module(limits.memories)
        // As many tables as wasmparser lets a module have, and room for the instance metadata
        // of any module the static limits admit: the pool must not refuse what `vet` passed.
        .max_tables_per_module(MAX_TABLES_PER_MODULE)
        .max_core_instance_size(MAX_INSTANCE_METADATA)
        .max_memory_size(usize::try_from(limits.memory.get()).unwrap_or(usize::MAX))
        .table_elements(usize::try_from(limits.tables).unwrap_or(usize::MAX));
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config)?;
    start_epoch_ticker(&engine);
    Ok(engine)
}

/// One ticker thread per engine. It holds only a weak reference, so it ends with the engine.
///
/// The epoch follows the clock, not the count of wake-ups: on a busy machine the thread wakes
/// late, and one increment per wake-up would let every deadline slip by the sum of those
/// delays (a 300 ms deadline stopped a spinning plugin only after 120 ms more of CPU beside a
/// build). Each wake-up brings the epoch up to the ticks the clock says have passed.
fn start_epoch_ticker(engine: &Engine) {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("stockade-epoch".into())
        .spawn(move || {
            let start = std::time::Instant::now();
            let mut ticks: u64 = 0;
            while let Some(engine) = engine.upgrade() {
                let due = (start.elapsed().as_nanos() / EPOCH_TICK.as_nanos()) as u64;
                while ticks < due {
                    engine.increment_epoch();
                    ticks += 1;
                }
                drop(engine);
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

static COMPILE_POOL: std::sync::LazyLock<rayon::ThreadPool> = std::sync::LazyLock::new(|| {
    rayon::ThreadPoolBuilder::new()
        .num_threads(COMPILE_THREADS)
        .thread_name(|i| format!("stockade-compile-{i}"))
        .build()
        .expect("the compile pool starts")
});

/// Compiles on a thread of its own and stops waiting at the policy's compile timeout.
///
/// Cranelift cannot be interrupted, so a timed-out compile finishes in the background and its
/// result is dropped; the caller gets `compile-timeout` on time.
pub(super) fn compile_bounded(engine: &Engine, bytes: Vec<u8>, timeout: Duration) -> Result<Module, Outcome> {
    let (send, receive) = std::sync::mpsc::sync_channel(1);
    let engine = engine.clone();
    std::thread::Builder::new()
        .name("stockade-compile".into())
        .spawn(move || {
            // Functions compile in parallel on the compile pool only: compile memory is
            // transient per function in flight, so the pool's size bounds it on any machine.
            let _ = send.send(COMPILE_POOL.install(|| Module::new(&engine, &bytes)));
        })
        .map_err(|e| Outcome::failed(Code::CompileTimeout, format!("cannot start the compiler thread: {e}")))?;
    match receive.recv_timeout(timeout) {
        Ok(Ok(module)) => Ok(module),
        Ok(Err(error)) => Err(Outcome::failed(engine_refusal_code(&error), format!("the engine rejected the module: {error:#}"))),
        Err(_) => Err(Outcome::failed(
            Code::CompileTimeout,
            format!("compiling took longer than {}", humantime::format_duration(timeout)),
        )),
    }
}

/// Why the engine refused to compile a module that validated. The pooling allocator checks
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
