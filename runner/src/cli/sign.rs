//! `stockade sign`: a key signature over a file, in cosign's blob-signature format and as a
//! key-signed Sigstore bundle.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use stockade::atomic::{self, Kind, with_suffix};

use super::Status;

#[derive(clap::Parser)]
#[command(after_help = AFTER_HELP)]
pub struct Opts {
    /// The file to sign (a plugin: annotate it first, so that its manifest is signed with it).
    #[arg(value_name = "FILE")]
    file: PathBuf,

    /// The private key (PKCS#8 PEM, from `stockade keygen`).
    #[arg(long, value_name = "KEY")]
    key: PathBuf,

    /// Where the blob signature goes [default: FILE.sig].
    #[arg(long, value_name = "SIG")]
    output_signature: Option<PathBuf>,

    /// Where the bundle goes [default: FILE.sigstore.json].
    #[arg(long, value_name = "BUNDLE", conflicts_with = "no_bundle")]
    bundle: Option<PathBuf>,

    /// Write the blob signature alone.
    #[arg(long)]
    no_bundle: bool,
}

const AFTER_HELP: &str = "\
Examples:
  stockade sign plugin.wasm --key registry.key
  stockade sign plugin.wasm --key registry.key --output-signature dist/plugin.wasm.sig --no-bundle

The signature covers every byte of the file. Two files carry it: FILE.sig, cosign's blob
signature, which `stockade verify FILE --key KEY.pub --signature FILE.sig` and `cosign
verify-blob --key KEY.pub --signature FILE.sig FILE` check; and FILE.sigstore.json, a Sigstore
bundle (v0.3) holding the same signature, the file's SHA-256 and the key's hint (the base64
SHA-256 of the public key, as cosign writes it), without a transparency-log entry. The hint is
what lets `stockade vet` tell a file changed since signing (signature-invalid) from a file signed
with a key the policy does not trust (signer-untrusted); a blob signature alone cannot say which.

Exit status:
  0  signed
  2  the tool could not do its job (unreadable file or key, unwritable signature)";

impl Opts {
    pub fn run(self) -> anyhow::Result<Status> {
        let artifact = stockade::source::read_regular(&self.file, stockade::source::MAX_MODULE_BYTES).with_context(|| format!("cannot read {}", self.file.display()))?;
        let key = stockade::source::read_regular_text(&self.key, stockade::source::MAX_DOCUMENT_BYTES).with_context(|| format!("cannot read the key {}", self.key.display()))?;
        let signed = stockade::signature::sign(&artifact, &key).with_context(|| format!("the key {}", self.key.display()))?;
        let mut out = anstream::stdout().lock();
        let sig = self.output_signature.clone().unwrap_or_else(|| with_suffix(&self.file, ".sig"));
        atomic::write(&sig, &[signed.blob.as_bytes(), b"\n"], Kind::Published).with_context(|| format!("cannot write {}", sig.display()))?;
        writeln!(out, "wrote {}", sig.display())?;
        if !self.no_bundle {
            let bundle = self.bundle.clone().unwrap_or_else(|| with_suffix(&self.file, ".sigstore.json"));
            atomic::write(&bundle, &[signed.bundle.as_bytes(), b"\n"], Kind::Published)
                .with_context(|| format!("cannot write {}", bundle.display()))?;
            writeln!(out, "wrote {}", bundle.display())?;
        }
        Ok(Status::Ok)
    }
}
