//! Parsing the TOML and JSON documents Stockade reads (manifests, policies), with errors that
//! say where: the file, the line and column, and the field.

use std::fmt;

use serde::de::DeserializeOwned;

/// Where a document came from, as the user would name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    File(String),
    /// A custom section of a module; `data_offset` is the byte offset of its payload.
    Section { module: String, name: String, data_offset: usize },
    /// Compiled into the binary (the default policy).
    Builtin(&'static str),
}

impl Origin {
    /// The directory that paths written in the document are relative to: a file's own
    /// directory; none for a built-in document or a section (paths in those are taken as given).
    pub fn directory(&self) -> Option<std::path::PathBuf> {
        match self {
            Origin::File(path) => {
                let parent = std::path::Path::new(path).parent().unwrap_or(std::path::Path::new(""));
                Some(if parent.as_os_str().is_empty() { ".".into() } else { parent.to_path_buf() })
            }
            Origin::Section { .. } | Origin::Builtin(_) => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => f.write_str(path),
            Origin::Section { module, name, .. } => write!(f, "{module} (custom section `{name}`)"),
            Origin::Builtin(name) => write!(f, "<built-in {name}>"),
        }
    }
}

/// A document that could not be read, with its position and the field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct DocumentError {
    pub origin: Origin,
    /// 1-based line and column, when the parser could tell.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Byte offset of the error within the module, for documents embedded in one.
    pub offset: Option<usize>,
    /// The dotted path of the field at fault (`limits.memory`, `capabilities[2]`).
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl DocumentError {
    pub fn new(origin: Origin, message: impl Into<String>) -> DocumentError {
        DocumentError { origin, line: None, column: None, offset: None, field: None, message: message.into() }
    }

    fn at_byte(mut self, text: &str, byte: usize) -> DocumentError {
        let byte = byte.min(text.len());
        let before = &text[..byte];
        self.line = Some(before.matches('\n').count() + 1);
        self.column = Some(before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1);
        if let Origin::Section { data_offset, .. } = self.origin {
            self.offset = Some(data_offset + byte);
        }
        self
    }

    fn with_field(mut self, path: &serde_path_to_error::Path) -> DocumentError {
        let path = path.to_string();
        // serde_path_to_error says "." for the root; an error at the root has no field.
        if path != "." {
            self.field = Some(path);
        }
        self
    }
}

/// Parses TOML into `T`, rejecting what `T` rejects (unknown fields, wrong types).
pub fn from_toml<T: DeserializeOwned>(text: &str, origin: Origin) -> Result<T, DocumentError> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| toml_error(e, text, origin.clone()))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().clone();
        toml_error(e.into_inner(), text, origin).with_field(&path)
    })
}

fn toml_error(error: toml::de::Error, text: &str, origin: Origin) -> DocumentError {
    // The toml error's Display repeats the source line in a multi-line block; keep one line.
    let message = error.message().trim().replace('\n', " ");
    let err = DocumentError::new(origin, message);
    match error.span() {
        Some(span) => err.at_byte(text, span.start),
        None => err,
    }
}

/// Parses JSON into `T`, with the same kind of error as [`from_toml`].
pub fn from_json<T: DeserializeOwned>(text: &str, origin: Origin) -> Result<T, DocumentError> {
    let locate = |inner: serde_json::Error, field: Option<&serde_path_to_error::Path>| {
        let mut message = inner.to_string();
        // serde_json appends " at line L column C"; the position is reported separately.
        if let Some(cut) = message.rfind(" at line ") {
            message.truncate(cut);
        }
        let byte = line_column_to_byte(text, inner.line(), inner.column());
        let error = DocumentError::new(origin.clone(), message).at_byte(text, byte);
        match field {
            Some(path) => error.with_field(path),
            None => error,
        }
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().clone();
        locate(e.into_inner(), Some(&path))
    })?;
    deserializer.end().map_err(|e| locate(e, None))?;
    Ok(value)
}

fn line_column_to_byte(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
    (line_start + column.saturating_sub(1)).min(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        name: String,
        #[serde(default)]
        limits: Limits,
    }
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Limits {
        count: Option<u32>,
    }

    #[test]
    fn toml_errors_name_line_and_field() {
        let text = "name = \"x\"\n\n[limits]\ncount = \"many\"\n";
        let err = from_toml::<Doc>(text, Origin::File("p.toml".into())).unwrap_err();
        assert_eq!(err.line, Some(4));
        assert_eq!(err.field.as_deref(), Some("limits.count"));
        assert!(err.to_string().starts_with("p.toml:4:9: field `limits.count`: invalid type"), "{err}");

        let err = from_toml::<Doc>("name = \"x\"\ncolour = 1\n", Origin::File("p.toml".into())).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("unknown field `colour`"), "{err}");

        let err = from_toml::<Doc>("name = \n", Origin::File("p.toml".into())).unwrap_err();
        assert_eq!(err.line, Some(1));
    }

    #[test]
    fn json_errors_carry_the_module_offset() {
        let origin = Origin::Section { module: "m.wasm".into(), name: "s".into(), data_offset: 100 };
        let err = from_json::<Doc>("{\"name\": \"x\",\n \"limits\": {\"count\": true}}", origin).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("limits.count"));
        assert_eq!(err.line, Some(2));
        assert!(err.offset.unwrap() > 100);
        assert!(!err.message.contains(" at line "), "{err}");
    }
}
