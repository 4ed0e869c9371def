//! The sandbox: compile, link and run a vetted plugin on wasmtime under the call budget.
//!
//! - `engine`: one engine per engine configuration per process (features from the same
//!   table the validator uses, compiler, allocator), shared by every sandbox; wall-clock limits
//!   by epoch interruption (one ticker for all engines, a deadline per store); bounded
//!   compilation by Cranelift or Winch.
//! - `limiter`: linear memory draws on the plugin's one memory budget ([`crate::budget`]),
//!   which the Extism kernel and the WASI context draw on too; table elements are capped.
//! - `link`: the linker holds only the host functions of granted capabilities.
//! - `wasi`: WASI preview 1 behind the budget's checks; its calls run on a fiber and are
//!   abandoned at the deadline, so no host call outlives it.
//! - `instance`: a store, its state, and calling its exports.
//!
//! Instances come from a reused [`InstancePre`]. Under `instance-reuse = "per-plugin"` an
//! instance whose export returned normally is reset and kept for the next call, as the Extism
//! host does; after a trap, a host fault or any limit it is dropped. Under "per-call", and for
//! WASI programs (whose stdio and `_start` are one-shot), every call gets a fresh instance.

pub mod cache;
mod engine;
mod instance;
mod limiter;
mod link;
mod outcome;
mod wasi;
mod watchdog;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::{InstancePre, Store};

use crate::abi::extism::{Kernel, KernelSetup, Vars};
use crate::budget::MemoryBudget;
use crate::capability::Abi;
use crate::code::Code;
use crate::grant::PluginGrants;
use crate::policy::{Compiler, DeadlineMechanism, InstanceReuse, Limits, Policy};
use crate::source::PluginFile;
use crate::vet::{self, VetOptions, Vetting};

use engine::{EngineSpec, SharedEngine};
use instance::{Call, State, Warm};
use wasi::WasiSetup;

pub use engine::{Allocation, forget_compiled_modules};
pub use watchdog::Watchdog;
pub use outcome::{Outcome, Stage, Stats};

/// The largest wasm stack (the policy's `stack`) a call runs with on the caller's own thread.
/// Every thread that calls plugins needs this much native stack beside its own frames and the
/// host's: Rust's threads have 2 MiB, a process's main thread 8 MiB by default. A larger policy
/// stack runs each call on a thread started with room for it.
pub const INLINE_WASM_STACK: usize = 512 << 10;

/// Native stack a call needs beside the wasm stack: host functions, WASI, the trap handler.
const HOST_STACK: usize = 1 << 20;

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

/// How a sandbox is built: the instance allocator, the compiled-module cache and the compiler.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    pub allocation: Allocation,
    /// Where compiled modules are kept between processes; `None` keeps them in memory only.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Overrides the policy's `engine.compiler`.
    pub compiler: Option<Compiler>,
    /// Each plugin is compiled to run once or a few times (a one-shot `run`, a conformance
    /// case): under `compiler = "auto"`, a module not in the cache is compiled by Winch,
    /// whose compile time is a fraction of Cranelift's. Long-lived hosts leave this off and
    /// get Cranelift's code from the start.
    pub runs_once: bool,
    /// The process may be ended at a call's deadline (`stockade run`): under
    /// `engine.deadline = "auto"` (and no fuel) the code is compiled without epoch checks, and
    /// the caller arms a [`Watchdog`] around each call ([`Plugin::deadline_by_process`]).
    pub disposable_process: bool,
    /// Compile a module's functions one at a time on the compile thread instead of on the
    /// compile pool: for processes that already run one job per core (conform's workers),
    /// where the pool's threads only add hand-offs and spin between small modules (a `--jobs 2`
    /// conform of 1000 small cases: 14,000 `sched_yield`s, 1.76-1.83x over `--jobs 1` with the
    /// pool, 1.90-1.94x without).
    pub serial_compile: bool,
}

impl Default for SandboxOptions {
    /// For a long-lived host: pooled instances, Cranelift, no disk cache.
    fn default() -> SandboxOptions {
        SandboxOptions {
            allocation: Allocation::Pooling { instances: DEFAULT_POOLED_INSTANCES },
            cache_dir: None,
            compiler: None,
            runs_once: false,
            disposable_process: false,
            serial_compile: false,
        }
    }
}

/// Live instances a default sandbox's pool holds slots for, across all its plugins: enough for
/// every plugin to have its idle instances and a call in flight on each of a few threads.
pub const DEFAULT_POOLED_INSTANCES: u32 = 100;

/// Engines for one policy (shared with every other sandbox of the same engine configuration
/// in the process) and the module cache.
pub struct Sandbox {
    /// Cranelift's engine: what is cached and what long-lived hosts run.
    optimizing: SharedEngine,
    /// Winch's engine, when the compiler choice lets a module not in the cache use it: built
    /// at the first such module, since a run whose module is cached never needs it.
    baseline: Option<EngineSpec>,
    baseline_engine: std::sync::OnceLock<Option<SharedEngine>>,
    policy: Policy,
    disk: Option<cache::DiskCache>,
    /// Why the disk cache asked for is not used, when it is not.
    cache_refused: Option<String>,
    /// The cache directory asked for (used or not): no plugin's directory grant may reach it,
    /// nor the key's directory (see [`cache::guarded_dirs`]).
    cache_dir: Option<std::path::PathBuf>,
    /// Whether the code carries epoch checks; without them the caller's watchdog ends the
    /// process at a call's deadline.
    epochs: bool,
    /// [`SandboxOptions::runs_once`]: its plugins do not outlive their files by long.
    runs_once: bool,
}

impl Sandbox {
    pub fn new(policy: &Policy) -> Result<Sandbox, SandboxError> {
        Sandbox::with_options(policy, &SandboxOptions::default())
    }

    pub fn with_options(policy: &Policy, options: &SandboxOptions) -> Result<Sandbox, SandboxError> {
        let error = |message: String| SandboxError::Engine { policy: policy.name().to_string(), message };
        let compiler = options.compiler.unwrap_or(policy.engine.compiler);
        let epochs = match policy.engine.deadline {
            DeadlineMechanism::Epoch => true,
            DeadlineMechanism::Auto => !options.disposable_process || policy.limits.fuel.is_some(),
            DeadlineMechanism::Process if options.disposable_process => false,
            DeadlineMechanism::Process => {
                return Err(error(
                    "`engine.deadline = \"process\"` needs a process the sandbox may end at a deadline (`stockade run`); this one is not: use \"epoch\" or \"auto\"".into(),
                ));
            }
        };
        let spec_for = |compiler| EngineSpec::new(policy, compiler, options.allocation, epochs, !options.serial_compile);
        let engine_for = |compiler| engine::shared(&spec_for(compiler)).map_err(|e| error(format!("{e:#}")));
        let optimizing = engine_for(Compiler::Cranelift)?;
        let winch_allowed = match compiler {
            Compiler::Cranelift => false,
            Compiler::Winch => true,
            Compiler::Auto => options.runs_once,
        };
        let baseline = winch_allowed.then(|| spec_for(Compiler::Winch));
        // A cache that cannot be trusted or used only makes this process slower.
        let (disk, cache_refused) = match options.cache_dir.as_deref().map(|dir| cache::DiskCache::open(dir, &optimizing.engine)) {
            None => (None, None),
            Some(Ok(disk)) => (Some(disk), None),
            Some(Err(error)) => {
                tracing::warn!("module cache not used: {error}");
                (None, Some(error.to_string()))
            }
        };
        Ok(Sandbox {
            optimizing,
            baseline,
            baseline_engine: std::sync::OnceLock::new(),
            policy: policy.clone(),
            disk,
            cache_refused,
            cache_dir: options.cache_dir.clone(),
            epochs,
            runs_once: options.runs_once,
        })
    }

    /// `grant-exposes-cache` for directory grants that reach the cache directory or the key's
    /// directory. Resolved only for a plugin that has directory grants: most have none, and a
    /// cached run's load is measured.
    fn grant_over_the_cache(&self, preopens: &[(crate::policy::FsGrant, crate::capability::FsMode)]) -> Option<Outcome> {
        if preopens.is_empty() {
            return None;
        }
        let guarded = cache::guarded_dirs(self.disk.as_ref().map(cache::DiskCache::dir).or(self.cache_dir.as_deref()));
        preopens.iter().find_map(|(grant, _)| {
            let reached = guarded.iter().find(|dir| cache::overlaps(std::path::Path::new(&grant.host), dir))?;
            let message = format!(
                "the grant of {} (as {}) reaches {}, where compiled code and the key that vouches for it are kept",
                grant.host,
                grant.guest,
                reached.display()
            );
            Some(Outcome::failed(Code::GrantExposesCache, message))
        })
    }

    /// What kept the disk cache from being used, opened or written since this sandbox was
    /// built, if anything did: one line for the operator (the runs themselves go on uncached).
    pub fn cache_warning(&self) -> Option<String> {
        self.cache_refused.clone().or_else(|| self.disk.as_ref().and_then(cache::DiskCache::fault))
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The compiled module for these bytes (under their cache key): from memory, from the disk cache (Cranelift's code
    /// only), or compiled now, by Winch when the choice allows it and the module uses nothing
    /// Winch lacks, else by Cranelift (whose code alone goes to the disk cache).
    fn compile(&self, key: &str, bytes: &[u8], winch_can_compile: bool) -> Result<Compiled<'_>, Outcome> {
        let optimized = |module, source| Compiled { module, source, compiler: Compiler::Cranelift, engine: &self.optimizing };
        if let Some(module) = self.optimizing.remembered(key) {
            return Ok(optimized(module, cache::Source::Memory));
        }
        if let Some(module) = self.disk.as_ref().and_then(|disk| disk.get(key)) {
            self.optimizing.remember(key, &module);
            return Ok(optimized(module, cache::Source::Disk));
        }
        // Compiling runs on a thread of its own (bounded in time), so it gets its own copy of
        // the bytes; a module found above needs none.
        let bytes: Arc<[u8]> = bytes.into();
        let limit = engine::CompileLimit::starting_now(self.policy.limits.compile_timeout.get());
        let baseline = match &self.baseline {
            // An engine that cannot be built leaves Cranelift to compile.
            Some(spec) if winch_can_compile => self.baseline_engine.get_or_init(|| engine::shared(spec).ok()).as_ref(),
            _ => None,
        };
        if let Some(baseline) = baseline {
            let winch = |module, source| Compiled { module, source, compiler: Compiler::Winch, engine: baseline };
            if let Some(module) = baseline.remembered(key) {
                return Ok(winch(module, cache::Source::Memory));
            }
            match engine::compile_bounded(baseline, bytes.clone(), limit) {
                Ok(module) => {
                    baseline.remember(key, &module);
                    return Ok(winch(module, cache::Source::Compiled));
                }
                Err(outcome) if outcome.code == Code::CompileTimeout => return Err(outcome),
                // Types or sections of a proposal Winch does not compile (the analysis sees
                // operators only): Cranelift compiles it, in what is left of the time.
                Err(_) => {}
            }
        }
        let module = engine::compile_bounded(&self.optimizing, bytes, limit)?;
        self.optimizing.remember(key, &module);
        if let Some(disk) = &self.disk {
            disk.put(key, &module);
        }
        Ok(optimized(module, cache::Source::Compiled))
    }

    /// Compiles vetted bytes with Cranelift into the disk cache, for a later run: what a cold
    /// run that used Winch leaves to a background process. Returns whether the cache holds
    /// the module now.
    pub fn fill_cache(&self, file: &PluginFile) -> bool {
        self.disk.is_some() && file.binary().is_ok_and(|bytes| self.compile(file.cache_key(), &bytes, false).is_ok())
    }

    /// How this sandbox vets: under its policy, with its compiled-module cache (when it has
    /// one) remembering the bodies it validated before.
    pub fn vet_options(&self) -> VetOptions<'_> {
        VetOptions { memo: self.disk.as_ref().map(|disk| disk as &dyn vet::ValidationMemo), ..VetOptions::new(&self.policy) }
    }

    /// Vets, compiles and links a plugin.
    pub fn load(&self, file: &PluginFile, options: &LoadOptions) -> Result<Load, SandboxError> {
        let mut vet_options = self.vet_options();
        vet_options.manifest = options.manifest.as_deref();
        let vetting = vet::vet(file, &vet_options)?;
        self.load_vetted(file, vetting, options)
    }

    /// [`Sandbox::load`] of a file the caller has just vetted under this sandbox's policy (a
    /// host vets with its own API version and manifests before it plans): not vetted twice.
    pub fn load_vetted(&self, file: &PluginFile, mut vetting: Vetting, options: &LoadOptions) -> Result<Load, SandboxError> {
        // A long-lived host's plugin takes its digest now rather than keep the module's bytes
        // alive to take it later (the host names the plugin by it anyway); a one-shot run's
        // report may never show it.
        if !self.runs_once {
            vetting.sha256 = vetting.sha256.without_bytes();
        }
        if vetting.verdict() == vet::Verdict::Fail && !options.skip_static_check {
            return Ok(Load::Refused(Box::new(vetting)));
        }
        let Some(analysis) = &vetting.analysis else {
            return Ok(Load::Refused(Box::new(vetting)));
        };
        let grants = PluginGrants::new(&self.policy, vetting.manifest.manifest());
        let preopens = grants.preopens();
        // Before anything is compiled: a plugin that could reach the cache is not loaded.
        if let Some(outcome) = self.grant_over_the_cache(&preopens) {
            return Ok(Load::Failed(outcome.at(Stage::Load)));
        }
        let abi = if analysis.abis().contains(&Abi::Extism) { CallAbi::Extism } else { CallAbi::Core };
        let bytes = match file.binary() {
            Ok(bytes) => bytes,
            Err(_) => return Ok(Load::Refused(Box::new(vetting))),
        };

        let started = Instant::now();
        let compiled = match self.compile(file.cache_key(), &bytes, analysis.winch_can_compile()) {
            Ok(compiled) => compiled,
            Err(outcome) => return Ok(Load::Failed(outcome.at(Stage::Load))),
        };
        let compile_ns = started.elapsed().as_nanos() as u64;
        let Compiled { module, source: module_source, compiler, engine } = compiled;
        if let Some(outcome) = engine::exceeds_limits(&module, &self.policy) {
            return Ok(Load::Failed(outcome.at(Stage::Load)));
        }

        // What the grant decision refuses is not linked, for every ABI alike: the plugin is
        // refused here, where vet refuses it, rather than at its first call (WASI functions
        // come as one set, so an ungranted one would otherwise link to a refusing stub).
        if let Some(import) = module.imports().find(|i| !grants.allows_import(i.module(), i.name())) {
            let message = format!("cannot link: `{}.{}` is not granted to this plugin", import.module(), import.name());
            return Ok(Load::Failed(Outcome::failed(Code::HostCallDenied, message).at(Stage::Load)));
        }
        let linker = link::linker(&engine.engine, &grants, &module, &options.host_functions)
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
        let limits = self.policy.limits.clone();
        let uses_wasi = analysis.abis().contains(&Abi::WasiPreview1);
        let wasi = uses_wasi.then(|| WasiSetup {
            preopens: if needs_fs { preopens } else { Vec::new() },
            written_total: Arc::new(AtomicU64::new(0)),
            quota_call: limits.disk_write.get(),
            quota_total: limits.disk_write_total.get(),
        });
        let reuse = options.instance_reuse.unwrap_or(limits.instance_reuse);
        let vars = Arc::new(Vars::new(limits.vars.get()));
        Ok(Load::Ready(Plugin {
            module_source,
            compiler,
            budget: MemoryBudget::new(limits.memory.get(), vars.counter()),
            kernel: KernelSetup {
                config: Arc::new(options.config.clone()),
                vars,
                http_allowlist: Arc::new(grants.http_allowlist()),
                http_private: self.policy.capabilities.http_private,
                output_cap: limits.output.get(),
            },
            pre,
            abi,
            wasi,
            reuse_instances: !uses_wasi && reuse == InstanceReuse::PerPlugin,
            vars_per_instance: reuse == InstanceReuse::PerCall,
            limits,
            idle: Mutex::new(Vec::new()),
            compile_ns,
            instance_bytes: analysis.instance_bytes(),
            vetting: Box::new(vetting),
            epochs: self.epochs,
        }))
    }
}

/// A module and the engine that compiled it.
struct Compiled<'s> {
    module: wasmtime::Module,
    source: cache::Source,
    compiler: Compiler,
    engine: &'s SharedEngine,
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
    /// Overrides the policy's `instance-reuse` for this plugin.
    pub instance_reuse: Option<InstanceReuse>,
    /// Functions the host project registered, linked for the `host:NAME` capabilities granted.
    pub host_functions: crate::abi::user::HostFunctions,
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
    /// Which compiler made the code this plugin runs.
    pub compiler: Compiler,
    pre: InstancePre<State>,
    abi: CallAbi,
    /// Set when the module imports WASI preview 1: its calls run on a fiber.
    wasi: Option<WasiSetup>,
    /// What every instance's Extism kernel is given, vars (kept across calls) among it.
    kernel: KernelSetup,
    /// The plugin's one memory budget, which all its instances draw on.
    budget: MemoryBudget,
    limits: Limits,
    /// Whether an instance that returned normally is kept for the next call.
    reuse_instances: bool,
    /// Each instance gets vars of its own, gone with it (`per-call`: nothing of one caller
    /// reaches the next); otherwise the plugin's vars are kept across calls and shared.
    vars_per_instance: bool,
    /// Instances that returned normally, reset, waiting for the next call.
    idle: Mutex<Vec<Warm>>,
    compile_ns: u64,
    /// What each instance holds beside its memories and tables, charged per store.
    instance_bytes: u64,
    vetting: Box<Vetting>,
    /// The code carries epoch checks (see [`Plugin::deadline_by_process`]).
    epochs: bool,
}

/// An instance taken from a plugin for typed calls ([`Plugin::checkout`]).
pub struct Checkout<'p> {
    plugin: &'p Plugin,
    /// Taken back into the plugin's idle instances on drop.
    warm: Option<Warm>,
    /// No call trapped or hit a limit: the instance may be reused.
    healthy: bool,
}

/// An export checked against its Rust types once, for [`Checkout::call`].
pub struct TypedExport<Params, Results>(wasmtime::TypedFunc<Params, Results>);

impl Checkout<'_> {
    /// The export `name`, if it has exactly these parameter and result types.
    pub fn typed<Params: wasmtime::WasmParams, Results: wasmtime::WasmResults>(
        &mut self,
        name: &str,
    ) -> Result<TypedExport<Params, Results>, Outcome> {
        let warm = self.warm.as_mut().expect("held until drop");
        warm.instance
            .get_typed_func::<Params, Results>(&mut warm.store, name)
            .map(TypedExport)
            .map_err(|e| Outcome::failed(Code::Trap, format!("export `{name}`: {e:#}")))
    }

    /// Calls `export` under the plugin's deadline and fuel. A trap or a limit ends the
    /// instance's reuse, as in [`Plugin::call`], and comes back as its outcome.
    pub fn call<Params: wasmtime::WasmParams + Send, Results: wasmtime::WasmResults + Send>(
        &mut self,
        export: &TypedExport<Params, Results>,
        params: Params,
    ) -> Result<Results, Outcome> {
        let plugin = self.plugin;
        let store = &mut self.warm.as_mut().expect("held until drop").store;
        plugin.arm(store, Instant::now() + plugin.limits.timeout.get());
        match plugin.on_native_stack(|| export.0.call(&mut *store, params)) {
            Ok(Ok(results)) => Ok(results),
            Ok(Err(error)) => {
                self.healthy = false;
                let outcome = outcome::from_error(&error, store.data()).at(Stage::Call);
                Err(outcome::finish(outcome, store, Stats::default()))
            }
            Err(outcome) => Err(outcome),
        }
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let Some(warm) = self.warm.take()
            && self.healthy
            && self.plugin.reuse_instances
        {
            self.plugin.keep_idle(warm);
        }
    }
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

    /// The code carries no epoch checks: a call's wasm code is stopped at its deadline only by
    /// the caller ending the process, with a [`Watchdog`] armed around the call.
    pub fn deadline_by_process(&self) -> bool {
        !self.epochs
    }

    /// Arms a watchdog for a call about to start: at the call's deadline (and a short grace, so
    /// that a host call that ends at the deadline reports first), `on_timeout` gets the call's
    /// `timeout` outcome, at the stage the call had reached, and must end the process.
    pub fn watchdog(&self, input: &Input, on_timeout: impl FnOnce(Outcome) + Send + 'static) -> Watchdog {
        let (stats, budget, timeout) = (self.timeout_stats(input), self.budget.clone(), self.limits.timeout.get());
        Watchdog::arm(timeout + watchdog::GRACE, move || {
            let stats = Stats { peak_memory_bytes: budget.peak(), ..stats };
            on_timeout(watchdog::timeout_outcome(stats, watchdog::stage_in_flight(), timeout));
        })
    }

    /// What a call ended at its deadline reports, but for its peak memory.
    fn timeout_stats(&self, input: &Input) -> Stats {
        Stats {
            compile_ns: self.compile_ns,
            input_bytes: input.bytes.len() as u64,
            compiler: Some(self.compiler),
            module_from: Some(self.module_source),
            wall_ns: (self.limits.timeout.get() + watchdog::GRACE).as_nanos() as u64,
            ..Stats::default()
        }
    }

    pub fn vetting(&self) -> &Vetting {
        &self.vetting
    }

    /// Creates a fresh instance (store, limits, WASI context) and drops it: what a call pays
    /// when there is no idle instance to reuse. For benchmarks and warm-up.
    pub fn instantiate(&self) -> Result<(), Outcome> {
        let mut stats = Stats::default();
        let deadline = Instant::now() + self.limits.timeout.get();
        let store = self.new_store(&Input::default(), deadline, &mut stats)?;
        match &self.wasi {
            None => self.on_native_stack(|| self.instantiate_in(store, &mut stats).map(drop))?,
            Some(_) => match wasi::run_bounded(deadline, self.instantiate_async(store, &mut stats)) {
                Some(result) => result.map(drop),
                None => Err(Outcome::failed(Code::Timeout, "instantiation ran past its deadline").at(Stage::Instantiate)),
            },
        }
    }

    /// Calls `function`, in an idle instance of this plugin if there is one, else in a fresh one.
    pub fn call(&self, function: &str, input: &Input) -> Outcome {
        let stats = Stats {
            compile_ns: self.compile_ns,
            input_bytes: input.bytes.len() as u64,
            compiler: Some(self.compiler),
            module_from: Some(self.module_source),
            ..Stats::default()
        };
        if input.bytes.len() as u64 > self.limits.input.get() {
            let message = format!("{} bytes of input; the limit is {}", input.bytes.len(), self.limits.input);
            return Outcome::failed(Code::InputTooLarge, message).with_stats(stats);
        }
        let call = match self.abi {
            CallAbi::Extism => Call::Extism(function),
            CallAbi::Core => Call::Core(function, &input.args),
        };
        let deadline = Instant::now() + self.limits.timeout.get();
        if self.wasi.is_some() {
            return self.call_wasi(call, input, deadline, stats);
        }

        let refused = stats.clone();
        self.on_native_stack(|| self.call_here(call, input, deadline, stats)).unwrap_or_else(|outcome| outcome.with_stats(refused))
    }

    /// Runs `run` (which runs wasm code synchronously) on a thread whose native stack holds the
    /// policy's wasm stack and the host's frames around it: the caller's thread when the
    /// policy's stack is at most [`INLINE_WASM_STACK`], else a thread started for it. (wasmtime
    /// stops wasm at `max_wasm_stack` only if the native stack has that much room; past the
    /// thread's real stack the process would die of SIGSEGV instead of a `stack-overflow`.) WASI
    /// calls run on fibers whose stacks the engine sizes the same way.
    fn on_native_stack<R: Send>(&self, run: impl FnOnce() -> R + Send) -> Result<R, Outcome> {
        let wasm_stack = usize::try_from(self.limits.stack.get()).unwrap_or(usize::MAX);
        if wasm_stack <= INLINE_WASM_STACK {
            return Ok(run());
        }
        std::thread::scope(|scope| {
            let spawned = std::thread::Builder::new()
                .name("stockade-call".into())
                .stack_size(wasm_stack.saturating_add(HOST_STACK))
                .spawn_scoped(scope, run);
            match spawned {
                Ok(thread) => Ok(thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))),
                // No thread to be had (out of memory or threads): the stack cannot be promised,
                // so nothing runs.
                Err(error) => {
                    let message = format!("the host could not start a thread with room for a {wasm_stack}-byte wasm stack: {error}");
                    Err(Outcome::failed(Code::StackOverflow, message).at(Stage::Instantiate))
                }
            }
        })
    }

    fn call_here(&self, call: Call<'_>, input: &Input, deadline: Instant, mut stats: Stats) -> Outcome {
        let idle = if self.reuse_instances { self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() } else { None };
        watchdog::enter(Stage::Instantiate);
        let mut warm = match idle {
            Some(mut warm) => match self.begin_call(&mut warm.store, input, deadline) {
                Ok(()) => warm,
                Err(outcome) => return outcome::finish(outcome, &mut warm.store, stats),
            },
            None => {
                let store = match self.new_store(input, deadline, &mut stats) {
                    Ok(store) => store,
                    Err(outcome) => return outcome,
                };
                match self.instantiate_in(store, &mut stats) {
                    Ok(warm) => warm,
                    Err(outcome) => return outcome,
                }
            }
        };
        let started = Instant::now();
        watchdog::enter(Stage::Call);
        let result = warm.call(call);
        stats.wall_ns = started.elapsed().as_nanos() as u64;
        let outcome = outcome::finish(outcome::returned(result, warm.store.data()), &mut warm.store, stats);
        // Only an instance whose export returned normally is kept; after a trap, a host fault
        // or a limit it is dropped here, with its memories and tables.
        if self.reuse_instances && matches!(outcome.code, Code::Ok | Code::PluginError) {
            self.keep_idle(warm);
        }
        outcome
    }

    /// Takes an instance for a series of typed calls from one thread: an idle one if there is
    /// one, else a fresh one. While held, calls through it skip what [`Plugin::call`] does per
    /// call (finding an instance, looking the export up, converting values from and to text),
    /// and keep what makes a call safe (the deadline, fuel, the memory budget). Dropped, the
    /// instance goes back to the plugin's idle instances if every call returned normally and
    /// the policy reuses instances. Not for WASI programs, whose calls need a fresh instance.
    pub fn checkout(&self) -> Result<Checkout<'_>, Outcome> {
        if self.wasi.is_some() {
            return Err(Outcome::failed(Code::Trap, "a WASI program is called through `call`: each call gets a fresh instance"));
        }
        let deadline = Instant::now() + self.limits.timeout.get();
        let idle = if self.reuse_instances { self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() } else { None };
        let warm = match idle {
            Some(warm) => warm,
            None => {
                let mut stats = Stats::default();
                let store = self.new_store(&Input::default(), deadline, &mut stats)?;
                self.on_native_stack(|| self.instantiate_in(store, &mut stats))??
            }
        };
        Ok(Checkout { plugin: self, warm: Some(warm), healthy: true })
    }

    /// A call of a module that imports WASI: a fresh instance, instantiated and called on a
    /// fiber that is abandoned at the deadline, whatever host call it is waiting in.
    fn call_wasi(&self, call: Call<'_>, input: &Input, deadline: Instant, mut stats: Stats) -> Outcome {
        let store = match self.new_store(input, deadline, &mut stats) {
            Ok(store) => store,
            Err(outcome) => return outcome,
        };
        // The store stays outside the future, so that what the plugin wrote before the
        // deadline can still be read after the future is dropped.
        let mut slot: Option<Warm> = None;
        let stage = std::cell::Cell::new(Stage::Instantiate);
        let started = Instant::now();
        watchdog::enter(Stage::Instantiate);
        let run = async {
            let warm = slot.insert(self.instantiate_async(store, &mut stats).await?);
            stage.set(Stage::Call);
            watchdog::enter(Stage::Call);
            let called = Instant::now();
            let result = warm.call_async(call).await;
            stats.wall_ns = called.elapsed().as_nanos() as u64;
            Ok::<_, Outcome>(result)
        };
        let finished = wasi::run_bounded(deadline, run);
        let result = match finished {
            Some(Ok(result)) => result,
            Some(Err(outcome)) => return outcome,
            None => {
                stats.wall_ns = started.elapsed().as_nanos() as u64;
                let outcome = Outcome::failed(Code::Timeout, "a host call was still waiting at the deadline").at(stage.get());
                return match slot.as_mut() {
                    Some(warm) => outcome::finish(outcome, &mut warm.store, stats),
                    None => outcome.with_stats(stats),
                };
            }
        };
        let warm = slot.as_mut().expect("instantiated before the call");
        outcome::finish(outcome::returned(result, warm.store.data()), &mut warm.store, stats)
    }

    /// A new store for one call: its budget, limiter, kernel and (for WASI) context.
    fn new_store(&self, input: &Input, deadline: Instant, stats: &mut Stats) -> Result<Store<State>, Outcome> {
        let engine = self.pre.module().engine();
        let budget = self.budget.clone();
        let mut state = State {
            limiter: limiter::Limiter::new(&self.limits, budget.clone()),
            kernel: if self.vars_per_instance {
                let setup = KernelSetup { vars: Arc::new(self.kernel.vars.fresh()), ..self.kernel.clone() };
                Kernel::new(&setup, budget.clone(), deadline)
            } else {
                Kernel::new(&self.kernel, budget.clone(), deadline)
            },
            wasi: None,
            stdio: None,
        };
        if let Err(fault) = state.limiter.hold_instance(self.instance_bytes) {
            return Err(Outcome::failed(fault.code(), fault.to_string()).with_stats(stats.clone()).at(Stage::Instantiate));
        }
        if let Some(setup) = &self.wasi {
            match setup.context(&input.bytes, self.limits.output.get(), budget) {
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
        store.set_hostcall_fuel(crate::budget::HOSTCALL_BYTES);
        if self.epochs {
            store.epoch_deadline_trap();
        }
        // The start function runs under the same deadline and fuel as the call.
        if let Err(outcome) = self.begin_call(&mut store, input, deadline) {
            return Err(outcome::finish(outcome.at(Stage::Instantiate), &mut store, stats.clone()));
        }
        Ok(store)
    }

    fn instantiate_in(&self, mut store: Store<State>, stats: &mut Stats) -> Result<Warm, Outcome> {
        let started = Instant::now();
        let instance = self.pre.instantiate(&mut store);
        stats.instantiate_ns = started.elapsed().as_nanos() as u64;
        self.instantiated(instance, store, stats)
    }

    async fn instantiate_async(&self, mut store: Store<State>, stats: &mut Stats) -> Result<Warm, Outcome> {
        let started = Instant::now();
        let instance = self.pre.instantiate_async(&mut store).await;
        stats.instantiate_ns = started.elapsed().as_nanos() as u64;
        self.instantiated(instance, store, stats)
    }

    fn instantiated(&self, instance: wasmtime::Result<wasmtime::Instance>, mut store: Store<State>, stats: &Stats) -> Result<Warm, Outcome> {
        match instance {
            Ok(instance) => Ok(Warm::new(store, instance)),
            Err(error) => {
                let outcome = outcome::from_error(&error, store.data()).at(Stage::Instantiate);
                Err(outcome::finish(outcome, &mut store, stats.clone()))
            }
        }
    }

    /// Gives a store this call's input, deadline and fuel, and a clean Extism kernel.
    fn begin_call(&self, store: &mut Store<State>, input: &Input, deadline: Instant) -> Result<(), Outcome> {
        // Only an Extism plugin reads its input from the kernel (a WASI program has it on stdin):
        // other plugins' input is not copied, or charged, a second time.
        let kernel_input: &[u8] = if self.abi == CallAbi::Extism { &input.bytes } else { &[] };
        let kernel = &mut store.data_mut().kernel;
        kernel.begin_call(kernel_input, deadline).map_err(|fault| Outcome::failed(fault.code(), fault.to_string()))?;
        self.arm(store, deadline);
        Ok(())
    }

    /// What every call gets, whichever way it is made: its deadline (for host calls and the
    /// wasm code), its fuel, and a fresh peak for the memory budget.
    fn arm(&self, store: &mut Store<State>, deadline: Instant) {
        let state = store.data_mut();
        state.limiter.budget.reset_peak();
        state.kernel.deadline = deadline;
        if self.epochs {
            store.set_epoch_deadline(engine::epoch_ticks(self.limits.timeout.get()));
        }
        if let Some(fuel) = self.limits.fuel {
            store.set_fuel(fuel).expect("fuel is enabled when the policy sets it");
        }
    }

    /// Keeps an instance whose calls all returned normally for the next call, up to the bound.
    fn keep_idle(&self, mut warm: Warm) {
        warm.store.data_mut().kernel.end_call();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_INSTANCES_PER_PLUGIN {
            idle.push(warm);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hosts_plugin_keeps_no_module_bytes_and_a_one_shot_load_takes_no_sha256() {
        let policy = Policy::builtin_default();
        for runs_once in [false, true] {
            let options = SandboxOptions { runs_once, allocation: Allocation::OnDemand, ..SandboxOptions::default() };
            let sandbox = Sandbox::with_options(&policy, &options).unwrap();
            let file = PluginFile::new("/nonexistent/p.wat", b"(module (func (export \"run\")))".to_vec());
            let Load::Ready(plugin) = sandbox.load(&file, &LoadOptions::default()).unwrap() else { panic!("not loaded") };
            // The plugin's vetting holds the bytes only where its digest is still to be taken.
            assert_eq!(file.holders_of_bytes(), if runs_once { 2 } else { 1 }, "runs_once {runs_once}");
            assert_eq!(file.sha256_taken(), !runs_once, "runs_once {runs_once}");
            assert_eq!(plugin.vetting().sha256.as_str().len(), 64);
        }
    }
}
