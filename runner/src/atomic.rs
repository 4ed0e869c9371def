//! Files written whole or not at all: a temporary file in the target's directory, renamed over
//! it, so that a reader never sees half a file. One place for reports, keys, signatures,
//! annotated modules and the module cache.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Who may read the file, and whether it must survive a crash of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Published (a report, a public key, a signature, a module): readable by all, synced.
    Published,
    /// A secret (a private key, the cache's key): its owner's only, synced.
    Secret,
    /// Rebuildable (a compiled module): its owner's only, not synced, since a lost one is
    /// compiled again and a sync would slow the load that wrote it.
    Cache,
}

/// Writes `parts`, one after another, to `path`.
pub fn write(path: &Path, parts: &[&[u8]], kind: Kind) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if kind == Kind::Published { 0o644 } else { 0o600 };
        temp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    for part in parts {
        temp.write_all(part)?;
    }
    if kind != Kind::Cache {
        temp.as_file().sync_all()?;
    }
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// `path` with `suffix` appended to its file name (`plugin.wasm` → `plugin.wasm.sig`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
