//! A directory only this user can change, and the files in it, opened so that nobody else can
//! steer what is read: the directory is checked once (owner = the running user, not writable by
//! group or others, as ssh checks `~/.ssh`) and held open, and every file is opened relative to
//! that handle, without following a link, checked again on its descriptor (a regular file of
//! this user's that only this user can write) and bounded in size before a byte is read.
//!
//! Anyone who could change such a directory could as well run code as this user: what this
//! guards against is everyone else (other users, a directory planted for us in advance, a
//! plugin whose grants reach into it, which the sandbox refuses at load).

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// Why a directory or a file in it is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is owned by uid {owner}, not by this user (uid {user})")]
    Foreign { path: String, owner: u32, user: u32 },
    #[error("{path} is writable by others (mode {mode:o})")]
    Writable { path: String, mode: u32 },
    #[error("{path} is a secret others may read (mode {mode:o})")]
    Readable { path: String, mode: u32 },
    #[error("{path} is not a {expected}")]
    NotKind { path: String, expected: &'static str },
    #[error("{path} has {len} bytes, more than the {max} it may have")]
    TooLarge { path: String, len: u64, max: u64 },
    #[error("{path} has {len} bytes, not {expected}")]
    WrongSize { path: String, len: u64, expected: u64 },
}

/// A directory whose owner and mode checked out, held open.
pub struct PrivateDir {
    fd: OwnedFd,
    /// The directory's path as named (or, named through a link, where it leads): for messages
    /// and the grant check, which resolves it.
    path: PathBuf,
}

/// What the names of files being written start with, until they are put in place.
const TEMP_PREFIX: &str = ".tmp-";

/// Mode bits that let someone other than the owner change a file or a directory's entries.
pub const WRITABLE_BY_OTHERS: u32 = 0o022;
/// Mode bits that let anyone but the owner at a file at all: none may be set on a secret.
pub const ANY_ACCESS_BY_OTHERS: u32 = 0o077;

fn io(path: &Path) -> impl Fn(std::io::Error) -> Refusal + '_ {
    move |source| Refusal::Io { path: path.display().to_string(), source }
}

fn errno(path: &Path) -> impl Fn(rustix::io::Errno) -> Refusal + '_ {
    move |e| Refusal::Io { path: path.display().to_string(), source: e.into() }
}

/// The owner and mode checks every trusted object passes; `others` are the mode bits that
/// must be clear (`0o022` for a directory or a rebuildable file, `0o077` for a secret).
fn check_owner_and_mode(path: &Path, stat: &rustix::fs::Stat, others: u32) -> Result<(), Refusal> {
    let user = rustix::process::geteuid().as_raw();
    if stat.st_uid != user {
        return Err(Refusal::Foreign { path: path.display().to_string(), owner: stat.st_uid, user });
    }
    let mode = stat.st_mode & 0o7777;
    if mode & others & WRITABLE_BY_OTHERS != 0 {
        return Err(Refusal::Writable { path: path.display().to_string(), mode });
    }
    if mode & others != 0 {
        return Err(Refusal::Readable { path: path.display().to_string(), mode });
    }
    Ok(())
}

impl PrivateDir {
    /// Opens `path`, creating it (and its missing parents) for this user alone if it does not
    /// exist, and checks it. An existing directory is never loosened or taken over: one that
    /// fails the check is refused.
    pub fn open_or_create(path: &Path) -> Result<PrivateDir, Refusal> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let open = |path: &Path| rustix::fs::open(path, flags, Mode::empty());
        // Opened as named, on every cached run: resolving the path first was a system call per
        // component. A missing directory is created for this user alone; one named through a
        // link (a cache directory moved elsewhere) is opened where the link leads.
        let (fd, path) = match open(path) {
            Ok(fd) => (fd, path.to_path_buf()),
            Err(rustix::io::Errno::NOENT) => {
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
                    .create(path)
                    .map_err(io(path))?;
                (open(path).map_err(errno(path))?, path.to_path_buf())
            }
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                let target = path.canonicalize().map_err(io(path))?;
                (open(&target).map_err(errno(&target))?, target)
            }
            Err(e) => return Err(errno(path)(e)),
        };
        let stat = rustix::fs::fstat(&fd).map_err(errno(&path))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
            return Err(Refusal::NotKind { path: path.display().to_string(), expected: "directory" });
        }
        check_owner_and_mode(&path, &stat, WRITABLE_BY_OTHERS)?;
        Ok(PrivateDir { fd, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the file `name` for reading: not through a link, without blocking, a regular file
    /// of this user's with none of `others` set in its mode, at most `max_len` bytes long.
    /// `Ok(None)` when there is no such file.
    pub fn open_file(&self, name: &str, others: u32, max_len: u64) -> Result<Option<(File, u64)>, Refusal> {
        let path = self.path.join(name);
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let fd = match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            // O_NOFOLLOW on a link.
            Err(rustix::io::Errno::LOOP) => return Err(Refusal::NotKind { path: path.display().to_string(), expected: "regular file (it is a link)" }),
            Err(e) => return Err(errno(&path)(e)),
        };
        let stat = rustix::fs::fstat(&fd).map_err(errno(&path))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(Refusal::NotKind { path: path.display().to_string(), expected: "regular file" });
        }
        check_owner_and_mode(&path, &stat, others)?;
        let len = stat.st_size as u64;
        if len > max_len {
            return Err(Refusal::TooLarge { path: path.display().to_string(), len, max: max_len });
        }
        Ok(Some((File::from(fd), len)))
    }

    /// The whole of the file `name`, which must be exactly `len` bytes (see [`PrivateDir::open_file`]
    /// for the rest of what it must be); `Ok(None)` when there is no such file.
    pub fn read_exact(&self, name: &str, others: u32, len: u64) -> Result<Option<Vec<u8>>, Refusal> {
        let Some((mut file, found)) = self.open_file(name, others, len)? else { return Ok(None) };
        let path = || self.path.join(name).display().to_string();
        if found != len {
            return Err(Refusal::WrongSize { path: path(), len: found, expected: len });
        }
        let mut bytes = vec![0; found as usize];
        std::io::Read::read_exact(&mut file, &mut bytes).map_err(|source| Refusal::Io { path: path(), source })?;
        Ok(Some(bytes))
    }

    /// Writes `parts` to a new file and gives it the name `name`: replacing what was there, or,
    /// with `exclusive`, only if nothing was (then `Ok(false)` when something was). Readers
    /// never see half a file; the file is this user's alone (mode 0600).
    pub fn write(&self, name: &str, parts: &[&[u8]], exclusive: bool, sync: bool) -> Result<bool, Refusal> {
        let path = self.path.join(name);
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| Refusal::Io { path: path.display().to_string(), source: std::io::Error::other(e.to_string()) })?;
        let temp = format!("{TEMP_PREFIX}{}-{}", hex::encode(random), std::process::id());
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, temp.as_str(), flags, Mode::from_raw_mode(0o600)).map_err(errno(&path))?;
        let mut file = File::from(fd);
        let written = (|| {
            for part in parts {
                file.write_all(part)?;
            }
            if sync {
                file.sync_all()?;
            }
            Ok::<(), std::io::Error>(())
        })();
        let placed = written.map_err(io(&path)).and_then(|()| {
            if exclusive {
                match rustix::fs::linkat(&self.fd, temp.as_str(), &self.fd, name, AtFlags::empty()) {
                    Ok(()) => Ok(true),
                    Err(rustix::io::Errno::EXIST) => Ok(false),
                    Err(e) => Err(errno(&path)(e)),
                }
            } else {
                rustix::fs::renameat(&self.fd, temp.as_str(), &self.fd, name).map(|()| true).map_err(errno(&path))
            }
        });
        // After a rename the temporary name is gone already; after a link or a failure it goes.
        let _ = rustix::fs::unlinkat(&self.fd, temp.as_str(), AtFlags::empty());
        placed
    }

    /// Removes the entry `name` (a link is removed, never followed).
    pub fn remove(&self, name: &OsStr) -> std::io::Result<()> {
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()).map_err(Into::into)
    }

    /// Removes what writers that died left half-written (temporary files older than `age`): a
    /// crash between creating one and renaming it would otherwise leave it for good, outside
    /// every bound.
    pub fn remove_stale_temporaries(&self, age: std::time::Duration) -> std::io::Result<()> {
        let Some(before) = std::time::SystemTime::now().checked_sub(age) else { return Ok(()) };
        for entry in rustix::fs::Dir::read_from(&self.fd)? {
            let entry = entry?;
            let name: &OsStr = std::os::unix::ffi::OsStrExt::from_bytes(entry.file_name().to_bytes());
            if !name.as_encoded_bytes().starts_with(TEMP_PREFIX.as_bytes()) {
                continue;
            }
            let Ok(stat) = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) else { continue };
            if modified(&stat) < before {
                let _ = self.remove(name);
            }
        }
        Ok(())
    }

    /// The regular files of this directory whose names end in one of `extensions`: name, size
    /// and modification time, from the entries themselves (links are not followed).
    pub fn files(&self, extensions: &[&str]) -> std::io::Result<Vec<(std::time::SystemTime, u64, std::ffi::OsString)>> {
        let mut files = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.fd)? {
            let entry = entry?;
            let name: &OsStr = std::os::unix::ffi::OsStrExt::from_bytes(entry.file_name().to_bytes());
            if Path::new(name).extension().is_none_or(|x| !extensions.iter().any(|e| x == *e)) {
                continue;
            }
            let Ok(stat) = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) else { continue };
            if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
                continue;
            }
            files.push((modified(&stat), stat.st_size as u64, name.to_owned()));
        }
        Ok(files)
    }
}

/// When the entry was last changed.
fn modified(stat: &rustix::fs::Stat) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::new(stat.st_mtime.max(0) as u64, stat.st_mtime_nsec.clamp(0, 999_999_999) as u32)
}

/// `path` as it resolves: canonical where it exists, else its nearest existing ancestor's
/// canonical path with the rest appended (a directory not created yet can still be reached
/// through a grant over its parent).
pub fn resolve(path: &Path) -> PathBuf {
    if let Ok(canonical) = path.canonicalize() {
        return canonical;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) if parent != absolute => resolve(parent).join(name),
        _ => absolute,
    }
}
