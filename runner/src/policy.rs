//! The policy: what a host or registry allows a plugin to be and to do.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::capability::{self, Capability, Family, FsMode, Need};
use crate::code::{Code, Severity};
use crate::document::{self, DocumentError, Origin};
use crate::features::FeatureSet;
use crate::signature::{FieldError, SignerRule, TrustedSigners};
use crate::units::{self, Bytes, Span};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const HOUR_MS: u64 = 3_600_000;

/// The policy used when none is given: for a plugin nobody has reviewed.
pub const DEFAULT_POLICY_TOML: &str = include_str!("../../policies/default.toml");

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Policy {
    pub policy: PolicyInfo,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub features: FeatureSet,
    #[serde(default)]
    pub capabilities: Grants,
    #[serde(default)]
    pub signatures: SignaturePolicy,
    #[serde(default)]
    pub engine: EngineSettings,
    /// Severity overrides by code; `allow` drops the finding.
    #[serde(default)]
    pub severity: BTreeMap<Code, Level>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyInfo {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// A severity override: one of the severities, or `allow` to drop the finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    Allow,
    Note,
    Warning,
    Error,
}

impl Level {
    pub fn severity(self) -> Option<Severity> {
        match self {
            Level::Allow => None,
            Level::Note => Some(Severity::Note),
            Level::Warning => Some(Severity::Warning),
            Level::Error => Some(Severity::Error),
        }
    }
}

/// Limits on what a plugin may be (static) and use (runtime). Unlisted fields take the
/// values of the built-in default policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Limits {
    /// Sum over all linear memories of one plugin, and the host-side state held for it.
    #[serde(deserialize_with = "units::bytes_in::<_, { 64 * KIB }, { 4 * GIB }>")]
    pub memory: Bytes,
    /// Table elements, summed over all tables.
    #[serde(deserialize_with = "units::int_in::<_, u64, 0, 10_000_000>")]
    pub tables: u64,
    #[serde(deserialize_with = "units::int_in::<_, u32, 1, 100>")]
    pub instances: u32,
    #[serde(deserialize_with = "units::int_in::<_, u32, 1, 100>")]
    pub memories: u32,
    /// Wall time per call.
    #[serde(deserialize_with = "units::span_in::<_, 1, { 24 * HOUR_MS }>")]
    pub timeout: Span,
    /// Instructions per call; `None` turns fuel metering off.
    #[serde(deserialize_with = "units::opt_int_in::<_, u64, 1, 1_000_000_000_000_000>")]
    pub fuel: Option<u64>,
    #[serde(deserialize_with = "units::bytes_in::<_, { 16 * KIB }, { 64 * MIB }>")]
    pub stack: Bytes,
    #[serde(deserialize_with = "units::bytes_in::<_, 0, GIB>")]
    pub input: Bytes,
    #[serde(deserialize_with = "units::bytes_in::<_, 1, GIB>")]
    pub output: Bytes,
    #[serde(deserialize_with = "units::bytes_in::<_, 8, GIB>")]
    pub module_size: Bytes,
    /// Functions defined by the module.
    #[serde(deserialize_with = "units::int_in::<_, u32, 0, 1_000_000>")]
    pub functions: u32,
    /// Types a module may declare (at most `analyze::LISTED_ITEMS`).
    #[serde(deserialize_with = "units::int_in::<_, u32, 0, 100_000>")]
    pub types: u32,
    /// Imports a module may have (at most `analyze::LISTED_ITEMS`).
    #[serde(deserialize_with = "units::int_in::<_, u32, 0, 100_000>")]
    pub imports: u32,
    /// Exports a module may have (at most `analyze::LISTED_ITEMS`).
    #[serde(deserialize_with = "units::int_in::<_, u32, 0, 100_000>")]
    pub exports: u32,
    /// Globals a module may define (each is a slot in every instance and a record in the
    /// validator and the compiler: a million took 721 MB to load).
    #[serde(deserialize_with = "units::int_in::<_, u32, 0, 100_000>")]
    pub globals: u32,
    /// Data segments, and element segments, a module may have (each counted on its own).
    #[serde(deserialize_with = "units::int_in::<_, u32, 0, 100_000>")]
    pub segments: u32,
    /// Bytes of one function body.
    #[serde(deserialize_with = "units::bytes_in::<_, 1, { 128 * MIB }>")]
    pub function_size: Bytes,
    /// Locals of one function.
    #[serde(deserialize_with = "units::int_in::<_, u32, 0, 50_000>")]
    pub locals: u32,
    /// Control flow one function may ask the compiler to build, in units (a block or an `if`
    /// is one, an `if` two, a loop four, eight `br_table` targets one): what predicts compile memory.
    #[serde(deserialize_with = "units::int_in::<_, u64, 1, 100_000_000>")]
    pub function_control_flow: u64,
    /// Control flow of all functions together, in the same units.
    #[serde(deserialize_with = "units::int_in::<_, u64, 1, 1_000_000_000>")]
    pub control_flow: u64,
    /// Bytes of all data segments together.
    #[serde(deserialize_with = "units::bytes_in::<_, 0, { 4 * GIB }>")]
    pub data_size: Bytes,
    #[serde(deserialize_with = "units::span_in::<_, 1, HOUR_MS>")]
    pub compile_timeout: Span,
    /// Bytes of plugin-private vars (keys and values) kept across calls.
    #[serde(deserialize_with = "units::bytes_in::<_, 0, GIB>")]
    pub vars: Bytes,
    /// Whether an instance is kept between calls of a plugin.
    pub instance_reuse: InstanceReuse,
    /// Bytes one call may write through read-write directories.
    #[serde(deserialize_with = "units::bytes_in::<_, 0, { 1 << 40 }>")]
    pub disk_write: Bytes,
    /// Bytes a plugin may write through read-write directories over all its calls.
    #[serde(deserialize_with = "units::bytes_in::<_, 0, { 1 << 40 }>")]
    pub disk_write_total: Bytes,
    /// Custom sections a module may have (static).
    #[serde(deserialize_with = "units::int_in::<_, u32, 0, 1_000_000>")]
    pub custom_sections: u32,
    /// Bytes of all custom sections together (static).
    #[serde(deserialize_with = "units::bytes_in::<_, 0, { 4 * GIB }>")]
    pub custom_section_size: Bytes,
}

/// How plugins are compiled: the `[engine]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct EngineSettings {
    pub compiler: Compiler,
    pub deadline: DeadlineMechanism,
}

/// How a call's timeout is enforced on the plugin's wasm code (host calls end at the deadline
/// either way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DeadlineMechanism {
    /// The process where the process is disposable (`stockade run`) and the policy meters no
    /// fuel; epochs everywhere else.
    #[default]
    Auto,
    /// Epoch checks compiled into every loop header and function entry: works in any process,
    /// at up to twice the time of a tight numeric loop.
    Epoch,
    /// No checks in the code: a watchdog ends the process at the deadline, so the code runs at
    /// the speed of uninstrumented wasmtime. Only where the process is disposable; elsewhere
    /// the sandbox refuses to start.
    Process,
}

/// Which of wasmtime's code generators compiles a plugin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Compiler {
    /// Winch for a module compiled to run once (a cold `run`, a conformance case) when it
    /// uses nothing Winch cannot compile; Cranelift for what is cached and kept.
    #[default]
    Auto,
    /// Cranelift, wasmtime's optimizing compiler: the fastest code, the slowest to compile.
    Cranelift,
    /// Winch, wasmtime's baseline compiler: compiles in a fraction of Cranelift's time into
    /// slower code; not every proposal (SIMD, tail calls, GC, exceptions) is supported.
    Winch,
}

/// Whether calls of one plugin share an instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceReuse {
    /// An instance that returned normally is kept for the plugin's next call, as the extism
    /// host does: fast, and state in linear memory and the plugin's vars persist between calls,
    /// so whoever calls next can see what the last call left there.
    #[default]
    PerPlugin,
    /// A fresh instance for every call, with vars of its own that go with it: nothing of one
    /// call (linear memory, globals, tables, vars, Extism blocks, WASI state and descriptors)
    /// reaches the next, for plugins whose callers must not see each other's data. Costs an
    /// instantiation per call.
    PerCall,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory: Bytes::mib(64),
            tables: 10_000,
            instances: 1,
            memories: 1,
            timeout: Span::secs(5),
            fuel: None,
            stack: Bytes::kib(512),
            input: Bytes::mib(1),
            output: Bytes::mib(1),
            module_size: Bytes::mib(20),
            functions: 100_000,
            types: 20_000,
            imports: 10_000,
            exports: 10_000,
            globals: 100_000,
            segments: 10_000,
            function_size: Bytes::mib(1),
            locals: 50_000,
            function_control_flow: 8_000,
            control_flow: 120_000,
            data_size: Bytes::mib(16),
            compile_timeout: Span::secs(10),
            vars: Bytes::mib(1),
            instance_reuse: InstanceReuse::PerPlugin,
            disk_write: Bytes::mib(16),
            disk_write_total: Bytes::mib(64),
            custom_sections: 1000,
            custom_section_size: Bytes::mib(20),
        }
    }
}

/// What the policy grants. Plain capabilities are listed in `allow`; scoped ones in their own
/// list so that a host, directory or function is always named.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Grants {
    #[serde(default)]
    pub allow: Vec<Family>,
    /// Host names or `*.domain` patterns.
    #[serde(default)]
    pub http: Vec<String>,
    #[serde(default)]
    pub fs: Vec<FsGrant>,
    /// Names of host functions (`extism:host/user`) the host registers and grants.
    #[serde(default)]
    pub host: Vec<String>,
    /// Whether a granted HTTP host *name* may resolve to a loopback, private, link-local or
    /// other non-public address (an IP literal grant always may).
    #[serde(default)]
    pub http_private: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FsGrant {
    /// Directory on the host, relative to the working directory.
    pub host: String,
    /// Where the plugin sees it.
    pub guest: String,
    pub mode: FsMode,
}

/// `[signatures]`: whether a plugin must be signed, and by whom.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SignaturePolicy {
    #[serde(default)]
    pub required: bool,
    /// A Sigstore trusted root for keyless signatures: the path of its JSON (relative to the
    /// policy file) or the JSON itself. Default: Sigstore's public-good root, compiled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<String>,
    /// Who must have signed: a rule tree of `allOf` / `anyOf` (`minimumMatches`) over `pubKey`
    /// and `keyless` entries. Without it no signer is trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signers: Option<SignerRule>,
    /// The two above, checked and parsed when the policy is read.
    #[serde(skip)]
    trusted: TrustedSigners,
}

impl SignaturePolicy {
    /// Who the policy trusts, ready to check signatures against.
    pub fn trusted(&self) -> &TrustedSigners {
        &self.trusted
    }

    fn prepare(&mut self, base: Option<&Path>) -> Result<(), FieldError> {
        self.trusted = TrustedSigners::prepare(self.signers.as_mut(), self.trusted_root.as_mut(), base)?;
        Ok(())
    }
}

/// A policy the operator gave that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {path}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid policy")]
    Document(#[from] DocumentError),
}

impl<'de> Deserialize<'de> for Family {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Family, D::Error> {
        let name = String::deserialize(deserializer)?;
        let family: Family = name.parse().map_err(serde::de::Error::custom)?;
        if family.is_scoped() {
            return Err(serde::de::Error::custom(format!(
                "`{family}` is granted by its own list (`capabilities.{family}`), not in `allow`"
            )));
        }
        Ok(family)
    }
}

impl Serialize for Family {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Policy {
    /// The built-in default policy.
    pub fn builtin_default() -> Policy {
        Policy::from_toml(DEFAULT_POLICY_TOML, Origin::Builtin("default policy"))
            .expect("the built-in default policy is valid (checked by a test)")
    }

    pub fn from_path(path: &Path) -> Result<Policy, PolicyError> {
        Ok(Policy::read(path)?.0)
    }

    /// The policy in `path` and the exact text it was read from, read once, so that a digest
    /// of the text is a digest of the policy in use.
    pub fn read(path: &Path) -> Result<(Policy, String), PolicyError> {
        // A policy may come through a pipe (`--policy /dev/stdin`); never from a device.
        let text = crate::source::open_regular_or_pipe(path)
            .and_then(|file| crate::source::read_at_most(file, crate::source::MAX_DOCUMENT_BYTES))
            .and_then(crate::source::into_text)
            .map_err(|source| PolicyError::Read { path: path.display().to_string(), source })?;
        let policy = Policy::from_toml(&text, Origin::File(path.display().to_string()))?;
        Ok((policy, text))
    }

    pub fn from_toml(text: &str, origin: Origin) -> Result<Policy, DocumentError> {
        let mut policy: Policy = document::from_toml(text, origin.clone())?;
        let at_field = |(field, message): FieldError| DocumentError { field: Some(field), ..DocumentError::new(origin.clone(), message) };
        policy.check().map_err(at_field)?;
        policy.signatures.prepare(origin.directory().as_deref()).map_err(at_field)?;
        Ok(policy)
    }

    /// Consistency rules serde cannot express.
    fn check(&self) -> Result<(), (String, String)> {
        for (i, host) in self.capabilities.http.iter().enumerate() {
            capability::validate_host_pattern(host).map_err(|e| (format!("capabilities.http[{i}]"), e))?;
        }
        for (i, grant) in self.capabilities.fs.iter().enumerate() {
            let guest = &grant.guest;
            if !guest.starts_with('/') || guest.split('/').any(|p| p == "..") {
                return Err((
                    format!("capabilities.fs[{i}].guest"),
                    format!("`{guest}` must be an absolute path without `..`"),
                ));
            }
        }
        for (code, level) in &self.severity {
            if !code.overridable() && *level != Level::Error {
                return Err((
                    format!("severity.{code}"),
                    format!("`{code}` means the plugin cannot be loaded at all; its severity cannot be lowered"),
                ));
            }
        }
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.policy.name
    }

    /// Whether the policy grants a capability as declared in a manifest.
    pub fn grants(&self, capability: &Capability) -> bool {
        let grants = &self.capabilities;
        match capability {
            Capability::Plain(family) => grants.allow.contains(family),
            Capability::Http { host } => grants.http.iter().any(|pattern| {
                // A declared wildcard is covered only by the same or a wider wildcard.
                match (host.strip_prefix("*."), pattern.strip_prefix("*.")) {
                    (Some(domain), Some(granted)) => {
                        domain.eq_ignore_ascii_case(granted) || capability::host_pattern_matches(pattern, domain)
                    }
                    (Some(_), None) => false,
                    (None, _) => capability::host_pattern_matches(pattern, host),
                }
            }),
            Capability::Fs { mode, path } => {
                grants.fs.iter().any(|grant| grant.guest == *path && grant.mode.covers(*mode))
            }
            Capability::Host { name } => grants.host.iter().any(|granted| granted == name),
        }
    }

    /// Whether the policy grants anything that would satisfy an undeclared need (used for
    /// plugins without a manifest: the policy alone decides).
    pub fn grants_need(&self, need: &Need) -> bool {
        let grants = &self.capabilities;
        match need {
            Need::Family(Family::Http) => !grants.http.is_empty(),
            Need::Family(Family::Fs) => !grants.fs.is_empty(),
            Need::Family(Family::Host) => !grants.host.is_empty(),
            Need::Family(family) => grants.allow.contains(family),
            Need::HostFunction(name) => grants.host.iter().any(|granted| granted == name),
        }
    }

    /// The severity a finding with `code` has under this policy; `None` drops it.
    pub fn severity_of(&self, code: Code) -> Option<Severity> {
        match self.severity.get(&code) {
            Some(level) => level.severity(),
            None => Some(code.default_severity()),
        }
    }

    /// Where the grants for a capability's family are written, for help texts.
    pub fn grant_hint(capability: &Capability) -> String {
        match capability {
            Capability::Plain(family) => format!("add \"{family}\" to [capabilities] allow"),
            Capability::Http { host } => format!("add \"{host}\" to [capabilities] http"),
            Capability::Fs { mode, path } => format!(
                "add {{ host = \"…\", guest = \"{path}\", mode = \"{}\" }} to [capabilities] fs",
                mode.as_str()
            ),
            Capability::Host { name } => format!("add \"{name}\" to [capabilities] host"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: [(&str, &str); 3] = [
        ("default", include_str!("../../policies/default.toml")),
        ("registry-strict", include_str!("../../policies/registry-strict.toml")),
        ("permissive-dev", include_str!("../../policies/permissive-dev.toml")),
    ];

    #[test]
    fn shipped_policies_parse() {
        for (name, text) in SHIPPED {
            let policy = Policy::from_toml(text, Origin::File(format!("{name}.toml"))).unwrap();
            assert_eq!(policy.name(), name);
        }
    }

    /// The commented `[signatures.signers]` example in registry-strict, uncommented beside a
    /// real key, is a policy that reads: the README's walkthrough relies on it.
    #[test]
    fn registry_stricts_signer_example_works_uncommented() {
        let text = SHIPPED[1].1;
        let start = text.find("# [signatures.signers]").expect("the example is there");
        let end = start + text[start..].find("\n\n").unwrap();
        let uncommented: String = text[start..end].lines().map(|l| format!("{}\n", l.trim_start_matches("# "))).collect();
        let policy_text = format!("{}{uncommented}{}", &text[..start], &text[end..]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("registry.pub"), crate::signature::generate_key_pair().unwrap().1).unwrap();
        let path = dir.path().join("registry-strict.toml");
        std::fs::write(&path, &policy_text).unwrap();
        let policy = Policy::from_path(&path).unwrap_or_else(|e| panic!("{e}\n{policy_text}"));
        let rule = policy.signatures.trusted().rule_text().unwrap();
        assert!(rule.starts_with("any of (key sha256:") && rule.contains("https://github.com/acme/plugins/"), "{rule}");
        // As shipped, it trusts nobody.
        assert!(Policy::from_toml(text, Origin::File("r.toml".into())).unwrap().signatures.trusted().rule_text().is_none());
    }

    #[test]
    fn default_policy_matches_design() {
        let policy = Policy::builtin_default();
        // The limits written out in default.toml are the ones unlisted fields fall back to.
        assert_eq!(policy.limits, Limits::default());
        assert_eq!(policy.features, FeatureSet::default());
        use Family::*;
        assert_eq!(policy.capabilities.allow, vec![Log, Stdio, Config, Vars, Clock, Random]);
        assert!(policy.capabilities.http.is_empty() && policy.capabilities.fs.is_empty());
        assert!(policy.capabilities.host.is_empty());
        for denied in ["threads", "memory64", "gc", "exceptions", "multi-memory"] {
            assert!(!policy.features.is_enabled(denied), "{denied}");
        }
        for allowed in ["simd", "bulk-memory", "reference-types", "multi-value", "tail-call"] {
            assert!(policy.features.is_enabled(allowed), "{allowed}");
        }
    }

    #[test]
    fn broken_policies_say_where() {
        let cases = [
            ("[policy]\nname = \"x\"\n[limits]\nmemory = 5.5\n", "limits.memory", 4),
            ("[policy]\nname = \"x\"\n[limits]\nmemroy = \"1MiB\"\n", "limits.memroy", 4),
            ("[policy]\nname = \"x\"\n[capabilities]\nallow = [\"http\"]\n", "capabilities.allow[0]", 4),
            ("[policy]\nname = \"x\"\n[features]\nwarp-drive = true\n", "features", 3),
            ("[policy]\nname = \"x\"\n[severity]\nmalformed = \"allow\"\n", "severity.malformed", 0),
            ("[policy]\nname = \"x\"\n[severity]\nno-such = \"allow\"\n", "severity.no-such", 4),
            ("[policy]\nname = \"x\"\n[capabilities]\nhttp = [\"http://x\"]\n", "capabilities.http[0]", 0),
        ];
        for (text, field, line) in cases {
            let err = Policy::from_toml(text, Origin::File("p.toml".into())).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field), "{err}");
            if line > 0 {
                assert_eq!(err.line, Some(line), "{err}");
            }
        }
    }

    #[test]
    fn grants_respect_scopes() {
        let policy = Policy::from_toml(
            r#"
            [policy]
            name = "t"
            [capabilities]
            allow = ["log"]
            http = ["api.example.com", "*.example.org"]
            fs = [{ host = "./data", guest = "/data", mode = "ro" }, { host = "./out", guest = "/out", mode = "rw" }]
            host = ["kv_get"]
            "#,
            Origin::File("t.toml".into()),
        )
        .unwrap();
        let granted = |c: &str| policy.grants(&c.parse().unwrap());
        assert!(granted("log") && !granted("env"));
        assert!(granted("http:api.example.com") && !granted("http:example.com"));
        assert!(granted("http:a.example.org") && granted("http:*.example.org"));
        assert!(!granted("http:*.com"));
        // An exact grant never covers a wildcard under it.
        assert!(!granted("http:*.api.example.com"));
        assert!(granted("http:*.b.example.org"));
        assert!(granted("fs:ro:/data") && !granted("fs:rw:/data"));
        assert!(granted("fs:ro:/out") && granted("fs:rw:/out") && !granted("fs:ro:/etc"));
        assert!(granted("host:kv_get") && !granted("host:kv_set"));
    }
}
