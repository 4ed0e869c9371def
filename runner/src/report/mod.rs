//! Rendering decisions for people (human), programs (JSON) and code scanning (SARIF), all
//! from the one [`Finding`](crate::vet::Finding) model.

pub mod escape;
pub mod human;
pub mod inspect;
pub mod run;
pub mod json;
pub mod sarif;
pub mod conformance;

/// Writes `contents` to `path` atomically: a temporary file in the same directory, renamed
/// over the target, so a reader never sees half a report.
pub fn write_atomically(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(contents)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A path as reports show it: with forward slashes, so output is the same on every OS.
pub fn display_path(path: &std::path::Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}
