//! `stockade vet`: decide from the bytes alone whether plugins may load.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use rayon::prelude::*;

use stockade::report;
use stockade::vet::{VetOptions, Verdict, Vetting};

use super::{PolicyArg, Status};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Diagnostics for people.
    Human,
    /// `stockade.vet/1`: one JSON object per plugin, one per line.
    Json,
    /// SARIF 2.1.0, for GitHub code scanning and other SARIF consumers.
    Sarif,
}

#[derive(clap::Parser)]
#[command(after_help = AFTER_HELP)]
pub struct Opts {
    /// Plugin modules: `.wasm` binaries or `.wat` text.
    #[arg(required = true, value_name = "PLUGIN")]
    plugins: Vec<PathBuf>,

    /// Manifest to use instead of the module's own (its `stockade.manifest` section, or
    /// `plugin.toml` beside it). Only with a single plugin.
    #[arg(long, short = 'm', value_name = "MANIFEST")]
    manifest: Option<PathBuf>,

    #[command(flatten)]
    policy: PolicyArg,

    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Human)]
    format: Format,

    /// Plugins vetted at once; defaults to the number of CPUs.
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,
}

const AFTER_HELP: &str = "\
Examples:
  stockade vet plugin.wasm
  stockade vet --policy policies/registry-strict.toml --format sarif plugins/*.wasm > vet.sarif
  stockade vet --manifest plugin.toml --format json plugin.wat

Exit status:
  0  every plugin passes (warnings and notes allowed)
  1  at least one plugin has a finding of severity error
  2  the tool could not do its job (unreadable path, malformed policy, bad arguments)";

impl Opts {
    pub fn run(self) -> anyhow::Result<Status> {
        if self.manifest.is_some() && self.plugins.len() > 1 {
            anyhow::bail!("--manifest names the manifest of one plugin; {} plugins were given", self.plugins.len());
        }
        let policy = self.policy.load()?;
        let mut options = VetOptions::new(&policy);
        options.manifest = self.manifest.as_deref();

        let vet_one = |path: &PathBuf| -> anyhow::Result<Vetting> { Ok(stockade::vet(&super::read_plugin_to_report(path, &policy)?, &options)?) };
        // One plugin is vetted on this thread (a big module still validates on every core):
        // starting a pool of threads costs more than vetting a small plugin does.
        let vettings: Vec<Vetting> = if let [path] = &self.plugins[..] {
            vec![vet_one(path)?]
        } else {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(self.jobs.unwrap_or(0))
                .build()
                .context("cannot start the worker threads")?;
            pool.install(|| self.plugins.par_iter().map(vet_one).collect::<anyhow::Result<_>>())?
        };

        let mut out = anstream::stdout().lock();
        match self.format {
            Format::Human => {
                let color = super::stdout_colored();
                for vetting in &vettings {
                    write!(out, "{}", report::human::vetting(vetting, color))?;
                }
            }
            Format::Json => {
                for vetting in &vettings {
                    writeln!(out, "{}", report::json::vet_line(vetting))?;
                }
            }
            Format::Sarif => {
                writeln!(out, "{}", serde_json::to_string_pretty(&report::sarif::document(&vettings))?)?;
            }
        }
        out.flush()?;
        let failed = vettings.iter().any(|v| v.verdict() == Verdict::Fail);
        Ok(if failed { Status::Findings } else { Status::Ok })
    }
}
