//! Extism manifests accepted, so that a host moving from the extism crate keeps its files.
//!
//! | Extism | Stockade |
//! | --- | --- |
//! | `wasm: [{ path, hash?, name? }]` (one) | the module file (relative to the manifest); `hash` (SHA-256, hex) checked; `name` the plugin's name (else the file's stem) |
//! | `allowed_hosts` | `http:HOST` capabilities in the manifest; `capabilities.http` in [`ExtismMapping::policy`] |
//! | `allowed_paths` (`"[ro:]HOST_DIR": "GUEST_DIR"`) | `fs:rw:GUEST` (`fs:ro:` with `ro:`) capabilities; `capabilities.fs` grants |
//! | `config` | the plugin's config (`config_get`) |
//! | `memory.max_pages` | `limits.memory` (64 KiB pages) asked for and, in the policy, capped |
//! | `memory.max_var_bytes` | `limits.vars` in the policy |
//! | `timeout_ms` | `limits.timeout` asked for and, in the policy, capped |
//!
//! Extism gives every plugin logging, config and vars: the manifest declares `log`, `config` and
//! `vars`. Refused, each with its reason: several modules (Extism links them; Stockade loads one
//! module per plugin), `url` (no network: fetch and check it first), inline `data` (write it to
//! a file), `memory.max_http_response_bytes` (Stockade bounds a response by the plugin's memory
//! and output limits), any other key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::document::{DocumentError, Origin};
use crate::manifest::Manifest;
use crate::policy::Policy;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtismManifest {
    wasm: Vec<WasmSource>,
    #[serde(default)]
    memory: Option<Memory>,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    allowed_hosts: Option<Vec<String>>,
    #[serde(default)]
    allowed_paths: Option<BTreeMap<String, String>>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WasmSource {
    path: Option<String>,
    url: Option<String>,
    data: Option<serde_json::Value>,
    hash: Option<String>,
    name: Option<String>,
    headers: Option<serde_json::Value>,
    method: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Memory {
    max_pages: Option<u64>,
    max_http_response_bytes: Option<u64>,
    max_var_bytes: Option<u64>,
}

/// An Extism manifest, mapped.
#[derive(Clone, Debug)]
pub struct ExtismMapping {
    pub module: PathBuf,
    pub manifest: Manifest,
    pub config: BTreeMap<String, String>,
    /// Where the mapping came from, for messages.
    pub origin: Origin,
    fs: Vec<(String, String, &'static str)>,
    memory: Option<u64>,
    vars: Option<u64>,
}

impl ExtismMapping {
    /// Reads an Extism manifest (JSON) from `path`; anything it cannot express is an error that
    /// names the key.
    pub fn read(path: &Path) -> Result<ExtismMapping, DocumentError> {
        let origin = Origin::File(path.display().to_string());
        let text = crate::source::read_regular_text(path, crate::source::MAX_DOCUMENT_BYTES).map_err(|e| DocumentError::new(origin.clone(), format!("cannot read it: {e}")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        ExtismMapping::from_json(&text, origin, base)
    }

    pub fn from_json(text: &str, origin: Origin, base: &Path) -> Result<ExtismMapping, DocumentError> {
        let extism: ExtismManifest = crate::document::from_json(text, origin.clone())?;
        let fail = |field: &str, message: String| DocumentError { field: Some(field.to_string()), ..DocumentError::new(origin.clone(), message) };
        let [wasm] = &extism.wasm[..] else {
            return Err(fail("wasm", format!("{} modules: Stockade loads one module per plugin (Extism links several)", extism.wasm.len())));
        };
        if wasm.url.is_some() || wasm.headers.is_some() || wasm.method.is_some() {
            return Err(fail("wasm[0].url", "a module by URL is not fetched (no network): download it, check it, and give its `path`".into()));
        }
        if wasm.data.is_some() {
            return Err(fail("wasm[0].data", "inline module data is not taken: write the module to a file and give its `path`".into()));
        }
        let Some(relative) = &wasm.path else { return Err(fail("wasm[0]", "a module needs a `path`".into())) };
        let module = base.join(relative);
        if let Some(expected) = &wasm.hash {
            use sha2::Digest;
            let bytes = crate::source::read_regular(&module, crate::source::MAX_MODULE_BYTES).map_err(|e| fail("wasm[0].path", format!("cannot read {}: {e}", module.display())))?;
            let actual = hex::encode(sha2::Sha256::digest(&bytes));
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(fail("wasm[0].hash", format!("{} has SHA-256 {actual}, not {expected}", module.display())));
            }
        }
        let name = match &wasm.name {
            Some(name) => name.clone(),
            None => module.file_stem().map(|s| s.to_string_lossy().to_lowercase().replace(['.', ' '], "-")).unwrap_or_default(),
        };
        let memory = extism.memory.as_ref();
        if memory.is_some_and(|m| m.max_http_response_bytes.is_some()) {
            return Err(fail(
                "memory.max_http_response_bytes",
                "not expressible: a response is bounded by the plugin's memory and output limits".into(),
            ));
        }
        let mut capabilities = vec!["log".to_string(), "config".to_string(), "vars".to_string()];
        for host in extism.allowed_hosts.iter().flatten() {
            capabilities.push(format!("http:{host}"));
        }
        let mut fs = Vec::new();
        for (host_dir, guest) in extism.allowed_paths.iter().flatten() {
            let (mode, host_dir) = match host_dir.strip_prefix("ro:") {
                Some(dir) => ("ro", dir),
                None => ("rw", host_dir.as_str()),
            };
            capabilities.push(format!("fs:{mode}:{guest}"));
            fs.push((base.join(host_dir).display().to_string(), guest.clone(), mode));
        }
        let memory_bytes = memory.and_then(|m| m.max_pages).map(|pages| pages.saturating_mul(64 << 10));
        let mut toml = toml::Table::new();
        toml.insert("name".into(), name.into());
        toml.insert("version".into(), "0.0.0".into());
        toml.insert("capabilities".into(), toml::Value::Array(capabilities.into_iter().map(toml::Value::String).collect()));
        let mut limits = toml::Table::new();
        if let Some(bytes) = memory_bytes {
            limits.insert("memory".into(), toml::Value::Integer(bytes as i64));
        }
        if let Some(ms) = extism.timeout_ms {
            limits.insert("timeout".into(), format!("{ms}ms").into());
        }
        toml.insert("limits".into(), toml::Value::Table(limits));
        let text = toml::to_string(&toml).map_err(|e| fail("", e.to_string()))?;
        let manifest = Manifest::from_toml(&text, origin.clone()).map_err(|mut e| {
            e.message = format!("mapped from the Extism manifest: {}", e.message);
            e
        })?;
        Ok(ExtismMapping {
            module,
            manifest,
            config: extism.config,
            origin,
            fs,
            memory: memory_bytes,
            vars: memory.and_then(|m| m.max_var_bytes),
        })
    }

    /// `base` with what the Extism manifest grants and limits: its hosts and paths granted, its
    /// memory, vars and timeout as the limits (for a host that keeps a policy per plugin, as
    /// Extism keeps a manifest per plugin).
    pub fn policy(&self, base: &Policy) -> Result<Policy, DocumentError> {
        let origin = self.origin.clone();
        let mut table = toml::Table::try_from(base).map_err(|e| DocumentError::new(origin.clone(), e.to_string()))?;
        let section = |table: &mut toml::Table, name: &str| -> toml::Table {
            table.remove(name).and_then(|v| v.as_table().cloned()).unwrap_or_default()
        };
        let mut capabilities = section(&mut table, "capabilities");
        let hosts: Vec<toml::Value> = self.manifest.capabilities.iter().filter_map(|c| c.to_string().strip_prefix("http:").map(|h| h.to_string().into())).collect();
        capabilities.insert("http".into(), toml::Value::Array(hosts));
        let fs: Vec<toml::Value> = self
            .fs
            .iter()
            .map(|(host, guest, mode)| {
                let mut grant = toml::Table::new();
                grant.insert("host".into(), host.clone().into());
                grant.insert("guest".into(), guest.clone().into());
                grant.insert("mode".into(), (*mode).into());
                toml::Value::Table(grant)
            })
            .collect();
        capabilities.insert("fs".into(), toml::Value::Array(fs));
        let mut allow: Vec<toml::Value> = capabilities.get("allow").and_then(|a| a.as_array().cloned()).unwrap_or_default();
        for family in ["log", "config", "vars"] {
            if !allow.iter().any(|v| v.as_str() == Some(family)) {
                allow.push(family.into());
            }
        }
        capabilities.insert("allow".into(), toml::Value::Array(allow));
        table.insert("capabilities".into(), toml::Value::Table(capabilities));
        let mut limits = section(&mut table, "limits");
        if let Some(bytes) = self.memory {
            limits.insert("memory".into(), toml::Value::Integer(bytes as i64));
        }
        if let Some(bytes) = self.vars {
            limits.insert("vars".into(), toml::Value::Integer(bytes as i64));
        }
        if let Some(timeout) = self.manifest.limits.timeout {
            limits.insert("timeout".into(), timeout.to_string().into());
        }
        table.insert("limits".into(), toml::Value::Table(limits));
        let text = toml::to_string(&table).map_err(|e| DocumentError::new(origin.clone(), e.to_string()))?;
        Policy::from_toml(&text, origin)
    }
}
