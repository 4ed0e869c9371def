//! `stockade plugin-worker` (hidden): a worker process of an out-of-process plugin of a host
//! (see `stockade::host::process`).

use super::Status;

#[derive(clap::Parser)]
#[command(after_help = AFTER_HELP)]
pub struct Opts {}

const AFTER_HELP: &str = "\
Loads the plugin the first line on stdin names and answers one JSON line per call on stdout
until stdin closes (protocol stockade.plugin-worker/1, documented in stockade::host::process).
The code carries no epoch checks: at a call's deadline the worker answers `timeout` and exits.

Exit status:
  0  stdin closed, or a call's deadline ended the worker
  2  stdin or stdout failed";

impl Opts {
    pub fn run(self) -> anyhow::Result<Status> {
        stockade::host::process::serve_plugin(std::io::stdin().lock(), std::io::stdout())?;
        Ok(Status::Ok)
    }
}
