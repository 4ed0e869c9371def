//! The call budget's memory half: one byte count per plugin that everything held for the
//! plugin draws on, the linear memories of all its instances and every host-side buffer alike.
//!
//! The limit binds the plugin, not only its wasm code. Extism blocks with their bookkeeping,
//! the input, log lines, captured stdio, open descriptors and HTTP bodies are charged here at
//! their real cost while they are held, and vars (which outlive calls and instances) are
//! charged to every instance of the plugin for as long as they exist. A charge that does not
//! fit fails with `memory-limit` before the host allocates.
//!
//! The per-item costs below are what the host really spends beside the bytes themselves
//! (allocator headers, map nodes, struct headers), rounded up; they were measured as the
//! process's RSS growth per item under `/usr/bin/time -v` (see runner/tests/containment.rs).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::fault::HostFault;

/// Host bytes per live or freed Extism block beyond its contents (two map entries and the
/// size index).
pub const BLOCK_COST: u64 = 96;
/// Host bytes per kept log line beyond its text (level, offsets, and the line's rendering).
pub const LOG_LINE_COST: u64 = 32;
/// Host bytes per var beyond its key and value (map node, two heap headers).
pub const VAR_ENTRY_COST: u64 = 96;
/// Host bytes per open WASI descriptor (resource-table entry, cap-std handle, kernel file).
pub const DESCRIPTOR_COST: u64 = 4096;
/// Host bytes per table element: a function or external reference is a pointer (wasmtime 48,
/// 64-bit hosts).
pub const TABLE_ELEMENT_BYTES: u64 = 8;
/// The most a plugin may hand the host in one WASI call (paths, iovec and subscription
/// arrays), wasmtime's "hostcall fuel": a copy past it fails with `ENOMEM` before the host
/// allocates. wasmtime's default is 128 MiB a call, more than the default policy's whole
/// memory; a path is at most 4 KiB and an iovec array 1,024 entries on Linux. The data of a
/// read or write is not a copy of this kind (see `GuardedWasi::exempt_data`).
pub const HOSTCALL_BYTES: usize = 1 << 20;

/// A plugin's memory budget. Cheap to clone: clones share the count, so every instance of the
/// plugin (its limiter, its Extism kernel, its WASI context) charges the one budget, and what
/// an instance holds is released when it is dropped.
#[derive(Clone, Debug)]
pub struct MemoryBudget(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    cap: u64,
    /// Bytes held by the plugin's instances.
    held: AtomicU64,
    /// Bytes held for the plugin as a whole (its vars), kept with the vars themselves.
    shared: Arc<AtomicU64>,
    peak: AtomicU64,
}

impl MemoryBudget {
    pub fn new(cap: u64, shared: Arc<AtomicU64>) -> MemoryBudget {
        MemoryBudget(Arc::new(Inner { cap, held: AtomicU64::new(0), shared, peak: AtomicU64::new(0) }))
    }

    /// A budget of its own, sharing nothing (tests, one-off instances).
    pub fn standalone(cap: u64) -> MemoryBudget {
        MemoryBudget::new(cap, Arc::new(AtomicU64::new(0)))
    }

    pub fn cap(&self) -> u64 {
        self.0.cap
    }

    /// Everything charged now: this instance's and the plugin's shared state.
    pub fn in_use(&self) -> u64 {
        self.0.held.load(Relaxed).saturating_add(self.0.shared.load(Relaxed))
    }

    /// How many more bytes may be charged.
    pub fn available(&self) -> u64 {
        self.0.cap.saturating_sub(self.in_use())
    }

    /// The most that was in use at once since the last [`MemoryBudget::reset_peak`].
    pub fn peak(&self) -> u64 {
        self.0.peak.load(Relaxed).max(self.in_use())
    }

    /// Starts a new peak from what is held now (a kept instance starts a call).
    pub fn reset_peak(&self) {
        self.0.peak.store(self.in_use(), Relaxed);
    }

    /// Charges `bytes` for `what`, or refuses with `memory-limit` and charges nothing. Instances
    /// of one plugin on several threads charge one budget; the check and the charge are one
    /// atomic step, so together they cannot pass the cap.
    pub fn charge(&self, bytes: u64, what: &str) -> Result<(), HostFault> {
        let shared = self.0.shared.load(Relaxed);
        let refuse = |held: u64| self.refusal(what, bytes, held.saturating_add(shared));
        let mut held = self.0.held.load(Relaxed);
        loop {
            let after = held.checked_add(bytes).ok_or_else(|| refuse(held))?;
            if after.saturating_add(shared) > self.0.cap {
                return Err(refuse(held));
            }
            match self.0.held.compare_exchange_weak(held, after, Relaxed, Relaxed) {
                Ok(_) => {
                    self.0.peak.fetch_max(after.saturating_add(shared), Relaxed);
                    return Ok(());
                }
                Err(now) => held = now,
            }
        }
    }

    fn refusal(&self, what: &str, bytes: u64, in_use: u64) -> HostFault {
        HostFault::MemoryLimit(format!("{what} needs {bytes} more bytes, {in_use} are in use; the limit is {}", self.0.cap))
    }

    pub fn release(&self, bytes: u64) {
        // Saturating: a release never takes the count below zero, whatever the order.
        let _ = self.0.held.fetch_update(Relaxed, Relaxed, |held| Some(held.saturating_sub(bytes)));
    }

    /// Moves a charge from `from` to `to` bytes (a buffer that grows or shrinks).
    pub fn resize(&self, from: u64, to: u64, what: &str) -> Result<(), HostFault> {
        if to > from { self.charge(to - from, what) } else {
            self.release(from - to);
            Ok(())
        }
    }

    /// Charges plugin-wide state (vars): counted in every instance of the plugin.
    pub fn resize_shared(&self, from: u64, to: u64, what: &str) -> Result<(), HostFault> {
        if to > from {
            let more = to - from;
            if more > self.available() {
                return Err(self.refusal(what, more, self.in_use()));
            }
            self.0.shared.fetch_add(more, Relaxed);
            self.0.peak.fetch_max(self.in_use(), Relaxed);
        } else {
            let _ = self.0.shared.fetch_update(Relaxed, Relaxed, |held| Some(held.saturating_sub(from - to)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_fail_whole_and_count_shared_state() {
        let shared = Arc::new(AtomicU64::new(0));
        let a = MemoryBudget::new(100, shared.clone());
        let b = MemoryBudget::new(100, shared);
        a.charge(60, "x").unwrap();
        assert!(matches!(a.charge(41, "y"), Err(HostFault::MemoryLimit(_))));
        assert_eq!(a.in_use(), 60, "a refused charge charges nothing");
        b.resize_shared(0, 30, "vars").unwrap();
        assert_eq!(a.in_use(), 90, "vars count in every instance");
        assert!(a.charge(11, "z").is_err());
        a.resize(60, 10, "x").unwrap();
        assert_eq!(a.in_use(), 40);
        // An instance's peak is what it saw at its own charges (vars set by another instance are
        // counted from its next charge on).
        assert_eq!(a.peak(), 60);
        a.release(1000);
        assert_eq!(a.in_use(), 30);
    }
}
