//! The store's resource limiter: linear memory and tables draw on the plugin's one memory
//! budget (which the host-side state draws on too), tables at their real bytes per element;
//! table elements are also capped in sum.

use crate::budget::{MemoryBudget, TABLE_ELEMENT_BYTES};
use crate::policy::Limits;

pub(crate) struct Limiter {
    pub budget: MemoryBudget,
    table_cap: u64,
    memories: usize,
    instances: usize,
    table_elements: u64,
    /// Bytes of linear memory this store's instances hold, charged to the budget.
    linear_bytes: u64,
    /// The last growth charged, taken back if the engine then refuses it.
    last_growth: u64,
    /// The last table growth charged (bytes), likewise.
    last_table_growth: u64,
    /// Fuel the call started with, when fuel is metered.
    pub fuel_given: Option<u64>,
    /// What the store's instance holds beside memories and tables, charged when the store is
    /// made ([`Limiter::hold_instance`]).
    instance_bytes: u64,
}

impl Limiter {
    pub fn new(limits: &Limits, budget: MemoryBudget) -> Limiter {
        Limiter {
            budget,
            table_cap: limits.tables,
            memories: limits.memories as usize,
            instances: limits.instances as usize,
            table_elements: 0,
            linear_bytes: 0,
            last_growth: 0,
            last_table_growth: 0,
            fuel_given: limits.fuel,
            instance_bytes: 0,
        }
    }

    /// Charges what the instance will hold beside its memories and tables
    /// ([`crate::analyze::Analysis::instance_bytes`]) before it is made.
    pub fn hold_instance(&mut self, bytes: u64) -> Result<(), crate::fault::HostFault> {
        self.budget.charge(bytes, "the instance")?;
        self.instance_bytes += bytes;
        Ok(())
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // An error, not `false`: the plugin stops here with `memory-limit` instead of spinning
        // on a failing memory.grow until its timeout.
        let more = (desired as u64).saturating_sub(current as u64);
        self.budget.charge(more, "growing linear memory").map_err(wasmtime::Error::new)?;
        self.linear_bytes += more;
        self.last_growth = more;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // Charged in `memory_growing`, refused by the engine after (the memory's own maximum):
        // the bytes were never allocated, so the charge goes back.
        self.budget.release(self.last_growth);
        self.linear_bytes -= self.last_growth.min(self.linear_bytes);
        self.last_growth = 0;
        Ok(())
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let more = (desired as u64).saturating_sub(current as u64);
        let total = self.table_elements.saturating_add(more);
        if total > self.table_cap {
            return Err(wasmtime::Error::new(TableLimit(format!(
                "growing tables to {total} elements in all; the limit is {}",
                self.table_cap
            ))));
        }
        // What the elements take in host memory, whatever the element count allows: ten
        // million of them are 80 MB.
        let bytes = more.saturating_mul(TABLE_ELEMENT_BYTES);
        self.budget.charge(bytes, "growing a table").map_err(wasmtime::Error::new)?;
        self.table_elements = total;
        self.last_table_growth = bytes;
        Ok(true)
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.budget.release(self.last_table_growth);
        self.table_elements = self.table_elements.saturating_sub(self.last_table_growth / TABLE_ELEMENT_BYTES);
        self.last_table_growth = 0;
        Ok(())
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn memories(&self) -> usize {
        self.memories
    }
}


/// A store's memories and tables go with it: what they were charged goes back to the plugin's
/// budget.
impl Drop for Limiter {
    fn drop(&mut self) {
        let tables = self.table_elements.saturating_mul(TABLE_ELEMENT_BYTES);
        self.budget.release(self.linear_bytes.saturating_add(tables).saturating_add(self.instance_bytes));
    }
}

/// The table counterpart of `HostFault::MemoryLimit`, raised by the limiter.
#[derive(Debug, thiserror::Error)]
#[error("table limit: {0}")]
pub(crate) struct TableLimit(String);
