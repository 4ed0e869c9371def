//! The host library: many plugins in one process, loaded together (vetted, their host ranges,
//! dependencies and conflicts checked, ordered), called from many threads through a bounded set
//! of instances each, given events, and reloaded while in use.
//!
//! ```no_run
//! use stockade::host::Host;
//! let host = Host::builder(stockade::Policy::builtin_default())
//!     .function("kv_get", |_call, key| Ok(key.to_vec()))
//!     .build()?;
//! let report = host.load_dir("plugins/".as_ref())?;
//! for problem in &report.problems {
//!     eprintln!("{}: {}", problem.code, problem.message);
//! }
//! let greeting = host.call_str("greeter", "greet", "world")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod audit;
pub mod discover;
pub mod extism_manifest;
pub mod plan;
pub mod process;
pub mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::abi::user::{HostCall, HostFunction, HostFunctions};
use crate::code::Code;
use crate::manifest::Manifest;
use crate::policy::Policy;
use crate::sandbox::{Allocation, Input, Load, LoadOptions, Plugin, Sandbox, SandboxError, SandboxOptions};
use crate::source::{PluginFile, ReadError};

use plan::{Candidate, Problem};

/// Instances each plugin may run at once unless the builder says otherwise.
pub const DEFAULT_INSTANCES_PER_PLUGIN: usize = 4;

/// The host could not do what it was asked (the operator's side: an unreadable directory, a
/// policy the engine cannot take). What is wrong with a plugin is a [`Problem`] instead.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Read(#[from] ReadError),
    // The I/O error is part of the message, not a source: a chain would print it twice.
    #[error("cannot read the plugin directory {path}: {error}")]
    Directory { path: String, error: std::io::Error },
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("invalid Extism manifest {0}")]
    Extism(#[from] crate::document::DocumentError),
}

/// Why a call did not return output: the code, and the guest's own message where it gave one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{plugin}.{function}: {code}: {message}")]
pub struct CallError {
    pub plugin: String,
    pub function: String,
    pub code: Code,
    pub message: String,
}

/// Why a reload was refused; the old version stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("no plugin `{0}` is loaded")]
    NotLoaded(String),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("`{plugin}` was not reloaded: {}", .problems.iter().map(|p| format!("{}: {}", p.code, p.message)).collect::<Vec<_>>().join("; "))]
    Refused { plugin: String, problems: Vec<Problem> },
}

/// What loading a set of plugins came to.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// The plugins loaded, in load order.
    pub loaded: Vec<String>,
    /// Why the others were not.
    pub problems: Vec<Problem>,
}

/// Builds a [`Host`].
pub struct HostBuilder {
    policy: Policy,
    host_version: semver::Version,
    functions: BTreeMap<String, Arc<HostFunction>>,
    config: BTreeMap<String, BTreeMap<String, String>>,
    instances_per_plugin: usize,
    audit: Option<Box<dyn std::io::Write + Send>>,
    sandbox: SandboxOptions,
    out_of_process: BTreeMap<String, process::WorkerCommand>,
}

impl HostBuilder {
    /// The host's API version, which plugins' `host` ranges must include.
    ///
    /// ```no_run
    /// let builder = stockade::host::Host::builder(stockade::Policy::builtin_default())
    ///     .host_version(semver::Version::new(2, 1, 0));
    /// ```
    pub fn host_version(mut self, version: semver::Version) -> HostBuilder {
        self.host_version = version;
        self
    }

    /// A host function, linked for plugins granted `host:NAME` (manifest and policy), in the
    /// `extism:host/user` namespace: bytes in, bytes out. State goes in what the closure holds.
    ///
    /// ```no_run
    /// // A plugin whose manifest declares `host:kv_get`, under a policy that grants it, may call it.
    /// let builder = stockade::host::Host::builder(stockade::Policy::builtin_default())
    ///     .function("kv_get", |call, key| {
    ///         let value = format!("value of {}", String::from_utf8_lossy(key));
    ///         // What the host hands back is charged to the plugin: keep within what it may hold.
    ///         if value.len() as u64 > call.memory_available { return Err("too large".into()); }
    ///         Ok(value.into_bytes())
    ///     });
    /// ```
    pub fn function(mut self, name: &str, function: impl Fn(&HostCall, &[u8]) -> Result<Vec<u8>, String> + Send + Sync + 'static) -> HostBuilder {
        self.functions.insert(name.to_string(), Arc::new(function));
        self
    }

    /// Configuration one plugin reads with `config_get`.
    ///
    /// ```no_run
    /// let builder = stockade::host::Host::builder(stockade::Policy::builtin_default()).config("formatter", "indent", "4");
    /// ```
    pub fn config(mut self, plugin: &str, key: &str, value: &str) -> HostBuilder {
        self.config.entry(plugin.to_string()).or_default().insert(key.to_string(), value.to_string());
        self
    }

    /// How many calls one plugin may run at once (each in an instance of its own); a call
    /// beyond waits for one up to its timeout, then fails with `busy`.
    ///
    /// ```no_run
    /// let builder = stockade::host::Host::builder(stockade::Policy::builtin_default()).instances_per_plugin(4);
    /// ```
    pub fn instances_per_plugin(mut self, instances: usize) -> HostBuilder {
        self.instances_per_plugin = instances.max(1);
        self
    }

    /// Runs `plugin` out of process, in a pool of worker processes started by `worker` (for
    /// example `stockade plugin-worker`): compiled without epoch checks, so compute runs at
    /// native wasm speed, and a call that overruns ends with its worker, which is replaced. See
    /// [`process`] for what is not available there (host functions, vars shared across workers).
    ///
    /// ```no_run
    /// use stockade::host::process::WorkerCommand;
    /// let worker = WorkerCommand { program: "stockade".into(), args: vec!["plugin-worker".into()] };
    /// let builder = stockade::host::Host::builder(stockade::Policy::builtin_default()).out_of_process("mandelbrot", worker);
    /// ```
    pub fn out_of_process(mut self, plugin: &str, worker: process::WorkerCommand) -> HostBuilder {
        self.out_of_process.insert(plugin.to_string(), worker);
        self
    }

    /// Where every call is recorded, one JSON object per line (see [`audit`]).
    ///
    /// ```no_run
    /// let builder = stockade::host::Host::builder(stockade::Policy::builtin_default()).audit_log(std::fs::File::create("audit.jsonl")?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn audit_log(mut self, writer: impl std::io::Write + Send + 'static) -> HostBuilder {
        self.audit = Some(Box::new(writer));
        self
    }

    /// The sandbox's allocator, cache and compiler (default: instances mapped on demand, so
    /// that a thousand idle plugins reserve nothing; Cranelift; no disk cache).
    ///
    /// ```no_run
    /// use stockade::sandbox::SandboxOptions;
    /// let options = SandboxOptions { cache_dir: Some("/var/cache/my-host".into()), ..SandboxOptions::default() };
    /// let builder = stockade::host::Host::builder(stockade::Policy::builtin_default()).sandbox_options(options);
    /// ```
    pub fn sandbox_options(mut self, options: SandboxOptions) -> HostBuilder {
        self.sandbox = options;
        self
    }

    /// The host: one engine and sandbox for every plugin it will load.
    ///
    /// ```no_run
    /// let host = stockade::host::Host::builder(stockade::Policy::builtin_default()).build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> Result<Host, HostError> {
        let sandbox = Sandbox::with_options(&self.policy, &self.sandbox)?;
        Ok(Host {
            inner: Arc::new(Inner {
                sandbox,
                host_version: self.host_version,
                functions: HostFunctions::new(self.functions),
                config: self.config,
                instances_per_plugin: self.instances_per_plugin,
                plugins: RwLock::new(BTreeMap::new()),
                order: RwLock::new(Vec::new()),
                audit: self.audit.map(|w| Mutex::new(audit::AuditLog::new(w))),
                out_of_process: self.out_of_process,
            }),
        })
    }
}

/// Many plugins under one policy and one engine. Cheap to clone; `Send + Sync`: call it from
/// any thread.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

struct Inner {
    sandbox: Sandbox,
    host_version: semver::Version,
    functions: HostFunctions,
    config: BTreeMap<String, BTreeMap<String, String>>,
    instances_per_plugin: usize,
    /// Each plugin's current version; a reload swaps it while calls in flight keep the old.
    plugins: RwLock<BTreeMap<String, Arc<ArcSwap<Loaded>>>>,
    order: RwLock<Vec<String>>,
    audit: Option<Mutex<audit::AuditLog>>,
    out_of_process: BTreeMap<String, process::WorkerCommand>,
}

/// One version of a loaded plugin.
pub struct Loaded {
    runner: Runner,
    manifest: Manifest,
    sha256: String,
    path: PathBuf,
    gate: Gate,
    /// Set for a plugin loaded from an Extism manifest: its manifest and config come from it,
    /// on reloads too.
    extism: Option<Arc<extism_manifest::ExtismMapping>>,
}

impl Loaded {
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Where a plugin's calls run.
enum Runner {
    InProcess(Plugin),
    OutOfProcess(process::ProcessPool),
}

/// The bounded set of instances of one plugin: a count of calls in flight and a wait for a free
/// place.
struct Gate {
    in_flight: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

struct Permit<'g>(&'g Gate);

impl Gate {
    fn new(max: usize) -> Gate {
        Gate { in_flight: Mutex::new(0), freed: Condvar::new(), max }
    }

    fn enter(&self, wait: Duration) -> Option<Permit<'_>> {
        let until = Instant::now() + wait;
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        while *in_flight >= self.max {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            in_flight = self.freed.wait_timeout(in_flight, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        *in_flight += 1;
        Some(Permit(self))
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.in_flight.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        self.0.freed.notify_one();
    }
}

/// One handler's answer to an event.
#[derive(Clone, Debug)]
pub struct HandlerResult {
    pub plugin: String,
    pub outcome: Result<Vec<u8>, CallError>,
    /// The handler said so: its output is a JSON object with `"handled": true`.
    pub handled: bool,
}

/// What dispatching an event came to.
#[derive(Clone, Debug, Default)]
pub struct Dispatch {
    /// Every handler called, in the order called.
    pub results: Vec<HandlerResult>,
    /// The handler that handled it (the later ones were not called).
    pub handled_by: Option<String>,
}

impl Host {
    /// A host whose plugins run under `policy`; every other setting has a default.
    ///
    /// ```no_run
    /// let policy = stockade::Policy::builtin_default();
    /// let host = stockade::host::Host::builder(policy).instances_per_plugin(2).build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(policy: Policy) -> HostBuilder {
        HostBuilder {
            policy,
            host_version: crate::vet::HOST_API_VERSION,
            functions: BTreeMap::new(),
            config: BTreeMap::new(),
            instances_per_plugin: DEFAULT_INSTANCES_PER_PLUGIN,
            audit: None,
            sandbox: SandboxOptions { allocation: Allocation::OnDemand, ..SandboxOptions::default() },
            out_of_process: BTreeMap::new(),
        }
    }

    /// Loads every plugin of `dir` (see [`discover::plugin_paths`]).
    ///
    /// ```no_run
    /// # let host = stockade::host::Host::builder(stockade::Policy::builtin_default()).build()?;
    /// let report = host.load_dir("plugins/".as_ref())?;
    /// for problem in &report.problems {
    ///     eprintln!("{}: {}", problem.code, problem.message);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load_dir(&self, dir: &Path) -> Result<LoadReport, HostError> {
        let paths = discover::plugin_paths(dir).map_err(|source| HostError::Directory { path: dir.display().to_string(), error: source })?;
        self.load_files(&paths)
    }

    /// Loads these plugins with those already loaded: each vetted, the set planned (host
    /// ranges, dependencies, conflicts, order), then compiled and linked in load order.
    ///
    /// ```no_run
    /// # let host = stockade::host::Host::builder(stockade::Policy::builtin_default()).build()?;
    /// let report = host.load_files(&["plugins/formatter/plugin.wasm".into()])?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load_files(&self, paths: &[PathBuf]) -> Result<LoadReport, HostError> {
        let inner = &self.inner;
        let options = crate::vet::VetOptions { host_api: inner.host_version.clone(), ..inner.sandbox.vet_options() };
        let (fresh, refused) = discover::vet_all(paths, &options);
        let loaded_before = self.candidates(None);
        let mut candidates = loaded_before.clone();
        candidates.extend(fresh.iter().map(|(c, _)| c.clone()));
        let plan = plan::plan(&candidates, &refused);
        let mut report = LoadReport { loaded: Vec::new(), problems: plan.problems };
        let mut by_name: BTreeMap<String, discover::Vetted> = fresh.into_iter().map(|(c, v)| (c.manifest.name, v)).collect();
        let mut order = Vec::new();
        for name in &plan.order {
            if loaded_before.iter().any(|c| &c.manifest.name == name) {
                order.push(name.clone());
                continue;
            }
            let Some(vetted) = by_name.remove(name) else { continue };
            match self.compile(&vetted.file, vetted.vetting, name, None)? {
                Ok(loaded) => {
                    inner.plugins.write().unwrap_or_else(|p| p.into_inner()).insert(name.clone(), Arc::new(ArcSwap::from_pointee(loaded)));
                    order.push(name.clone());
                    report.loaded.push(name.clone());
                }
                Err(problem) => report.problems.push(problem),
            }
        }
        *inner.order.write().unwrap_or_else(|p| p.into_inner()) = order;
        Ok(report)
    }

    /// Loads the plugin an Extism manifest (JSON) describes, mapped as
    /// [`extism_manifest`] documents, with those already loaded. The host's policy must grant
    /// what it asks for.
    ///
    /// ```no_run
    /// # let host = stockade::host::Host::builder(stockade::Policy::builtin_default()).build()?;
    /// let report = host.load_extism("formatter.extism.json".as_ref())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load_extism(&self, manifest: &Path) -> Result<LoadReport, HostError> {
        let mapping = Arc::new(extism_manifest::ExtismMapping::read(manifest)?);
        let inner = &self.inner;
        let file = PluginFile::read_to_report(&mapping.module, inner.sandbox.policy().limits.module_size.get())?;
        let name = mapping.manifest.name.clone();
        let mut report = LoadReport::default();
        let vetting = match self.vet_for(&file, &name, Some(&mapping)) {
            Ok(vetting) => vetting,
            Err(problems) => {
                report.problems = problems;
                return Ok(report);
            }
        };
        let mut candidates = self.candidates(None);
        candidates.push(Candidate { origin: manifest.display().to_string(), manifest: mapping.manifest.clone() });
        let plan = plan::plan(&candidates, &[]);
        report.problems = plan.problems.into_iter().filter(|p| p.plugins.contains(&name)).collect();
        if !plan.order.contains(&name) {
            return Ok(report);
        }
        match self.compile(&file, vetting, &name, Some(Arc::clone(&mapping)))? {
            Ok(loaded) => {
                inner.plugins.write().unwrap_or_else(|p| p.into_inner()).insert(name.clone(), Arc::new(ArcSwap::from_pointee(loaded)));
                *inner.order.write().unwrap_or_else(|p| p.into_inner()) = plan.order;
                report.loaded.push(name);
            }
            Err(problem) => report.problems.push(problem),
        }
        Ok(report)
    }

    /// Vets a plugin file as the plugin `name` for this host: its errors as problems.
    fn vet_for(&self, file: &PluginFile, name: &str, extism: Option<&extism_manifest::ExtismMapping>) -> Result<crate::vet::Vetting, Vec<Problem>> {
        let inner = &self.inner;
        let mut options = crate::vet::VetOptions { host_api: inner.host_version.clone(), ..inner.sandbox.vet_options() };
        options.given_manifest = extism.map(|m| (&m.manifest, &m.origin));
        let vetting = crate::vet::vet(file, &options)
            .map_err(|e| vec![Problem { code: Code::Invalid, message: e.to_string(), plugins: vec![name.to_string()] }])?;
        match discover::refusal(name, &file.path.display().to_string(), &vetting) {
            Some(problem) => Err(vec![problem]),
            None => Ok(vetting),
        }
    }

    /// The plugins loaded now (all but `except`), as the planner takes them.
    fn candidates(&self, except: Option<&str>) -> Vec<Candidate> {
        self.current()
            .into_iter()
            .filter(|(name, _)| Some(name.as_str()) != except)
            .map(|(_, l)| Candidate { origin: l.path.display().to_string(), manifest: l.manifest.clone() })
            .collect()
    }

    /// Compiles and links one plugin file that [`Host::vet_for`] or [`discover::vet_all`]
    /// passed (`vetting`), the plugin `name`.
    fn compile(
        &self,
        file: &PluginFile,
        vetting: crate::vet::Vetting,
        name: &str,
        extism: Option<Arc<extism_manifest::ExtismMapping>>,
    ) -> Result<Result<Loaded, Problem>, HostError> {
        let inner = &self.inner;
        let mut config = extism.as_ref().map(|m| m.config.clone()).unwrap_or_default();
        config.extend(inner.config.get(name).cloned().unwrap_or_default());
        let options = LoadOptions {
            config,
            host_functions: inner.functions.clone(),
            ..LoadOptions::default()
        };
        let problem = |code: Code, message: String| Problem { code, message, plugins: vec![name.to_string()] };
        if let Some(worker) = inner.out_of_process.get(name) {
            let Some(manifest) = vetting.manifest.manifest().cloned() else {
                return Ok(Err(problem(Code::ManifestInvalid, format!("`{name}` has no manifest"))));
            };
            if manifest.capabilities.iter().any(|c| matches!(c, crate::capability::Capability::Host { .. })) {
                let message = format!("`{name}` declares host functions, which live in the host's process: it cannot run out of process");
                return Ok(Err(problem(Code::HostCallDenied, message)));
            }
            return Ok(match process::ProcessPool::start(worker.clone(), &file.path, inner.sandbox.policy(), options.config) {
                Ok(pool) => Ok(Loaded {
                    runner: Runner::OutOfProcess(pool),
                    manifest,
                    sha256: vetting.sha256.to_string(),
                    path: file.path.clone(),
                    gate: Gate::new(inner.instances_per_plugin),
                    extism,
                }),
                Err(message) => Err(problem(Code::Crash, format!("`{name}` did not start out of process: {message}"))),
            });
        }
        Ok(match inner.sandbox.load_vetted(file, vetting, &options)? {
            Load::Ready(plugin) => {
                let vetting = plugin.vetting();
                let Some(manifest) = vetting.manifest.manifest().cloned() else {
                    return Ok(Err(problem(Code::ManifestInvalid, format!("`{name}` has no manifest"))));
                };
                let sha256 = vetting.sha256.to_string();
                Ok(Loaded { runner: Runner::InProcess(plugin), manifest, sha256, path: file.path.clone(), gate: Gate::new(inner.instances_per_plugin), extism })
            }
            Load::Refused(vetting) => {
                let first = vetting.findings.iter().find(|f| f.severity == crate::code::Severity::Error);
                let (code, message) = first.map_or((Code::Invalid, "refused".to_string()), |f| (f.code, f.message.clone()));
                Err(problem(code, format!("`{name}` was refused: {message}")))
            }
            Load::Failed(outcome) => Err(problem(outcome.code, format!("`{name}` did not load: {}", outcome.error.unwrap_or_default()))),
        })
    }

    /// The plugins loaded, in load order, each at its current version.
    fn current(&self) -> Vec<(String, Arc<Loaded>)> {
        let plugins = self.inner.plugins.read().unwrap_or_else(|p| p.into_inner());
        let order = self.inner.order.read().unwrap_or_else(|p| p.into_inner());
        order.iter().filter_map(|name| plugins.get(name).map(|slot| (name.clone(), slot.load_full()))).collect()
    }

    /// The plugins loaded, in load order.
    ///
    /// ```no_run
    /// # let host = stockade::host::Host::builder(stockade::Policy::builtin_default()).build()?;
    /// for name in host.plugins() {
    ///     println!("{name}");
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn plugins(&self) -> Vec<String> {
        self.inner.order.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The current version of a loaded plugin.
    ///
    /// ```no_run
    /// # let host = stockade::host::Host::builder(stockade::Policy::builtin_default()).build()?;
    /// if let Some(plugin) = host.plugin("formatter") {
    ///     println!("{} {} ({})", plugin.manifest().name, plugin.manifest().version, plugin.sha256());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn plugin(&self, name: &str) -> Option<Arc<Loaded>> {
        self.inner.plugins.read().unwrap_or_else(|p| p.into_inner()).get(name).map(|slot| slot.load_full())
    }

    /// Calls `function` of `plugin` with `input`: its output, or why there is none (with the
    /// guest's own error message). Waits for a free instance up to the call's timeout.
    ///
    /// ```no_run
    /// # let host = stockade::host::Host::builder(stockade::Policy::builtin_default()).build()?;
    /// let output: Vec<u8> = host.call("formatter", "format", b"fn main(){}")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call(&self, plugin: &str, function: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
        let Some(loaded) = self.plugin(plugin) else {
            return Err(CallError { plugin: plugin.into(), function: function.into(), code: Code::HostCallDenied, message: format!("no plugin `{plugin}` is loaded") });
        };
        self.call_loaded(&loaded, function, input)
    }

    fn call_loaded(&self, loaded: &Loaded, function: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
        let name = loaded.manifest.name.as_str();
        let span = tracing::info_span!(
            "plugin.call",
            otel.name = %format_args!("{name}.{function}"),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            plugin.name = name,
            plugin.version = %loaded.manifest.version,
            plugin.function = function,
            plugin.outcome = tracing::field::Empty,
            plugin.duration_ms = tracing::field::Empty,
        );
        let _entered = span.enter();
        let started = Instant::now();
        let timeout = self.inner.sandbox.policy().limits.timeout.get();
        let result = match loaded.gate.enter(timeout) {
            None => Err((Code::Busy, format!("all {} instances of `{name}` stayed busy for {timeout:?}", loaded.gate.max))),
            Some(_permit) => match &loaded.runner {
                Runner::InProcess(plugin) => {
                    let outcome = plugin.call(function, &Input { bytes: input.to_vec(), args: Vec::new() });
                    match outcome.code {
                        Code::Ok => Ok(outcome.output.unwrap_or_default()),
                        code => Err((code, outcome.error.unwrap_or_else(|| code.summary().to_string()))),
                    }
                }
                Runner::OutOfProcess(pool) => pool.call(function, input),
            },
        };
        let duration = started.elapsed();
        let code = result.as_ref().map_or_else(|(code, _)| *code, |_| Code::Ok);
        span.record("plugin.outcome", code.as_str());
        span.record("plugin.duration_ms", duration.as_secs_f64() * 1000.0);
        span.record("otel.status_code", if code == Code::Ok { "OK" } else { "ERROR" });
        if let Some(audit) = &self.inner.audit {
            audit.lock().unwrap_or_else(|p| p.into_inner()).record(&audit::Entry {
                plugin: name,
                version: &loaded.manifest.version,
                sha256: &loaded.sha256,
                function,
                input_bytes: input.len(),
                outcome: code,
                duration,
            });
        }
        result.map_err(|(code, message)| CallError { plugin: name.to_string(), function: function.to_string(), code, message })
    }

    /// [`Host::call`] with text in and out (invalid UTF-8 in the output replaced).
    ///
    /// ```no_run
    /// # let host = stockade::host::Host::builder(stockade::Policy::builtin_default()).build()?;
    /// let formatted = host.call_str("formatter", "format", "fn main(){}")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_str(&self, plugin: &str, function: &str, input: &str) -> Result<String, CallError> {
        self.call(plugin, function, input.as_bytes()).map(|out| String::from_utf8_lossy(&out).into_owned())
    }

    /// [`Host::call`] with JSON in and out.
    ///
    /// ```no_run
    /// # let host = stockade::host::Host::builder(stockade::Policy::builtin_default()).build()?;
    /// #[derive(serde::Serialize)]
    /// struct Request { source: String }
    /// #[derive(serde::Deserialize)]
    /// struct Reply { formatted: String }
    /// let reply: Reply = host.call_json("formatter", "format_json", &Request { source: "fn main(){}".into() })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_json<I: serde::Serialize, O: serde::de::DeserializeOwned>(&self, plugin: &str, function: &str, input: &I) -> Result<O, CallError> {
        let fail = |message: String| CallError { plugin: plugin.to_string(), function: function.to_string(), code: Code::PluginError, message };
        let input = serde_json::to_vec(input).map_err(|e| fail(format!("the input is not JSON: {e}")))?;
        let output = self.call(plugin, function, &input)?;
        serde_json::from_slice(&output).map_err(|e| fail(format!("the output is not the JSON expected: {e}")))
    }

    /// Gives an event to the plugins that subscribe to its type, in priority order (lower
    /// first, then by name): each handler is called with `payload` until one says it handled
    /// the event (its output a JSON object with `"handled": true`); a handler that fails is
    /// reported and the next is called.
    ///
    /// ```no_run
    /// # let host = stockade::host::Host::builder(stockade::Policy::builtin_default()).build()?;
    /// let dispatch = host.dispatch("build.finished", br#"{"ok": true}"#);
    /// if let Some(handler) = &dispatch.handled_by {
    ///     println!("handled by {handler}");
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dispatch(&self, event: &str, payload: &[u8]) -> Dispatch {
        let handlers = self.handlers(event);
        let mut dispatch = Dispatch::default();
        for (name, handler, loaded) in handlers {
            let outcome = self.call_loaded(&loaded, &handler, payload);
            if let Err(error) = &outcome {
                tracing::warn!(plugin.name = %name, event, code = %error.code, "an event handler failed: {}", error.message);
            }
            let handled = outcome.as_ref().is_ok_and(|out| says_handled(out));
            dispatch.results.push(HandlerResult { plugin: name.clone(), outcome, handled });
            if handled {
                dispatch.handled_by = Some(name);
                break;
            }
        }
        dispatch
    }

    /// The plugins subscribed to `event` and their handlers, in the order [`Host::dispatch`]
    /// calls them: for a host that chains its stages itself (each handler given the previous
    /// one's output), as the example compiler pipeline does.
    ///
    /// ```no_run
    /// # let host = stockade::host::Host::builder(stockade::Policy::builtin_default()).build()?;
    /// for (plugin, handler) in host.subscribers("lint") {
    ///     let findings = host.call(&plugin, &handler, b"source")?;
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn subscribers(&self, event: &str) -> Vec<(String, String)> {
        self.handlers(event).into_iter().map(|(name, handler, _)| (name, handler)).collect()
    }

    /// An event's handlers with the version each is at, by priority then name.
    fn handlers(&self, event: &str) -> Vec<(String, String, Arc<Loaded>)> {
        let mut handlers: Vec<(i32, String, String, Arc<Loaded>)> = self
            .current()
            .into_iter()
            .filter_map(|(name, loaded)| {
                let sub = loaded.manifest.events.iter().find(|s| s.event == event)?;
                Some((loaded.manifest.priority, name, sub.handler.clone(), Arc::clone(&loaded)))
            })
            .collect();
        handlers.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        handlers.into_iter().map(|(_, name, handler, loaded)| (name, handler, loaded)).collect()
    }

    /// Replaces a loaded plugin with new module bytes. The new version is vetted and checked
    /// against the set (its name, dependencies both ways, conflicts, event claims) before it is
    /// compiled; calls in flight finish on the old version, new calls get the new one. Refused,
    /// the old version stays.
    ///
    /// ```no_run
    /// # let host = stockade::host::Host::builder(stockade::Policy::builtin_default()).build()?;
    /// host.reload("formatter", std::fs::read("formatter-v2.wasm")?)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reload(&self, plugin: &str, bytes: Vec<u8>) -> Result<(), ReloadError> {
        let Some(old) = self.plugin(plugin) else { return Err(ReloadError::NotLoaded(plugin.to_string())) };
        let file = PluginFile::new(&old.path, bytes);
        self.replace(plugin, &file)
    }

    /// Replaces a loaded plugin with the module now at its path (or at `path`).
    ///
    /// ```no_run
    /// # let host = stockade::host::Host::builder(stockade::Policy::builtin_default()).build()?;
    /// // Again from the file it was loaded from.
    /// host.reload_file("formatter", None)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reload_file(&self, plugin: &str, path: Option<&Path>) -> Result<(), ReloadError> {
        let Some(old) = self.plugin(plugin) else { return Err(ReloadError::NotLoaded(plugin.to_string())) };
        let path = path.unwrap_or(&old.path);
        let file = PluginFile::read_to_report(path, self.inner.sandbox.policy().limits.module_size.get())?;
        self.replace(plugin, &file)
    }

    fn replace(&self, plugin: &str, file: &PluginFile) -> Result<(), ReloadError> {
        let inner = &self.inner;
        let refused = |problems: Vec<Problem>| ReloadError::Refused { plugin: plugin.to_string(), problems };
        let extism = self.plugin(plugin).and_then(|old| old.extism.clone());
        let vetting = self.vet_for(file, plugin, extism.as_deref()).map_err(refused)?;
        let Some(manifest) = vetting.manifest.manifest().cloned() else {
            return Err(refused(vec![Problem { code: Code::ManifestInvalid, message: "the new version has no manifest".into(), plugins: vec![plugin.to_string()] }]));
        };
        if manifest.name != plugin {
            let message = format!("the new version is named `{}`, not `{plugin}`", manifest.name);
            return Err(refused(vec![Problem { code: Code::Conflict, message, plugins: vec![plugin.to_string(), manifest.name] }]));
        }
        // The set as it would be: every plugin must still load, in some order.
        let mut candidates = self.candidates(Some(plugin));
        candidates.push(Candidate { origin: file.path.display().to_string(), manifest });
        let plan = plan::plan(&candidates, &[]);
        if !plan.problems.is_empty() {
            return Err(refused(plan.problems));
        }
        let loaded = match self.compile(file, vetting, plugin, extism) {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(problem)) => return Err(refused(vec![problem])),
            Err(error) => {
                let message = error.to_string();
                return Err(refused(vec![Problem { code: Code::Invalid, message, plugins: vec![plugin.to_string()] }]));
            }
        };
        let plugins = inner.plugins.read().unwrap_or_else(|p| p.into_inner());
        let Some(slot) = plugins.get(plugin) else { return Err(ReloadError::NotLoaded(plugin.to_string())) };
        slot.store(Arc::new(loaded));
        drop(plugins);
        *inner.order.write().unwrap_or_else(|p| p.into_inner()) = plan.order;
        tracing::info!(plugin.name = plugin, "reloaded");
        Ok(())
    }
}

/// The dispatch convention: a handler's output that is a JSON object with `"handled": true`.
fn says_handled(output: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(output).is_ok_and(|v| v.get("handled") == Some(&serde_json::Value::Bool(true)))
}
