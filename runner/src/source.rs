//! Reading a plugin from disk: its module (binary or text), and the files that travel with it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::analyze::Rejection;

/// A plugin file as read from disk.
#[derive(Clone, Debug)]
pub struct PluginFile {
    pub path: PathBuf,
    /// Not public, so that the digests taken of the bytes always describe them.
    content: Arc<Content>,
    /// The file's length: the bytes', unless the file was over the bound it was read within.
    size: u64,
}

/// The bytes of a plugin file as given, and their digests, each taken when first asked for.
/// Shared by the file and the vettings made of it, so that a `run` whose report does not show
/// the SHA-256 never takes it (it was 3% of a cached run of the extism-pdk guest).
#[derive(Debug)]
struct Content {
    raw: Vec<u8>,
    sha256: OnceLock<String>,
    cache_key: OnceLock<String>,
}

impl Content {
    fn new(raw: Vec<u8>) -> Arc<Content> {
        Arc::new(Content { raw, sha256: OnceLock::new(), cache_key: OnceLock::new() })
    }
}

/// A plugin file's SHA-256: what reports and signatures name it by. Taken from the file's bytes
/// the first time it is shown.
#[derive(Clone)]
pub struct Sha256(HexDigest);

#[derive(Clone)]
enum HexDigest {
    /// Not necessarily taken yet: holds the bytes until it is.
    OfBytes(Arc<Content>),
    Taken(Arc<str>),
}

impl Sha256 {
    /// The digest in lowercase hex.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            HexDigest::OfBytes(content) => content.sha256.get_or_init(|| {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(&content.raw))
            }),
            HexDigest::Taken(hex) => hex,
        }
    }

    /// The digest, taken now if it was not, without the file's bytes: for what outlives the
    /// file (a long-lived host's loaded plugin), which must not keep the module's bytes alive.
    pub fn without_bytes(&self) -> Sha256 {
        Sha256(HexDigest::Taken(self.as_str().into()))
    }
}

impl std::fmt::Display for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Sha256 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The operator named a path that cannot be read: a tool error, not a finding.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}")]
pub struct ReadError {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

/// The most a TOML or JSON document an operator or a plugin names may hold (a policy, a
/// manifest, a corpus case, a budget, a signature bundle, a key, a trusted root): far above any
/// real one, and a bound on what reading one costs.
pub const MAX_DOCUMENT_BYTES: u64 = 4 << 20;

/// The most a module file read whole may hold: the largest `module-size` a policy may set.
pub const MAX_MODULE_BYTES: u64 = 1 << 30;

/// Opens `path` for reading without blocking: a FIFO with no writer, a device or a socket would
/// wait, or read without end, so only a regular file is opened (a link to one is followed).
pub fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    open_readable(path, false)
}

/// [`open_regular`], or a pipe, for the inputs documented to be given through one (a policy as
/// `--policy /dev/stdin`). The open never waits for a writer (a pipe nobody writes reads as
/// empty), and what is read is bounded by the caller ([`read_at_most`]).
pub fn open_regular_or_pipe(path: &Path) -> std::io::Result<std::fs::File> {
    open_readable(path, true)
}

fn open_readable(path: &Path, pipes: bool) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK | libc::O_NOCTTY);
    let file = options.open(path)?;
    let kind = file.metadata()?.file_type();
    #[cfg(unix)]
    let is_pipe = std::os::unix::fs::FileTypeExt::is_fifo(&kind);
    #[cfg(not(unix))]
    let is_pipe = false;
    if !(kind.is_file() || pipes && is_pipe) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("it is {}, not a regular file", describe_kind(kind))));
    }
    #[cfg(unix)]
    if is_pipe {
        // Opened without waiting for a writer; read as a stream from here on.
        use std::os::fd::AsRawFd;
        // SAFETY: flags of a descriptor this function owns.
        unsafe {
            let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    Ok(file)
}

/// What a file that is not a regular file is, for messages.
fn describe_kind(kind: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
    }
    if kind.is_dir() { "a directory" } else { "not a file" }
}

/// Reads at most `max` bytes from `reader`, and fails if there are more: the bound is checked
/// while reading, so an endless stream costs `max` bytes and no more.
pub fn read_at_most(reader: impl std::io::Read, max: u64) -> std::io::Result<Vec<u8>> {
    read_at_most_expecting(reader, max, 0)
}

/// [`read_at_most`] of a stream expected to hold `expected` bytes (a file's size): read in one
/// go rather than in doubling chunks.
fn read_at_most_expecting(reader: impl std::io::Read, max: u64, expected: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(usize::try_from(expected.min(max).saturating_add(1)).unwrap_or(0));
    std::io::Read::read_to_end(&mut reader.take(max.saturating_add(1)), &mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(std::io::ErrorKind::FileTooLarge, format!("it is over {max} bytes")));
    }
    Ok(bytes)
}

/// A regular file of at most `max` bytes ([`open_regular`], [`read_at_most`]).
pub fn read_regular(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let size = file.metadata()?.len();
    read_at_most_expecting(file, max, size)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, max: u64) -> std::io::Result<String> {
    into_text(read_regular(path, max)?)
}

/// Bytes read from a file as UTF-8 text, or an error that says they are not.
pub fn into_text(bytes: Vec<u8>) -> std::io::Result<String> {
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("it is not UTF-8 text: {e}")))
}

/// Files at least this large, read for a report, are hashed on a second thread while they are
/// read, one chunk behind the reader: the digest is ready when the bytes are, and the cores are
/// left to validation afterwards.
const HASH_WHILE_READING_BYTES: u64 = 1 << 20;
const READ_CHUNK_BYTES: usize = 1 << 20;

impl PluginFile {
    /// A plugin from bytes already in memory; `path` names it in reports.
    pub fn new(path: impl Into<PathBuf>, raw: Vec<u8>) -> PluginFile {
        PluginFile { path: path.into(), size: raw.len() as u64, content: Content::new(raw) }
    }

    pub fn read(path: &Path) -> Result<PluginFile, ReadError> {
        PluginFile::read_within(path, u64::MAX)
    }

    /// Reads the file if it is at most `max_bytes` long (the policy's `module-size`). A longer
    /// one is only measured and hashed, a chunk at a time, never held: vet refuses it by its
    /// size, and a file of many gigabytes must not take the loader's memory first. No digest
    /// is taken while reading: for a load, whose report does not show the SHA-256 (taken
    /// while reading, it was 21% of a cached run of an 8 MB module).
    pub fn read_within(path: &Path, max_bytes: u64) -> Result<PluginFile, ReadError> {
        PluginFile::read_bounded(path, max_bytes, false)
    }

    /// [`PluginFile::read_within`] for a report that shows the SHA-256 (`vet`, `inspect`,
    /// `bench`, a host, which names its plugins by it): a big file is hashed while it is read.
    pub fn read_to_report(path: &Path, max_bytes: u64) -> Result<PluginFile, ReadError> {
        PluginFile::read_bounded(path, max_bytes, true)
    }

    fn read_bounded(path: &Path, max_bytes: u64, sha256_while_reading: bool) -> Result<PluginFile, ReadError> {
        let error = |source| ReadError { path: path.display().to_string(), source };
        let mut file = open_regular(path).map_err(error)?;
        let size = file.metadata().map_err(error)?.len();
        if size > max_bytes {
            let digest = hash_stream(&mut file).map_err(error)?;
            let plugin = PluginFile { path: path.to_path_buf(), content: Content::new(Vec::new()), size };
            let _ = plugin.content.sha256.set(digest);
            return Ok(plugin);
        }
        if !sha256_while_reading || size < HASH_WHILE_READING_BYTES {
            let mut raw = Vec::with_capacity(size as usize);
            std::io::Read::read_to_end(&mut file, &mut raw).map_err(error)?;
            return Ok(PluginFile::new(path, raw));
        }
        let (raw, digest) = read_hashing(&mut file, size).map_err(error)?;
        let plugin = PluginFile::new(path, raw);
        // Only a file that did not change size while it was read has its digest from the
        // reading; otherwise it is taken again from the bytes kept.
        if let Some(digest) = digest {
            let _ = plugin.content.sha256.set(digest);
        }
        Ok(plugin)
    }

    /// The bytes of the file (none when it was over the bound it was read within).
    pub fn bytes(&self) -> &[u8] {
        &self.content.raw
    }

    /// The file's length in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The file's SHA-256: what reports and signatures name it by.
    pub fn sha256(&self) -> Sha256 {
        Sha256(HexDigest::OfBytes(Arc::clone(&self.content)))
    }

    /// How many hold the bytes (this file, and vettings whose digest is not taken yet).
    #[cfg(test)]
    pub(crate) fn holders_of_bytes(&self) -> usize {
        Arc::strong_count(&self.content)
    }

    #[cfg(test)]
    pub(crate) fn sha256_taken(&self) -> bool {
        self.content.sha256.get().is_some()
    }

    /// What compiled code and validation memos are cached under: the BLAKE3 of the bytes, in
    /// hex. As collision-resistant as the SHA-256 at about 0.4x of its time per byte here (perf
    /// of a cached run of an 8 MB module), and the cache already links BLAKE3 for its tags.
    pub fn cache_key(&self) -> &str {
        self.content.cache_key.get_or_init(|| blake3::hash(&self.content.raw).to_hex().to_string())
    }

    /// Whether the file is WebAssembly text rather than binary.
    pub fn is_text(&self) -> bool {
        is_text(&self.path, &self.content.raw)
    }

    /// The binary module: the file itself, or the encoding of the text module.
    pub fn binary(&self) -> Result<std::borrow::Cow<'_, [u8]>, Rejection> {
        if self.is_text() {
            let text = std::str::from_utf8(&self.content.raw).map_err(|e| {
                Rejection::malformed(e.valid_up_to(), "the text module is not valid UTF-8")
            })?;
            wat_to_wasm(text).map(Into::into)
        } else {
            Ok((&self.content.raw[..]).into())
        }
    }

    /// The manifest file beside the module, if there is one.
    /// Whatever stands there, so that one that cannot be read (a FIFO, a device, a dangling
    /// link) is a finding about the plugin rather than taken for no manifest.
    pub fn sibling_manifest(&self) -> Option<PathBuf> {
        let candidate = self.path.with_file_name(crate::manifest::MANIFEST_FILE);
        candidate.symlink_metadata().is_ok().then_some(candidate)
    }

    /// The signature files beside the module that exist.
    pub fn signature_files(&self) -> Vec<PathBuf> {
        [".sig", ".sigstore.json"]
            .iter()
            .map(|suffix| crate::atomic::with_suffix(&self.path, suffix))
            .filter(|p| p.is_file())
            .collect()
    }
}

fn is_text(path: &Path, raw: &[u8]) -> bool {
    if raw.starts_with(b"\0asm") {
        return false;
    }
    let by_extension = path.extension().is_some_and(|e| e == "wat" || e == "wast");
    // Without the extension, text is recognised by its first token: `(` after blanks and
    // comments. Anything else is taken as binary, so garbage gets the binary decoder's error.
    by_extension || std::str::from_utf8(raw).is_ok_and(first_token_is_paren)
}

fn first_token_is_paren(text: &str) -> bool {
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix(";;") {
            rest = after.split_once('\n').map_or("", |(_, r)| r);
        } else if rest.starts_with("(;") {
            match rest.find(";)") {
                Some(end) => rest = &rest[end + 2..],
                None => return false,
            }
        } else {
            return rest.starts_with('(');
        }
    }
}

/// Encodes a text module; a syntax error is `malformed` with the byte offset of the error.
pub fn wat_to_wasm(text: &str) -> Result<Vec<u8>, Rejection> {
    let to_rejection = |mut e: wast::Error| {
        let offset = e.span().offset();
        e.set_text(text);
        // The full rendering has the source line and a caret; the first line has the position.
        // The parser's message can quote the text (an identifier of megabytes): cut.
        let message = e.message();
        let message = crate::text::shorten(&message, 1024);
        let (line, column) = e.span().linecol_in(text);
        Rejection::malformed(offset, format!("{message} (line {}, column {})", line + 1, column + 1))
    };
    let buffer = wast::parser::ParseBuffer::new(text).map_err(to_rejection)?;
    let mut wat = wast::parser::parse::<wast::Wat>(&buffer).map_err(to_rejection)?;
    wat.encode().map_err(to_rejection)
}

/// The SHA-256 of what is left to read, a chunk at a time.
fn hash_stream(file: &mut std::fs::File) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut hasher = sha2::Sha256::new();
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        match file.read(&mut chunk)? {
            0 => return Ok(hex::encode(hasher.finalize())),
            n => hasher.update(&chunk[..n]),
        }
    }
}

/// Reads `size` bytes in chunks, hashing each on a scoped thread once it is read. The digest
/// is `None` when the file turned out not to be `size` bytes long (the bytes are then
/// whatever was read, to the end).
fn read_hashing(file: &mut std::fs::File, size: u64) -> std::io::Result<(Vec<u8>, Option<String>)> {
    use sha2::Digest;
    use std::io::Read;
    let mut raw = vec![0u8; size as usize];
    let digest = std::thread::scope(|scope| -> std::io::Result<Option<String>> {
        let (chunks, to_hash) = std::sync::mpsc::channel::<&[u8]>();
        let hasher = scope.spawn(move || {
            let mut hasher = sha2::Sha256::new();
            for chunk in to_hash {
                hasher.update(chunk);
            }
            hex::encode(hasher.finalize())
        });
        for chunk in raw.chunks_mut(READ_CHUNK_BYTES) {
            file.read_exact(chunk)?;
            let _ = chunks.send(chunk);
        }
        drop(chunks);
        let digest = hasher.join().expect("hashing does not panic");
        // A file that grew while it was read is not what was hashed.
        let mut probe = [0u8; 1];
        Ok((file.read(&mut probe)? == 0).then_some(digest))
    });
    match digest {
        Ok(digest) => Ok((raw, digest)),
        // Shorter than its size said: read it again as it is now.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            use std::io::Seek;
            file.seek(std::io::SeekFrom::Start(0))?;
            let mut raw = Vec::new();
            file.read_to_end(&mut raw)?;
            Ok((raw, None))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_told_from_binary() {
        let p = Path::new("x.bin");
        assert!(is_text(p, b"  ;; comment\n(module)"));
        assert!(is_text(p, b"(; block ;) (module)"));
        assert!(!is_text(p, b"\0asm\x01\0\0\0"));
        assert!(!is_text(p, b"\xff\xfe garbage"));
        assert!(!is_text(p, b"hello"));
        assert!(is_text(Path::new("x.wat"), b"hello"));
    }

    #[test]
    fn syntax_errors_carry_offsets() {
        let Err(Rejection::Malformed { offset, message }) = wat_to_wasm("(module\n  (func (nonsense)))") else {
            panic!()
        };
        assert_eq!(offset, 17);
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn a_big_file_is_hashed_while_read_only_to_report_and_one_over_its_bound_is_only_hashed() {
        use sha2::Digest;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.wasm");
        // Not a whole number of chunks, so the last chunk hashed is short.
        let bytes: Vec<u8> = (0..(3 * READ_CHUNK_BYTES + 12345)).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let expected = hex::encode(sha2::Sha256::digest(&bytes));
        let file = PluginFile::read(&path).unwrap();
        assert_eq!(file.bytes(), &bytes[..]);
        assert!(file.content.sha256.get().is_none(), "no digest is taken while reading to load");
        assert_eq!(file.sha256().as_str(), expected);
        let file = PluginFile::read_to_report(&path, u64::MAX).unwrap();
        assert_eq!(file.bytes(), &bytes[..]);
        assert!(file.content.sha256.get().is_some(), "the digest was taken while reading to report");
        assert_eq!(file.sha256().as_str(), expected);
        let over = PluginFile::read_within(&path, 1000).unwrap();
        assert!(over.bytes().is_empty(), "not held");
        assert_eq!((over.size(), over.sha256().as_str()), (bytes.len() as u64, expected.as_str()));
    }

    #[test]
    fn the_sha256_is_taken_when_first_shown_and_describes_the_bytes() {
        use sha2::Digest;
        let bytes = b"\0asm\x01\0\0\0".to_vec();
        let file = PluginFile::new("m.wasm", bytes.clone());
        let shown_later = file.sha256();
        assert_eq!(file.cache_key(), blake3::hash(&bytes).to_hex().as_str());
        assert!(file.content.sha256.get().is_none(), "the cache key does not take the SHA-256");
        let expected = hex::encode(sha2::Sha256::digest(&bytes));
        assert_eq!(shown_later.to_string(), expected);
        assert_eq!(serde_json::to_value(&shown_later).unwrap(), serde_json::json!(expected));
        assert!(file.content.sha256.get().is_some(), "taken once, for every handle");
    }
}
