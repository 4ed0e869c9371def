//! `stockade keygen`: an ECDSA P-256 key pair for `stockade sign`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use stockade::atomic::{self, Kind, with_suffix};

use super::Status;

#[derive(clap::Parser)]
#[command(after_help = AFTER_HELP)]
pub struct Opts {
    /// Where the pair goes: PREFIX.key and PREFIX.pub.
    #[arg(long, value_name = "PREFIX", default_value = "stockade")]
    output_key_prefix: PathBuf,

    /// Replace files that are already there.
    #[arg(long)]
    force: bool,
}

const AFTER_HELP: &str = "\
Examples:
  stockade keygen --output-key-prefix registry
  stockade sign plugin.wasm --key registry.key
  stockade verify plugin.wasm --key registry.pub --signature plugin.wasm.sig

The private key is written unencrypted, readable by its owner only: keep it in a secret store.

Exit status:
  0  written
  2  the tool could not do its job (a file is there already without --force, unwritable path)";

impl Opts {
    pub fn run(self) -> anyhow::Result<Status> {
        let (private_path, public_path) = (with_suffix(&self.output_key_prefix, ".key"), with_suffix(&self.output_key_prefix, ".pub"));
        for path in [&private_path, &public_path] {
            if path.exists() && !self.force {
                anyhow::bail!("{} exists; pass --force to replace it", path.display());
            }
        }
        let (private, public) = stockade::signature::generate_key_pair()?;
        for (path, text, kind) in [(&private_path, private, Kind::Secret), (&public_path, public, Kind::Published)] {
            atomic::write(path, &[text.as_bytes()], kind).with_context(|| format!("cannot write {}", path.display()))?;
        }
        writeln!(anstream::stdout().lock(), "wrote {} (private) and {} (public)", private_path.display(), public_path.display())?;
        Ok(Status::Ok)
    }
}
