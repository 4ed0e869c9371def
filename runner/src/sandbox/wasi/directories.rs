//! `fd_readdir` an entry at a time.
//!
//! wasmtime-wasi lists a directory by reading all of it into host memory, and stats every
//! entry twice, on every call, whatever the cookie and however small the plugin's buffer: a
//! directory of 200,000 entries held the host for a second and 17 MB a call, and a plugin can
//! call it in a loop. Here the listing runs over a directory handle of the sandbox's own: the
//! entries before the cookie are skipped without a stat, entries are written one at a time
//! until the plugin's buffer is full, and the listing yields to the call's deadline every
//! [`YIELD_EVERY`] entries. Host memory is one entry's, whatever the directory holds.
//!
//! The entries, their order, cookies, `d_ino` values and the way the last entry is cut at the
//! end of the buffer are wasmtime-wasi's, so a plugin sees what it saw before.
//!
//! The handles mirror the plugin's directory descriptors: each preopen, and each directory
//! `path_open` opens, opened again through the parent's handle by the same path (so it is
//! confined to the same grant), moved by `fd_renumber` and dropped by `fd_close`.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;

use cap_fs_ext::DirExt;
use cap_std::fs::{Dir, FileTypeExt, MetadataExt};
use wasmtime_wasi::p1::types;
use wiggle::{GuestMemory, GuestPtr};

/// Entries examined between two chances for the deadline to end the call.
const YIELD_EVERY: u32 = 256;
/// The size of a preview 1 `dirent` in the plugin's memory.
const DIRENT_BYTES: usize = 24;

/// The plugin's directory descriptors, by number.
#[derive(Default)]
pub(super) struct Directories {
    by_fd: HashMap<u32, Dir>,
}

impl Directories {
    /// A preopen: `host` is the granted directory.
    pub fn preopened(&mut self, fd: u32, host: &Path) -> std::io::Result<()> {
        let dir = Dir::open_ambient_dir(host, cap_std::ambient_authority())?;
        self.by_fd.insert(fd, dir);
        Ok(())
    }

    /// A directory `path_open` opened at `path` under `parent`. A parent without a handle, or
    /// a path that no longer opens, leaves `fd` without one: its listing is refused.
    pub fn opened(&mut self, fd: u32, parent: u32, path: &str, follow: bool) {
        let Some(parent) = self.by_fd.get(&parent) else { return };
        let opened = if follow { parent.open_dir(path) } else { parent.open_dir_nofollow(path) };
        if let Ok(dir) = opened {
            self.by_fd.insert(fd, dir);
        }
    }

    pub fn closed(&mut self, fd: u32) {
        self.by_fd.remove(&fd);
    }

    /// `fd_renumber(from, to)`: `to` is closed and becomes `from`.
    pub fn renumbered(&mut self, from: u32, to: u32) {
        self.by_fd.remove(&to);
        if let Some(dir) = self.by_fd.remove(&from) {
            self.by_fd.insert(to, dir);
        }
    }

    pub fn get(&self, fd: u32) -> Option<&Dir> {
        self.by_fd.get(&fd)
    }
}

/// Writes the entries of `dir` from `cookie` on into `buf`, as preview 1's `fd_readdir`: each
/// entry is a `dirent` and its name, the last one cut at the end of the buffer. Returns the
/// bytes written, `buf_len` when the buffer is full.
pub(super) async fn list(
    dir: &Dir,
    memory: &mut GuestMemory<'_>,
    buf: GuestPtr<u8>,
    buf_len: u32,
    cookie: u64,
) -> Result<u32, types::Error> {
    let this = dir.dir_metadata().map_err(io_error)?;
    let this_ino = inode_hash(this.dev(), this.ino());
    let mut out = Out { at: buf, left: buf_len };
    // "." and ".." come first, both with the directory's own number (as wasmtime-wasi does).
    for (index, name) in [".", ".."].into_iter().enumerate() {
        let index = index as u64;
        if index >= cookie && out.entry(memory, index + 1, this_ino, types::Filetype::Directory, name.as_bytes())? {
            return Ok(buf_len);
        }
    }
    let mut index = 2u64;
    let mut examined = 0u32;
    for entry in dir.entries().map_err(io_error)? {
        examined += 1;
        if examined % YIELD_EVERY == 0 {
            tokio::task::yield_now().await;
        }
        let entry = entry.map_err(io_error)?;
        let name = entry.file_name();
        let name = name.to_str().ok_or(types::Errno::Ilseq)?;
        if index >= cookie {
            let meta = entry.metadata().map_err(io_error)?;
            let file_type = filetype(meta.file_type());
            if out.entry(memory, index + 1, inode_hash(meta.dev(), meta.ino()), file_type, name.as_bytes())? {
                return Ok(buf_len);
            }
        }
        index += 1;
    }
    Ok(buf_len - out.left)
}

/// Where the next bytes of the listing go, and how many more fit.
struct Out {
    at: GuestPtr<u8>,
    left: u32,
}

impl Out {
    /// Writes one entry, cut at the end of the buffer; `true` when the buffer is full.
    fn entry(&mut self, memory: &mut GuestMemory<'_>, next: u64, ino: u64, file_type: types::Filetype, name: &[u8]) -> Result<bool, types::Error> {
        let mut dirent = [0u8; DIRENT_BYTES];
        dirent[0..8].copy_from_slice(&next.to_le_bytes());
        dirent[8..16].copy_from_slice(&ino.to_le_bytes());
        dirent[16..20].copy_from_slice(&u32::try_from(name.len())?.to_le_bytes());
        dirent[20] = file_type as u8;
        Ok(self.put(memory, &dirent)? || self.put(memory, name)?)
    }

    /// Writes what fits of `bytes`; `true` when the buffer is full.
    fn put(&mut self, memory: &mut GuestMemory<'_>, bytes: &[u8]) -> Result<bool, types::Error> {
        let len = u32::try_from(bytes.len())?.min(self.left);
        memory.copy_from_slice(&bytes[..len as usize], self.at.as_array(len))?;
        self.at = self.at.add(len)?;
        self.left -= len;
        Ok(self.left == 0)
    }
}

/// A file's preview 1 inode number: wasmtime-wasi's hash of its device and inode, so that
/// `fd_readdir` agrees with `path_filestat_get` and `fd_filestat_get`.
fn inode_hash(dev: u64, ino: u64) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (dev, ino).hash(&mut hasher);
    hasher.finish()
}

fn filetype(file_type: cap_std::fs::FileType) -> types::Filetype {
    if file_type.is_dir() {
        types::Filetype::Directory
    } else if file_type.is_file() {
        types::Filetype::RegularFile
    } else if file_type.is_symlink() {
        types::Filetype::SymbolicLink
    } else if file_type.is_block_device() {
        types::Filetype::BlockDevice
    } else if file_type.is_char_device() {
        types::Filetype::CharacterDevice
    } else {
        // FIFOs and sockets: preview 1 has no code for a FIFO, and wasmtime-wasi refused to
        // list a directory holding a socket at all.
        types::Filetype::Unknown
    }
}

fn io_error(error: std::io::Error) -> types::Error {
    wasmtime_wasi::p2::FsError::from(error).into()
}
