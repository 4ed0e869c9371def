//! The manifest: what a plugin declares about itself.
//!
//! Read from `plugin.toml` beside the module, or from JSON in the module's
//! `stockade.manifest` custom section (which `stockade annotate` writes, so that a signature
//! covers it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::capability::Capability;
use crate::document::{self, DocumentError, Origin};
use crate::units::{Bytes, Span};

/// The custom section that carries an embedded manifest.
pub const MANIFEST_SECTION: &str = "stockade.manifest";
/// The file name of a manifest beside the module.
pub const MANIFEST_FILE: &str = "plugin.toml";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    pub name: String,
    pub version: semver::Version,
    /// Host API versions the plugin works with; any when left out.
    #[serde(default)]
    pub host: Option<semver::VersionReq>,
    #[serde(default)]
    pub description: Option<String>,
    /// Functions the host may call.
    #[serde(default)]
    pub exports: Vec<String>,
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    #[serde(default)]
    pub conflicts: Vec<String>,
    #[serde(default)]
    pub before: Vec<String>,
    #[serde(default)]
    pub after: Vec<String>,
    /// Lower loads first and handles events first.
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub limits: RequestedLimits,
    #[serde(default)]
    pub dependencies: BTreeMap<String, semver::VersionReq>,
    /// The events the plugin handles, each by one of its exports.
    #[serde(default)]
    pub events: Vec<EventSubscription>,
}

/// `[[events]]`: an event type the plugin subscribes to, the export that handles it, and
/// whether it claims the type for itself alone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EventSubscription {
    /// The event type, as the host dispatches it (`chat`, `build.finished`).
    #[serde(rename = "type")]
    pub event: String,
    /// The export called with the event's payload.
    pub handler: String,
    /// The only handler of this type: a second exclusive claim on it is a `conflict` at load.
    #[serde(default)]
    pub exclusive: bool,
}

/// What the plugin asks for; the policy caps it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RequestedLimits {
    #[serde(default, deserialize_with = "crate::units::opt_bytes_in::<_, 0, { 1 << 32 }>")]
    pub memory: Option<Bytes>,
    #[serde(default, deserialize_with = "crate::units::opt_span_in::<_, 1, 86_400_000>")]
    pub timeout: Option<Span>,
}

impl Manifest {
    pub fn from_toml(text: &str, origin: Origin) -> Result<Manifest, DocumentError> {
        document::from_toml::<Manifest>(text, origin.clone())?.checked(origin)
    }

    pub fn from_json(text: &str, origin: Origin) -> Result<Manifest, DocumentError> {
        document::from_json::<Manifest>(text, origin.clone())?.checked(origin)
    }

    /// Rules serde cannot express.
    fn checked(self, origin: Origin) -> Result<Manifest, DocumentError> {
        let fail = |field: &str, message: String| DocumentError {
            field: Some(field.to_string()),
            ..DocumentError::new(origin.clone(), message)
        };
        if !is_plugin_name(&self.name) {
            return Err(fail("name", format!("`{}` is not a plugin name (lowercase letters, digits, `-`, `_`)", self.name)));
        }
        for (list, names) in [("conflicts", &self.conflicts), ("before", &self.before), ("after", &self.after)] {
            if let Some((i, bad)) = names.iter().enumerate().find(|(_, n)| !is_plugin_name(n)) {
                return Err(fail(&format!("{list}[{i}]"), format!("`{bad}` is not a plugin name")));
            }
        }
        if let Some(bad) = self.dependencies.keys().find(|n| !is_plugin_name(n)) {
            return Err(fail("dependencies", format!("`{bad}` is not a plugin name")));
        }
        for (i, sub) in self.events.iter().enumerate() {
            if sub.event.is_empty() || sub.event.len() > 128 || sub.event.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(fail(&format!("events[{i}].type"), format!("`{}` is not an event type (1 to 128 characters, no spaces)", sub.event)));
            }
            if !self.exports.is_empty() && !self.exports.contains(&sub.handler) {
                return Err(fail(&format!("events[{i}].handler"), format!("`{}` is not among the plugin's `exports`", sub.handler)));
            }
            if self.events[..i].iter().any(|earlier| earlier.event == sub.event) {
                return Err(fail(&format!("events[{i}].type"), format!("`{}` is subscribed to twice", sub.event)));
            }
        }
        let mut seen = std::collections::HashSet::new();
        if let Some((i, dup)) = self.capabilities.iter().enumerate().find(|(_, c)| !seen.insert(*c)) {
            return Err(fail(&format!("capabilities[{i}]"), format!("`{dup}` is declared twice")));
        }
        Ok(self)
    }
}

fn is_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
name = "lint-vr-practices"
version = "2.1.0"
host = "^1.0"
description = "Lints VR practices"
exports = ["lint"]
capabilities = ["log", "config", "http:api.example.com", "fs:ro:/data"]
conflicts = ["other-linter"]
before = []
after = ["core-ast"]
priority = 100

[limits]
memory = "32MiB"
timeout = "2s"

[dependencies]
"core-ast" = ">=1.2, <2"
"#;

    fn file() -> Origin {
        Origin::File("plugin.toml".into())
    }

    #[test]
    fn design_example_parses() {
        let manifest = Manifest::from_toml(EXAMPLE, file()).unwrap();
        assert_eq!(manifest.version, semver::Version::new(2, 1, 0));
        assert_eq!(manifest.capabilities.len(), 4);
        assert_eq!(manifest.limits.memory, Some(Bytes::mib(32)));
        assert!(manifest.dependencies["core-ast"].matches(&semver::Version::new(1, 5, 0)));
    }

    #[test]
    fn errors_name_line_and_field() {
        let cases = [
            (EXAMPLE.replace("version = \"2.1.0\"", "version = \"two\""), "version", 3),
            (EXAMPLE.replace("priority = 100", "priority = \"high\""), "priority", 11),
            (EXAMPLE.replace("priority = 100", "priorty = 100"), "", 11),
            (EXAMPLE.replace("\"log\", \"config\"", "\"log\", \"teleport\""), "capabilities[1]", 7),
            (EXAMPLE.replace("timeout = \"2s\"", "timeout = \"soon\""), "limits.timeout", 15),
            (EXAMPLE.replace("\"log\", \"config\"", "\"log\", \"log\""), "capabilities[1]", 0),
        ];
        for (text, field, line) in cases {
            let err = Manifest::from_toml(&text, file()).unwrap_err();
            if !field.is_empty() {
                assert_eq!(err.field.as_deref(), Some(field), "{err}");
            }
            if line > 0 {
                assert_eq!(err.line, Some(line), "{err}");
            }
        }
    }

    #[test]
    fn json_manifest_parses() {
        let json = r#"{"name": "x", "version": "1.0.0", "capabilities": ["log"]}"#;
        let origin = Origin::Section { module: "x.wasm".into(), name: MANIFEST_SECTION.into(), data_offset: 8 };
        assert_eq!(Manifest::from_json(json, origin.clone()).unwrap().name, "x");
        let err = Manifest::from_json(r#"{"name": "x", "version": "1.0.0", "colour": 1}"#, origin).unwrap_err();
        assert!(err.message.contains("unknown field `colour`"), "{err}");
        assert!(err.offset.is_some());
    }
}

/// A module could not take an embedded manifest.
#[derive(Debug, thiserror::Error)]
#[error("{message} (at byte {offset})")]
pub struct EmbedError {
    pub offset: usize,
    pub message: String,
}

/// `module` with `manifest_json` as its one `stockade.manifest` custom section: every other
/// section is copied byte for byte in its place, any manifest section already there is dropped,
/// and the new one goes at the end. Only the top level is read (a component's nested modules
/// are copied inside their sections), so nothing else is re-encoded.
pub fn embed(module: &[u8], manifest_json: &[u8]) -> Result<Vec<u8>, EmbedError> {
    let bad = |offset: usize, message: &str| EmbedError { offset, message: message.to_string() };
    if module.len() < 8 || &module[..4] != b"\0asm" {
        return Err(bad(0, "not a WebAssembly binary (no `\\0asm` header)"));
    }
    let mut out = module[..8].to_vec();
    let mut reader = wasmparser::BinaryReader::new(module, 0);
    reader.read_bytes(8).map_err(|e| bad(e.offset(), e.message()))?;
    while !reader.eof() {
        let start = reader.original_position();
        let id = reader.read_u8().map_err(|e| bad(e.offset(), e.message()))?;
        let size = reader.read_var_u32().map_err(|e| bad(e.offset(), e.message()))? as usize;
        let body_start = reader.original_position();
        let body = reader.read_bytes(size).map_err(|_| bad(start, "a section runs past the end of the module"))?;
        if id == 0 {
            let mut name = wasmparser::BinaryReader::new(body, body_start);
            if name.read_string().map_err(|e| bad(e.offset(), e.message()))? == MANIFEST_SECTION {
                continue;
            }
        }
        out.extend_from_slice(&module[start..body_start + size]);
    }
    let mut payload = Vec::new();
    leb128(&mut payload, MANIFEST_SECTION.len());
    payload.extend_from_slice(MANIFEST_SECTION.as_bytes());
    payload.extend_from_slice(manifest_json);
    out.push(0);
    leb128(&mut out, payload.len());
    out.extend_from_slice(&payload);
    Ok(out)
}

fn leb128(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
