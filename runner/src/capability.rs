//! Capabilities, and the catalog that maps every import to one.
//!
//! The catalog is the single table [`CATALOG`]: adding a mapping is adding a row. The sandbox's
//! linker registers host functions per capability from the same rows, so what the static check
//! allows and what the linker provides cannot drift apart.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The kinds of authority a plugin can be given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Log,
    Stdio,
    Config,
    Env,
    Vars,
    Clock,
    Random,
    Http,
    Fs,
    Net,
    Host,
}

impl Family {
    pub const ALL: [Family; 11] = [
        Family::Log,
        Family::Stdio,
        Family::Config,
        Family::Env,
        Family::Vars,
        Family::Clock,
        Family::Random,
        Family::Http,
        Family::Fs,
        Family::Net,
        Family::Host,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Log => "log",
            Family::Stdio => "stdio",
            Family::Config => "config",
            Family::Env => "env",
            Family::Vars => "vars",
            Family::Clock => "clock",
            Family::Random => "random",
            Family::Http => "http",
            Family::Fs => "fs",
            Family::Net => "net",
            Family::Host => "host",
        }
    }

    /// Whether the capability is always written with a scope (`http:HOST`, `fs:ro:PATH`,
    /// `host:NAME`) rather than by its bare name.
    pub fn is_scoped(self) -> bool {
        matches!(self, Family::Http | Family::Fs | Family::Host)
    }

    /// What the capability lets a plugin do, for tables and explanations.
    pub fn grants(self) -> &'static str {
        match self {
            Family::Log => "write log lines (host-side, size-capped)",
            Family::Stdio => "stdin/stdout/stderr, captured by the host and size-capped",
            Family::Config => "read host-given configuration",
            Family::Env => "environment and arguments (host-given values only)",
            Family::Vars => "plugin-private key/value state",
            Family::Clock => "read the time",
            Family::Random => "random bytes",
            Family::Http => "HTTP requests to allow-listed hosts",
            Family::Fs => "files under a preopened directory",
            Family::Net => "network sockets",
            Family::Host => "a function the host project registered",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Family {
    type Err = String;
    fn from_str(s: &str) -> Result<Family, String> {
        Family::ALL
            .into_iter()
            .find(|family| family.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a capability (known: {})", family_list()))
    }
}

fn family_list() -> String {
    Family::ALL.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsMode {
    Ro,
    Rw,
}

impl FsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FsMode::Ro => "ro",
            FsMode::Rw => "rw",
        }
    }

    /// Whether a grant in mode `self` covers a request for `requested`.
    pub fn covers(self, requested: FsMode) -> bool {
        self == FsMode::Rw || requested == FsMode::Ro
    }
}

/// A capability as a manifest declares it: a family, with its scope where the family has one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    Plain(Family),
    Http { host: String },
    Fs { mode: FsMode, path: String },
    Host { name: String },
}

impl Capability {
    pub fn family(&self) -> Family {
        match self {
            Capability::Plain(family) => *family,
            Capability::Http { .. } => Family::Http,
            Capability::Fs { .. } => Family::Fs,
            Capability::Host { .. } => Family::Host,
        }
    }

    /// Whether declaring `self` covers a use of `need`.
    pub fn covers(&self, need: &Need) -> bool {
        match (self, need) {
            (Capability::Host { name }, Need::HostFunction(wanted)) => name == wanted,
            (_, Need::Family(family)) => self.family() == *family,
            _ => false,
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capability::Plain(family) => f.write_str(family.as_str()),
            Capability::Http { host } => write!(f, "http:{host}"),
            Capability::Fs { mode, path } => write!(f, "fs:{}:{path}", mode.as_str()),
            Capability::Host { name } => write!(f, "host:{name}"),
        }
    }
}

impl FromStr for Capability {
    type Err = String;
    fn from_str(text: &str) -> Result<Capability, String> {
        let (head, rest) = match text.split_once(':') {
            Some((head, rest)) => (head, Some(rest)),
            None => (text, None),
        };
        let family: Family = head.parse()?;
        match (family, rest) {
            (Family::Http, Some(host)) => {
                validate_host_pattern(host).map_err(|e| format!("`{text}`: {e}"))?;
                Ok(Capability::Http { host: host.to_ascii_lowercase() })
            }
            (Family::Fs, Some(rest)) => {
                let (mode, path) = rest
                    .split_once(':')
                    .ok_or_else(|| format!("`{text}`: write `fs:ro:PATH` or `fs:rw:PATH`"))?;
                let mode = match mode {
                    "ro" => FsMode::Ro,
                    "rw" => FsMode::Rw,
                    _ => return Err(format!("`{text}`: the mode must be `ro` or `rw`, not `{mode}`")),
                };
                if !path.starts_with('/') || path.split('/').any(|part| part == "..") {
                    return Err(format!("`{text}`: the guest path must be absolute and must not contain `..`"));
                }
                Ok(Capability::Fs { mode, path: path.to_string() })
            }
            (Family::Host, Some(name)) if !name.is_empty() => Ok(Capability::Host { name: name.to_string() }),
            (family, None) if family.is_scoped() => Err(format!(
                "`{text}` needs a scope: write `http:HOST`, `fs:ro:PATH` / `fs:rw:PATH` or `host:NAME`"
            )),
            (family, None) => Ok(Capability::Plain(family)),
            (family, Some(_)) => Err(format!("`{text}`: the `{family}` capability takes no scope")),
        }
    }
}

/// Splits `host[:port]`.
fn split_port(pattern: &str) -> (&str, Option<&str>) {
    match pattern.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (pattern, None),
    }
}

/// Checks a host name or a `*.domain` wildcard, with an optional `:port`, as written in
/// manifests and policies. Without a port only the scheme's default port is allowed.
pub fn validate_host_pattern(pattern: &str) -> Result<(), String> {
    let (host_part, port) = split_port(pattern);
    let host = host_part.strip_prefix("*.").unwrap_or(host_part);
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    let ok = port_ok
        && !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{pattern}` is not a host name or `*.domain` pattern with an optional `:port` (no scheme, path or user)"
        ))
    }
}

/// Whether an allowlist pattern (`api.example.com`, `*.example.org`, `127.0.0.1:8080`)
/// matches `host` with `port` (`None` meaning the scheme's default port).
pub fn host_pattern_matches(pattern: &str, host: &str) -> bool {
    let (pattern_host, pattern_port) = split_port(pattern);
    let (host, port) = split_port(host);
    if pattern_port != port {
        return false;
    }
    let host = host.to_ascii_lowercase();
    match pattern_host.strip_prefix("*.") {
        Some(domain) => {
            host.len() > domain.len() + 1
                && host.ends_with(&domain.to_ascii_lowercase())
                && host[..host.len() - domain.len()].ends_with('.')
        }
        None => pattern_host.eq_ignore_ascii_case(&host),
    }
}

impl Serialize for Capability {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Capability {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Capability, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What an import needs: a whole family (an HTTP import can reach any host the grant allows;
/// which hosts is decided at run time), or one registered host function.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Need {
    Family(Family),
    HostFunction(String),
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Family(family) => f.write_str(family.as_str()),
            Need::HostFunction(name) => write!(f, "host:{name}"),
        }
    }
}

/// What the catalog says about one import.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ImportClass {
    /// Part of the plugin ABI itself (the Extism kernel, `proc_exit`): reaches nothing
    /// outside the plugin, so it needs no capability.
    Core,
    Needs(Need),
    /// In no row of the catalog.
    Unknown,
}

/// The plugin ABI an import belongs to; the sandbox picks its runtime support by this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Abi {
    Extism,
    WasiPreview1,
    Component,
}

/// How a row names the functions it covers.
#[derive(Clone, Copy, Debug)]
pub enum Names {
    Exact(&'static str),
    Prefix(&'static str),
    Any,
}

impl Names {
    fn matches(self, name: &str) -> bool {
        match self {
            Names::Exact(exact) => name == exact,
            Names::Prefix(prefix) => name.starts_with(prefix),
            Names::Any => true,
        }
    }
}

/// What a row maps its imports to.
#[derive(Clone, Copy, Debug)]
pub enum Maps {
    Core,
    To(Family),
    /// `extism:host/user` NAME -> `host:NAME`.
    HostFunction,
}

/// One row of the catalog. Rows are tried in order and the first match wins, so specific
/// names come before the prefixes that would also match them.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub abi: Abi,
    /// For core modules the import module; for components the interface (`wasi:cli/stdout`)
    /// without its version, where `Names` then matches the interface name after the package.
    pub module: &'static str,
    pub names: Names,
    pub maps: Maps,
    /// The function type the host defines for this import, where the catalog states it (the
    /// Extism kernel): an import of another type would not link, so `vet` refuses it.
    pub signature: Option<Signature>,
}

/// A function type: parameters, results.
pub type Signature = (&'static [wasmparser::ValType], &'static [wasmparser::ValType]);

pub const EXTISM_ENV: &str = "extism:host/env";
pub const EXTISM_USER: &str = "extism:host/user";
pub const WASI_P1: &str = "wasi_snapshot_preview1";

const fn row(abi: Abi, module: &'static str, names: Names, maps: Maps) -> Row {
    Row { abi, module, names, maps, signature: None }
}

/// An Extism function: its exact name, what it maps to, and its type.
const fn extism(name: &'static str, maps: Maps, params: &'static [wasmparser::ValType], results: &'static [wasmparser::ValType]) -> Row {
    Row { abi: Abi::Extism, module: EXTISM_ENV, names: Names::Exact(name), maps, signature: Some((params, results)) }
}

/// A WASI preview 1 function: its exact name, what it maps to, and its type.
const fn wasi(name: &'static str, maps: Maps, params: &'static [wasmparser::ValType], results: &'static [wasmparser::ValType]) -> Row {
    Row { abi: Abi::WasiPreview1, module: WASI_P1, names: Names::Exact(name), maps, signature: Some((params, results)) }
}

const I32: wasmparser::ValType = wasmparser::ValType::I32;
const I64: wasmparser::ValType = wasmparser::ValType::I64;

use Abi::{Component as C, Extism as X};
use Maps::{Core as Kernel, To};
use Names::{Any, Exact as E, Prefix as P};

/// The capability catalog.
pub const CATALOG: &[Row] = &[
    // The Extism kernel: memory management and the plugin's own input/output/error.
    extism("alloc", Kernel, &[I64], &[I64]),
    extism("free", Kernel, &[I64], &[]),
    extism("length", Kernel, &[I64], &[I64]),
    extism("length_unsafe", Kernel, &[I64], &[I64]),
    extism("load_u8", Kernel, &[I64], &[I32]),
    extism("load_u64", Kernel, &[I64], &[I64]),
    extism("store_u8", Kernel, &[I64, I32], &[]),
    extism("store_u64", Kernel, &[I64, I64], &[]),
    extism("input_load_u8", Kernel, &[I64], &[I32]),
    extism("input_load_u64", Kernel, &[I64], &[I64]),
    extism("input_length", Kernel, &[], &[I64]),
    extism("input_offset", Kernel, &[], &[I64]),
    extism("output_set", Kernel, &[I64, I64], &[]),
    extism("output_length", Kernel, &[], &[I64]),
    extism("output_offset", Kernel, &[], &[I64]),
    extism("error_set", Kernel, &[I64], &[]),
    extism("error_get", Kernel, &[], &[I64]),
    extism("reset", Kernel, &[], &[]),
    extism("memory_bytes", Kernel, &[], &[I64]),
    // Behind capabilities. Exact names only: a prefix would admit names the host does not
    // define (`log_fatal`), which `vet` would pass and the linker could not serve.
    extism("log_trace", To(Family::Log), &[I64], &[]),
    extism("log_debug", To(Family::Log), &[I64], &[]),
    extism("log_info", To(Family::Log), &[I64], &[]),
    extism("log_warn", To(Family::Log), &[I64], &[]),
    extism("log_error", To(Family::Log), &[I64], &[]),
    extism("get_log_level", To(Family::Log), &[], &[I32]),
    extism("config_get", To(Family::Config), &[I64], &[I64]),
    extism("var_get", To(Family::Vars), &[I64], &[I64]),
    extism("var_set", To(Family::Vars), &[I64, I64], &[]),
    extism("http_request", To(Family::Http), &[I64, I64], &[I64]),
    extism("http_status_code", To(Family::Http), &[], &[I32]),
    extism("http_headers", To(Family::Http), &[], &[I64]),
    row(X, EXTISM_USER, Any, Maps::HostFunction),
    // WASI preview 1, every function by name with its type. The descriptor calls wasi-libc makes
    // at start-up for stdio and preopen discovery are `stdio`; every other fd_* works on files
    // and is `fs`.
    wasi("args_get", To(Family::Env), &[I32, I32], &[I32]),
    wasi("args_sizes_get", To(Family::Env), &[I32, I32], &[I32]),
    wasi("environ_get", To(Family::Env), &[I32, I32], &[I32]),
    wasi("environ_sizes_get", To(Family::Env), &[I32, I32], &[I32]),
    wasi("clock_res_get", To(Family::Clock), &[I32, I32], &[I32]),
    wasi("clock_time_get", To(Family::Clock), &[I32, I64, I32], &[I32]),
    wasi("fd_advise", To(Family::Fs), &[I32, I64, I64, I32], &[I32]),
    wasi("fd_allocate", To(Family::Fs), &[I32, I64, I64], &[I32]),
    wasi("fd_close", To(Family::Stdio), &[I32], &[I32]),
    wasi("fd_datasync", To(Family::Fs), &[I32], &[I32]),
    wasi("fd_fdstat_get", To(Family::Stdio), &[I32, I32], &[I32]),
    wasi("fd_fdstat_set_flags", To(Family::Fs), &[I32, I32], &[I32]),
    wasi("fd_fdstat_set_rights", To(Family::Fs), &[I32, I64, I64], &[I32]),
    wasi("fd_filestat_get", To(Family::Fs), &[I32, I32], &[I32]),
    wasi("fd_filestat_set_size", To(Family::Fs), &[I32, I64], &[I32]),
    wasi("fd_filestat_set_times", To(Family::Fs), &[I32, I64, I64, I32], &[I32]),
    wasi("fd_pread", To(Family::Fs), &[I32, I32, I32, I64, I32], &[I32]),
    wasi("fd_prestat_get", To(Family::Stdio), &[I32, I32], &[I32]),
    wasi("fd_prestat_dir_name", To(Family::Stdio), &[I32, I32, I32], &[I32]),
    wasi("fd_pwrite", To(Family::Fs), &[I32, I32, I32, I64, I32], &[I32]),
    wasi("fd_read", To(Family::Stdio), &[I32, I32, I32, I32], &[I32]),
    wasi("fd_readdir", To(Family::Fs), &[I32, I32, I32, I64, I32], &[I32]),
    wasi("fd_renumber", To(Family::Fs), &[I32, I32], &[I32]),
    wasi("fd_seek", To(Family::Stdio), &[I32, I64, I32, I32], &[I32]),
    wasi("fd_sync", To(Family::Fs), &[I32], &[I32]),
    wasi("fd_tell", To(Family::Fs), &[I32, I32], &[I32]),
    wasi("fd_write", To(Family::Stdio), &[I32, I32, I32, I32], &[I32]),
    wasi("path_create_directory", To(Family::Fs), &[I32, I32, I32], &[I32]),
    wasi("path_filestat_get", To(Family::Fs), &[I32, I32, I32, I32, I32], &[I32]),
    wasi("path_filestat_set_times", To(Family::Fs), &[I32, I32, I32, I32, I64, I64, I32], &[I32]),
    wasi("path_link", To(Family::Fs), &[I32, I32, I32, I32, I32, I32, I32], &[I32]),
    wasi("path_open", To(Family::Fs), &[I32, I32, I32, I32, I32, I64, I64, I32, I32], &[I32]),
    wasi("path_readlink", To(Family::Fs), &[I32, I32, I32, I32, I32, I32], &[I32]),
    wasi("path_remove_directory", To(Family::Fs), &[I32, I32, I32], &[I32]),
    wasi("path_rename", To(Family::Fs), &[I32, I32, I32, I32, I32, I32], &[I32]),
    wasi("path_symlink", To(Family::Fs), &[I32, I32, I32, I32, I32], &[I32]),
    wasi("path_unlink_file", To(Family::Fs), &[I32, I32, I32], &[I32]),
    wasi("poll_oneoff", To(Family::Clock), &[I32, I32, I32, I32], &[I32]),
    wasi("proc_exit", Kernel, &[I32], &[]),
    wasi("proc_raise", Kernel, &[I32], &[I32]),
    wasi("sched_yield", Kernel, &[], &[I32]),
    wasi("random_get", To(Family::Random), &[I32, I32], &[I32]),
    wasi("sock_accept", To(Family::Net), &[I32, I32, I32], &[I32]),
    wasi("sock_recv", To(Family::Net), &[I32, I32, I32, I32, I32, I32], &[I32]),
    wasi("sock_send", To(Family::Net), &[I32, I32, I32, I32, I32], &[I32]),
    wasi("sock_shutdown", To(Family::Net), &[I32, I32], &[I32]),
    // Component model interfaces (WASI 0.2 and proposals), by package/interface.
    row(C, "wasi:cli", E("exit"), Kernel),
    row(C, "wasi:cli", E("environment"), To(Family::Env)),
    row(C, "wasi:cli", P("std"), To(Family::Stdio)),
    row(C, "wasi:cli", P("terminal-"), To(Family::Stdio)),
    row(C, "wasi:io", Any, Kernel),
    row(C, "wasi:clocks", Any, To(Family::Clock)),
    row(C, "wasi:random", Any, To(Family::Random)),
    row(C, "wasi:filesystem", Any, To(Family::Fs)),
    row(C, "wasi:sockets", Any, To(Family::Net)),
    row(C, "wasi:http", Any, To(Family::Http)),
    row(C, "wasi:logging", Any, To(Family::Log)),
    row(C, "wasi:config", Any, To(Family::Config)),
    row(C, "wasi:keyvalue", Any, To(Family::Vars)),
];

fn apply(row: &Row, name: &str) -> ImportClass {
    match row.maps {
        Maps::Core => ImportClass::Core,
        Maps::To(family) => ImportClass::Needs(Need::Family(family)),
        Maps::HostFunction => ImportClass::Needs(Need::HostFunction(name.to_string())),
    }
}

/// Classifies a function import of a core module.
pub fn classify_core_import(module: &str, name: &str) -> (ImportClass, Option<Abi>) {
    core_row(module, name).map_or((ImportClass::Unknown, None), |row| (apply(row, name), Some(row.abi)))
}

/// The function type the host defines for a core import, where the catalog states one.
pub fn core_import_signature(module: &str, name: &str) -> Option<Signature> {
    core_row(module, name).and_then(|row| row.signature)
}

/// The catalog row a core module's import matches: the first, as rows are ordered.
fn core_row(module: &str, name: &str) -> Option<&'static Row> {
    CATALOG.iter().filter(|row| row.abi != Abi::Component).find(|row| row.module == module && row.names.matches(name))
}

/// Classifies a top-level import of a component, named like `wasi:cli/stdout@0.2.0`.
pub fn classify_component_import(full_name: &str) -> ImportClass {
    let unversioned = full_name.split('@').next().unwrap_or(full_name);
    let Some((package, interface)) = unversioned.split_once('/') else {
        return ImportClass::Unknown;
    };
    CATALOG
        .iter()
        .filter(|row| row.abi == Abi::Component)
        .find(|row| row.module == package && row.names.matches(interface))
        .map_or(ImportClass::Unknown, |row| apply(row, interface))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_maps_the_documented_examples() {
        let needs = |m, n| classify_core_import(m, n).0;
        assert_eq!(needs(EXTISM_ENV, "alloc"), ImportClass::Core);
        assert_eq!(needs(EXTISM_ENV, "log_info"), ImportClass::Needs(Need::Family(Family::Log)));
        assert_eq!(needs(EXTISM_ENV, "http_request"), ImportClass::Needs(Need::Family(Family::Http)));
        assert_eq!(needs(EXTISM_USER, "kv_get"), ImportClass::Needs(Need::HostFunction("kv_get".into())));
        assert_eq!(needs(WASI_P1, "fd_write"), ImportClass::Needs(Need::Family(Family::Stdio)));
        assert_eq!(needs(WASI_P1, "fd_prestat_dir_name"), ImportClass::Needs(Need::Family(Family::Stdio)));
        assert_eq!(needs(WASI_P1, "fd_readdir"), ImportClass::Needs(Need::Family(Family::Fs)));
        assert_eq!(needs(WASI_P1, "path_open"), ImportClass::Needs(Need::Family(Family::Fs)));
        assert_eq!(needs(WASI_P1, "sock_accept"), ImportClass::Needs(Need::Family(Family::Net)));
        assert_eq!(needs(WASI_P1, "proc_exit"), ImportClass::Core);
        assert_eq!(needs("env", "abort"), ImportClass::Unknown);
        assert_eq!(needs(EXTISM_ENV, "no_such_kernel_fn"), ImportClass::Unknown);
        assert_eq!(
            classify_component_import("wasi:sockets/tcp@0.2.0"),
            ImportClass::Needs(Need::Family(Family::Net))
        );
        assert_eq!(
            classify_component_import("wasi:cli/stdout@0.2.3"),
            ImportClass::Needs(Need::Family(Family::Stdio))
        );
        assert_eq!(classify_component_import("wasi:io/streams@0.2.0"), ImportClass::Core);
        assert_eq!(classify_component_import("my:pkg/thing"), ImportClass::Unknown);
        assert_eq!(classify_component_import("plain-name"), ImportClass::Unknown);
    }

    #[test]
    fn capability_strings_parse_and_print() {
        for text in ["log", "http:api.example.com", "http:localhost:8080", "http:*.example.org", "fs:ro:/data", "fs:rw:/", "host:kv_get"] {
            assert_eq!(text.parse::<Capability>().unwrap().to_string(), text);
        }
        for bad in [
            "http",
            "fs:/data",
            "fs:rx:/data",
            "fs:ro:data",
            "fs:ro:/a/../b",
            "log:x",
            "teleport",
            "http:https://x.com",
            "http:user@x.com",
            "http:x.com:0",
            "http:x.com:http",
            "host:",
        ] {
            assert!(bad.parse::<Capability>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn host_patterns_match_exactly_or_by_subdomain() {
        assert!(host_pattern_matches("api.example.com", "API.example.com"));
        assert!(!host_pattern_matches("api.example.com", "api.example.com.evil.net"));
        assert!(host_pattern_matches("*.example.org", "a.example.org"));
        assert!(host_pattern_matches("*.example.org", "a.b.example.org"));
        assert!(!host_pattern_matches("*.example.org", "example.org"));
        assert!(!host_pattern_matches("*.example.org", "evilexample.org"));
        assert!(host_pattern_matches("127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(!host_pattern_matches("127.0.0.1:8080", "127.0.0.1:8081"));
        assert!(!host_pattern_matches("127.0.0.1:8080", "127.0.0.1"));
        assert!(!host_pattern_matches("api.example.com", "api.example.com:8443"));
    }
}
