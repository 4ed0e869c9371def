//! `stockade fill-cache` (hidden): what `run` leaves in the background after a cold run with
//! Winch: the same module compiled by Cranelift into the cache, for the runs after it.

use std::path::PathBuf;

use anyhow::Context;

use stockade::Policy;
use stockade::sandbox::{Allocation, Sandbox, SandboxOptions};
use stockade::worker::ProcessLimits;

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
    /// Reads the policy, in the worker layer's wire form, from a line on stdin.
    pub fn run(self) -> anyhow::Result<Status> {
        let line = stockade::worker::read_line_within(&mut std::io::stdin().lock(), stockade::source::MAX_DOCUMENT_BYTES)
            .context("cannot read the policy from stdin")?
            .context("no policy on stdin")?;
        let wire: serde_json::Value = serde_json::from_slice(&line).context("the policy on stdin is not JSON")?;
        let policy = stockade::worker::policy_from_wire(&wire, "the policy on stdin").map_err(anyhow::Error::msg)?;
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

/// Memory the process may use beyond the policy's limit: the binary, the engine, the compiler's
/// own tables and its threads' stacks. Measured with `prlimit --data`: a fill of the extism-pdk
/// guest fails at 8 MiB of data (abort, nothing cached) and succeeds at 16; the worst modules
/// the default policy admits peak at 92-101 MiB of RSS compiling, so 192 MiB over the limit
/// leaves them room and still stops a compile that runs away.
const DATA_OVERHEAD: u64 = 192 << 20;

/// Time the process may take beyond the policy's compile timeout: reading, checking and
/// writing the module.
const WALL_OVERHEAD_SECS: u64 = 5;

/// The process outlives the run that started it, on nobody's watch: the kernel bounds it, from
/// before it runs. Its writable memory (`RLIMIT_DATA`, what the compiler allocates) to the
/// policy's memory limit plus a fixed overhead, so that a module vetting let through cannot
/// make a background compile take more than a run of it may; and its wall time to the compile
/// timeout plus a fixed overhead (an alarm: SIGALRM ends it), so that it cannot outlive the
/// checks it was started under by long. Past either, the process ends and nothing is cached.
pub fn limits(policy: &Policy) -> ProcessLimits {
    let seconds = policy.limits.compile_timeout.get().as_secs().saturating_add(WALL_OVERHEAD_SECS);
    ProcessLimits {
        no_core_dumps: true,
        data: Some(policy.limits.memory.get().saturating_add(DATA_OVERHEAD)),
        alarm_seconds: Some(u32::try_from(seconds).unwrap_or(u32::MAX)),
        ..ProcessLimits::default()
    }
}
