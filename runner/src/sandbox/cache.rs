//! Compiled modules, cached by the module's SHA-256 and the engine's compatibility hash.
//!
//! In memory, a compiled [`Module`] is shared by every load of the same bytes in one process
//! (a hot reload costs a lookup): each shared engine remembers what it compiled. On disk, in
//! the user's cache directory by default, bounded in size (least recently used go first), each
//! artifact is stored with a keyed BLAKE3 tag (a MAC) under a random key that only this cache
//! directory holds, and checked before it is deserialized:
//! deserializing trusts its input completely, so it must never see bytes this cache did not
//! write (a truncated file, another engine's artifact, anything planted).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

use crate::analyze::ValidatedBodies;
use crate::vet::ValidationMemo;

const KEY_FILE: &str = "key";
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

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache directory {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("cannot get random bytes for the cache key: {0}")]
    Random(String),
}

/// The bytes of compiled modules a cache directory may hold before the least recently used
/// are removed. A compiled plugin is typically 2 to 10 times its module's size.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// Compiled modules on disk, for one engine configuration.
pub struct DiskCache {
    /// The engine whose artifacts these are: what they are deserialized into.
    engine: Engine,
    dir: PathBuf,
    key: [u8; 32],
    engine_hash: String,
    max_bytes: u64,
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

impl DiskCache {
    /// The module for `key`, if this cache has a trustworthy one.
    pub fn get(&self, key: &str) -> Option<Module> {
        let name = self.file_name(key);
        let verified = self.map_verified(&name)?;
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
            tracing::warn!("cannot write the module cache: {error}");
        }
        if let Err(error) = self.evict() {
            tracing::warn!("cannot trim the module cache: {error}");
        }
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
        let mut artifacts = Vec::new();
        let mut total = 0u64;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.path().extension().is_none_or(|x| x != ARTIFACT && x != MEMO) {
                continue;
            }
            let meta = entry.metadata()?;
            total += meta.len();
            artifacts.push((meta.modified().unwrap_or(std::time::UNIX_EPOCH), meta.len(), entry.path()));
        }
        artifacts.sort();
        for (_, len, path) in artifacts {
            if total <= self.max_bytes {
                break;
            }
            std::fs::remove_file(&path)?;
            total -= len;
        }
        Ok(())
    }

    /// Opens (creating it if need be) the cache directory `dir` for `engine`'s artifacts.
    pub fn open(dir: &Path, engine: &Engine) -> Result<DiskCache, CacheError> {
        DiskCache::open_bounded(dir, engine, DEFAULT_MAX_BYTES)
    }

    pub fn open_bounded(dir: &Path, engine: &Engine, max_bytes: u64) -> Result<DiskCache, CacheError> {
        let io = |source| CacheError::Io { path: dir.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let key_path = dir.join(KEY_FILE);
        let key = match std::fs::read(&key_path) {
            Ok(bytes) if bytes.len() == 32 => bytes.try_into().expect("32 bytes"),
            _ => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| CacheError::Random(e.to_string()))?;
                crate::atomic::write(&key_path, &[&key], crate::atomic::Kind::Secret).map_err(io)?;
                key
            }
        };
        Ok(DiskCache { engine: engine.clone(), dir: dir.to_path_buf(), key, engine_hash: engine_hash(engine), max_bytes })
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
    /// and renames it; eviction unlinks), so the file stays what was checked; a process of the
    /// same user that rewrote one in place could crash this one, but it could as well read the
    /// key and plant anything.
    fn map_verified(&self, name: &str) -> Option<Verified> {
        let file = std::fs::File::open(self.dir.join(name)).ok()?;
        // SAFETY: see above; the mapping is read-only and private to this process.
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        let (payload, tag) = map.split_at_checked(map.len().checked_sub(MAC_LEN)?)?;
        let tag = blake3::Hash::from_bytes(tag.try_into().ok()?);
        // `blake3::Hash`'s equality is constant-time.
        (self.tag(name, payload) == tag).then_some(Verified { file, map })
    }

    fn write_signed(&self, name: &str, payload: &[u8]) -> std::io::Result<()> {
        let tag = self.tag(name, payload);
        crate::atomic::write(&self.dir.join(name), &[payload, tag.as_bytes()], crate::atomic::Kind::Cache)
    }
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
        f.debug_struct("DiskCache").field("dir", &self.dir).field("engine_hash", &self.engine_hash).finish_non_exhaustive()
    }
}

/// Kept beside the compiled modules and under the same key: a memo is trusted exactly as far
/// as an artifact is (anyone who could forge one could forge native code for the other).
impl ValidationMemo for DiskCache {
    fn recall(&self, key: &str, features: wasmparser::WasmFeatures) -> Option<ValidatedBodies> {
        let verified = self.map_verified(&DiskCache::memo_name(key, features))?;
        serde_json::from_slice(verified.payload()).ok()
    }

    fn record(&self, key: &str, features: wasmparser::WasmFeatures, validated: &ValidatedBodies) {
        let Ok(bytes) = serde_json::to_vec(validated) else { return };
        if let Err(error) = self.write_signed(&DiskCache::memo_name(key, features), &bytes) {
            tracing::warn!("cannot write the validation memo: {error}");
        }
    }
}
