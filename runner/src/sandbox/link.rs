//! The linker, built from the granted capabilities alone.
//!
//! Each host function is registered only when the catalog row for its import is core or maps
//! to a capability that is granted, so what the static check allows and what can be linked
//! come from the same table.

use wasmtime::{Caller, Engine, ExternType, Linker, Module};

use crate::abi::HostFault;
use crate::capability::{self, Capability, EXTISM_ENV, FsMode, ImportClass, Need, WASI_P1};
use crate::policy::FsGrant;
use crate::manifest::Manifest;
use crate::policy::Policy;

use super::State;

/// What this plugin may link against: the policy's grants, narrowed to what its manifest
/// declares when it has one.
pub struct Grants<'a> {
    policy: &'a Policy,
    declared: Option<&'a [Capability]>,
}

impl<'a> Grants<'a> {
    pub fn new(policy: &'a Policy, manifest: Option<&'a Manifest>) -> Grants<'a> {
        Grants { policy, declared: manifest.map(|m| &m.capabilities[..]) }
    }

    pub fn allows(&self, need: &Need) -> bool {
        match self.declared {
            Some(declared) => declared.iter().any(|c| c.covers(need) && self.policy.grants(c)),
            None => self.policy.grants_need(need),
        }
    }

    /// The directories to preopen: the policy's `fs` grants, narrowed to what the manifest
    /// declares (and to the declared mode) when it has one.
    pub fn preopens(&self) -> Vec<(FsGrant, FsMode)> {
        let grants = &self.policy.capabilities.fs;
        match self.declared {
            None => grants.iter().map(|g| (g.clone(), g.mode)).collect(),
            Some(declared) => declared
                .iter()
                .filter_map(|c| match c {
                    Capability::Fs { mode, path } => grants
                        .iter()
                        .find(|g| g.guest == *path && g.mode.covers(*mode))
                        .map(|g| (g.clone(), *mode)),
                    _ => None,
                })
                .collect(),
        }
    }

    /// The hosts HTTP requests may go to: the manifest's declared `http:` hosts that the
    /// policy grants, or without a manifest the policy's list.
    pub fn http_allowlist(&self) -> Vec<String> {
        match self.declared {
            None => self.policy.capabilities.http.clone(),
            Some(declared) => declared
                .iter()
                .filter(|c| self.policy.grants(c))
                .filter_map(|c| match c {
                    Capability::Http { host } => Some(host.clone()),
                    _ => None,
                })
                .collect(),
        }
    }

    /// Whether the import `module.name` may be linked to the host's function. A name the
    /// catalog does not know is never linked.
    fn allows_import(&self, module: &str, name: &str) -> bool {
        match capability::classify_core_import(module, name).0 {
            ImportClass::Core => true,
            ImportClass::Needs(need) => self.allows(&need),
            ImportClass::Unknown => false,
        }
    }
}

type Result<T> = wasmtime::Result<T>;

fn fault(fault: HostFault) -> wasmtime::Error {
    wasmtime::Error::new(fault)
}

fn as_u64(value: i64) -> u64 {
    value as u64
}

/// Reads a whole block as (lossy) UTF-8.
fn block_text(caller: &Caller<'_, State>, handle: i64) -> Result<String> {
    let bytes = caller.data().extism.memory.block(as_u64(handle)).map_err(fault)?;
    // `from_utf8` first: its ASCII fast path is several times quicker than the lossy scan.
    Ok(match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    })
}

/// Log and output captures share the output limit.
fn record_log(caller: &mut Caller<'_, State>, level: &'static str, handle: i64) -> Result<()> {
    let text = block_text(caller, handle)?;
    let state = caller.data_mut();
    state.extism.log_bytes += text.len() as u64;
    if state.extism.log_bytes > state.limiter.output_cap {
        return Err(fault(HostFault::OutputTooLarge(format!("more than {} bytes of logs", state.limiter.output_cap))));
    }
    state.extism.logs.push((level, text));
    Ok(())
}

macro_rules! define {
    ($linker:ident, $grants:ident, $name:literal, $func:expr) => {
        debug_assert!(
            capability::classify_core_import(EXTISM_ENV, $name).0 != ImportClass::Unknown,
            "`{}` is defined by the host but missing from the capability catalog",
            $name
        );
        if $grants.allows_import(EXTISM_ENV, $name) {
            $linker.func_wrap(EXTISM_ENV, $name, $func)?;
        }
    };
}

/// The Extism log level the host reports: info, so debug and trace lines are not sent.
const LOG_LEVEL_INFO: i32 = 2;

/// The linker for one module: Extism functions by grant, and WASI when the module imports it.
pub fn linker(engine: &Engine, grants: &Grants<'_>, module: &Module) -> Result<Linker<State>> {
    let mut linker = extism_linker(engine, grants)?;
    if module.imports().any(|i| i.module() == WASI_P1) {
        add_wasi(&mut linker, grants, module)?;
    }
    Ok(linker)
}

/// WASI preview 1 from wasmtime-wasi, which registers its functions as one set. Every import
/// of the module whose capability is not granted is then shadowed by a function that refuses
/// the call, so the real one is never reachable. (The context is built from the grants too:
/// preopens only from `fs` grants, no environment, stdio in capped pipes.)
fn add_wasi(linker: &mut Linker<State>, grants: &Grants<'_>, module: &Module) -> Result<()> {
    wasmtime_wasi::p1::add_to_linker_sync(linker, |state: &mut State| {
        state.wasi.as_mut().expect("a store for a WASI module carries a WASI context")
    })?;
    linker.allow_shadowing(true);
    for import in module.imports().filter(|i| i.module() == WASI_P1) {
        if grants.allows_import(WASI_P1, import.name()) {
            continue;
        }
        if let ExternType::Func(ty) = import.ty() {
            let name = import.name().to_string();
            linker.func_new(WASI_P1, import.name(), ty, move |_, _, _| {
                Err(fault(HostFault::Denied(format!("`{WASI_P1}.{name}` needs a capability that is not granted"))))
            })?;
        }
    }
    linker.allow_shadowing(false);
    Ok(())
}

fn extism_linker(engine: &Engine, grants: &Grants<'_>) -> Result<Linker<State>> {
    let mut linker: Linker<State> = Linker::new(engine);
    let l = &mut linker;
    let g = grants;

    // The kernel: memory.
    define!(l, g, "alloc", |mut c: Caller<'_, State>, len: i64| -> Result<i64> {
        c.data_mut().extism_alloc(as_u64(len)).map(|h| h as i64).map_err(fault)
    });
    define!(l, g, "free", |mut c: Caller<'_, State>, handle: i64| c.data_mut().extism.memory.free(as_u64(handle)));
    define!(l, g, "length", |c: Caller<'_, State>, handle: i64| -> i64 {
        c.data().extism.memory.length(as_u64(handle)) as i64
    });
    define!(l, g, "length_unsafe", |c: Caller<'_, State>, handle: i64| -> i64 {
        c.data().extism.memory.length(as_u64(handle)) as i64
    });
    define!(l, g, "load_u8", |c: Caller<'_, State>, offset: i64| -> Result<i32> {
        Ok(i32::from(c.data().extism.memory.load(as_u64(offset), 1).map_err(fault)?[0]))
    });
    define!(l, g, "load_u64", |c: Caller<'_, State>, offset: i64| -> Result<i64> {
        let bytes = c.data().extism.memory.load(as_u64(offset), 8).map_err(fault)?;
        Ok(i64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    });
    define!(l, g, "store_u8", |mut c: Caller<'_, State>, offset: i64, value: i32| -> Result<()> {
        c.data_mut().extism.memory.store(as_u64(offset), &[value as u8]).map_err(fault)
    });
    define!(l, g, "store_u64", |mut c: Caller<'_, State>, offset: i64, value: i64| -> Result<()> {
        c.data_mut().extism.memory.store(as_u64(offset), &value.to_le_bytes()).map_err(fault)
    });
    define!(l, g, "reset", |mut c: Caller<'_, State>| c.data_mut().reset_extism_kernel());
    define!(l, g, "memory_bytes", |c: Caller<'_, State>| -> i64 { c.data().extism.memory.footprint() as i64 });

    // The kernel: input, output, errors.
    define!(l, g, "input_length", |c: Caller<'_, State>| -> i64 { c.data().extism.input.len() as i64 });
    define!(l, g, "input_load_u8", |c: Caller<'_, State>, offset: i64| -> Result<i32> {
        let input = &c.data().extism.input;
        let at = usize::try_from(offset).ok().filter(|&i| i < input.len());
        let at = at.ok_or_else(|| fault(HostFault::BadCall(format!("input offset {offset} is past the input"))))?;
        Ok(i32::from(input[at]))
    });
    define!(l, g, "input_load_u64", |c: Caller<'_, State>, offset: i64| -> Result<i64> {
        let input = &c.data().extism.input;
        let range = usize::try_from(offset).ok().and_then(|i| Some(i..i.checked_add(8)?)).filter(|r| r.end <= input.len());
        let range = range.ok_or_else(|| fault(HostFault::BadCall(format!("input offset {offset} + 8 is past the input"))))?;
        Ok(i64::from_le_bytes(input[range].try_into().expect("8 bytes")))
    });
    define!(l, g, "input_offset", |mut c: Caller<'_, State>| -> Result<i64> {
        if let Some(handle) = c.data().extism.input_handle {
            return Ok(handle as i64);
        }
        let state = c.data_mut();
        // Borrowed out and back rather than copied: the input can be the largest value here.
        let input = std::mem::take(&mut state.extism.input);
        let allocated = state.extism_alloc_bytes(&input);
        state.extism.input = input;
        let handle = allocated.map_err(fault)?;
        state.extism.input_handle = Some(handle);
        Ok(handle as i64)
    });
    define!(l, g, "output_set", |mut c: Caller<'_, State>, handle: i64, len: i64| -> Result<()> {
        let state = c.data_mut();
        let (handle, len) = (as_u64(handle), as_u64(len));
        if len > state.limiter.output_cap {
            return Err(fault(HostFault::OutputTooLarge(format!("{len} bytes of output; the limit is {}", state.limiter.output_cap))));
        }
        if len > 0 {
            state.extism.memory.load(handle, len).map_err(fault)?;
        }
        state.extism.output = Some((handle, len));
        Ok(())
    });
    define!(l, g, "output_length", |c: Caller<'_, State>| -> i64 { c.data().extism.output.map_or(0, |(_, l)| l as i64) });
    define!(l, g, "output_offset", |c: Caller<'_, State>| -> i64 { c.data().extism.output.map_or(0, |(h, _)| h as i64) });
    define!(l, g, "error_set", |mut c: Caller<'_, State>, handle: i64| -> Result<()> {
        let handle = as_u64(handle);
        if handle != 0 {
            c.data().extism.memory.block(handle).map_err(fault)?;
        }
        c.data_mut().extism.error = handle;
        Ok(())
    });
    define!(l, g, "error_get", |c: Caller<'_, State>| -> i64 { c.data().extism.error as i64 });

    // Host functions behind capabilities.
    define!(l, g, "config_get", |mut c: Caller<'_, State>, key: i64| -> Result<i64> {
        let key = block_text(&c, key)?;
        let Some(value) = c.data().extism.config.get(&key).cloned() else { return Ok(0) };
        let state = c.data_mut();
        let handle = state.extism_alloc_bytes(value.as_bytes()).map_err(fault)?;
        Ok(handle as i64)
    });
    define!(l, g, "var_get", |mut c: Caller<'_, State>, key: i64| -> Result<i64> {
        let key = block_text(&c, key)?;
        let value = c.data().extism.vars.lock().expect("vars lock").get(&key).cloned();
        let Some(value) = value else { return Ok(0) };
        let state = c.data_mut();
        let handle = state.extism_alloc_bytes(&value).map_err(fault)?;
        Ok(handle as i64)
    });
    define!(l, g, "var_set", |c: Caller<'_, State>, key: i64, value: i64| -> Result<()> {
        let key = block_text(&c, key)?;
        let state = c.data();
        let mut vars = state.extism.vars.lock().expect("vars lock");
        if value == 0 {
            vars.remove(&key);
            return Ok(());
        }
        let value = state.extism.memory.block(as_u64(value)).map_err(fault)?.to_vec();
        let others: u64 = vars.iter().filter(|(k, _)| **k != key).map(|(k, v)| (k.len() + v.len()) as u64).sum();
        let total = others + (key.len() + value.len()) as u64;
        if total > state.limiter.vars_cap {
            return Err(fault(HostFault::MemoryLimit(format!(
                "vars would hold {total} bytes; the limit is {}",
                state.limiter.vars_cap
            ))));
        }
        vars.insert(key, value);
        Ok(())
    });
    define!(l, g, "http_request", |mut c: Caller<'_, State>, request: i64, body: i64| -> Result<i64> {
        let text = block_text(&c, request)?;
        let request: crate::abi::http::HttpRequest = serde_json::from_str(&text)
            .map_err(|e| fault(HostFault::BadCall(format!("the HTTP request is not valid JSON: {e}"))))?;
        let body = match body {
            0 => None,
            handle => Some(c.data().extism.memory.block(as_u64(handle)).map_err(fault)?.to_vec()),
        };
        let state = c.data();
        let time_left = state.extism.deadline.saturating_duration_since(std::time::Instant::now());
        let response = crate::abi::http::send(
            &request,
            body.as_deref(),
            &state.extism.http_allowlist,
            time_left,
            state.limiter.output_cap,
        )
        .map_err(fault)?;
        let state = c.data_mut();
        state.extism.http_status = i32::from(response.status);
        state.extism.http_headers = Some(serde_json::to_string(&response.headers).expect("headers serialise"));
        let handle = state.extism_alloc_bytes(&response.body).map_err(fault)?;
        Ok(handle as i64)
    });
    define!(l, g, "http_status_code", |c: Caller<'_, State>| -> i32 { c.data().extism.http_status });
    define!(l, g, "http_headers", |mut c: Caller<'_, State>| -> Result<i64> {
        let Some(headers) = c.data_mut().extism.http_headers.take() else { return Ok(0) };
        let state = c.data_mut();
        let handle = state.extism_alloc_bytes(headers.as_bytes()).map_err(fault)?;
        Ok(handle as i64)
    });
    define!(l, g, "get_log_level", |_c: Caller<'_, State>| -> i32 { LOG_LEVEL_INFO });
    define!(l, g, "log_trace", |mut c: Caller<'_, State>, h: i64| record_log(&mut c, "trace", h));
    define!(l, g, "log_debug", |mut c: Caller<'_, State>, h: i64| record_log(&mut c, "debug", h));
    define!(l, g, "log_info", |mut c: Caller<'_, State>, h: i64| record_log(&mut c, "info", h));
    define!(l, g, "log_warn", |mut c: Caller<'_, State>, h: i64| record_log(&mut c, "warn", h));
    define!(l, g, "log_error", |mut c: Caller<'_, State>, h: i64| record_log(&mut c, "error", h));
    Ok(linker)
}
