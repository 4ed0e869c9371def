//! `stockade sign`: a key signature over a file, in cosign's blob-signature format.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use stockade::atomic::{self, Kind, with_suffix};

use super::Status;

/// Sign a file with a private key: writes FILE.sig (base64 ECDSA P-256, as cosign sign-blob).
#[derive(clap::Parser)]
#[command(after_help = AFTER_HELP)]
pub struct Opts {
    /// The file to sign (a plugin: annotate it first, so that its manifest is signed with it).
    #[arg(value_name = "FILE")]
    file: PathBuf,

    /// The private key (PKCS#8 PEM, from `stockade keygen`).
    #[arg(long, value_name = "KEY")]
    key: PathBuf,

    /// Where the signature goes [default: FILE.sig].
    #[arg(long, value_name = "SIG")]
    output_signature: Option<PathBuf>,
}

const AFTER_HELP: &str = "\
Examples:
  stockade sign plugin.wasm --key registry.key
  stockade sign plugin.wasm --key registry.key --output-signature dist/plugin.wasm.sig

The signature covers every byte of the file. `stockade verify FILE --key KEY.pub --signature
FILE.sig` and `cosign verify-blob --key KEY.pub --signature FILE.sig FILE` check it.

Exit status:
  0  signed
  2  the tool could not do its job (unreadable file or key, unwritable signature)";

impl Opts {
    pub fn run(self) -> anyhow::Result<Status> {
        let artifact = std::fs::read(&self.file).with_context(|| format!("cannot read {}", self.file.display()))?;
        let key = std::fs::read_to_string(&self.key).with_context(|| format!("cannot read the key {}", self.key.display()))?;
        let signature = stockade::signature::sign_blob(&artifact, &key).with_context(|| format!("the key {}", self.key.display()))?;
        let out = self.output_signature.clone().unwrap_or_else(|| with_suffix(&self.file, ".sig"));
        atomic::write(&out, &[signature.as_bytes(), b"\n"], Kind::Published).with_context(|| format!("cannot write {}", out.display()))?;
        writeln!(anstream::stdout().lock(), "wrote {}", out.display())?;
        Ok(Status::Ok)
    }
}
