//! Text on its way to a person or another program: escaped for a terminal or a report
//! ([`escape`]), cut to a length that says how long the whole was, and paths written the same
//! on every OS. A leaf: every layer that quotes a plugin uses it, and it uses none of them.

pub mod escape;

/// `text` cut after `chars` characters, saying how long the whole was (`… (N bytes)`): for
/// text whose length a plugin (or another host) chooses, wherever it is shown or passed on.
pub fn cut(text: &str, chars: usize, bytes: u64) -> String {
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}… ({bytes} bytes)", &text[..at]),
        None => text.to_string(),
    }
}

/// [`cut`] of text whose whole is at hand: its own length is the one reported.
pub fn shorten(text: &str, chars: usize) -> String {
    cut(text, chars, text.len() as u64)
}

/// A path as reports show it: with forward slashes, so output is the same on every OS.
pub fn display_path(path: &std::path::Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}
