//! The sandbox: compile, link and run a vetted plugin on wasmtime under the policy's limits.
//!
//! - One engine per policy, configured from the same feature table the validator uses.
//! - Wall-clock limits by epoch interruption: one ticker thread per engine, a deadline per
//!   store, so one plugin's timeout never interrupts another.
//! - Optional fuel per call; a wasm stack cap; a [`ResourceLimiter`] that caps the *sum* of a
//!   plugin's linear memories (and its Extism memory) and table elements.
//! - The linker holds only the host functions of granted capabilities: an import that was not
//!   granted has nothing to link to, even if the static check were skipped.
//! - Instances come from a reused [`InstancePre`]. After a call that returned normally the
//!   instance is reset (the Extism kernel's memory, input, output, logs; fuel and deadline are
//!   set again per call) and kept for the next call of the same plugin, as the Extism host does.
//!   After a trap, a host fault or any limit, the instance is dropped and the next call gets a
//!   fresh one, so nothing of a broken instance survives. WASI programs, whose stdio and
//!   `_start` are one-shot, and hosts that ask for it get a fresh instance for every call.

pub mod cache;
mod link;
mod outcome;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::{
    Config, Engine, Func, FuncType, InstanceAllocationStrategy, InstancePre, Module, PoolingAllocationConfig, Store, TypedFunc,
};

use crate::abi::HostFault;
use crate::abi::extism::ExtismMemory;
use crate::capability::Abi;
use crate::code::Code;
use crate::policy::{Limits, Policy};
use crate::source::PluginFile;
use crate::vet::{self, VetOptions, Vetting};

pub use outcome::{Outcome, Stage, Stats};

/// How often the epoch ticker ticks; deadlines are rounded up to it.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// How many instances (and so memories and tables) may be live at once across all plugins of
/// one engine; the pooling allocator reserves address space for this many up front.
const POOL_SLOTS: u32 = 1000;
/// How many idle instances one plugin keeps for reuse. Idle instances hold pool slots, so this
/// stays small: one per thread that calls the same plugin at the same time, up to this many.
const IDLE_INSTANCES_PER_PLUGIN: usize = 4;

/// The operator's environment could not host a sandbox (a tool error, not a finding).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot create the wasmtime engine for policy `{policy}`: {message}")]
    Engine { policy: String, message: String },
    #[error(transparent)]
    Read(#[from] crate::source::ReadError),
}

/// An engine for one policy, with its epoch ticker.
pub struct Sandbox {
    engine: Engine,
    policy: Policy,
    cache: cache::ModuleCache,
}

impl Sandbox {
    pub fn new(policy: &Policy) -> Result<Sandbox, SandboxError> {
        Sandbox::with_cache(policy, None)
    }

    /// A sandbox whose compiled modules are also cached on disk in `cache_dir`.
    pub fn with_cache(policy: &Policy, cache_dir: Option<&std::path::Path>) -> Result<Sandbox, SandboxError> {
        let limits = &policy.limits;
        let mut config = Config::new();
        // Exactly the policy's features: everything off, then what the policy allows on.
        config.wasm_features(wasmparser::WasmFeatures::all(), false);
        config.wasm_features(policy.features.wasm_features(), true);
        config.wasm_component_model(false);
        config.epoch_interruption(true);
        config.consume_fuel(limits.fuel.is_some());
        config.max_wasm_stack(usize::try_from(limits.stack.get()).unwrap_or(usize::MAX));
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(POOL_SLOTS)
            .total_memories(POOL_SLOTS)
            .total_tables(POOL_SLOTS)
            .max_memories_per_module(limits.memories)
            .max_memory_size(usize::try_from(limits.memory.get()).unwrap_or(usize::MAX))
            .table_elements(usize::try_from(limits.tables).unwrap_or(usize::MAX));
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)
            .map_err(|e| SandboxError::Engine { policy: policy.name().to_string(), message: format!("{e:#}") })?;
        start_epoch_ticker(&engine);
        let cache = cache::ModuleCache::new(&engine, cache_dir)
            .map_err(|e| SandboxError::Engine { policy: policy.name().to_string(), message: e.to_string() })?;
        Ok(Sandbox { engine, policy: policy.clone(), cache })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Vets, compiles and links a plugin.
    pub fn load(&self, file: &PluginFile, options: &LoadOptions) -> Result<Load, SandboxError> {
        let mut vet_options = VetOptions::new(&self.policy);
        vet_options.manifest = options.manifest.as_deref();
        let vetting = vet::vet(file, &vet_options)?;
        if vetting.verdict() == vet::Verdict::Fail && !options.skip_static_check {
            return Ok(Load::Refused(Box::new(vetting)));
        }
        let Some(analysis) = &vetting.analysis else {
            return Ok(Load::Refused(Box::new(vetting)));
        };
        let abi = if analysis.abis().contains(&Abi::Extism) { CallAbi::Extism } else { CallAbi::Core };
        let bytes = match file.binary() {
            Ok(bytes) => bytes.into_owned(),
            Err(_) => return Ok(Load::Refused(Box::new(vetting))),
        };

        let started = Instant::now();
        let (module, module_source) = match self.cache.get(&self.engine, &vetting.sha256) {
            Some(cached) => cached,
            None => match compile_bounded(&self.engine, bytes, self.policy.limits.compile_timeout.get()) {
                Ok(module) => {
                    self.cache.put(&vetting.sha256, &module);
                    (module, cache::Source::Compiled)
                }
                Err(outcome) => return Ok(Load::Failed(outcome.at(Stage::Load))),
            },
        };
        let compile_ns = started.elapsed().as_nanos() as u64;

        let grants = link::Grants::new(&self.policy, vetting.manifest.manifest());
        let linker = link::linker(&self.engine, &grants, &module)
            .map_err(|e| SandboxError::Engine { policy: self.policy.name().to_string(), message: format!("{e:#}") })?;
        let pre = match linker.instantiate_pre(&module) {
            Ok(pre) => pre,
            // Only reachable when the static check was skipped or is wrong: the import's
            // capability was not granted, so the linker has no function for it.
            Err(e) => {
                let outcome = Outcome::failed(Code::HostCallDenied, format!("cannot link: {e:#}"));
                return Ok(Load::Failed(outcome.at(Stage::Load)));
            }
        };
        // Directories are opened only for a module that imports file functions at all.
        let needs_fs = analysis.imports.iter().any(|i| {
            i.class == crate::capability::ImportClass::Needs(crate::capability::Need::Family(crate::capability::Family::Fs))
        });
        let preopens = if needs_fs { grants.preopens() } else { Vec::new() };
        let uses_wasi = analysis.abis().contains(&Abi::WasiPreview1);
        let http_allowlist = Arc::new(grants.http_allowlist());
        Ok(Load::Ready(Plugin {
            module_source,
            http_allowlist,
            pre,
            abi,
            wasi: uses_wasi.then_some(WasiSetup { preopens }),
            limits: self.policy.limits.clone(),
            config: Arc::new(options.config.clone()),
            vars: Arc::new(Mutex::new(BTreeMap::new())),
            reuse_instances: !uses_wasi && !options.fresh_instance_per_call,
            idle: Mutex::new(Vec::new()),
            compile_ns,
            vetting: Box::new(vetting),
        }))
    }
}

/// What loading a plugin came to.
pub enum Load {
    Ready(Plugin),
    /// The static check said no; nothing was compiled.
    Refused(Box<Vetting>),
    /// Compiling or linking failed (compile-timeout, an import with nothing to link to).
    Failed(Outcome),
}

#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub manifest: Option<std::path::PathBuf>,
    /// Host-given configuration, read by `config_get`.
    pub config: BTreeMap<String, String>,
    /// Link and run even when vetting fails. Only for proving the linker's own defence.
    pub skip_static_check: bool,
    /// Never reuse an instance, even after a call that returned normally: for hosts whose
    /// calls of one plugin come from parties that must not see each other's leftovers in the
    /// plugin's memory. Costs an instantiation per call.
    pub fresh_instance_per_call: bool,
}

/// How exports are called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallAbi {
    /// `() -> i32`, input and output through the Extism kernel.
    Extism,
    /// Numeric arguments in, numeric results out.
    Core,
}

/// A compiled, linked plugin, ready to be called from any thread.
pub struct Plugin {
    /// Whether the module was compiled for this load or came from the cache.
    pub module_source: cache::Source,
    pre: InstancePre<State>,
    abi: CallAbi,
    /// Set when the module imports WASI preview 1.
    wasi: Option<WasiSetup>,
    http_allowlist: Arc<Vec<String>>,
    limits: Limits,
    config: Arc<BTreeMap<String, String>>,
    /// Plugin-private state kept across calls (and across instances).
    vars: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    /// Whether an instance that returned normally is kept for the next call.
    reuse_instances: bool,
    /// Instances that returned normally, reset, waiting for the next call.
    idle: Mutex<Vec<Warm>>,
    compile_ns: u64,
    vetting: Box<Vetting>,
}

/// What a call is given.
#[derive(Clone, Debug, Default)]
pub struct Input {
    /// Extism input bytes.
    pub bytes: Vec<u8>,
    /// Arguments of a plain core export, parsed against its parameter types.
    pub args: Vec<String>,
}

impl Plugin {
    pub fn abi(&self) -> CallAbi {
        self.abi
    }

    pub fn vetting(&self) -> &Vetting {
        &self.vetting
    }

    /// Creates a fresh instance (store, limits, WASI context) and drops it: what a call pays
    /// when there is no idle instance to reuse. For benchmarks and warm-up.
    pub fn instantiate(&self) -> Result<(), Outcome> {
        let mut stats = Stats::default();
        self.fresh_instance(&Input::default(), &mut stats).map(drop)
    }

    /// Calls `function`, in an idle instance of this plugin if there is one, else in a fresh one.
    pub fn call(&self, function: &str, input: &Input) -> Outcome {
        let mut stats = Stats { compile_ns: self.compile_ns, input_bytes: input.bytes.len() as u64, ..Stats::default() };
        if input.bytes.len() as u64 > self.limits.input.get() {
            let message = format!("{} bytes of input; the limit is {}", input.bytes.len(), self.limits.input);
            return Outcome::failed(Code::InputTooLarge, message).with_stats(stats);
        }
        let idle = if self.reuse_instances { self.idle.lock().expect("idle instances lock").pop() } else { None };
        let mut warm = match idle {
            Some(mut warm) => {
                self.begin_call(&mut warm.store, input);
                warm
            }
            None => match self.fresh_instance(input, &mut stats) {
                Ok(warm) => warm,
                Err(outcome) => return outcome,
            },
        };

        let started = Instant::now();
        let result = match self.abi {
            CallAbi::Extism => warm.extism_export(function).and_then(|f| call_extism(&mut warm.store, f)),
            CallAbi::Core => warm.call_core(function, &input.args),
        };
        stats.wall_ns = started.elapsed().as_nanos() as u64;
        let store = &mut warm.store;
        let outcome = match result {
            Ok(Returned::Extism(0)) => {
                let output = store.data().extism_output().unwrap_or_default();
                stats.output_bytes = output.len() as u64;
                outcome::finish(Outcome::ok(output), store, stats)
            }
            Ok(Returned::Extism(rc)) => {
                let error = store.data().extism_error().unwrap_or_else(|| format!("the plugin returned {rc}"));
                outcome::finish(Outcome::failed(Code::PluginError, error), store, stats)
            }
            Ok(Returned::Values(text)) => {
                // An export that returns nothing (a WASI `_start`) speaks through stdout.
                let output = match store.data().stdout() {
                    Some(stdout) if text.is_empty() => stdout,
                    _ => text.into_bytes(),
                };
                stats.output_bytes = output.len() as u64;
                outcome::finish(Outcome::ok(output), store, stats)
            }
            Err(CallError::Usage(message)) => outcome::finish(Outcome::failed(Code::Trap, message), store, stats),
            Err(CallError::Wasm(error)) => outcome::from_error(&error, store, stats),
        };
        // Only an instance whose export returned normally is kept; after a trap, a host fault
        // or a limit it is dropped here, with its memories and tables.
        if self.reuse_instances && matches!(outcome.code, Code::Ok | Code::PluginError) {
            warm.store.data_mut().end_call();
            let mut idle = self.idle.lock().expect("idle instances lock");
            if idle.len() < IDLE_INSTANCES_PER_PLUGIN {
                idle.push(warm);
            }
        }
        outcome
    }

    /// A new store and instance, set up for one call with `input`.
    fn fresh_instance(&self, input: &Input, stats: &mut Stats) -> Result<Warm, Outcome> {
        let engine = self.pre.module().engine();
        let mut state = State::new(&self.limits, self.config.clone(), self.vars.clone(), self.http_allowlist.clone());
        if let Some(setup) = &self.wasi {
            match setup.context(&input.bytes, self.limits.output.get()) {
                Ok((context, stdio)) => {
                    state.wasi = Some(context);
                    state.stdio = Some(stdio);
                }
                Err(message) => {
                    return Err(Outcome::failed(Code::HostCallDenied, message).with_stats(stats.clone()).at(Stage::Instantiate));
                }
            }
        }
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_trap();
        // The start function runs under the same deadline and fuel as the call.
        self.begin_call(&mut store, input);
        let started = Instant::now();
        let instance = self.pre.instantiate(&mut store);
        stats.instantiate_ns = started.elapsed().as_nanos() as u64;
        match instance {
            Ok(instance) => Ok(Warm { store, instance, extism_exports: HashMap::new(), core_exports: HashMap::new() }),
            Err(error) => Err(outcome::from_error(&error, &mut store, stats.clone()).at(Stage::Instantiate)),
        }
    }

    /// Gives a store this call's input, deadline and fuel, and a clean Extism kernel.
    fn begin_call(&self, store: &mut Store<State>, input: &Input) {
        let timeout = self.limits.timeout.get();
        store.data_mut().begin_call(input.bytes.clone(), Instant::now() + timeout);
        let ticks = timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64 + 1;
        store.set_epoch_deadline(ticks);
        if let Some(fuel) = self.limits.fuel {
            store.set_fuel(fuel).expect("fuel is enabled when the policy sets it");
        }
    }
}

/// A live instance with its store, and the exports called so far: looking an export up and
/// checking its type take longer than a small call itself.
struct Warm {
    store: Store<State>,
    instance: wasmtime::Instance,
    extism_exports: HashMap<String, TypedFunc<(), i32>>,
    core_exports: HashMap<String, (Func, FuncType)>,
}

impl Warm {
    fn extism_export(&mut self, name: &str) -> Result<TypedFunc<(), i32>, CallError> {
        if let Some(func) = self.extism_exports.get(name) {
            return Ok(func.clone());
        }
        let func = self
            .instance
            .get_typed_func::<(), i32>(&mut self.store, name)
            .map_err(|e| CallError::Usage(format!("export `{name}`: {e:#} (Extism exports take no arguments and return i32)")))?;
        self.extism_exports.insert(name.to_string(), func.clone());
        Ok(func)
    }

    fn call_core(&mut self, name: &str, args: &[String]) -> Result<Returned, CallError> {
        if !self.core_exports.contains_key(name) {
            let func = self
                .instance
                .get_func(&mut self.store, name)
                .ok_or_else(|| CallError::Usage(format!("the module exports no function `{name}`")))?;
            let ty = func.ty(&self.store);
            self.core_exports.insert(name.to_string(), (func, ty));
        }
        // Borrowed, not cloned: cloning a `FuncType` costs more than a no-op call.
        let (func, ty) = &self.core_exports[name];
        call_core(&mut self.store, *func, ty, name, args)
    }
}

enum Returned {
    Extism(i32),
    Values(String),
}

enum CallError {
    /// The export is missing or does not have the ABI's signature.
    Usage(String),
    Wasm(wasmtime::Error),
}

fn call_extism(store: &mut Store<State>, func: TypedFunc<(), i32>) -> Result<Returned, CallError> {
    func.call(&mut *store, ()).map(Returned::Extism).map_err(CallError::Wasm)
}

fn call_core(store: &mut Store<State>, func: Func, ty: &FuncType, function: &str, args: &[String]) -> Result<Returned, CallError> {
    use wasmtime::{Val, ValType};
    if ty.params().len() != args.len() {
        return Err(CallError::Usage(format!("`{function}` takes {} arguments; {} given", ty.params().len(), args.len())));
    }
    let mut values = Vec::with_capacity(args.len());
    for (param, arg) in ty.params().zip(args) {
        let bad = || CallError::Usage(format!("argument `{arg}` is not a {param}"));
        values.push(match param {
            ValType::I32 => Val::I32(arg.parse().map_err(|_| bad())?),
            ValType::I64 => Val::I64(arg.parse().map_err(|_| bad())?),
            ValType::F32 => Val::F32(arg.parse::<f32>().map_err(|_| bad())?.to_bits()),
            ValType::F64 => Val::F64(arg.parse::<f64>().map_err(|_| bad())?.to_bits()),
            other => return Err(CallError::Usage(format!("cannot pass a {other} from the command line"))),
        });
    }
    let mut results = vec![Val::I32(0); ty.results().len()];
    func.call(&mut *store, &values, &mut results).map_err(CallError::Wasm)?;
    let text = results
        .iter()
        .map(|v| match v {
            Val::I32(x) => x.to_string(),
            Val::I64(x) => x.to_string(),
            Val::F32(x) => f32::from_bits(*x).to_string(),
            Val::F64(x) => f64::from_bits(*x).to_string(),
            other => format!("{other:?}"),
        })
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Returned::Values(text))
}

/// Compiles on a thread of its own and stops waiting at the policy's compile timeout.
///
/// Cranelift cannot be interrupted, so a timed-out compile finishes in the background and its
/// result is dropped; the caller gets `compile-timeout` on time.
fn compile_bounded(engine: &Engine, bytes: Vec<u8>, timeout: Duration) -> Result<Module, Outcome> {
    let (send, receive) = std::sync::mpsc::sync_channel(1);
    let engine = engine.clone();
    std::thread::Builder::new()
        .name("stockade-compile".into())
        .spawn(move || {
            let _ = send.send(Module::new(&engine, &bytes));
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

/// One ticker thread per engine. It holds only a weak reference, so it ends with the engine.
fn start_epoch_ticker(engine: &Engine) {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("stockade-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("the epoch ticker thread starts");
}

/// How to give a WASI module its context on each call.
struct WasiSetup {
    preopens: Vec<(crate::policy::FsGrant, crate::capability::FsMode)>,
}

/// A WASI program's captured stdout and stderr.
pub(crate) struct Stdio {
    stdout: wasmtime_wasi::p2::pipe::MemoryOutputPipe,
    stderr: wasmtime_wasi::p2::pipe::MemoryOutputPipe,
}

impl WasiSetup {
    /// A context with only granted authority: the input on stdin, stdout and stderr in pipes
    /// capped at the output limit, no environment or arguments, the granted preopens.
    fn context(&self, input: &[u8], output_cap: u64) -> Result<(wasmtime_wasi::p1::WasiP1Ctx, Stdio), String> {
        use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
        // One byte over the limit: a pipe that fills up proves the plugin wrote past it (p1's
        // fd_write then returns an error to the plugin rather than trapping).
        let cap = usize::try_from(output_cap.saturating_add(1)).unwrap_or(usize::MAX);
        let stdio = Stdio { stdout: MemoryOutputPipe::new(cap), stderr: MemoryOutputPipe::new(cap) };
        let mut builder = wasmtime_wasi::WasiCtxBuilder::new();
        builder.stdin(MemoryInputPipe::new(input.to_vec()));
        builder.stdout(stdio.stdout.clone());
        builder.stderr(stdio.stderr.clone());
        for (grant, mode) in &self.preopens {
            let perms = match mode {
                crate::capability::FsMode::Ro => wasmtime_wasi::FsPerms::ReadOnly,
                crate::capability::FsMode::Rw => wasmtime_wasi::FsPerms::ReadWrite,
            };
            builder
                .preopened_dir(&grant.host, &grant.guest, perms)
                .map_err(|e| format!("cannot preopen {} as {}: {e:#}", grant.host, grant.guest))?;
        }
        Ok((builder.build_p1(), stdio))
    }
}

/// Per-store state: the limiter, the Extism kernel's memory and I/O, and the WASI context.
pub struct State {
    pub(crate) limiter: Limiter,
    pub(crate) extism: ExtismState,
    pub(crate) wasi: Option<wasmtime_wasi::p1::WasiP1Ctx>,
    pub(crate) stdio: Option<Stdio>,
}

pub(crate) struct ExtismState {
    pub memory: ExtismMemory,
    pub input: Vec<u8>,
    pub input_handle: Option<u64>,
    pub output: Option<(u64, u64)>,
    pub error: u64,
    pub logs: Vec<(&'static str, String)>,
    pub log_bytes: u64,
    pub config: Arc<BTreeMap<String, String>>,
    pub vars: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    pub http_allowlist: Arc<Vec<String>>,
    pub http_status: i32,
    pub http_headers: Option<String>,
    /// When the call's time is up; host calls that block (HTTP) get only what is left.
    pub deadline: Instant,
}

impl State {
    fn new(
        limits: &Limits,
        config: Arc<BTreeMap<String, String>>,
        vars: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
        http_allowlist: Arc<Vec<String>>,
    ) -> State {
        State {
            limiter: Limiter::new(limits),
            extism: ExtismState {
                memory: ExtismMemory::default(),
                input: Vec::new(),
                input_handle: None,
                output: None,
                error: 0,
                logs: Vec::new(),
                log_bytes: 0,
                config,
                vars,
                http_allowlist,
                http_status: 0,
                http_headers: None,
                deadline: Instant::now() + limits.timeout.get(),
            },
            wasi: None,
            stdio: None,
        }
    }

    /// Starts a call: its input and deadline, an empty Extism kernel, and the peak memory
    /// counted from what the instance already holds.
    fn begin_call(&mut self, input: Vec<u8>, deadline: Instant) {
        self.reset_extism_kernel();
        self.extism.input = input;
        self.extism.deadline = deadline;
        self.extism.logs.clear();
        self.extism.log_bytes = 0;
        self.extism.http_status = 0;
        self.extism.http_headers = None;
        self.limiter.peak_memory = self.limiter.in_use();
    }

    /// Drops what the call left in host memory before the instance waits for the next call.
    fn end_call(&mut self) {
        self.reset_extism_kernel();
        self.extism.memory.release();
        self.extism.input = Vec::new();
    }

    /// The kernel's `reset`: frees all Extism memory and forgets input, output and error.
    pub(crate) fn reset_extism_kernel(&mut self) {
        self.extism.memory.reset();
        self.extism.input_handle = None;
        self.extism.output = None;
        self.extism.error = 0;
        self.limiter.set_extism_bytes(0);
    }

    /// Whether stdout or stderr took more than the output limit.
    pub(crate) fn stdio_overflowed(&self) -> bool {
        self.stdio.as_ref().is_some_and(|s| {
            let cap = self.limiter.output_cap as usize;
            s.stdout.contents().len() > cap || s.stderr.contents().len() > cap
        })
    }

    fn stdout(&self) -> Option<Vec<u8>> {
        self.stdio.as_ref().map(|s| s.stdout.contents().to_vec())
    }

    /// What a WASI program wrote to stderr, as log lines.
    pub(crate) fn stderr_lines(&self) -> Vec<(&'static str, String)> {
        let Some(stdio) = &self.stdio else { return Vec::new() };
        String::from_utf8_lossy(&stdio.stderr.contents()).lines().map(|l| ("stderr", l.to_string())).collect()
    }

    /// Allocates Extism memory within what the memory limit leaves.
    pub(crate) fn extism_alloc(&mut self, len: u64) -> Result<u64, HostFault> {
        let budget = self.limiter.memory_budget();
        let handle = self.extism.memory.alloc(len, budget)?;
        self.limiter.set_extism_bytes(self.extism.memory.footprint());
        Ok(handle)
    }

    /// Copies `bytes` into a new Extism block; no bytes is handle 0, as the ABI has it.
    pub(crate) fn extism_alloc_bytes(&mut self, bytes: &[u8]) -> Result<u64, HostFault> {
        let handle = self.extism_alloc(bytes.len() as u64)?;
        if handle != 0 {
            self.extism.memory.store(handle, bytes)?;
        }
        Ok(handle)
    }

    fn extism_output(&self) -> Option<Vec<u8>> {
        let (handle, len) = self.extism.output?;
        self.extism.memory.load(handle, len).ok().map(<[u8]>::to_vec)
    }

    fn extism_error(&self) -> Option<String> {
        (self.extism.error != 0)
            .then(|| self.extism.memory.block(self.extism.error).ok())
            .flatten()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

/// Caps the sum of a plugin's memories (linear and Extism) and of its table elements.
pub(crate) struct Limiter {
    memory_cap: u64,
    table_cap: u64,
    memories: usize,
    instances: usize,
    linear_bytes: u64,
    extism_bytes: u64,
    table_elements: u64,
    pub peak_memory: u64,
    /// Output, and log lines together, may be at most this many bytes per call.
    pub output_cap: u64,
    pub vars_cap: u64,
    /// Fuel the call started with, when fuel is metered.
    pub fuel_given: Option<u64>,
}

impl Limiter {
    fn new(limits: &Limits) -> Limiter {
        Limiter {
            memory_cap: limits.memory.get(),
            table_cap: limits.tables,
            memories: limits.memories as usize,
            instances: limits.instances as usize,
            linear_bytes: 0,
            extism_bytes: 0,
            table_elements: 0,
            peak_memory: 0,
            output_cap: limits.output.get(),
            vars_cap: limits.vars.get(),
            fuel_given: limits.fuel,
        }
    }

    fn in_use(&self) -> u64 {
        self.linear_bytes.saturating_add(self.extism_bytes)
    }

    fn memory_budget(&self) -> u64 {
        self.memory_cap.saturating_sub(self.in_use())
    }

    fn set_extism_bytes(&mut self, bytes: u64) {
        self.extism_bytes = bytes;
        self.peak_memory = self.peak_memory.max(self.in_use());
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let linear = (self.linear_bytes + desired as u64).saturating_sub(current as u64);
        let total = linear.saturating_add(self.extism_bytes);
        if total > self.memory_cap {
            // An error, not `false`: the plugin stops here with `memory-limit` instead of
            // spinning on a failing memory.grow until its timeout.
            return Err(wasmtime::Error::new(HostFault::MemoryLimit(format!(
                "growing memory to {total} bytes in all; the limit is {}",
                self.memory_cap
            ))));
        }
        self.linear_bytes = linear;
        self.peak_memory = self.peak_memory.max(total);
        Ok(true)
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = (self.table_elements + desired as u64).saturating_sub(current as u64);
        if total > self.table_cap {
            return Err(wasmtime::Error::new(TableLimit(format!(
                "growing tables to {total} elements in all; the limit is {}",
                self.table_cap
            ))));
        }
        self.table_elements = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn memories(&self) -> usize {
        self.memories
    }
}

/// The table counterpart of [`HostFault::MemoryLimit`], raised by the limiter.
#[derive(Debug, thiserror::Error)]
#[error("table limit: {0}")]
pub(crate) struct TableLimit(String);
