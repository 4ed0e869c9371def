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
        bound_this_process(&policy);
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

/// This process outlives the run that started it, on nobody's watch: the kernel bounds it.
/// Its writable memory (`RLIMIT_DATA`, what the compiler allocates) to the policy's memory
/// limit plus a fixed overhead, so that a module vetting let through cannot make a background
/// compile take more than a run of it may; and its wall time to the compile timeout plus a
/// fixed overhead (`alarm`: SIGALRM ends it), so that it cannot outlive the checks it was
/// started under by long. Past either, the process ends and nothing is cached.
fn bound_this_process(policy: &Policy) {
    let data = policy.limits.memory.get().saturating_add(DATA_OVERHEAD);
    let limit = rustix::process::Rlimit { current: Some(data), maximum: Some(data) };
    let _ = rustix::process::setrlimit(rustix::process::Resource::Data, limit);
    let seconds = policy.limits.compile_timeout.get().as_secs().saturating_add(WALL_OVERHEAD_SECS);
    // SAFETY: setting the signal mask and an alarm of this process; SIGALRM's disposition is
    // the default (a freshly executed process), which ends the process.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGALRM);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGALRM, libc::SIG_DFL);
        libc::alarm(u32::try_from(seconds).unwrap_or(u32::MAX));
    }
}
