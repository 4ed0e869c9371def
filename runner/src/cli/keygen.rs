//! `stockade keygen`: an ECDSA P-256 key pair for `stockade sign`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::Status;

/// Write a new signing key pair: PREFIX.key (PKCS#8 PEM, private) and PREFIX.pub (PEM).
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
        let with = |ext: &str| {
            let mut name = self.output_key_prefix.as_os_str().to_owned();
            name.push(ext);
            PathBuf::from(name)
        };
        let (private_path, public_path) = (with(".key"), with(".pub"));
        for path in [&private_path, &public_path] {
            if path.exists() && !self.force {
                anyhow::bail!("{} exists; pass --force to replace it", path.display());
            }
        }
        let (private, public) = stockade::signature::generate_key_pair()?;
        write_file(&private_path, private.as_bytes(), true)?;
        write_file(&public_path, public.as_bytes(), false)?;
        writeln!(anstream::stdout().lock(), "wrote {} (private) and {} (public)", private_path.display(), public_path.display())?;
        Ok(Status::Ok)
    }
}

/// Writes a file atomically; a private one is readable by its owner only.
pub(super) fn write_file(path: &std::path::Path, bytes: &[u8], private: bool) -> anyhow::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write {}", path.display()))?;
    // A temporary file is its owner's only; what is published (a public key, a signature, a
    // module) is readable by all, as a file written in place would be.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file().set_permissions(std::fs::Permissions::from_mode(if private { 0o600 } else { 0o644 }))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    file.write_all(bytes)?;
    file.persist(path).map_err(|e| e.error).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
