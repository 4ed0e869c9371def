//! Text from a plugin (import and export names, manifest values, output, logs, error text) is
//! escaped before it reaches a terminal, a log or a text report: a newline in an import name
//! must not forge a `PASS` line in a CI log, and an ANSI escape must not repaint the screen.
//! JSON output is exact and is not escaped here (serde escapes what JSON must).

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` is shown escaped: C0 and C1 controls, DEL, and the Unicode controls that
/// reorder or hide text (bidi overrides and isolates, zero-width marks, BOM, line and
/// paragraph separators).
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Every unsafe character escaped, newlines included: for anything shown on one line (names,
/// messages, log lines, each line of a plugin's output).
pub fn line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !is_unsafe(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{1b}' => out.push_str("\\e"),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}



#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_plain_text_is_borrowed() {
        assert!(matches!(line("wasi_snapshot_preview1.fd_write"), Cow::Borrowed(_)));
        assert_eq!(line("x\nPASS all good"), "x\\nPASS all good");
        assert_eq!(line("\u{1b}[2J\u{1b}[31mred"), "\\e[2J\\e[31mred");
        assert_eq!(line("a\rb\u{7f}c\u{9b}d"), "a\\rb\\x7fc\\x9bd");
        assert_eq!(line("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(line("one\ttwo\u{1b}]0;title\u{7}"), "one\\ttwo\\e]0;title\\x07");
        assert_eq!(line("naïve 日本"), "naïve 日本");
    }
}
