//! One module per subcommand, each a clap `Opts` with `run()`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use stockade::Policy;

mod conform;
mod explain;
mod inspect;
mod run;
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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    Vet(vet::Opts),
    Inspect(inspect::Opts),
    Run(run::Opts),
    Conform(conform::Opts),
    Explain(explain::Opts),
    #[command(hide = true)]
    Worker(worker::Opts),
}

impl Command {
    pub fn run(self) -> anyhow::Result<Status> {
        match self {
            Command::Vet(opts) => opts.run(),
            Command::Inspect(opts) => opts.run(),
            Command::Run(opts) => opts.run(),
            Command::Conform(opts) => opts.run(),
            Command::Explain(opts) => opts.run(),
            Command::Worker(opts) => opts.run(),
        }
    }
}

/// How a command that did its job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Findings,
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> ExitCode {
        match status {
            Status::Ok => ExitCode::SUCCESS,
            Status::Findings => ExitCode::from(EXIT_FINDINGS),
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

/// The plugin's manifest and the policy, for the commands that load one plugin.
#[derive(clap::Args, Clone, Debug)]
pub struct LoadArgs {
    /// Manifest to use instead of the module's own.
    #[arg(long, short = 'm', value_name = "MANIFEST")]
    pub manifest: Option<PathBuf>,

    #[command(flatten)]
    pub policy: PolicyArg,
}

/// `--policy` shared by the commands that apply one.
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

/// Whether stdout wants colour: a terminal, and NO_COLOR unset (anstream decides).
pub fn stdout_colored() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
}

pub fn read_plugin(path: &Path) -> anyhow::Result<stockade::source::PluginFile> {
    Ok(stockade::source::PluginFile::read(path)?)
}
