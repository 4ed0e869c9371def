//! Reading a plugin from disk: its module (binary or text), and the files that travel with it.

use std::path::{Path, PathBuf};

use crate::analyze::Rejection;

/// A plugin file as read from disk.
#[derive(Clone, Debug)]
pub struct PluginFile {
    pub path: PathBuf,
    /// The bytes of the file as given (what `sha256` and `size` describe).
    pub raw: Vec<u8>,
}

/// The operator named a path that cannot be read: a tool error, not a finding.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}")]
pub struct ReadError {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

impl PluginFile {
    pub fn read(path: &Path) -> Result<PluginFile, ReadError> {
        let raw = std::fs::read(path).map_err(|source| ReadError { path: path.display().to_string(), source })?;
        Ok(PluginFile { path: path.to_path_buf(), raw })
    }

    pub fn sha256(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&self.raw))
    }

    /// Whether the file is WebAssembly text rather than binary.
    pub fn is_text(&self) -> bool {
        is_text(&self.path, &self.raw)
    }

    /// The binary module: the file itself, or the encoding of the text module.
    pub fn binary(&self) -> Result<std::borrow::Cow<'_, [u8]>, Rejection> {
        if self.is_text() {
            let text = std::str::from_utf8(&self.raw).map_err(|e| {
                Rejection::malformed(e.valid_up_to(), "the text module is not valid UTF-8")
            })?;
            wat_to_wasm(text).map(Into::into)
        } else {
            Ok((&self.raw[..]).into())
        }
    }

    /// The manifest file beside the module, if there is one.
    pub fn sibling_manifest(&self) -> Option<PathBuf> {
        let candidate = self.path.with_file_name(crate::manifest::MANIFEST_FILE);
        candidate.is_file().then_some(candidate)
    }

    /// The signature files beside the module that exist.
    pub fn signature_files(&self) -> Vec<PathBuf> {
        [".sig", ".sigstore.json"]
            .iter()
            .map(|suffix| {
                let mut name = self.path.as_os_str().to_owned();
                name.push(suffix);
                PathBuf::from(name)
            })
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
        let message = e.message();
        let (line, column) = e.span().linecol_in(text);
        Rejection::malformed(offset, format!("{message} (line {}, column {})", line + 1, column + 1))
    };
    let buffer = wast::parser::ParseBuffer::new(text).map_err(to_rejection)?;
    let mut wat = wast::parser::parse::<wast::Wat>(&buffer).map_err(to_rejection)?;
    wat.encode().map_err(to_rejection)
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
}
