//! The Extism kernel (`extism:host/env`), natively in the host.
//!
//! Extism plugins keep their input, output, errors and every value they exchange with the
//! host in "Extism memory": blocks addressed by 64-bit offsets, read and written one byte or
//! one u64 at a time through kernel calls. Here that memory is a host-side byte vector with
//! an allocation table; every access is checked against a live block, so a wild pointer, a
//! huge length or a handle used after `free` is a `bad-host-call`, never a host panic and
//! never a read outside the plugin's own blocks.

use std::collections::BTreeMap;

use super::HostFault;

/// The first handle handed out; 0 means "no block" in the ABI.
const FIRST_OFFSET: u64 = 8;

/// Extism memory of one plugin instance.
#[derive(Debug, Default)]
pub struct ExtismMemory {
    data: Vec<u8>,
    /// Live blocks: start offset -> length.
    blocks: BTreeMap<u64, u64>,
    /// Freed blocks by start offset, reused first-fit.
    free: BTreeMap<u64, u64>,
    /// The block the last access fell in, as (start, length): the PDKs read and write a block
    /// eight bytes at a time, so nearly every access hits it and skips the tree lookup.
    /// Always a live block: cleared whenever a block is freed.
    last_block: std::cell::Cell<Option<(u64, u64)>>,
}

fn bad(message: String) -> HostFault {
    HostFault::BadCall(message)
}

impl ExtismMemory {
    /// Bytes the memory occupies (what counts against `limits.memory`).
    pub fn footprint(&self) -> u64 {
        self.data.len() as u64
    }

    /// Allocates `len` bytes. `budget` is how many more bytes the memory may grow by.
    pub fn alloc(&mut self, len: u64, budget: u64) -> Result<u64, HostFault> {
        if len == 0 {
            return Ok(0);
        }
        if let Some((&start, &free_len)) = self.free.iter().find(|(_, l)| **l >= len) {
            self.free.remove(&start);
            if free_len > len {
                self.free.insert(start + len, free_len - len);
            }
            self.blocks.insert(start, len);
            self.data[start as usize..(start + len) as usize].fill(0);
            return Ok(start);
        }
        let start = (self.data.len() as u64).max(FIRST_OFFSET);
        let end = start
            .checked_add(len)
            .ok_or_else(|| HostFault::MemoryLimit(format!("alloc({len}) overflows")))?;
        if end - self.data.len() as u64 > budget {
            return Err(HostFault::MemoryLimit(format!("alloc({len}) exceeds the memory limit")));
        }
        self.data.resize(end as usize, 0);
        self.blocks.insert(start, len);
        Ok(start)
    }

    /// Frees a block. Freeing 0 or a handle that is not a live block is ignored, as in Extism;
    /// what matters is that the block can no longer be read or written.
    pub fn free(&mut self, handle: u64) {
        self.last_block.set(None);
        if let Some(len) = self.blocks.remove(&handle) {
            self.free.insert(handle, len);
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

    /// Frees everything.
    pub fn reset(&mut self) {
        self.last_block.set(None);
        self.data.clear();
        self.blocks.clear();
        self.free.clear();
    }

    /// Gives the host memory back, so an idle instance does not hold its last call's blocks.
    pub fn release(&mut self) {
        self.reset();
        self.data = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_bounds_checked() {
        let mut m = ExtismMemory::default();
        let a = m.alloc(16, 1 << 20).unwrap();
        let b = m.alloc(8, 1 << 20).unwrap();
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
        let c = m.alloc(4, 1 << 20).unwrap();
        assert_eq!(c, a, "freed space is reused");
        assert_eq!(m.load(c, 4).unwrap(), &[0; 4], "reused space is zeroed");
        assert!(matches!(m.alloc(1 << 30, 1 << 20), Err(HostFault::MemoryLimit(_))));
        assert!(matches!(m.alloc(u64::MAX, u64::MAX), Err(HostFault::MemoryLimit(_))));
    }
}
