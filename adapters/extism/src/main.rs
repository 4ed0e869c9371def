//! `stockade-extism-adapter`: the official Extism host (the `extism` crate) behind Stockade's
//! worker protocol, so that `stockade conform --adapter` judges it with the same hostile
//! corpus. It reads one case per line on stdin and answers each on stdout (corpus/README.md,
//! "The worker protocol").
//!
//! What Extism can express of a case is mapped onto its manifest; what it cannot (a capability
//! manifest, a policy key with no Extism equivalent, arguments to a core export) makes the
//! case `not-applicable`. Extism's errors are mapped to Stockade's codes by their messages
//! ([`classify`]); the mapping is in adapters/extism/README.md.

use std::io::{BufRead, Write};

use extism::{Manifest, Plugin, PluginBuilder, Wasm};
use stockade::capability::Family;
use stockade::code::Code;
use stockade::conform::accounting::{DeadlineSampler, StepClock, millis, trim_heap};
use stockade::conform::protocol::{StepReport, WORKER_PROTOCOL, WorkerRequest, WorkerResponse};
use stockade::capability::FsMode;
use stockade::policy::Policy;
use stockade::sandbox::Stage;

/// Policy keys a case may set that Extism has an equivalent of. Any other key the case sets
/// makes it not applicable: Extism would run it under different rules than the case means.
const EXPRESSIBLE: &[&str] = &[
    "limits.memory",  // manifest memory.max_pages
    "limits.timeout", // manifest timeout_ms
    "limits.fuel",    // PluginBuilder::with_fuel_limit
    "limits.vars",    // manifest memory.max_var_bytes
    "capabilities.allow", // WASI on or off
    "capabilities.http",  // allowed_hosts (host names: Extism cannot restrict ports)
    "capabilities.http-private", // Extism never refuses private addresses: granting them changes nothing
    "capabilities.fs",    // allowed_paths ("ro:" for read-only)
];

/// Capabilities that Stockade serves through WASI preview 1, which Extism links all or none of.
const WASI_CAPABILITIES: &[Family] = &[Family::Stdio, Family::Clock, Family::Random, Family::Env, Family::Fs];

fn host() -> String {
    "extism 1.30 (wasmtime 43)".to_string()
}

fn main() {
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lines() {
        let Ok(line) = line else { return };
        if line.trim().is_empty() {
            continue;
        }
        let response = match serde_json::from_str::<WorkerRequest>(&line) {
            // Every answer names the request it answers.
            Ok(request) => WorkerResponse { id: request.id.clone(), ..run(&request) },
            Err(e) => not_applicable(format!("the request does not parse: {e}")),
        };
        if serde_json::to_writer(&mut stdout, &response).is_err() || stdout.write_all(b"\n").is_err() || stdout.flush().is_err() {
            return;
        }
        trim_heap();
    }
}

fn not_applicable(why: String) -> WorkerResponse {
    WorkerResponse { protocol: WORKER_PROTOCOL.into(), host: host(), not_applicable: Some(why), ..WorkerResponse::default() }
}

/// Why Extism cannot express the case, if it cannot.
fn inexpressible(request: &WorkerRequest) -> Option<String> {
    if request.protocol != WORKER_PROTOCOL {
        return Some(format!("protocol `{}`; this adapter speaks {WORKER_PROTOCOL}", request.protocol));
    }
    if request.manifest.is_some() {
        return Some("Extism has no capability manifests".into());
    }
    let keys: Vec<String> = request.overridden_keys().into_iter().filter(|k| !EXPRESSIBLE.contains(&k.as_str())).collect();
    if !keys.is_empty() {
        return Some(format!("Extism has no equivalent of the policy keys {}", keys.join(", ")));
    }
    if let Some(call) = request.calls.iter().find(|c| !c.args.is_empty()) {
        return Some(format!("Extism calls exports with bytes, not arguments (`{}` takes {:?})", call.function, call.args));
    }
    None
}

fn run(request: &WorkerRequest) -> WorkerResponse {
    if let Some(why) = inexpressible(request) {
        return not_applicable(why);
    }
    let policy = match request.policy() {
        Ok(policy) => policy,
        Err(e) => return not_applicable(format!("the policy: {e}")),
    };
    let mut response = WorkerResponse { protocol: WORKER_PROTOCOL.into(), host: host(), ..WorkerResponse::default() };
    let mut plugins = Vec::new();
    for module in &request.modules {
        let clock = StepClock::start();
        let built = std::fs::read(module)
            .map_err(|e| format!("cannot read {module}: {e}"))
            .and_then(|bytes| build(bytes, request, &policy).map_err(|e| format!("{e:#}")));
        match built {
            Ok(plugin) => {
                response.steps.push(StepReport::measured(&clock, Code::Ok, Stage::Load));
                plugins.push(plugin);
            }
            Err(error) => {
                let code = classify_load(&error);
                response.steps.push(StepReport { error: Some(error), ..StepReport::measured(&clock, code, Stage::Load) });
                return response;
            }
        }
    }
    let timeout = policy.limits.timeout.get();
    for call in &request.calls {
        let Some(plugin) = plugins.get_mut(call.module) else {
            return not_applicable(format!("call `{}` names module {}, which is not loaded", call.function, call.module));
        };
        let input = call.input_bytes();
        for _ in 0..call.repeat.max(1) {
            let clock = StepClock::start();
            let deadline = DeadlineSampler::arm(timeout);
            let result = plugin.call::<&[u8], Vec<u8>>(&call.function, &input);
            let after = deadline.disarm();
            let mut step = match result {
                Ok(output) => StepReport::measured(&clock, Code::Ok, Stage::Call).with_output(Some(&output)),
                Err(e) => {
                    let error = format!("{e:#}");
                    let (code, stage) = classify(&error);
                    StepReport { error: Some(error), ..StepReport::measured(&clock, code, stage) }
                }
            };
            step.cpu_after_deadline_ms = Some(millis(after));
            response.steps.push(step);
        }
    }
    response
}

/// The case's policy as an Extism manifest and plugin builder.
fn build(bytes: Vec<u8>, request: &WorkerRequest, policy: &Policy) -> Result<Plugin, extism::Error> {
    let limits = &policy.limits;
    let caps = &policy.capabilities;
    let mut manifest = Manifest::new([Wasm::data(bytes)])
        .with_memory_max(u32::try_from(limits.memory.get() / 65536).unwrap_or(u32::MAX))
        .with_timeout(limits.timeout.get())
        .with_config(request.config.clone().into_iter())
        .with_allowed_hosts(caps.http.iter().map(|host| host_name(host)));
    manifest.memory.max_var_bytes = Some(limits.vars.get());
    for grant in &caps.fs {
        let path = std::fs::canonicalize(&grant.host).map_or_else(|_| grant.host.clone(), |p| p.display().to_string());
        let host = match grant.mode {
            FsMode::Ro => format!("ro:{path}"),
            FsMode::Rw => path,
        };
        manifest = manifest.with_allowed_path(host, &grant.guest);
    }
    let wasi = !caps.fs.is_empty() || caps.allow.iter().any(|c| WASI_CAPABILITIES.contains(c));
    let mut builder = PluginBuilder::new(manifest).with_wasi(wasi).with_cache_disabled();
    if let Some(fuel) = limits.fuel {
        builder = builder.with_fuel_limit(fuel);
    }
    builder.build()
}

/// A Stockade host pattern (`api.example.com`, `*.example.com`, `127.0.0.1:8080`) as Extism
/// takes it: a host name glob, without the port.
fn host_name(pattern: &str) -> String {
    if let Some(rest) = pattern.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_string();
    }
    match pattern.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host.to_string(),
        _ => pattern.to_string(),
    }
}

/// Extism's refusal to load a module, as a Stockade load code.
fn classify_load(error: &str) -> Code {
    let e = error.to_ascii_lowercase();
    if e.contains("wasm trap") || e.contains("timeout") || e.contains("fuel") {
        // Extism ran the start function while building the plugin, and it was stopped there.
        classify(error).0
    } else if e.contains("unknown import") || e.contains("invalid function import") {
        Code::UnknownImport
    } else if e.contains("incompatible import type") || e.contains("types incompatible") {
        Code::ImportTypeMismatch
    } else if e.contains("support is not enabled") || e.contains("proposal not enabled") || e.contains("feature") {
        Code::FeatureDenied
    } else if e.contains("magic header") || e.contains("unexpected end") || e.contains("failed to parse") || e.contains("expected") {
        Code::Malformed
    } else {
        Code::Invalid
    }
}

/// Extism's error for a call, as a Stockade runtime code and stage.
fn classify(error: &str) -> (Code, Stage) {
    let e = error.to_ascii_lowercase();
    // Extism instantiates lazily, at the first call: these failures happen there.
    let instantiating = e.contains("start function") || e.contains("instantiat") || e.contains("minimum") || e.contains("unknown import");
    let stage = if instantiating { Stage::Instantiate } else { Stage::Call };
    let code = if e.contains("timeout") || e.contains("epoch deadline") || e.contains("interrupt") {
        Code::Timeout
    } else if e.contains("fuel") {
        Code::FuelExhausted
    } else if e.contains("call stack exhausted") || e.contains("stack overflow") {
        Code::StackOverflow
    } else if e.contains("memory") && (e.contains("limit") || e.contains("exceed") || e.contains("minimum")) {
        Code::MemoryLimit
    } else if e.contains("table") && (e.contains("limit") || e.contains("exceed") || e.contains("minimum")) {
        Code::TableLimit
    } else if e.contains("not allowed") || e.contains("not permitted") || e.contains("permission") {
        Code::HostCallDenied
    } else if e.contains("exit status") || e.contains("exited with") {
        Code::Exit
    } else if e.contains("non-zero exit code") || e.contains("returned non-zero") {
        Code::PluginError
    } else if e.contains("out of bounds") && !e.contains("wasm trap") {
        Code::BadHostCall
    } else if e.contains("unknown import") {
        Code::UnknownImport
    } else {
        Code::Trap
    };
    (code, stage)
}
