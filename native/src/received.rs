//! One Received header value → the fields of a `mailboat.trace.hop.Hop`: a line-for-line port
//! of the general reader in src/mailboat/trace/parse.py and the shared readings of hop.py (TLS
//! from evidence here, the from clause by dialect in fromclause.rs). The Python reader is the reference; every rule
//! and warning text here is its, and tests/trace/test_native.py checks the two agree field for
//! field on the corpus and on generated and mutated headers.
//!
//! Only ASCII text comes here (the caller checks), so Python's Unicode-aware classes reduce to
//! the ASCII ones spelled in text.rs. Nothing is indexed unchecked on input-derived positions
//! except through slices whose bounds were just tested.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::Regex;

use crate::dates::{date_value, Stamp};
use crate::fromclause::{qmail_network, read_from};
use crate::text::{dedupe, head, is_space, is_word, join, one_space, repr, strip, S};

const KEYWORDS: [&str; 10] = ["from", "by", "via", "with", "id", "for", "tls", "group", "state", "priority"];
const FIELDS: [&str; 6] = ["from", "by", "via", "with", "id", "for"];
const NO_HOST: &str = "no host or address in the 'from' or 'by' clause";

/// The fields of a Hop after `raw`, in its order (borrowed from the header where they can be).
pub struct Fields<'a> {
    pub helo: Option<String>,
    pub rdns: Option<String>,
    pub ip: Option<String>,
    pub by_host: Option<&'a str>,
    pub protocol: Option<Cow<'a, str>>,
    pub tls: Option<bool>,
    pub evidence: Option<String>,
    pub id: Option<&'a str>,
    pub rcpt: Option<Cow<'a, str>>,
    pub via: Option<Cow<'a, str>>,
    pub timestamp: Option<Stamp>,
    pub date_text: Option<&'a str>,
    pub warnings: Vec<String>,
    pub extras: Vec<(String, String)>,
    pub comments: Vec<Cow<'a, str>>,
}

struct Patterns {
    date_start: Regex,
}

fn patterns() -> &'static Patterns {
    static CELL: OnceLock<Patterns> = OnceLock::new();
    CELL.get_or_init(|| {
        let ci = |words: &[&str]| words.join("|");
        let weekdays = ci(&["mon", "tue", "wed", "thu", "fri", "sat", "sun"]);
        let months = ci(&["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]);
        Patterns {
            date_start: Regex::new(&format!(
                r"(?:(?:(?i:{weekdays})[A-Za-z]*{S}*,{S}*)?[0-9]{{1,2}}{S}+(?i:{months})[A-Za-z]*\.?{S}+[0-9]{{2,4}}{S}+[0-9]{{1,2}}:[0-9]{{2}}|[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}[Tt ][0-9]{{2}}:[0-9]{{2}})"
            )).unwrap(),
        }
    })
}

// ---- the tokenizer: `hop.TOKEN.findall`, by hand ------------------------------------------

fn word_stop(b: u8) -> bool {
    is_space(b) || matches!(b, b'(' | b')' | b'"' | b';' | b'\\' | b'<' | b'[')
}

/// End of the word starting at `i` (`i` when there is none): runs of plain characters,
/// backslash pairs, ``<...>`` and ``[...]`` (the word alternative of TOKEN, possessive).
fn scan_word(b: &[u8], i: usize) -> usize {
    let mut j = i;
    loop {
        if j < b.len() && !word_stop(b[j]) {
            while j < b.len() && !word_stop(b[j]) {
                j += 1;
            }
        } else if j + 1 < b.len() && b[j] == b'\\' {
            j += 2;
        } else if j < b.len() && b[j] == b'<' {
            let mut k = j + 1;
            while k < b.len() && !matches!(b[k], b'<' | b'>' | b'(' | b')') {
                k += 1;
            }
            if k < b.len() && b[k] == b'>' {
                j = k + 1;
            } else {
                return j;
            }
        } else if j < b.len() && b[j] == b'[' {
            let mut k = j + 1;
            while k < b.len() && !matches!(b[k], b'[' | b']' | b'(' | b')') && !is_space(b[k]) {
                k += 1;
            }
            if k < b.len() && b[k] == b']' {
                j = k + 1;
            } else {
                return j;
            }
        } else {
            return j;
        }
    }
}

/// End of the comment opening at `i` (three levels of nesting, backslash pairs), if balanced.
fn scan_comment(b: &[u8], i: usize, level: u8) -> Option<usize> {
    let mut j = i + 1;
    loop {
        if j < b.len() && !matches!(b[j], b'(' | b')' | b'\\') {
            j += 1;
        } else if j + 1 < b.len() && b[j] == b'\\' {
            j += 2;
        } else if j < b.len() && b[j] == b'(' && level < 3 {
            match scan_comment(b, j, level + 1) {
                Some(k) => j = k,
                None => break,
            }
        } else {
            break;
        }
    }
    (j < b.len() && b[j] == b')').then_some(j + 1)
}

/// Every token of `s` with its start, as `TOKEN.finditer` gives them.
fn tokens(s: &str) -> Vec<(usize, &str)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let end = if is_space(c) {
            i += 1;
            continue;
        } else if let Some(end) = Some(scan_word(b, i)).filter(|&e| e > i) {
            end
        } else if c == b'(' {
            scan_comment(b, i, 1).unwrap_or(i + 1)
        } else if c == b'"' {
            let mut j = i + 1;
            loop {
                if j < b.len() && !matches!(b[j], b'"' | b'\\') {
                    j += 1;
                } else if j + 1 < b.len() && b[j] == b'\\' {
                    j += 2;
                } else {
                    break;
                }
            }
            if j < b.len() && b[j] == b'"' {
                j += 1;
            }
            j
        } else {
            i + 1 // ";", ")", or a lone "<", "[" or "\\"
        };
        out.push((i, &s[i..end]));
        i = end;
    }
    out
}

// ---- clauses ----------------------------------------------------------------------------

struct Clause<'a> {
    keyword: Cow<'static, str>, // lower case; "" for the text before the first clause
    words: Vec<&'a str>,
    comments: Vec<usize>, // indexes into the header's comment list
}

impl<'a> Clause<'a> {
    fn new(keyword: Cow<'static, str>) -> Self {
        Clause { keyword, words: Vec::new(), comments: Vec::new() }
    }
}

fn is_extra_keyword(tok: &str) -> bool {
    let b = tok.as_bytes();
    !b.is_empty() && b[0].is_ascii_alphabetic() && b[1..].iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
}

/// `parse._parse`: the fields of the Hop `parse_received` returns for `text`.
pub fn parse(text: &str) -> Fields<'_> {
    let mut warnings: Vec<String> = Vec::new();
    if text.is_empty() {
        warnings.push("empty Received header".into());
        return Fields {
            helo: None, rdns: None, ip: None, by_host: None, protocol: None, tls: None, evidence: None, id: None,
            rcpt: None, via: None, timestamp: None, date_text: None, warnings, extras: Vec::new(), comments: Vec::new(),
        };
    }
    let (head_text, date_text) = split_date(text, &mut warnings);
    // the arena: [0] is the preamble; `clauses` keeps first clauses by keyword, in order
    let mut arena: Vec<Clause> = vec![Clause::new(Cow::Borrowed(""))];
    let mut clauses: Vec<(&'static str, usize)> = Vec::new();
    let mut extras: Vec<usize> = Vec::new();
    let mut comments: Vec<Cow<str>> = Vec::new();
    let mut current = 0usize;
    for (_, tok) in tokens(head_text) {
        let first = tok.as_bytes()[0];
        match first {
            b'(' => {
                if tok.len() == 1 {
                    warnings.push("unbalanced '(' ignored".into());
                    continue;
                }
                arena[current].comments.push(comments.len());
                comments.push(one_space(tok));
            }
            b')' => warnings.push("stray ')' ignored".into()),
            b';' => warnings.push("more than one ';' outside comments; the date is after the last".into()),
            b'"' => {
                if !tok.ends_with('"') || tok.len() < 2 {
                    warnings.push("unterminated quoted string".into());
                }
                arena[current].words.push(tok);
            }
            _ => {
                let keyword = KEYWORDS.iter().find(|k| k.eq_ignore_ascii_case(tok)).copied();
                let cur = &arena[current];
                let starts = |low: &str| {
                    FIELDS.contains(&low) || !cur.words.is_empty() || !cur.comments.is_empty()
                        || !KEYWORDS.contains(&cur.keyword.as_ref())
                };
                if let Some(low) = keyword.filter(|low| starts(low)) {
                    arena.push(Clause::new(Cow::Borrowed(low)));
                    current = arena.len() - 1;
                    if clauses.iter().any(|(k, _)| *k == low) {
                        warnings.push(format!("second '{low}' clause kept as an extra clause"));
                        extras.push(current);
                    } else {
                        clauses.push((low, current));
                    }
                } else if !cur.words.is_empty() && current != 0 && cur.keyword != "with" && cur.keyword != "via"
                    && is_extra_keyword(tok)
                {
                    arena.push(Clause::new(Cow::Owned(tok.to_ascii_lowercase())));
                    current = arena.len() - 1;
                    extras.push(current);
                } else {
                    arena[current].words.push(tok);
                }
            }
        }
    }
    if !arena[0].words.is_empty() {
        warnings.push(format!("text before the first clause: {}", repr(head(&arena[0].words.join(" "), 60))));
    }
    build(text, &arena, &clauses, &extras, comments, date_text, warnings)
}

/// `parse._split_date`: (clauses part, date text after the last ';' outside comments and quotes).
fn split_date<'a>(text: &'a str, warnings: &mut Vec<String>) -> (&'a str, Option<&'a str>) {
    if let Some(i) = text.rfind(';') {
        let (head_text, tail) = (&text[..i], &text[i + 1..]);
        let count = |s: &str, c: u8| s.bytes().filter(|&x| x == c).count();
        if !head_text.contains('\\')
            && count(head_text, b'(') == count(head_text, b')')
            && count(head_text, b'"') % 2 == 0
            && count(tail, b')') <= count(tail, b'(')
        {
            return (head_text, Some(strip(tail)));
        }
        if let Some(last) = tokens(text).iter().filter(|(_, t)| *t == ";").map(|(p, _)| *p).last() {
            return (&text[..last], Some(strip(&text[last + 1..])));
        }
    }
    if text.contains(':') {
        if let Some(start) = last_date_start(text) {
            warnings.push("no ';' before the date".into());
            return (&text[..start], Some(strip(&text[start..])));
        }
    }
    warnings.push("no date (no ';' and no date found)".into());
    (text, None)
}

/// Where the last of `parse._DATE_START.finditer(text)` starts. Every alternative of that pattern
/// begins with ``\b`` before a word character, i.e. the character before the match is not one;
/// the regex here leaves the ``\b`` out (the `regex` crate does not look behind the start of a
/// search resumed after a match) and the check is made by hand, resuming one character later.
fn last_date_start(text: &str) -> Option<usize> {
    let re = &patterns().date_start;
    let b = text.as_bytes();
    let (mut pos, mut last) = (0, None);
    while let Some(m) = re.find_at(text, pos) {
        if m.start() > 0 && is_word(b[m.start() - 1]) {
            pos = m.start() + 1;
            continue;
        }
        last = Some(m.start());
        pos = m.end();
    }
    last
}

fn clause<'a, 'b>(arena: &'b [Clause<'a>], clauses: &[(&str, usize)], keyword: &str) -> Option<&'b Clause<'a>> {
    clauses.iter().find(|(k, _)| *k == keyword).map(|(_, i)| &arena[*i])
}

/// `parse._build` and `parse._finish`.
fn build<'a>(
    text: &'a str, arena: &[Clause<'a>], clauses: &[(&str, usize)], extras: &[usize], comments: Vec<Cow<'a, str>>,
    date_text: Option<&'a str>, mut warnings: Vec<String>,
) -> Fields<'a> {
    let (mut helo, mut rdns, mut ip) = (None, None, None);
    let frm = clause(arena, clauses, "from");
    if let Some(frm) = frm {
        let own: Vec<&str> = frm.comments.iter().map(|&i| comments[i].as_ref()).collect();
        (helo, rdns, ip) = read_from(&frm.words, &own, text, &mut warnings);
    } else if !comments.is_empty() && text.contains("network[") {
        (rdns, ip) = qmail_network(&comments);
    }
    let by = clause(arena, clauses, "by");
    let by_host = by.and_then(|c| c.words.first()).copied();
    if let Some(by) = by.filter(|c| c.words.len() > 1) {
        warnings.push(format!("extra words after 'by {}': {}", by.words[0], repr(head(&by.words[1..].join(" "), 40))));
    }
    if by_host.is_none() && helo.is_none() && rdns.is_none() && ip.is_none() {
        warnings.push(if frm.is_some() || by.is_some() { NO_HOST.into() } else { "no 'from' or 'by' clause".into() });
    }
    let joined = |k: &str| clause(arena, clauses, k).filter(|c| !c.words.is_empty()).map(|c| join(&c.words));
    let protocol = joined("with");
    let id = clause(arena, clauses, "id").and_then(|c| c.words.first()).copied();
    let mut rcpt = None;
    if let Some(r) = joined("for").filter(|r| !r.is_empty()) {
        let several = r.contains(',');
        if several {
            warnings.push("several 'for' recipients; the first is kept".into());
        }
        rcpt = match r {
            Cow::Borrowed(r) => {
                let first = if several { strip(r.split(',').next().unwrap_or("")) } else { r };
                Some(Cow::Borrowed(first.trim_matches(|c| c == '<' || c == '>')))
            }
            Cow::Owned(r) => {
                let first = if several { strip(r.split(',').next().unwrap_or("")) } else { r.as_str() };
                Some(Cow::Owned(first.trim_matches(|c| c == '<' || c == '>').to_string()))
            }
        }
        .filter(|bare| !bare.is_empty());
    }
    let mut extra_pairs: Vec<(String, String)> =
        extras.iter().map(|&i| (arena[i].keyword.to_string(), arena[i].words.join(" "))).collect();
    extra_pairs.extend(
        clauses.iter().filter(|(k, _)| !FIELDS.contains(k)).map(|(k, i)| (k.to_string(), arena[*i].words.join(" "))),
    );
    let tls_words = joined("tls");
    let mut timestamp = None;
    if let Some(d) = date_text {
        let out = date_value(d);
        timestamp = out.value;
        warnings.extend(out.warnings);
    }
    let (tls, evidence) = read_tls(tls_words.as_deref(), &comments, protocol.as_deref());
    Fields {
        helo, rdns, ip, by_host, protocol, tls, evidence, id, rcpt, via: joined("via"), timestamp,
        date_text, warnings: dedupe(warnings), extras: extra_pairs, comments,
    }
}

fn tls_boundary(b: &[u8], i: usize) -> bool {
    i >= b.len() || !(is_word(b[i]) || b[i] == b'.' || b[i] == b'-')
}

/// Whether `hop.TLS_EVIDENCE` finds a match in `c`:
/// ``(?<![\w.-])(?:TLS|SSL)(?:v?\d(?:[._]\d)?)?(?![\w.-])|\bcipher[=\s]|Google Transport Security``.
fn tls_evidence(c: &str) -> bool {
    let b = c.as_bytes();
    let digit = |i: usize| i < b.len() && b[i].is_ascii_digit();
    for p in 0..b.len() {
        let rest = &b[p..];
        if (rest.starts_with(b"TLS") || rest.starts_with(b"SSL"))
            && (p == 0 || !(is_word(b[p - 1]) || b[p - 1] == b'.' || b[p - 1] == b'-'))
        {
            let e = p + 3;
            let mut ends = Vec::with_capacity(5);
            for start in [if e < b.len() && b[e] == b'v' { Some(e + 1) } else { None }, Some(e)].into_iter().flatten() {
                if digit(start) {
                    if start + 1 < b.len() && matches!(b[start + 1], b'.' | b'_') && digit(start + 2) {
                        ends.push(start + 3);
                    }
                    ends.push(start + 1);
                }
            }
            ends.push(e);
            if ends.into_iter().any(|end| tls_boundary(b, end)) {
                return true;
            }
        }
        if rest.starts_with(b"cipher") && (p == 0 || !is_word(b[p - 1])) && b.len() > p + 6
            && (b[p + 6] == b'=' || is_space(b[p + 6]))
        {
            return true;
        }
        if rest.starts_with(b"Google Transport Security") {
            return true;
        }
    }
    false
}

/// `hop.read_tls`: the tls clause, then a version/cipher comment, then the with-type's S.
fn read_tls(tls_words: Option<&str>, comments: &[Cow<str>], protocol: Option<&str>) -> (Option<bool>, Option<String>) {
    if let Some(words) = tls_words {
        return (Some(true), Some(format!("tls {words}")));
    }
    for comment in comments {
        if tls_evidence(comment) {
            return (Some(true), Some(strip(&comment[1..comment.len() - 1]).to_string()));
        }
    }
    match protocol {
        Some(p) if !p.is_empty() => protocol_tls(p),
        _ => (None, None),
    }
}

/// `hop.protocol_tls`: what the first word of a with-type says about TLS.
fn protocol_tls(protocol: &str) -> (Option<bool>, Option<String>) {
    let word = protocol.split(' ').next().unwrap_or("");
    let upper = word.to_ascii_uppercase();
    for base in ["UTF8SMTP", "UTF8LMTP", "ESMTP", "LMTP", "SMTP"] {
        if let Some(rest) = upper.strip_prefix(base) {
            if matches!(rest, "" | "S" | "A" | "SA") {
                return (Some(rest.starts_with('S')), Some(format!("with {word}")));
            }
            break;
        }
    }
    if upper == "HTTPS" {
        return (Some(true), Some(format!("with {word}")));
    }
    (None, None)
}
