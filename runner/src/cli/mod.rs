//! One module per subcommand, each a clap `Opts` with `run()`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};

use stockade::Policy;

mod annotate;
mod bench;
mod conform;
mod explain;
mod fill_cache;
mod inspect;
mod keygen;
mod plan;
mod plugin_worker;
mod run;
mod sign;
mod verify;
mod vet;
mod worker;

/// Exit status when a policy or budget said no (findings, failed cases, regressions).
pub const EXIT_FINDINGS: u8 = 1;
/// Exit status when the tool could not do its job (unreadable path, bad policy or arguments).
pub const EXIT_TOOL_ERROR: u8 = 2;

const EXIT_STATUS: &str = "\
Exit status:
  0  all good
  1  a policy said no (findings with severity error)
  2  the tool could not do its job (unreadable path, malformed policy, bad arguments)";

/// Stockade: a security-focused sandbox and conformance kit for WebAssembly plugins.
#[derive(Parser)]
#[command(name = "stockade", version, about, after_help = EXIT_STATUS)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes, before or after its name.
#[derive(clap::Args)]
pub struct GlobalOpts {
    /// When to colour the output: `auto` colours a terminal unless NO_COLOR is set.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

impl GlobalOpts {
    /// Makes the options take effect for the whole process.
    pub fn apply(&self) {
        let choice = match self.color {
            ColorWhen::Auto => anstream::ColorChoice::Auto,
            ColorWhen::Always => anstream::ColorChoice::Always,
            ColorWhen::Never => anstream::ColorChoice::Never,
        };
        choice.write_global();
    }
}

/// Each subcommand's arguments are built only when it is the one invoked (`defer`): building
/// all of them was a measurable part of a cached `stockade run`. So each one's about text is
/// here, on its variant, where the top-level help reads it, not on its `Opts`; and the argument
/// groups they flatten carry plain comments, since a doc comment there would become the about
/// text of every command that flattens them.
#[derive(Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Vet plugins: check every import, the manifest and the limits against the policy, without
    /// compiling or running anything.
    Vet(vet::Opts),
    /// Show a plugin's details: its imports and the capability each maps to, exports, memories,
    /// tables, code size, declared limits, custom sections and the manifest in use.
    Inspect(inspect::Opts),
    /// Run a plugin: vet it, then call one export inside the sandbox under the policy's limits.
    Run(run::Opts),
    /// Run the conformance corpus: every case's plugin under its policy, against what must happen.
    Conform(conform::Opts),
    /// Measure a plugin: cold and cached load, instantiation, call latency, peak memory and
    /// instructions; check them against a budget or an earlier run.
    Bench(bench::Opts),
    /// Verify a file's Sigstore bundle or key signature, offline.
    Verify(verify::Opts),
    /// Sign a file with a private key: writes FILE.sig (base64 ECDSA P-256, as cosign sign-blob)
    /// and FILE.sigstore.json (the same signature as a key-signed Sigstore bundle).
    Sign(sign::Opts),
    /// Write a new signing key pair: PREFIX.key (PKCS#8 PEM, private) and PREFIX.pub (PEM).
    Keygen(keygen::Opts),
    /// Embed plugin.toml in the module as its `stockade.manifest` custom section.
    Annotate(annotate::Opts),
    /// Plan loading a directory of plugins as a host would: vet each, check host ranges, resolve
    /// dependencies, refuse conflicts, and order them. Nothing is compiled or run.
    Plan(plan::Opts),
    /// Explain a finding or outcome code, or list every code.
    Explain(explain::Opts),
    /// Run conformance cases sent on stdin (the worker protocol); `stockade conform` starts it.
    #[command(hide = true)]
    Worker(worker::Opts),
    /// Compile a plugin `run` vetted with Cranelift into the module cache (internal).
    #[command(hide = true)]
    FillCache(fill_cache::Opts),
    #[command(hide = true)]
    PluginWorker(plugin_worker::Opts),
}

impl Command {
    pub fn run(self) -> anyhow::Result<Status> {
        match self {
            Command::Vet(opts) => opts.run(),
            Command::Inspect(opts) => opts.run(),
            Command::Run(opts) => opts.run(),
            Command::Conform(opts) => opts.run(),
            Command::Bench(opts) => opts.run(),
            Command::Verify(opts) => opts.run(),
            Command::Sign(opts) => opts.run(),
            Command::Keygen(opts) => opts.run(),
            Command::Annotate(opts) => opts.run(),
            Command::Plan(opts) => opts.run(),
            Command::Explain(opts) => opts.run(),
            Command::Worker(opts) => opts.run(),
            Command::FillCache(opts) => opts.run(),
            Command::PluginWorker(opts) => opts.run(),
        }
    }
}

/// How a command that did its job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Findings,
}

impl Status {
    /// The process's exit status.
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Findings => EXIT_FINDINGS,
        }
    }
}

/// `--format` of the commands that print for people or as one JSON document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HumanOrJson {
    Human,
    /// The command's versioned JSON document (`stockade.<command>/1`).
    Json,
}

// The plugin's manifest and the policy, for the commands that load one plugin.
#[derive(clap::Args, Clone, Debug)]
pub struct LoadArgs {
    /// Manifest to use instead of the module's own.
    #[arg(long, short = 'm', value_name = "MANIFEST")]
    pub manifest: Option<PathBuf>,

    #[command(flatten)]
    pub policy: PolicyArg,
}

// `--policy` shared by the commands that apply one.
#[derive(clap::Args, Clone, Debug)]
pub struct PolicyArg {
    /// Policy file (TOML); the built-in default policy when left out.
    #[arg(long, short = 'p', value_name = "POLICY")]
    pub policy: Option<PathBuf>,
}

impl PolicyArg {
    pub fn load(&self) -> anyhow::Result<Policy> {
        Ok(self.load_with_text()?.0)
    }

    /// The policy and the exact text it was read from (see [`Policy::read`]).
    pub fn load_with_text(&self) -> anyhow::Result<(Policy, String)> {
        match &self.policy {
            Some(path) => Ok(Policy::read(path)?),
            None => Ok((Policy::builtin_default(), stockade::policy::DEFAULT_POLICY_TOML.to_string())),
        }
    }
}

// The plugin, the export and what it is given, for the commands that call one export.
#[derive(clap::Args, Clone, Debug)]
pub struct CallArgs {
    /// The plugin module (`.wasm` or `.wat`).
    #[arg(value_name = "PLUGIN")]
    pub plugin: PathBuf,

    /// The export to call.
    #[arg(long, value_name = "FN")]
    pub call: String,

    /// Input for an Extism plugin: `@FILE`, `-` for stdin, or the text itself.
    #[arg(long, short = 'i', value_name = "INPUT", default_value = "")]
    pub input: String,

    /// An argument for a plain core export (repeat for each parameter).
    #[arg(long = "arg", value_name = "VALUE", allow_hyphen_values = true)]
    pub args: Vec<String>,
}

impl CallArgs {
    /// The call's input: the bytes `--input` names and the `--arg` values. At most `limit` + 1
    /// bytes are read (the policy's `input` limit: one byte more makes the call
    /// `input-too-large`), from stdin or from a regular file (a FIFO or a device is refused,
    /// not read without end).
    pub fn input(&self, limit: u64) -> anyhow::Result<stockade::sandbox::Input> {
        // Read past the limit by a byte at most: the call then says `input-too-large`.
        let at_most = |reader: Box<dyn std::io::Read>, what: &str| -> anyhow::Result<Vec<u8>> {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(reader, limit.saturating_add(1)), &mut bytes)
                .with_context(|| format!("cannot read the input from {what}"))?;
            Ok(bytes)
        };
        let bytes = if self.input == "-" {
            at_most(Box::new(std::io::stdin()), "stdin")?
        } else if let Some(path) = self.input.strip_prefix('@') {
            let file = stockade::source::open_regular(Path::new(path)).with_context(|| format!("cannot read input file {path}"))?;
            at_most(Box::new(file), &format!("input file {path}"))?
        } else {
            self.input.as_bytes().to_vec()
        };
        Ok(stockade::sandbox::Input { bytes, args: self.args.clone() })
    }
}

// How the commands that compile plugins compile them and where they cache the result.
#[derive(clap::Args, Clone, Debug)]
pub struct CompileArgs {
    /// Keep compiled modules in this directory (keyed by the BLAKE3 of the module's bytes and
    /// the engine's configuration, authenticated before use with a key kept apart, in the user's
    /// state directory); the user's cache directory when left out. A directory that someone
    /// else could write is not used (the run goes on uncached, with a warning).
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,

    /// Neither read nor write the compiled-module cache.
    #[arg(long)]
    pub no_cache: bool,

    /// The compiler; the policy's `engine.compiler` (by default `auto`: Winch for a module
    /// that is not cached yet, Cranelift's code from the cache) when left out.
    #[arg(long, value_enum, value_name = "COMPILER")]
    pub compiler: Option<stockade::policy::Compiler>,
}

impl CompileArgs {
    /// The cache directory in use, if any.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache { None } else { self.cache_dir.clone().or_else(stockade::sandbox::cache::default_dir) }
    }

    /// A sandbox for one process that runs a plugin once: instances allocated on demand
    /// (nothing reserved up front), Winch for what is not cached under `auto`. The sandbox
    /// creates the cache directory (its error names it).
    pub fn sandbox_options(&self) -> stockade::sandbox::SandboxOptions {
        stockade::sandbox::SandboxOptions {
            allocation: stockade::sandbox::Allocation::OnDemand,
            cache_dir: self.cache_dir(),
            compiler: self.compiler,
            runs_once: true,
            disposable_process: true,
            ..stockade::sandbox::SandboxOptions::default()
        }
    }

    /// Starts `stockade fill-cache` in the background to compile the module with Cranelift
    /// into the cache, and does not wait for it: this run already has Winch's code.
    pub fn fill_cache_in_background(&self, plugin: &Path, cache_key: &str, policy: &Policy) {
        let Some(dir) = self.cache_dir() else { return };
        let Ok(program) = std::env::current_exe() else { return };
        let worker = stockade::worker::WorkerCommand {
            program,
            args: ["fill-cache".into(), plugin.display().to_string(), "--cache-key".into(), cache_key.into(), "--cache-dir".into(), dir.display().to_string()].into(),
        };
        // Nobody waits for it: the kernel bounds it (fill_cache::limits).
        let mut command = stockade::worker::command(&worker, fill_cache::limits(policy));
        command.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        // Its own process group: a Ctrl-C meant for this run does not stop the fill, and it
        // outlives this process.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let Ok(mut child) = command.spawn() else { return };
        if let (Some(mut stdin), Ok(wire)) = (child.stdin.take(), stockade::worker::policy_to_wire(policy)) {
            let mut line = wire.to_string();
            line.push('\n');
            let _ = std::io::Write::write_all(&mut stdin, line.as_bytes());
        }
    }
}

/// Whether stdout wants colour: a terminal, and NO_COLOR unset (anstream decides).
pub fn stdout_colored() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
}

/// Reads a plugin, holding it in memory only if the policy's `module-size` allows it.
pub fn read_plugin(path: &Path, policy: &stockade::Policy) -> anyhow::Result<stockade::source::PluginFile> {
    Ok(stockade::source::PluginFile::read_within(path, policy.limits.module_size.get())?)
}

/// [`read_plugin`] for a command whose report shows the module's SHA-256.
pub fn read_plugin_to_report(path: &Path, policy: &stockade::Policy) -> anyhow::Result<stockade::source::PluginFile> {
    Ok(stockade::source::PluginFile::read_to_report(path, policy.limits.module_size.get())?)
}
