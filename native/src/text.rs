//! Python's string semantics on ASCII text, as the reference reader (src/mailboat/trace) uses them.
//!
//! The native reader only ever sees text for which ``str.isascii()`` is true, so these are exact:
//! ``str.isspace`` (and the regex ``\s`` of a ``str`` pattern) takes \t \n \x0b \x0c \r, the
//! separators \x1c-\x1f and the space; ``\w`` is [A-Za-z0-9_]; ``repr`` escapes as CPython does.

use std::borrow::Cow;

/// The characters `str.isspace()` accepts, for ASCII.
pub fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f | b' ')
}

/// The regex class `\s` spelled for the `regex` crate (its own `\s` leaves out \x1c-\x1f).
pub const S: &str = r"[\t\n\x0B\x0C\r\x1C-\x1F ]";

pub fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `str.strip()`.
pub fn strip(s: &str) -> &str {
    let b = s.as_bytes();
    let mut start = 0;
    let mut end = b.len();
    while start < end && is_space(b[start]) {
        start += 1;
    }
    while end > start && is_space(b[end - 1]) {
        end -= 1;
    }
    &s[start..end]
}

/// `str.split()` with no argument.
pub fn split(s: &str) -> Vec<&str> {
    s.split(|c: char| c.is_ascii() && is_space(c as u8)).filter(|w| !w.is_empty()).collect()
}

/// `" ".join(s.split())`.
pub fn one_space_all(s: &str) -> String {
    split(s).join(" ")
}

/// `hop.one_space`: runs of FWS made one space, only when a tab or two spaces are there.
pub fn one_space(comment: &str) -> Cow<'_, str> {
    if comment.contains('\t') || comment.contains("  ") {
        Cow::Owned(one_space_all(comment))
    } else {
        Cow::Borrowed(comment)
    }
}

/// `" ".join(words)`, borrowed when there is one word.
pub fn join<'a>(words: &[&'a str]) -> Cow<'a, str> {
    match words {
        [one] => Cow::Borrowed(one),
        _ => Cow::Owned(words.join(" ")),
    }
}

/// `s[:n]` for ASCII text.
pub fn head(s: &str, n: usize) -> &str {
    &s[..s.len().min(n)]
}

/// CPython's `repr()` of an ASCII str.
pub fn repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `tuple(dict.fromkeys(items))`: first occurrences, in order.
pub fn dedupe(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}
