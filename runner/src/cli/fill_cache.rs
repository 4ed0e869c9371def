//! `stockade fill-cache` (hidden): what `run` leaves in the background after a cold run with
//! Winch: the same module compiled by Cranelift into the cache, for the runs after it.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;

use stockade::Policy;
use stockade::sandbox::{Allocation, Sandbox, SandboxOptions};

use super::Status;

#[derive(clap::Parser)]
pub struct Opts {
    #[arg(value_name = "PLUGIN")]
    plugin: PathBuf,

    /// The module's cache key as `run` vetted it: anything else is not compiled.
    #[arg(long, value_name = "HEX")]
    cache_key: String,

    #[arg(long, value_name = "DIR")]
    cache_dir: PathBuf,
}

impl Opts {
    /// Reads the policy (TOML) from stdin.
    pub fn run(self) -> anyhow::Result<Status> {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read the policy from stdin")?;
        let policy = Policy::from_toml(&text, stockade::document::Origin::Builtin("the policy on stdin"))?;
        let file = super::read_plugin(&self.plugin, &policy)?;
        // The file may have changed since it was vetted: only the vetted bytes are compiled.
        if file.cache_key() != self.cache_key {
            return Ok(Status::Findings);
        }
        // The engine `stockade run` uses (it started this), so that its next run finds the code:
        // the deadline mechanism changes the code, and with it the cache key.
        let options = SandboxOptions { allocation: Allocation::OnDemand, cache_dir: Some(self.cache_dir), disposable_process: true, ..SandboxOptions::default() };
        let sandbox = Sandbox::with_options(&policy, &options)?;
        Ok(if sandbox.fill_cache(&file) { Status::Ok } else { Status::Findings })
    }
}
