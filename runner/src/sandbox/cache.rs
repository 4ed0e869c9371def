//! Compiled modules, cached by the module's SHA-256 and the engine's compatibility hash.
//!
//! In memory, a compiled [`Module`] is shared by every load of the same bytes in one process
//! (a hot reload costs a lookup). On disk, each artifact is stored with an HMAC-SHA-256 under
//! a random key that only this cache directory holds, and checked before it is deserialized:
//! `Module::deserialize` trusts its input completely, so it must never see bytes this cache
//! did not write (a truncated file, another engine's artifact, anything planted).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

type HmacSha256 = Hmac<Sha256>;
const KEY_FILE: &str = "key";
const MAC_LEN: usize = 32;

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

pub struct ModuleCache {
    engine_hash: String,
    memory: Mutex<HashMap<String, Module>>,
    disk: Option<DiskCache>,
}

struct DiskCache {
    dir: PathBuf,
    key: [u8; 32],
}

/// Where a module came from, for stats and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Compiled,
    Memory,
    Disk,
}

impl ModuleCache {
    pub fn new(engine: &Engine, dir: Option<&Path>) -> Result<ModuleCache, CacheError> {
        let disk = dir.map(DiskCache::open).transpose()?;
        Ok(ModuleCache { engine_hash: engine_hash(engine), memory: Mutex::new(HashMap::new()), disk })
    }

    /// The compiled module for `sha256`, if this cache has a trustworthy one.
    pub fn get(&self, engine: &Engine, sha256: &str) -> Option<(Module, Source)> {
        if let Some(module) = self.memory.lock().expect("cache lock").get(sha256) {
            return Some((module.clone(), Source::Memory));
        }
        let disk = self.disk.as_ref()?;
        let bytes = disk.read_verified(&self.file_name(sha256))?;
        // SAFETY: the bytes are exactly what `Module::serialize` produced for an engine with
        // this compatibility hash: the HMAC under this directory's private key proves this
        // cache wrote them, and the file name binds the engine hash.
        let module = unsafe { Module::deserialize(engine, &bytes) }.ok()?;
        self.memory.lock().expect("cache lock").insert(sha256.to_string(), module.clone());
        Some((module, Source::Disk))
    }

    pub fn put(&self, sha256: &str, module: &Module) {
        self.memory.lock().expect("cache lock").insert(sha256.to_string(), module.clone());
        if let (Some(disk), Ok(bytes)) = (&self.disk, module.serialize()) {
            // A cache that cannot be written is only slower; the load itself succeeded.
            if let Err(error) = disk.write_signed(&self.file_name(sha256), &bytes) {
                tracing::warn!("cannot write the module cache: {error}");
            }
        }
    }

    fn file_name(&self, sha256: &str) -> String {
        format!("{sha256}-{}.cwasm", self.engine_hash)
    }
}

impl DiskCache {
    fn open(dir: &Path) -> Result<DiskCache, CacheError> {
        let io = |source| CacheError::Io { path: dir.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let key_path = dir.join(KEY_FILE);
        let key = match std::fs::read(&key_path) {
            Ok(bytes) if bytes.len() == 32 => bytes.try_into().expect("32 bytes"),
            _ => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| CacheError::Random(e.to_string()))?;
                write_private(&key_path, &key).map_err(io)?;
                key
            }
        };
        Ok(DiskCache { dir: dir.to_path_buf(), key })
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    fn read_verified(&self, name: &str) -> Option<Vec<u8>> {
        let mut bytes = std::fs::read(self.dir.join(name)).ok()?;
        if bytes.len() < MAC_LEN {
            return None;
        }
        let payload = bytes.split_off(MAC_LEN);
        let mut mac = self.mac();
        mac.update(name.as_bytes());
        mac.update(&payload);
        mac.verify_slice(&bytes).ok()?;
        Some(payload)
    }

    fn write_signed(&self, name: &str, payload: &[u8]) -> std::io::Result<()> {
        let mut mac = self.mac();
        mac.update(name.as_bytes());
        mac.update(payload);
        let tag = mac.finalize().into_bytes();
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(&tag)?;
        file.write_all(payload)?;
        file.persist(self.dir.join(name)).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file().set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}
