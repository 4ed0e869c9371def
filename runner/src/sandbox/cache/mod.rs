//! Compiled modules, cached by the module's cache key (the BLAKE3 of its bytes) and the
//! engine's compatibility hash.
//!
//! In memory, a compiled [`Module`] is shared by every load of the same bytes in one process
//! (a hot reload costs a lookup): each shared engine remembers what it compiled. On disk, in
//! the user's cache directory by default, bounded in size (least recently used go first), each
//! artifact is stored with a keyed BLAKE3 tag (a MAC) and checked before it is deserialized:
//! deserializing trusts its input completely, so it must never see bytes this cache did not
//! write (a truncated file, another engine's artifact, anything planted).
//!
//! The key is what makes an artifact trusted, so it lives apart from the artifacts, in a
//! directory of its own ([`key_dir`]), and nobody but this user may steer either directory
//! (see `private_dir`): a directory or key owned by someone else, writable by others, a
//! link, a device or a file of the wrong size is not used. The sandbox refuses a plugin whose
//! directory grants contain, or lie inside, the cache directory or the key's directory
//! (`grant-exposes-cache`). Any fault (no home, a full disk, a foreign directory, a corrupt
//! file) makes the run uncached, with a warning, never a tool error and never trust.

mod private_dir;

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

use crate::analyze::ValidatedBodies;
use crate::vet::ValidationMemo;

/// The key's file, in [`key_dir`].
const KEY_FILE: &str = "cache.key";
const KEY_LEN: u64 = 32;
/// The largest validation memo read back (a memo holds a few numbers per function body).
const MAX_MEMO_BYTES: u64 = 64 << 20;
const MAC_LEN: usize = blake3::OUT_LEN;
/// Compiled modules' file extension.
const ARTIFACT: &str = "cwasm";
/// Validation memos' file extension.
const MEMO: &str = "validated";
/// The layout of a cache file (3: payload, then its keyed BLAKE3 tag; 2 had an HMAC-SHA-256
/// tag), in every name: builds that lay files out differently can share a directory without
/// taking each other's files for forgeries.
const FILE_LAYOUT: u32 = 3;
/// Bumped whenever what [`ValidatedBodies`] holds, or how a body's cost is counted, changes.
const MEMO_FORMAT: u32 = 1;

/// Feeds `Hash` output into SHA-256, so the engine hash is the same in every process.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        unreachable!("only the full digest is used")
    }
}

/// What a compiled module depends on besides its bytes: the wasmtime version, the target and
/// every engine setting that changes code generation (features, fuel, epochs …).
pub fn engine_hash(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..16])
}

/// Why the disk cache is not used for this process (the run goes on uncached).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache directory: {0}")]
    Dir(private_dir::Refusal),
    #[error("cache key: {0}")]
    Key(private_dir::Refusal),
    #[error("no directory for the cache key (no home directory)")]
    NoKeyDir,
    #[error("cannot get random bytes for the cache key: {0}")]
    Random(String),
}

/// How old a half-written file must be before it is taken for a dead writer's: far longer than
/// any write of an artifact takes.
const STALE_TEMPORARY: std::time::Duration = std::time::Duration::from_secs(600);

/// The bytes of compiled modules a cache directory may hold before the least recently used
/// are removed. A compiled plugin is typically 2 to 10 times its module's size.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// Compiled modules on disk, for one engine configuration.
pub struct DiskCache {
    /// The engine whose artifacts these are: what they are deserialized into.
    engine: Engine,
    dir: private_dir::PrivateDir,
    key: [u8; 32],
    engine_hash: String,
    max_bytes: u64,
    /// The first fault met after opening (a write that failed, a file refused), for the caller
    /// to report once; later faults are only logged.
    fault: Mutex<Option<String>>,
}

/// Where a module came from, for stats and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Compiled,
    /// Compiled earlier in this process.
    Memory,
    /// Read from the disk cache.
    Disk,
}

/// The platform's user cache directory for Stockade (`$XDG_CACHE_HOME/stockade` or
/// `~/.cache/stockade` on Linux, `~/Library/Caches/stockade` on macOS, `%LOCALAPPDATA%\stockade`
/// on Windows), or `STOCKADE_CACHE_DIR` when it is set, as wasmtime and extism place theirs.
pub fn default_dir() -> Option<PathBuf> {
    match std::env::var_os("STOCKADE_CACHE_DIR") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => dirs::cache_dir().map(|dir| dir.join("stockade")),
    }
}

/// Where the cache's key lives: this user's state directory (`$XDG_STATE_HOME/stockade`, or
/// `~/.local/state/stockade`; the local data directory where a platform has no state
/// directory), apart from the compiled modules it vouches for, so that no cache directory,
/// wherever it is put, holds the key to its own artifacts.
pub fn key_dir() -> Option<PathBuf> {
    dirs::state_dir().or_else(dirs::data_local_dir).map(|dir| dir.join("stockade"))
}

/// The directories no plugin's grant may reach (contain, or lie inside): the key's directory
/// always, since a plugin that could write the key could forge code for every later cached run,
/// and the cache directory in use. Resolved as the kernel would, so that a link or `..` in a
/// grant does not hide an overlap.
pub fn guarded_dirs(cache_dir: Option<&Path>) -> Vec<PathBuf> {
    key_dir().into_iter().chain(cache_dir.map(Path::to_path_buf)).map(|dir| private_dir::resolve(&dir)).collect()
}

/// Whether a grant of `granted` reaches into `guarded` or the other way round.
pub fn overlaps(granted: &Path, guarded: &Path) -> bool {
    let granted = private_dir::resolve(granted);
    granted.starts_with(guarded) || guarded.starts_with(&granted)
}

impl DiskCache {
    /// The module for `key`, if this cache has a trustworthy one.
    pub fn get(&self, key: &str) -> Option<Module> {
        let name = self.file_name(key);
        let verified = self.map_verified(&name, self.max_bytes)?;
        // SAFETY: the file holds exactly what `Module::serialize` produced for an engine with
        // this compatibility hash, then its tag: keyed BLAKE3 under this directory's private key
        // proves this cache wrote them, and the file name binds the engine hash. wasmtime maps
        // the same open file (private, copy-on-write) and runs the code in place, with no copy
        // into fresh memory; the tag after the artifact is outside every section it reads.
        // The file is never changed in place (see `map_verified`).
        let module = unsafe { Module::deserialize_open_file(&self.engine, verified.file.try_clone().ok()?) }.ok()?;
        // Used now: the last to be evicted. (Setting the time takes ownership, not write
        // access: the descriptor already open does.)
        let _ = verified.file.set_modified(std::time::SystemTime::now());
        Some(module)
    }

    pub fn put(&self, key: &str, module: &Module) {
        let Ok(bytes) = module.serialize() else { return };
        // A cache that cannot be written is only slower; the load itself succeeded.
        if let Err(error) = self.write_signed(&self.file_name(key), &bytes) {
            self.record_fault(format!("cannot write the module cache: {error}"));
        }
        if let Err(error) = self.evict() {
            self.record_fault(format!("cannot trim the module cache {}: {error}", self.dir.path().display()));
        }
    }

    /// The first fault this cache met since it was opened (a later one is only logged).
    pub fn fault(&self) -> Option<String> {
        self.fault.lock().ok().and_then(|fault| fault.clone())
    }

    fn record_fault(&self, message: String) {
        tracing::warn!("{message}");
        if let Ok(mut fault) = self.fault.lock() {
            fault.get_or_insert(message);
        }
    }

    /// The cache directory, resolved.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn file_name(&self, key: &str) -> String {
        format!("{key}-{}-{FILE_LAYOUT}.{ARTIFACT}", self.engine_hash)
    }

    /// The validation memo's file for a module under a feature set. Its name binds this
    /// build's version and the memo's format: what counts as a body's cost may change
    /// between versions, never between runs of one.
    fn memo_name(key: &str, features: wasmparser::WasmFeatures) -> String {
        let version = env!("CARGO_PKG_VERSION");
        format!("{key}-{:016x}-{version}-{MEMO_FORMAT}-{FILE_LAYOUT}.{MEMO}", features.bits())
    }

    /// Removes the least recently used artifacts and validation memos until the directory
    /// holds at most `max_bytes` of them.
    fn evict(&self) -> std::io::Result<()> {
        self.dir.remove_stale_temporaries(STALE_TEMPORARY)?;
        let mut files = self.dir.files(&[ARTIFACT, MEMO])?;
        let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
        files.sort();
        for (_, len, name) in files {
            if total <= self.max_bytes {
                break;
            }
            self.dir.remove(&name)?;
            total -= len;
        }
        Ok(())
    }

    /// Opens (creating it if need be) the cache directory `dir` for `engine`'s artifacts.
    pub fn open(dir: &Path, engine: &Engine) -> Result<DiskCache, CacheError> {
        DiskCache::open_bounded(dir, engine, DEFAULT_MAX_BYTES)
    }

    /// [`DiskCache::open`] holding at most `max_bytes` of artifacts and memos. Refuses a
    /// directory (the cache's or the key's) or a key that someone else could have written.
    pub fn open_bounded(dir: &Path, engine: &Engine, max_bytes: u64) -> Result<DiskCache, CacheError> {
        let key_dir = key_dir().ok_or(CacheError::NoKeyDir)?;
        let key = read_or_make_key(&key_dir)?;
        let dir = private_dir::PrivateDir::open_or_create(dir).map_err(CacheError::Dir)?;
        Ok(DiskCache { engine: engine.clone(), dir, key, engine_hash: engine_hash(engine), max_bytes, fault: Mutex::new(None) })
    }

    /// The tag of a cache file: keyed BLAKE3 over its name (which binds the module's digest,
    /// the engine and the layout) and its payload. BLAKE3 rather than HMAC-SHA-256 because
    /// every cached run checks the whole artifact: SHA-256 over a 370 KB artifact was 5% of a
    /// cached `stockade run`, and BLAKE3's SIMD code does the same several times faster.
    fn tag(&self, name: &str, payload: &[u8]) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        hasher.update(&(name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update(payload);
        hasher.finalize()
    }

    /// The file (payload, then tag), mapped, when its tag is right. Mapped rather than read:
    /// the pages come from the page cache instead of being zeroed and copied, which was a fifth
    /// of a cached `stockade run`. The tag comes last so that the payload starts the file, as
    /// wasmtime maps an artifact. This cache never changes a file in place (it writes a new one
    /// and renames it; eviction unlinks), and only this user can change the directory, so the
    /// file stays what was checked. A file that is a link, not this user's, writable by others
    /// or over `max_len` is refused before it is mapped.
    fn map_verified(&self, name: &str, max_len: u64) -> Option<Verified> {
        let (file, _) = match self.dir.open_file(name, private_dir::WRITABLE_BY_OTHERS, max_len.saturating_add(MAC_LEN as u64)) {
            Ok(found) => found?,
            Err(refusal) => {
                self.record_fault(format!("module cache entry not used: {refusal}"));
                return None;
            }
        };
        // SAFETY: see above; the mapping is read-only and private to this process.
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        let (payload, tag) = map.split_at_checked(map.len().checked_sub(MAC_LEN)?)?;
        let tag = blake3::Hash::from_bytes(tag.try_into().ok()?);
        // `blake3::Hash`'s equality is constant-time.
        (self.tag(name, payload) == tag).then_some(Verified { file, map })
    }

    fn write_signed(&self, name: &str, payload: &[u8]) -> Result<(), private_dir::Refusal> {
        let tag = self.tag(name, payload);
        self.dir.write(name, &[payload, tag.as_bytes()], false, false).map(drop)
    }
}

/// The cache key in `key_dir`, made (random, owner-only) if there is none yet. Two processes
/// that make one at once agree: the key is put in place only if none is there, and whoever
/// loses reads the winner's.
fn read_or_make_key(key_dir: &Path) -> Result<[u8; 32], CacheError> {
    let dir = private_dir::PrivateDir::open_or_create(key_dir).map_err(CacheError::Key)?;
    let read = || -> Result<Option<[u8; 32]>, CacheError> {
        let key = dir.read_exact(KEY_FILE, private_dir::ANY_ACCESS_BY_OTHERS, KEY_LEN).map_err(CacheError::Key)?;
        Ok(key.map(|bytes| bytes.try_into().expect("read_exact read KEY_LEN bytes")))
    };
    if let Some(key) = read()? {
        return Ok(key);
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| CacheError::Random(e.to_string()))?;
    if dir.write(KEY_FILE, &[&key], true, true).map_err(CacheError::Key)? {
        return Ok(key);
    }
    // Another process made one first: its key is the one.
    read()?.ok_or_else(|| CacheError::Key(private_dir::Refusal::NotKind { path: dir.path().join(KEY_FILE).display().to_string(), expected: "key (it vanished)" }))
}

/// A cache file whose tag checked out.
struct Verified {
    file: std::fs::File,
    map: memmap2::Mmap,
}

impl Verified {
    fn payload(&self) -> &[u8] {
        &self.map[..self.map.len() - MAC_LEN]
    }
}

impl std::fmt::Debug for DiskCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskCache").field("dir", &self.dir.path()).field("engine_hash", &self.engine_hash).finish_non_exhaustive()
    }
}

/// Kept beside the compiled modules and under the same key: a memo is trusted exactly as far
/// as an artifact is (anyone who could forge one could forge native code for the other).
impl ValidationMemo for DiskCache {
    fn recall(&self, key: &str, features: wasmparser::WasmFeatures) -> Option<ValidatedBodies> {
        let verified = self.map_verified(&DiskCache::memo_name(key, features), MAX_MEMO_BYTES)?;
        serde_json::from_slice(verified.payload()).ok()
    }

    fn record(&self, key: &str, features: wasmparser::WasmFeatures, validated: &ValidatedBodies) {
        let Ok(bytes) = serde_json::to_vec(validated) else { return };
        if let Err(error) = self.write_signed(&DiskCache::memo_name(key, features), &bytes) {
            self.record_fault(format!("cannot write the validation memo: {error}"));
        }
    }
}
