//! A conformance case: a plugin, what it attacks, and what must happen to it.
//!
//! Each case is a directory of the corpus holding a `case.toml` and, unless it names a module
//! elsewhere (a guest built from source), its `plugin.wat` or `plugin.wasm`:
//!
//! ```toml
//! class = "cpu"                                  # the attack class
//! description = "An export that loops forever."
//! expect-load = "ok"                             # or the code that must refuse it at load
//! [policy]                                       # merged over the run's policy
//! limits.timeout = "300ms"
//! [[call]]
//! function = "spin"
//! expect = "timeout"                             # the runtime code
//! stage = "call"                                 # load | instantiate | call (default call)
//! ```
//!
//! Every call is held to the same time bounds, measured by the worker's clock and `getrusage`:
//! wall time at most the timeout plus `WALL_SLACK`, CPU after the deadline at most
//! `CPU_AFTER_DEADLINE_SLACK`. The worker's peak RSS is held to `max-host-rss`.
//!
//! Placeholders are replaced in the text before it is read: `{case}`, the case directory's
//! absolute path; `{http}`, the `127.0.0.1:PORT` of a loopback HTTP server started for the
//! case alone, and `{http_port}`, its port; `{scratch}`, a fresh directory for the run of the
//! case; `{cache-key-dir}`, the directory of the module cache's key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::code::Code;
use crate::document::{self, DocumentError, Origin};
use crate::policy::Policy;
use crate::sandbox::Stage;
use crate::units::Bytes;

/// The most input one call of a case may build (`input` × `input-repeat`): enough to pass any
/// input limit a policy can set.
pub const MAX_CASE_INPUT: u64 = 1 << 30;

/// The file that makes a directory a case.
pub const CASE_FILE: &str = "case.toml";
/// The most empty files a case may have made in its scratch directory.
pub const MAX_SCRATCH_FILES: u32 = 500_000;

/// Directories of the corpus that are build trees, not cases or case files (a guest's
/// `target/`, `node_modules/`): neither searched for cases nor digested.
pub fn is_build_tree(name: &std::ffi::OsStr) -> bool {
    matches!(name.to_str(), Some("target" | "node_modules" | ".git"))
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CaseFile {
    /// The attack class (`cpu`, `filesystem-escape`, …), or `benign`.
    pub class: String,
    pub description: String,
    /// The module, relative to the case directory; `plugin.wat` or `plugin.wasm` if left out.
    #[serde(default)]
    pub module: Option<String>,
    /// A manifest to use instead of the module's own, relative to the case directory.
    #[serde(default)]
    pub manifest: Option<String>,
    /// Load and run even when vetting refuses: tests the runtime's own defence.
    #[serde(default)]
    pub skip_static_check: bool,
    /// Overrides merged over the run's policy (same keys as a policy file).
    #[serde(default)]
    pub policy: toml::Table,
    /// Host-given configuration (`config_get`).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// The code that must come out of loading: `ok`, a static finding with severity error, or
    /// a load-time runtime code (`compile-timeout`, `host-call-denied`).
    #[serde(default = "ok")]
    pub expect_load: Code,
    /// Codes that must be among the vetting's findings, whatever their severity.
    #[serde(default)]
    pub findings: Vec<Code>,
    /// Error findings a refusal may carry beside `expect-load` (a load expectation is exact:
    /// any other error fails the case).
    #[serde(default)]
    pub allowed_load_errors: Vec<Code>,
    /// Requests the case's loopback HTTP server must have received by the end.
    #[serde(default)]
    pub http_requests: Option<u64>,
    /// FIFOs to make in the case's scratch directory (`{scratch}`) before it runs: named pipes
    /// cannot be committed, and a read from one blocks until somebody writes.
    #[serde(default)]
    pub scratch_fifos: Vec<String>,
    /// Unix sockets to bind in the scratch directory before the case runs.
    #[serde(default)]
    pub scratch_sockets: Vec<String>,
    /// Empty files to make in the scratch directory before the case runs (`entry-0000000`,
    /// `entry-0000001`, ...), at most [`MAX_SCRATCH_FILES`]: a directory of a hundred thousand
    /// entries is not something to commit.
    #[serde(default)]
    pub scratch_files: u32,
    /// The peak RSS the process running the case may reach, as the kernel counts it; by
    /// default the policy's memory limit per plugin plus a fixed overhead (`RSS_OVERHEAD`).
    #[serde(default)]
    pub max_host_rss: Option<Bytes>,
    #[serde(default, rename = "call")]
    pub calls: Vec<CallSpec>,
}

fn ok() -> Code {
    Code::Ok
}

/// One call and what must come of it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CallSpec {
    pub function: String,
    /// Another module of the case to call instead (isolation between plugins), loaded in the
    /// same sandbox under the same policy.
    #[serde(default)]
    pub plugin: Option<String>,
    /// The input, as text.
    #[serde(default)]
    pub input: String,
    /// The input repeated this many times (large inputs without large files).
    #[serde(default, deserialize_with = "crate::units::opt_int_in::<_, u32, 1, { 1 << 30 }>")]
    pub input_repeat: Option<u32>,
    /// Arguments of a plain core export.
    #[serde(default)]
    pub args: Vec<String>,
    /// Make the same call this many times; every one must meet the expectation.
    #[serde(default, deserialize_with = "crate::units::opt_int_in::<_, u32, 1, 100_000>")]
    pub repeat: Option<u32>,
    /// The runtime code.
    pub expect: Code,
    /// Where the outcome must be decided; `call` if left out.
    #[serde(default)]
    pub stage: Option<Stage>,
    /// The exact output.
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    pub output_contains: Option<String>,
    #[serde(default)]
    pub error_contains: Option<String>,
}

impl CallSpec {
    pub fn expected_stage(&self) -> Stage {
        self.stage.unwrap_or(Stage::Call)
    }
}

/// A case found in the corpus, not yet read.
#[derive(Clone, Debug)]
pub struct CaseDir {
    /// The directory relative to the corpus, with `/`: the case's stable id.
    pub id: String,
    pub dir: PathBuf,
}

/// A case that could not be read: the corpus is the operator's input, so this is a tool error.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    // The I/O error is part of the message, not a source: a chain would print it twice.
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// Every directory under `corpus` that holds a `case.toml`, sorted by id. Guests' build trees
/// are skipped.
pub fn discover(corpus: &Path) -> Result<Vec<CaseDir>, CaseError> {
    let mut cases = Vec::new();
    walk(corpus, corpus, &mut cases)?;
    cases.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(cases)
}

fn walk(corpus: &Path, dir: &Path, cases: &mut Vec<CaseDir>) -> Result<(), CaseError> {
    let read_error = |source| CaseError::Read { path: dir.display().to_string(), error: source };
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(read_error)?.collect::<Result<_, _>>().map_err(read_error)?;
    entries.sort_by_key(|e| e.file_name());
    if entries.iter().any(|e| e.file_name() == CASE_FILE) {
        let id = dir.strip_prefix(corpus).unwrap_or(dir);
        cases.push(CaseDir { id: crate::text::display_path(id), dir: dir.to_path_buf() });
        return Ok(());
    }
    for entry in entries {
        if !is_build_tree(&entry.file_name()) && entry.file_type().map_err(read_error)?.is_dir() {
            walk(corpus, &entry.path(), cases)?;
        }
    }
    Ok(())
}

/// A case read and ready to run.
#[derive(Clone, Debug)]
pub struct Case {
    pub id: String,
    pub dir: PathBuf,
    pub file: CaseFile,
    /// The run's policy with the case's overrides.
    pub policy: Policy,
    pub module: PathBuf,
    /// Whether the case mentions `{http}` or `{http_port}`, and so needs a loopback server.
    pub uses_http: bool,
    /// Whether the case mentions `{scratch}`, so that a scratch directory must be made for it.
    pub uses_scratch: bool,
}

/// What `{cache-key-dir}` stands for: the directory of the module cache's key, which no
/// plugin's grant may reach, for the cases that try.
fn cache_key_dir() -> String {
    crate::sandbox::cache::key_dir().map_or_else(|| "/nonexistent/stockade-key-dir".into(), |dir| crate::text::display_path(&dir))
}

impl Case {
    /// Reads a case; `http` is what `{http}` stands for and `scratch` what `{scratch}` does (a
    /// fresh directory for this run of the case; each is used only when the case mentions it).
    pub fn read(found: &CaseDir, base_policy: &Policy, http: &str, scratch: &str) -> Result<Case, CaseError> {
        let path = found.dir.join(CASE_FILE);
        let raw = crate::source::read_regular_text(&path, crate::source::MAX_DOCUMENT_BYTES)
            .map_err(|source| CaseError::Read { path: path.display().to_string(), error: source })?;
        let dir = std::path::absolute(&found.dir).unwrap_or_else(|_| found.dir.clone());
        let uses_http = raw.contains("{http}") || raw.contains("{http_port}");
        let uses_scratch = raw.contains("{scratch}");
        let port = http.rsplit(':').next().unwrap_or_default();
        let text = raw
            .replace("{case}", &crate::text::display_path(&dir))
            .replace("{http}", http)
            .replace("{http_port}", port)
            .replace("{scratch}", scratch)
            .replace("{cache-key-dir}", &cache_key_dir());
        let origin = Origin::File(path.display().to_string());
        let file: CaseFile = document::from_toml(&text, origin.clone())?;
        let invalid = |message: String| CaseError::Invalid { path: path.display().to_string(), message };
        if file.expect_load != Code::Ok && !file.calls.is_empty() {
            return Err(invalid(format!("`expect-load = \"{}\"` means nothing is called; remove the [[call]]s", file.expect_load)));
        }
        if file.expect_load == Code::Ok && file.calls.is_empty() && file.findings.is_empty() {
            return Err(invalid("the case expects nothing: give `expect-load`, `findings` or a [[call]]".to_string()));
        }
        for (i, call) in file.calls.iter().enumerate() {
            let size = (call.input.len() as u64).saturating_mul(u64::from(call.input_repeat.unwrap_or(1)));
            if size > MAX_CASE_INPUT {
                return Err(invalid(format!(
                    "call[{i}]: the input repeated is {size} bytes; a case's input may be at most {MAX_CASE_INPUT}"
                )));
            }
        }
        let policy = with_overrides(base_policy, &file.policy, &origin)?;
        let module = match &file.module {
            Some(module) => dir.join(module),
            None => ["plugin.wat", "plugin.wasm"]
                .iter()
                .map(|name| dir.join(name))
                .find(|p| p.exists())
                .ok_or_else(|| invalid("no `module` given and no plugin.wat or plugin.wasm beside it".to_string()))?,
        };
        if file.scratch_files > MAX_SCRATCH_FILES {
            return Err(invalid(format!("scratch-files = {} is more than {MAX_SCRATCH_FILES}", file.scratch_files)));
        }
        for name in file.scratch_fifos.iter().chain(&file.scratch_sockets) {
            if name.contains('/') || name.starts_with('.') {
                return Err(invalid(format!("scratch entry `{name}` must be a plain file name")));
            }
        }
        let case = Case { id: found.id.clone(), dir, file, policy, module, uses_http, uses_scratch };
        if let Some(missing) = case.modules().into_iter().find(|m| !m.is_file()) {
            return Err(invalid(format!("module {} does not exist", missing.display())));
        }
        Ok(case)
    }

    /// Every module the case loads, the main one first.
    pub fn modules(&self) -> Vec<PathBuf> {
        let mut modules = vec![self.module.clone()];
        for call in &self.file.calls {
            if let Some(other) = &call.plugin {
                let path = self.dir.join(other);
                if !modules.contains(&path) {
                    modules.push(path);
                }
            }
        }
        modules
    }
}

/// The run's policy with a case's overrides merged in: tables key by key, anything else
/// (values, arrays) replaced.
pub fn with_overrides(base: &Policy, overrides: &toml::Table, origin: &Origin) -> Result<Policy, DocumentError> {
    if overrides.is_empty() {
        return Ok(base.clone());
    }
    let mut merged = toml::Table::try_from(base).map_err(|e| DocumentError::new(origin.clone(), e.to_string()))?;
    merge(&mut merged, overrides);
    let text = toml::to_string(&merged).map_err(|e| DocumentError::new(origin.clone(), e.to_string()))?;
    Policy::from_toml(&text, origin.clone()).map_err(|mut e| {
        // Lines and columns would point into the merged text, not the case file.
        e.line = None;
        e.column = None;
        e.message = format!("in [policy]: {}", e.message);
        e
    })
}

fn merge(into: &mut toml::Table, from: &toml::Table) {
    for (key, value) in from {
        match (into.get_mut(key), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(overrides)) => merge(existing, overrides),
            _ => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_merge_tables_and_replace_values() {
        let base = Policy::builtin_default();
        let overrides: toml::Table = toml::from_str(
            r#"
            limits.timeout = "300ms"
            capabilities.allow = ["log"]
            "#,
        )
        .unwrap();
        let merged = with_overrides(&base, &overrides, &Origin::Builtin("test")).unwrap();
        assert_eq!(merged.limits.timeout.get(), std::time::Duration::from_millis(300));
        assert_eq!(merged.limits.memory, base.limits.memory, "untouched keys keep the base value");
        assert_eq!(merged.capabilities.allow.len(), 1);
        let bad: toml::Table = toml::from_str("limits.timeout = 3").unwrap();
        let error = with_overrides(&base, &bad, &Origin::Builtin("test")).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("limits.timeout"), "{error}");
    }
}
