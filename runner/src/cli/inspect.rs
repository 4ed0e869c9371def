//! `stockade inspect`: what the loader sees in a plugin.

use std::io::Write;
use std::path::PathBuf;

use stockade::report;
use stockade::vet::{VetOptions, Verdict};

use super::{HumanOrJson, LoadArgs, Status};

#[derive(clap::Parser)]
#[command(after_help = AFTER_HELP)]
pub struct Opts {
    /// The plugin module (`.wasm` or `.wat`).
    #[arg(value_name = "PLUGIN")]
    plugin: PathBuf,

    #[command(flatten)]
    load: LoadArgs,

    #[arg(long, short = 'f', value_enum, default_value_t = HumanOrJson::Human)]
    format: HumanOrJson,
}

const AFTER_HELP: &str = "\
Examples:
  stockade inspect plugin.wasm
  stockade inspect --policy policies/permissive-dev.toml --format json plugin.wat

Exit status:
  0  inspected (whatever the verdict; `stockade vet` decides)
  1  the module could not be decoded or validated, so there is nothing to inspect
  2  the tool could not do its job (unreadable path, malformed policy, bad arguments)";

impl Opts {
    pub fn run(self) -> anyhow::Result<Status> {
        let policy = self.load.policy.load()?;
        let mut options = VetOptions::new(&policy);
        options.manifest = self.load.manifest.as_deref();
        let file = super::read_plugin_to_report(&self.plugin, &policy)?;
        let vetting = stockade::vet(&file, &options)?;
        let mut out = anstream::stdout().lock();
        match self.format {
            HumanOrJson::Human => write!(out, "{}", report::inspect::human(&vetting, &policy, super::stdout_colored()))?,
            HumanOrJson::Json => writeln!(out, "{}", report::inspect::json(&vetting))?,
        }
        out.flush()?;
        let undecodable = vetting.analysis.is_none() && vetting.verdict() == Verdict::Fail;
        Ok(if undecodable { Status::Findings } else { Status::Ok })
    }
}
