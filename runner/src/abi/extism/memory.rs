//! Extism memory: the blocks a plugin exchanges with the host, addressed by 64-bit offsets
//! and read and written one byte or one u64 at a time through kernel calls.
//!
//! Here that memory is a host-side byte vector with an allocation table; every access is
//! checked against a live block, so a wild pointer, a huge length or a handle used after
//! `free` is a `bad-host-call`, never a host panic and never a read outside the plugin's own
//! blocks. What it costs the host (the vector's capacity, and every block's bookkeeping at
//! [`BLOCK_COST`]) is charged to the plugin's memory budget before it is allocated, so a
//! plugin allocating one-byte blocks in a loop reaches `memory-limit`, not the host's RAM.

use std::collections::{BTreeMap, BTreeSet};

use crate::fault::HostFault;
use crate::budget::{BLOCK_COST, MemoryBudget};

/// The first handle handed out; 0 means "no block" in the ABI.
const FIRST_OFFSET: u64 = 8;

/// Extism memory of one plugin instance.
#[derive(Debug, Default)]
pub struct ExtismMemory {
    data: Vec<u8>,
    /// Live blocks: start offset -> length.
    blocks: BTreeMap<u64, u64>,
    /// Freed blocks: start offset -> length, and the same as (length, start) for best fit.
    free: BTreeMap<u64, u64>,
    free_by_size: BTreeSet<(u64, u64)>,
    /// The block the last access fell in, as (start, length): the PDKs read and write a block
    /// eight bytes at a time, so nearly every access hits it and skips the tree lookup.
    /// Always a live block: cleared whenever a block is freed.
    last_block: std::cell::Cell<Option<(u64, u64)>>,
    /// What this memory has charged to the budget.
    charged: u64,
}

fn bad(message: String) -> HostFault {
    HostFault::BadCall(message)
}

impl ExtismMemory {
    /// Host bytes the memory occupies: the vector's capacity and the blocks' bookkeeping.
    pub fn footprint(&self) -> u64 {
        self.data.capacity() as u64 + self.entries() * BLOCK_COST
    }

    /// Bytes of blocks handed out, as the kernel's `memory_bytes` reports it.
    pub fn bytes_in_use(&self) -> u64 {
        self.data.len() as u64
    }

    fn entries(&self) -> u64 {
        (self.blocks.len() + self.free.len()) as u64
    }

    /// Charges the budget up to `capacity` bytes of data and `entries` blocks, before the
    /// host allocates them.
    fn reserve(&mut self, budget: &MemoryBudget, capacity: u64, entries: u64) -> Result<(), HostFault> {
        let want = capacity.saturating_add(entries.saturating_mul(BLOCK_COST));
        if want > self.charged {
            budget.charge(want - self.charged, "Extism memory")?;
            self.charged = want;
        }
        Ok(())
    }

    /// Gives back whatever is charged beyond the real footprint.
    fn settle(&mut self, budget: &MemoryBudget) {
        let now = self.footprint();
        if now < self.charged {
            budget.release(self.charged - now);
            self.charged = now;
        }
    }

    /// Allocates `len` zeroed bytes, charging `budget`.
    pub fn alloc(&mut self, len: u64, budget: &MemoryBudget) -> Result<u64, HostFault> {
        if len == 0 {
            return Ok(0);
        }
        // Best fit among freed blocks: O(log n), however many blocks the plugin made.
        if let Some(&(free_len, start)) = self.free_by_size.range((len, 0)..).next() {
            self.reserve(budget, self.data.capacity() as u64, self.entries() + 1)?;
            self.free_by_size.remove(&(free_len, start));
            self.free.remove(&start);
            if free_len > len {
                self.insert_free(start + len, free_len - len);
            }
            self.blocks.insert(start, len);
            self.data[start as usize..(start + len) as usize].fill(0);
            self.settle(budget);
            return Ok(start);
        }
        let start = (self.data.len() as u64).max(FIRST_OFFSET);
        let end = start.checked_add(len).ok_or_else(|| HostFault::MemoryLimit(format!("alloc({len}) overflows")))?;
        let capacity = self.data.capacity() as u64;
        // Grow by doubling, as a vector does, but never past what the budget leaves.
        let target = if end <= capacity {
            capacity
        } else {
            // The most capacity the budget can still pay for, beside the blocks' bookkeeping.
            let affordable = self
                .charged
                .saturating_add(budget.available())
                .saturating_sub((self.entries() + 1).saturating_mul(BLOCK_COST));
            end.max(capacity.saturating_mul(2).min(affordable))
        };
        self.reserve(budget, target, self.entries() + 1)?;
        let target = usize::try_from(target).map_err(|_| HostFault::MemoryLimit(format!("alloc({len}) is too large")))?;
        if target > self.data.capacity() {
            self.data.reserve_exact(target - self.data.len());
        }
        self.data.resize(end as usize, 0);
        self.blocks.insert(start, len);
        self.settle(budget);
        Ok(start)
    }

    fn insert_free(&mut self, start: u64, len: u64) {
        self.free.insert(start, len);
        self.free_by_size.insert((len, start));
    }

    /// Frees a block. Freeing 0 or a handle that is not a live block is ignored, as in Extism;
    /// what matters is that the block can no longer be read or written.
    pub fn free(&mut self, handle: u64) {
        self.last_block.set(None);
        if let Some(len) = self.blocks.remove(&handle) {
            self.insert_free(handle, len);
        }
    }

    /// The length of a live block, or 0.
    pub fn length(&self, handle: u64) -> u64 {
        self.blocks.get(&handle).copied().unwrap_or(0)
    }

    /// Checks that `[offset, offset + n)` lies inside one live block.
    fn range(&self, offset: u64, n: u64) -> Result<std::ops::Range<usize>, HostFault> {
        let (start, len) = match self.last_block.get() {
            Some((start, len)) if (start..start + len).contains(&offset) => (start, len),
            _ => {
                let (&start, &len) = self
                    .blocks
                    .range(..=offset)
                    .next_back()
                    .ok_or_else(|| bad(format!("offset {offset:#x} is in no allocated block")))?;
                self.last_block.set(Some((start, len)));
                (start, len)
            }
        };
        let end = offset.checked_add(n).ok_or_else(|| bad(format!("offset {offset:#x} + {n} overflows")))?;
        if end > start + len {
            return Err(bad(format!("{n} bytes at {offset:#x} run past the block at {start:#x} ({len} bytes)")));
        }
        Ok(offset as usize..end as usize)
    }

    pub fn load(&self, offset: u64, n: u64) -> Result<&[u8], HostFault> {
        let range = self.range(offset, n)?;
        Ok(&self.data[range])
    }

    pub fn store(&mut self, offset: u64, bytes: &[u8]) -> Result<(), HostFault> {
        let range = self.range(offset, bytes.len() as u64)?;
        self.data[range].copy_from_slice(bytes);
        Ok(())
    }

    /// The whole of a live block.
    pub fn block(&self, handle: u64) -> Result<&[u8], HostFault> {
        let len = self.blocks.get(&handle).ok_or_else(|| bad(format!("{handle:#x} is not an allocated block")))?;
        Ok(&self.data[handle as usize..(handle + len) as usize])
    }

    /// Frees everything (the kernel's `reset`); the vector keeps its capacity, still charged.
    pub fn reset(&mut self, budget: &MemoryBudget) {
        self.last_block.set(None);
        self.data.clear();
        self.blocks = BTreeMap::new();
        self.free = BTreeMap::new();
        self.free_by_size = BTreeSet::new();
        self.settle(budget);
    }

    /// Gives the host memory back, so an idle instance does not hold its last call's blocks.
    pub fn release(&mut self, budget: &MemoryBudget) {
        self.data = Vec::new();
        self.reset(budget);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_bounds_checked() {
        let budget = MemoryBudget::standalone(1 << 20);
        let mut m = ExtismMemory::default();
        let a = m.alloc(16, &budget).unwrap();
        let b = m.alloc(8, &budget).unwrap();
        assert_ne!(a, 0);
        m.store(a, b"0123456789abcdef").unwrap();
        assert_eq!(m.load(a + 8, 8).unwrap(), b"89abcdef");
        assert!(m.load(a + 9, 8).is_err(), "a read may not cross into the next block");
        assert!(m.load(0, 1).is_err());
        assert!(m.load(u64::MAX, 8).is_err());
        assert!(m.load(b, u64::MAX).is_err());
        m.free(a);
        assert!(m.load(a, 1).is_err(), "use after free");
        assert_eq!(m.length(a), 0);
        let c = m.alloc(4, &budget).unwrap();
        assert_eq!(c, a, "freed space is reused");
        assert_eq!(m.load(c, 4).unwrap(), &[0; 4], "reused space is zeroed");
        assert!(matches!(m.alloc(1 << 30, &budget), Err(HostFault::MemoryLimit(_))));
        assert!(matches!(m.alloc(u64::MAX, &MemoryBudget::standalone(u64::MAX)), Err(HostFault::MemoryLimit(_))));
        assert_eq!(budget.in_use(), m.footprint(), "the budget holds exactly the footprint");
        m.release(&budget);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn bookkeeping_is_charged_per_block() {
        let budget = MemoryBudget::standalone(1 << 20);
        let mut m = ExtismMemory::default();
        let mut blocks = 0u64;
        while m.alloc(1, &budget).is_ok() {
            blocks += 1;
        }
        // One-byte blocks cost their bookkeeping: the budget, not the block count, stops them.
        assert!(blocks < (1 << 20) / BLOCK_COST, "{blocks} one-byte blocks fit in 1 MiB");
        assert!(blocks > (1 << 20) / (BLOCK_COST + 8) / 2, "{blocks}");
        assert!(budget.in_use() <= 1 << 20);
        assert_eq!(budget.in_use(), m.footprint());
    }
}
