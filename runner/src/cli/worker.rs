//! `stockade worker`: the process `stockade conform` runs cases in. Not for people: it speaks
//! the worker protocol (corpus/README.md) on stdin and stdout.

use stockade::conform::worker::{self, Fault};

use super::Status;

#[derive(clap::Parser)]
#[command(after_help = AFTER_HELP)]
pub struct Opts {
    /// FOR TESTING THE HARNESS ONLY: fail on purpose on case ID instead of running it (a
    /// panic, an abort, 1 GiB held, a hang), to prove that `conform` survives a worker that
    /// dies. Never needed to judge a host.
    #[arg(long, value_name = "ID=FAULT", value_parser = parse_fault)]
    fault_on: Vec<(String, Fault)>,
}

const AFTER_HELP: &str = "\
Reads one JSON request per line on stdin and answers each with one JSON line on stdout, until
stdin closes. The protocol (`stockade.worker/1`) is documented in corpus/README.md; another
host's adapter speaks the same protocol and is run with `stockade conform --adapter PROGRAM`.

Exit status:
  0  stdin closed
  2  stdin or stdout failed";

fn parse_fault(text: &str) -> Result<(String, Fault), String> {
    let (id, fault) = text.rsplit_once('=').ok_or_else(|| format!("`{text}` is not ID=FAULT"))?;
    let fault = <Fault as clap::ValueEnum>::from_str(fault, false)
        .map_err(|_| format!("`{fault}` is not a fault (panic, abort, leak, hang, double-answer)"))?;
    Ok((id.to_string(), fault))
}

impl Opts {
    pub fn run(self) -> anyhow::Result<Status> {
        // Standard output is not held locked: a watchdog that ends the process answers through it.
        worker::serve(std::io::stdin().lock(), std::io::stdout(), &self.fault_on)?;
        Ok(Status::Ok)
    }
}
