//! `stockade verify`: check a file's signature offline, with cosign's flag names.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use stockade::report;
use stockade::signature::{self, Expectation, Identity, Refusal, Trust};

use super::{HumanOrJson, Status};

#[derive(clap::Parser)]
#[command(after_help = AFTER_HELP)]
pub struct Opts {
    /// The signed file (a plugin, or any blob).
    #[arg(value_name = "FILE")]
    file: PathBuf,

    /// The Sigstore bundle [default: FILE.sigstore.json].
    #[arg(long, value_name = "BUNDLE", conflicts_with = "signature")]
    bundle: Option<PathBuf>,

    /// A raw signature (base64, as `stockade sign` and `cosign sign-blob` write it); needs --key.
    #[arg(long, value_name = "SIG", requires = "key")]
    signature: Option<PathBuf>,

    /// The signer's public key (PEM): the bundle or signature must be made with it.
    #[arg(long, value_name = "PEM", conflicts_with_all = ["certificate_identity", "certificate_identity_regexp", "certificate_identity_url_prefix", "certificate_oidc_issuer"])]
    key: Option<PathBuf>,

    /// The certificate's identity (its SAN: an email or a URI), exactly.
    #[arg(long, value_name = "ID", group = "identity")]
    certificate_identity: Option<String>,

    /// A regular expression the certificate's whole identity must match.
    #[arg(long, value_name = "RE", group = "identity")]
    certificate_identity_regexp: Option<String>,

    /// A URL the certificate's identity must start with, at a path boundary.
    #[arg(long, value_name = "URL", group = "identity")]
    certificate_identity_url_prefix: Option<String>,

    /// The certificate's OIDC issuer, exactly.
    #[arg(long, value_name = "ISS")]
    certificate_oidc_issuer: Option<String>,

    /// A Sigstore trusted root (JSON) [default: the public-good production root, built in].
    #[arg(long, value_name = "JSON")]
    trusted_root: Option<PathBuf>,

    #[arg(long, short = 'f', value_enum, default_value_t = HumanOrJson::Human)]
    format: HumanOrJson,
}

const AFTER_HELP: &str = "\
Examples:
  stockade verify plugin.wasm --certificate-identity-url-prefix https://github.com/acme/ \\
      --certificate-oidc-issuer https://token.actions.githubusercontent.com
  stockade verify plugin.wasm --bundle plugin.wasm.sigstore.json --certificate-identity dev@example.com \\
      --certificate-oidc-issuer https://github.com/login/oauth
  stockade verify plugin.wasm --key registry.pub --signature plugin.wasm.sig
  stockade verify plugin.wasm --key registry.pub --format json

A keyless bundle is checked against the trusted root: the certificate chain at the signing
time, its SCT, the transparency-log inclusion proof and checkpoint (an entry without an
inclusion proof is refused), RFC 3161 timestamps, and the signature over the file. Nothing
is fetched: revocation and witness cosignatures are not checked.

Exit status:
  0  the signature verifies and its signer is the one required
  1  refused: the signature is missing, malformed or does not verify, or the signer is not the
     one required (the reason says which check failed)
  2  the tool could not do its job (unreadable file, key or trusted root; bad arguments)";

impl Opts {
    pub fn run(self) -> anyhow::Result<Status> {
        // Every file is read without blocking (a FIFO or a device is refused) and within a
        // bound: the signed file within the largest module a policy may allow, the rest within
        // a document's.
        let read_within = |path: &Path, what: &str, max: u64| {
            stockade::source::read_regular(path, max).with_context(|| format!("cannot read the {what} {}", path.display()))
        };
        let read = |path: &Path, what: &str| read_within(path, what, stockade::source::MAX_DOCUMENT_BYTES);
        let artifact = read_within(&self.file, "file", stockade::source::MAX_MODULE_BYTES)?;
        let key = match &self.key {
            Some(path) => {
                let text = String::from_utf8(read(path, "key")?).map_err(|_| anyhow::anyhow!("the key {} is not PEM text", path.display()))?;
                Some(signature::public_key_from_pem(&text).with_context(|| format!("the key {}", path.display()))?)
            }
            None => None,
        };
        let identity = match (&self.certificate_identity, &self.certificate_identity_regexp, &self.certificate_identity_url_prefix) {
            (Some(id), _, _) => Some(Identity::Equal(id.clone())),
            (_, Some(re), _) => Some(Identity::regexp(re)?),
            (_, _, Some(url)) => Some(Identity::UrlPrefix(url.clone())),
            _ => None,
        };
        let expect = Expectation { identity, issuer: self.certificate_oidc_issuer.clone(), key: key.clone() };

        let outcome = match (&self.signature, &key) {
            (Some(path), Some(key)) => signature::verify_blob_signature(&artifact, &read(path, "signature")?, key),
            _ => {
                let own_root;
                let trust = match &self.trusted_root {
                    Some(path) => {
                        let text = String::from_utf8(read(path, "trusted root")?)
                            .map_err(|_| anyhow::anyhow!("the trusted root {} is not JSON text", path.display()))?;
                        own_root = Trust::from_json(&text).with_context(|| format!("the trusted root {}", path.display()))?;
                        &own_root
                    }
                    None => Trust::public_good(),
                };
                let bundle_path = self.bundle.clone().unwrap_or_else(|| stockade::atomic::with_suffix(&self.file, ".sigstore.json"));
                match stockade::source::read_regular(&bundle_path, stockade::source::MAX_DOCUMENT_BYTES) {
                    Ok(bytes) => match String::from_utf8(bytes) {
                        Ok(json) => signature::verify_bundle(&artifact, &json, &expect, trust),
                        Err(_) => Err(Refusal::Malformed("the bundle is not UTF-8 JSON".into())),
                    },
                    // The operator named it: unreadable is a tool error. The default may be
                    // missing, which is the plugin's problem.
                    Err(e) if self.bundle.is_some() || e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(anyhow::anyhow!("cannot read the bundle {}: {e}", bundle_path.display()));
                    }
                    Err(_) => Err(Refusal::Malformed(format!("no signature: {} does not exist", bundle_path.display()))),
                }
            }
        };

        let file = self.file.display().to_string();
        let text = match self.format {
            HumanOrJson::Json => format!("{}\n", report::verify::json(&file, &outcome)),
            HumanOrJson::Human => report::verify::human(&file, &outcome),
        };
        let mut out = anstream::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        Ok(if outcome.is_ok() { Status::Ok } else { Status::Findings })
    }
}

