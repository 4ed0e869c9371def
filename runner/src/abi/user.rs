//! Host functions a host project registers under a capability name (`host:NAME`), linked in
//! Extism's `extism:host/user` namespace the way the Extism PDKs call them (`host_fn!`): one
//! i64 in, the handle of an Extism block holding the input bytes; one i64 out, the handle of a
//! block holding the output bytes (0 for none).
//!
//! The call budget binds them too: the input is copied out of the plugin's memory and charged
//! while the function holds it, the output is a block charged like any other, and the function
//! is told how long the call has left; one that returns after the deadline fails the call with
//! `timeout` (Stockade cannot stop the host's own code, so a function must honour
//! [`HostCall::remaining`]: nothing in the host may block past it).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Caller, Linker};

use crate::fault::HostFault;
use super::extism::host::KernelHost;
use crate::capability::EXTISM_USER;

/// What a host function knows of the call it serves.
#[derive(Clone, Debug)]
pub struct HostCall {
    /// Time left before the call's deadline.
    pub remaining: Duration,
    /// Bytes the plugin may still hold under its memory limit: an output larger than this fails
    /// the call with `memory-limit`.
    pub memory_available: u64,
}

/// A host function: the input bytes in, the output bytes out, or an error message that fails
/// the plugin's call (the message reaches the caller).
pub type HostFunction = dyn Fn(&HostCall, &[u8]) -> Result<Vec<u8>, String> + Send + Sync;

/// The host functions a host registered, by name.
#[derive(Clone, Default)]
pub struct HostFunctions(Arc<BTreeMap<String, Arc<HostFunction>>>);

impl HostFunctions {
    pub fn new(functions: BTreeMap<String, Arc<HostFunction>>) -> HostFunctions {
        HostFunctions(Arc::new(functions))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for HostFunctions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// Links every registered function that `allows` (the grant decision, by name) admits and that
/// the module imports. A granted import with no registered function stays unlinked, so the
/// plugin fails to load rather than at its first call.
pub fn add_to_linker<T: KernelHost>(
    linker: &mut Linker<T>,
    functions: &HostFunctions,
    imports: &[&str],
    allows: &dyn Fn(&str) -> bool,
) -> wasmtime::Result<()> {
    for &name in imports {
        let Some(function) = functions.0.get(name) else { continue };
        if !allows(name) {
            continue;
        }
        let function = Arc::clone(function);
        let label = name.to_string();
        linker.func_wrap(EXTISM_USER, name, move |mut caller: Caller<'_, T>, input: i64| -> wasmtime::Result<i64> {
            let kernel = caller.data_mut().kernel_mut();
            // Charged before it is copied: a copy over the budget is never made.
            let held = if input == 0 { 0 } else { kernel.memory.length(input as u64) };
            kernel.budget.charge(held, "a host function's input").map_err(wasmtime::Error::new)?;
            let bytes = match input {
                0 => Vec::new(),
                handle => match kernel.memory.block(handle as u64) {
                    Ok(block) => block.to_vec(),
                    Err(fault) => {
                        kernel.budget.release(held);
                        return Err(wasmtime::Error::new(fault));
                    }
                },
            };
            let now = Instant::now();
            let call = HostCall { remaining: kernel.deadline.saturating_duration_since(now), memory_available: kernel.budget.available() };
            if call.remaining.is_zero() {
                kernel.budget.release(held);
                return Err(wasmtime::Error::new(HostFault::Timeout(format!("no time was left to call `host:{label}`"))));
            }
            let result = function(&call, &bytes);
            kernel.budget.release(held);
            drop(bytes);
            if Instant::now() > kernel.deadline {
                return Err(wasmtime::Error::new(HostFault::Timeout(format!("`host:{label}` returned after the call's deadline"))));
            }
            match result {
                Ok(output) => kernel.alloc_bytes(&output).map(|h| h as i64).map_err(wasmtime::Error::new),
                Err(message) => Err(wasmtime::Error::new(HostFault::HostFunction(format!("`host:{label}` failed: {message}")))),
            }
        })?;
    }
    Ok(())
}
