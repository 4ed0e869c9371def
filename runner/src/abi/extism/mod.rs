//! The Extism kernel (`extism:host/env`), natively in the host: its state ([`Kernel`]), its
//! allocator ([`memory`]) and its host functions ([`host`]).
//!
//! Everything the kernel holds for a plugin is charged to the plugin's [`MemoryBudget`]: the
//! blocks and their bookkeeping, the input, the log lines; vars, which outlive calls, are
//! charged to every instance of the plugin while they exist. Error text and log volume are
//! capped by the output limit.

pub mod host;
pub mod memory;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::fault::HostFault;
use crate::budget::{LOG_LINE_COST, MemoryBudget, VAR_ENTRY_COST};
use crate::log::Logs;
pub use memory::ExtismMemory;

/// The kernel's state in one store.
pub struct Kernel {
    pub memory: ExtismMemory,
    pub budget: MemoryBudget,
    input: Vec<u8>,
    input_handle: Option<u64>,
    output: Option<(u64, u64)>,
    error: u64,
    pub logs: Logs,
    config: Arc<BTreeMap<String, String>>,
    vars: Arc<Vars>,
    pub(crate) http_allowlist: Arc<Vec<String>>,
    /// Whether a granted host name may resolve to a non-public address.
    pub(crate) http_private: bool,
    pub(crate) http_status: i32,
    /// The last response's headers (as JSON) until the plugin takes them; charged while held.
    http_headers: Option<String>,
    /// Output, error text and log volume may each be at most this many bytes per call.
    pub output_cap: u64,
    /// When the call's time is up; host calls that block (HTTP) get only what is left.
    pub deadline: Instant,
}

/// What the kernel holds goes back to the plugin's budget with it.
impl Drop for Kernel {
    fn drop(&mut self) {
        self.memory.release(&self.budget);
        let headers = self.http_headers.as_ref().map_or(0, |h| h.len() as u64);
        self.budget.release(self.input.capacity() as u64 + self.logs.cost() + headers);
    }
}

/// What a host gives the kernel of each instance of one plugin.
#[derive(Clone)]
pub struct KernelSetup {
    pub config: Arc<BTreeMap<String, String>>,
    pub vars: Arc<Vars>,
    pub http_allowlist: Arc<Vec<String>>,
    pub http_private: bool,
    pub output_cap: u64,
}

impl Kernel {
    pub fn new(setup: &KernelSetup, budget: MemoryBudget, deadline: Instant) -> Kernel {
        Kernel {
            memory: ExtismMemory::default(),
            input: Vec::new(),
            input_handle: None,
            output: None,
            error: 0,
            logs: Logs::new(setup.output_cap),
            config: setup.config.clone(),
            vars: setup.vars.clone(),
            http_allowlist: setup.http_allowlist.clone(),
            http_private: setup.http_private,
            http_status: 0,
            http_headers: None,
            output_cap: setup.output_cap,
            deadline,
            budget,
        }
    }

    /// Starts a call: its input (charged while the call holds it), its deadline, an empty
    /// kernel and no logs.
    pub fn begin_call(&mut self, input: &[u8], deadline: Instant) -> Result<(), HostFault> {
        self.reset();
        self.take_logs();
        self.set_input(input)?;
        self.deadline = deadline;
        self.http_status = 0;
        self.set_http_headers(None)?;
        Ok(())
    }

    fn set_input(&mut self, input: &[u8]) -> Result<(), HostFault> {
        self.budget.resize(self.input.capacity() as u64, input.len() as u64, "the input")?;
        self.input = input.to_vec();
        Ok(())
    }

    /// Keeps (or with `None` drops) the last response's headers, charging what they hold.
    pub fn set_http_headers(&mut self, headers: Option<String>) -> Result<(), HostFault> {
        let old = self.http_headers.as_ref().map_or(0, |h| h.len() as u64);
        let new = headers.as_ref().map_or(0, |h| h.len() as u64);
        self.budget.resize(old, new, "HTTP response headers")?;
        self.http_headers = headers;
        Ok(())
    }

    /// The last response's headers, handed over (and no longer charged).
    pub fn take_http_headers(&mut self) -> Option<String> {
        let headers = self.http_headers.take()?;
        self.budget.release(headers.len() as u64);
        Some(headers)
    }

    /// Drops what the call left in host memory before the instance waits for the next call.
    pub fn end_call(&mut self) {
        let _ = self.set_http_headers(None);
        self.reset();
        self.memory.release(&self.budget);
        self.budget.release(self.input.capacity() as u64);
        self.input = Vec::new();
        self.take_logs();
    }

    /// The kernel's `reset`: frees all Extism memory and forgets input, output and error.
    pub fn reset(&mut self) {
        self.memory.reset(&self.budget);
        self.input_handle = None;
        self.output = None;
        self.error = 0;
    }

    /// The call's log lines, handed over (and no longer charged).
    pub fn take_logs(&mut self) -> Logs {
        let logs = std::mem::replace(&mut self.logs, Logs::new(self.output_cap));
        self.budget.release(logs.cost());
        logs
    }

    /// Allocates a block within the budget.
    pub fn alloc(&mut self, len: u64) -> Result<u64, HostFault> {
        self.memory.alloc(len, &self.budget)
    }

    /// Copies `bytes` into a new block; no bytes is handle 0, as the ABI has it.
    pub fn alloc_bytes(&mut self, bytes: &[u8]) -> Result<u64, HostFault> {
        let handle = self.alloc(bytes.len() as u64)?;
        if handle != 0 {
            self.memory.store(handle, bytes)?;
        }
        Ok(handle)
    }

    /// A whole block as (lossy) UTF-8.
    pub fn block_text(&self, handle: u64) -> Result<String, HostFault> {
        let bytes = self.memory.block(handle)?;
        // `from_utf8` first: its ASCII fast path is several times quicker than the lossy scan.
        Ok(match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        })
    }

    pub fn input(&self) -> &[u8] {
        &self.input
    }

    /// The input as a block, made once per call.
    pub fn input_offset(&mut self) -> Result<u64, HostFault> {
        if let Some(handle) = self.input_handle {
            return Ok(handle);
        }
        // Borrowed out and back rather than copied: the input can be the largest value here.
        let input = std::mem::take(&mut self.input);
        let allocated = self.alloc_bytes(&input);
        self.input = input;
        let handle = allocated?;
        self.input_handle = Some(handle);
        Ok(handle)
    }

    pub fn set_output(&mut self, handle: u64, len: u64) -> Result<(), HostFault> {
        if len > self.output_cap {
            return Err(HostFault::OutputTooLarge(format!("{len} bytes of output; the limit is {}", self.output_cap)));
        }
        if len > 0 {
            self.memory.load(handle, len)?;
        }
        self.output = Some((handle, len));
        Ok(())
    }

    pub fn output_handle(&self) -> Option<(u64, u64)> {
        self.output
    }

    /// Error text is capped like output: it is rendered in every report.
    pub fn set_error(&mut self, handle: u64) -> Result<(), HostFault> {
        if handle != 0 {
            let len = self.memory.block(handle)?.len() as u64;
            if len > self.output_cap {
                return Err(HostFault::OutputTooLarge(format!("{len} bytes of error text; the limit is {}", self.output_cap)));
            }
        }
        self.error = handle;
        Ok(())
    }

    pub fn error_handle(&self) -> u64 {
        self.error
    }

    /// The output the plugin set, copied out.
    pub fn output(&self) -> Option<Vec<u8>> {
        let (handle, len) = self.output?;
        self.memory.load(handle, len).ok().map(<[u8]>::to_vec)
    }

    /// The error text the plugin set.
    pub fn error_text(&self) -> Option<String> {
        (self.error != 0).then(|| self.block_text(self.error).ok()).flatten()
    }

    /// Keeps a log line: its text and per-line cost count against the log cap and the budget.
    pub fn log(&mut self, level: &'static str, handle: u64) -> Result<(), HostFault> {
        let bytes = self.memory.block(handle)?;
        let cost = bytes.len() as u64 + LOG_LINE_COST;
        self.budget.charge(cost, "a log line")?;
        if let Err(fault) = self.logs.push(level, bytes) {
            self.budget.release(cost);
            return Err(fault);
        }
        Ok(())
    }

    /// `config_get`: the host-given value the key block names, copied into a new block (charged
    /// as a block). The key is looked up where it lies, never copied (a 60 MiB key rendered as
    /// text was three times that in host memory, uncharged); one that is not UTF-8 names nothing.
    pub fn config_to_block(&mut self, key: u64) -> Result<u64, HostFault> {
        let config = Arc::clone(&self.config);
        let Some(value) = self.block_str(key)?.and_then(|key| config.get(key)) else { return Ok(0) };
        self.alloc_bytes(value.as_bytes())
    }

    /// A whole block as UTF-8, where it lies; `None` when it is not UTF-8.
    pub fn block_str(&self, handle: u64) -> Result<Option<&str>, HostFault> {
        Ok(std::str::from_utf8(self.memory.block(handle)?).ok())
    }

    /// `var_get`: the var the key block names, copied into a new block (charged as a block),
    /// straight from where the var is kept.
    pub fn var_to_block(&mut self, key: u64) -> Result<u64, HostFault> {
        // The value is copied out (at most the vars limit, which vars are charged within) rather
        // than the key, whose length the plugin chooses.
        let key = self.memory.block(key)?;
        // A key longer than the vars limit names no var: it is not rendered (lossily, up to
        // three times its length) to find that out.
        if key.len() as u64 > self.vars.cap {
            return Ok(0);
        }
        let key = String::from_utf8_lossy(key);
        let value = self.vars.with(&key, |value| value.map(<[u8]>::to_vec));
        value.map_or(Ok(0), |value| self.alloc_bytes(&value))
    }

    /// `var_set`: the key and value blocks (a value handle of 0 removes the var). Checked against
    /// the vars limit and the memory budget before anything is copied; a key that is not UTF-8
    /// is a bad call.
    pub fn set_var_from_blocks(&self, key: u64, value: u64) -> Result<(), HostFault> {
        let key = self.memory.block(key)?;
        let value = match value {
            0 => None,
            handle => Some(self.memory.block(handle)?),
        };
        // A key that is not UTF-8 is kept as its lossy rendering, which is at least as long as
        // the bytes: a var that could not fit even so is refused before that copy is made.
        if let Some(value) = value {
            self.vars.fits(key.len() as u64 + value.len() as u64 + VAR_ENTRY_COST)?;
        }
        let key = String::from_utf8_lossy(key);
        self.vars.set(&key, value, &self.budget)
    }
}

/// A plugin's vars: kept across calls and shared by its instances. Every operation is O(1)
/// (a hash map, and the total is kept, not summed), and the total, at each var's real cost, counts against both
/// the vars limit and the memory budget of every instance.
pub struct Vars {
    map: Mutex<HashMap<String, Vec<u8>>>,
    /// Bytes held, at cost; the same counter every instance's budget includes.
    bytes: Arc<AtomicU64>,
    cap: u64,
}

/// What the vars held leaves the plugin's total with them.
impl Drop for Vars {
    fn drop(&mut self) {
        let held: u64 = self.lock().iter().map(|(key, value)| Vars::cost(key, value)).sum();
        let _ = self.bytes.fetch_update(Relaxed, Relaxed, |total| Some(total.saturating_sub(held)));
    }
}

impl Vars {
    pub fn new(cap: u64) -> Vars {
        Vars { map: Mutex::new(HashMap::new()), bytes: Arc::new(AtomicU64::new(0)), cap }
    }

    /// Empty vars under the same cap and counted in the same total as these: for an instance
    /// whose vars must not outlive it (`instance-reuse = "per-call"`). What it holds leaves
    /// the total when it is dropped.
    pub fn fresh(&self) -> Vars {
        Vars { map: Mutex::new(HashMap::new()), bytes: self.bytes.clone(), cap: self.cap }
    }

    /// The counter that instances' budgets share.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.bytes.clone()
    }

    fn cost(key: &str, value: &[u8]) -> u64 {
        (key.len() + value.len()) as u64 + VAR_ENTRY_COST
    }

    /// Refuses a var of `cost` bytes that could not fit under the limit even if it replaced one.
    fn fits(&self, cost: u64) -> Result<(), HostFault> {
        if cost > self.cap {
            return Err(HostFault::MemoryLimit(format!("a var of {cost} bytes; the limit is {}", self.cap)));
        }
        Ok(())
    }

    /// `f` of the var's value where it is kept (no copy of it is made here).
    pub fn with<R>(&self, key: &str, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
        f(self.lock().get(key).map(Vec::as_slice))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>> {
        // A panic elsewhere while holding the lock leaves a map that is still consistent.
        self.map.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets (or with `None` removes) a var. The key and value are borrowed: they are copied only
    /// once the vars limit and the memory budget have taken their cost.
    fn set(&self, key: &str, value: Option<&[u8]>, budget: &MemoryBudget) -> Result<(), HostFault> {
        let mut map = self.lock();
        let old = map.get(key).map_or(0, |v| Vars::cost(key, v));
        let new = value.map_or(0, |v| Vars::cost(key, v));
        let total = self.bytes.load(Relaxed).saturating_sub(old).saturating_add(new);
        if new > old && total > self.cap {
            return Err(HostFault::MemoryLimit(format!("vars would hold {total} bytes; the limit is {}", self.cap)));
        }
        budget.resize_shared(old, new, "vars")?;
        match value {
            Some(value) => {
                if let Some(kept) = map.get_mut(key) {
                    kept.clear();
                    kept.extend_from_slice(value);
                    kept.shrink_to_fit();
                } else {
                    map.insert(key.to_owned(), value.to_vec());
                }
            }
            None => {
                map.remove(key);
            }
        }
        Ok(())
    }
}
