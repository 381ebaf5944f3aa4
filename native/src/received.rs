//! One Received header value → the fields of a `mailboat.trace.hop.Hop`: a line-for-line port
//! of the general reader in src/mailboat/trace/parse.py and the shared readings of hop.py (the
//! from clause by dialect, TLS from evidence). The Python reader is the reference; every rule
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
use crate::text::{dedupe, head, is_space, is_word, join, one_space, repr, strip, S};

const KEYWORDS: [&str; 10] = ["from", "by", "via", "with", "id", "for", "tls", "group", "state", "priority"];
const FIELDS: [&str; 6] = ["from", "by", "via", "with", "id", "for"];
const UNKNOWN: [&str; 3] = ["unknown", "<unknown>", "[unknown]"];
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
    nested: Regex,
    date_start: Regex,
    qmail_network: Regex,
}

fn patterns() -> &'static Patterns {
    static CELL: OnceLock<Patterns> = OnceLock::new();
    CELL.get_or_init(|| {
        let ci = |words: &[&str]| words.join("|");
        let weekdays = ci(&["mon", "tue", "wed", "thu", "fri", "sat", "sun"]);
        let months = ci(&["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]);
        Patterns {
            nested: Regex::new(r"\([^()]*\)").unwrap(),
            qmail_network: Regex::new(&format!(
                r"invoked from network\[((?:[0-9]{{1,3}}(?:\.[0-9]{{1,3}}){{3}}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(?:%[A-Za-z0-9_]+)?))(?:/([^\]\t\n\x0B\x0C\r\x1C-\x1F ]*))?\]"
            )).unwrap(),
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

fn is_unknown(s: &str) -> bool {
    UNKNOWN.iter().any(|u| u.eq_ignore_ascii_case(s))
}

/// Whether all of `s` matches `hop.IP`:
/// ``\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(?:%\w+)?``.
fn is_ip(s: &str) -> bool {
    let mut parts = 0;
    let v4 = s.split('.').all(|p| {
        parts += 1;
        (1..=3).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit())
    });
    if v4 && parts == 4 {
        return true;
    }
    let Some(colon) = s.find(':') else { return false };
    if !s.as_bytes()[..colon].iter().all(u8::is_ascii_hexdigit) {
        return false;
    }
    let rest = &s.as_bytes()[colon + 1..];
    let k = rest.iter().position(|&c| !(c.is_ascii_hexdigit() || c == b':' || c == b'.')).unwrap_or(rest.len());
    k == rest.len() || (rest[k] == b'%' && rest.len() > k + 1 && rest[k + 1..].iter().all(|&c| is_word(c)))
}

fn ipv6_tag(s: &str) -> bool {
    s.len() >= 5 && s.as_bytes()[..5].eq_ignore_ascii_case(b"ipv6:")
}

/// `hop.TCP_INFO.match(inner)`'s groups (rdns, ip), read by hand:
/// ``(?:[^\s@\[\]]++@)?(\S++)\s+\[(?:IPv6:)?(IP)\](?::\d+)?``. The name is the run of
/// non-space from the start (less an ``ident@``), the address is what lies between the "[" (and
/// its tag) and the first "]", which IP cannot contain.
fn tcp_info(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let run = b.iter().position(|&c| is_space(c)).unwrap_or(b.len());
    if run == 0 {
        return None;
    }
    let mut j = run;
    while j < b.len() && is_space(b[j]) {
        j += 1;
    }
    if j == run || b.get(j) != Some(&b'[') {
        return None;
    }
    let open = j + 1;
    let close = open + s[open..].find(']')?;
    let ip = if ipv6_tag(&s[open..close]) && is_ip(&s[open + 5..close]) {
        &s[open + 5..close]
    } else if is_ip(&s[open..close]) {
        &s[open..close]
    } else {
        return None;
    };
    let name = match s[..run].find('@') {
        Some(at) if at > 0 && at + 1 < run && !s[..at].contains(['[', ']']) => &s[at + 1..run],
        _ => &s[..run],
    };
    Some((name, ip))
}

/// The IP group of ``\[?(?:IPv6:)?(IP)\]?\Z`` (re.I) matched from the start of `token`.
fn bracketed_ip(token: &str) -> Option<&str> {
    let body = token.strip_prefix('[').unwrap_or(token);
    let body = body.strip_suffix(']').unwrap_or(body);
    if ipv6_tag(body) && is_ip(&body[5..]) {
        Some(&body[5..])
    } else if is_ip(body) {
        Some(body)
    } else {
        None
    }
}

/// `hop.as_ip`: the address a whole token is, when it has a dot or colon.
fn as_ip(token: &str) -> Option<String> {
    bracketed_ip(token).filter(|ip| ip.contains(':') || ip.contains('.')).map(str::to_string)
}

/// `hop._IDENT_IP.match(inner)`'s address:
/// ``(?:[^\s@]+@)*\[?(?:IPv6:)?(IP)\]?(?:\s+with\s+(?:login|plain))?\Z`` (re.I). IP holds no
/// space and no "@": a " with login" suffix is Yahoo's, and the idents end at the last "@", each non-empty and
/// free of space.
fn ident_ip(inner: &str) -> Option<&str> {
    let body = without_login(inner);
    match body.rfind('@') {
        Some(at) if body[..at].split('@').all(|s| !s.is_empty() && !s.bytes().any(is_space)) => {
            bracketed_ip(&body[at + 1..])
        }
        Some(_) => None,
        None => bracketed_ip(body),
    }
}

/// `s` less a final ``\s+with\s+(?:login|plain)`` (any case), or `s`.
fn without_login(s: &str) -> &str {
    let b = s.as_bytes();
    if b.len() < 11 || !(b[b.len() - 5..].eq_ignore_ascii_case(b"login") || b[b.len() - 5..].eq_ignore_ascii_case(b"plain")) {
        return s;
    }
    let end = b.len() - 5;
    let mut i = end;
    while i > 0 && is_space(b[i - 1]) {
        i -= 1;
    }
    if i == end || i < 4 || !b[i - 4..i].eq_ignore_ascii_case(b"with") {
        return s;
    }
    let end = i - 4;
    let mut j = end;
    while j > 0 && is_space(b[j - 1]) {
        j -= 1;
    }
    if j == end {
        return s;
    }
    &s[..j]
}

/// `hop._BRACKETED.match(word)`'s address: ``\[(?:IPv6:)?(IP)\]\Z`` (re.I).
fn bracketed_only(word: &str) -> Option<&str> {
    let body = word.strip_prefix('[')?.strip_suffix(']')?;
    if ipv6_tag(body) && is_ip(&body[5..]) {
        Some(&body[5..])
    } else if is_ip(body) {
        Some(body)
    } else {
        None
    }
}

/// `hop._address_words`: the address in the words after the from word when they are ``[IP]``,
/// ``user@host [IP]`` or ``- IP``.
fn address_words<'a>(words: &[&'a str]) -> Option<&'a str> {
    let ip = match words.len() {
        2 => bracketed_only(words[1]),
        3 if words[1] == "-" => is_ip(words[2]).then_some(words[2]),
        3 if words[1].contains('@') && !words[1].starts_with(['[', '<']) => bracketed_only(words[2]),
        _ => None,
    }?;
    (ip.contains('.') || ip.contains(':')).then_some(ip)
}

/// `hop.qmail_network`: (rdns, ip) from qmail's "invoked from network[IP/rDNS]".
fn qmail_network(comments: &[Cow<str>]) -> (Option<String>, Option<String>) {
    for comment in comments {
        if comment.contains("network[") {
            if let Some(m) = patterns().qmail_network.captures(comment) {
                let ip = m.get(1).map_or("", |x| x.as_str());
                if ip.contains('.') || ip.contains(':') {
                    let rdns = m.get(2).map(|x| x.as_str()).filter(|r| !r.is_empty() && !is_unknown(r));
                    return (rdns.map(str::to_string), Some(ip.to_string()));
                }
            }
        }
    }
    (None, None)
}

/// `hop._QMAIL_HELO.match(inner)`'s name: ``(?:HELO|EHLO)\s+(\S+)\Z`` (re.I).
fn qmail_helo(inner: &str) -> Option<&str> {
    let b = inner.as_bytes();
    if b.len() < 6 || !(b[..4].eq_ignore_ascii_case(b"helo") || b[..4].eq_ignore_ascii_case(b"ehlo")) || !is_space(b[4]) {
        return None;
    }
    let name = inner[4..].trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8));
    (!name.is_empty() && !name.bytes().any(is_space)).then_some(name)
}

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_space(b[i]) {
        i += 1;
    }
    i
}

/// `hop._EXIM.match(inner)`'s groups (ip, has ":port", helo), or None:
/// ``(?:\[(?:IPv6:)?(IP)\](:\d+)?)?\s*(?:port=\d+)?\s*(?:helo=(\S+))?\s*\Z`` (re.I).
/// Each optional part either matches where it starts or the whole match fails, so it is read
/// left to right without backtracking.
fn exim(inner: &str) -> Option<(Option<&str>, bool, Option<&str>)> {
    let b = inner.as_bytes();
    let (mut ip, mut port, mut helo) = (None, false, None);
    let mut i = 0;
    if b.first() == Some(&b'[') {
        let close = inner.find(']')?;
        let body = &inner[1..close];
        ip = Some(if ipv6_tag(body) && is_ip(&body[5..]) {
            &body[5..]
        } else if is_ip(body) {
            body
        } else {
            return None;
        });
        i = close + 1;
        if b.get(i) == Some(&b':') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            port = true;
        }
    }
    i = skip_spaces(b, i);
    if b.len() > i + 5 && b[i..i + 5].eq_ignore_ascii_case(b"port=") && b[i + 5].is_ascii_digit() {
        i += 5;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    i = skip_spaces(b, i);
    if b.len() > i + 5 && b[i..i + 5].eq_ignore_ascii_case(b"helo=") && !is_space(b[i + 5]) {
        let start = i + 5;
        i = start;
        while i < b.len() && !is_space(b[i]) {
            i += 1;
        }
        helo = Some(&inner[start..i]);
    }
    (skip_spaces(b, i) == b.len()).then_some((ip, port, helo))
}

/// `hop.read_from`: (helo, rdns, ip) of the from clause, by dialect.
fn read_from(words: &[&str], comments: &[&str], text: &str, warnings: &mut Vec<String>)
    -> (Option<String>, Option<String>, Option<String>)
{
    let p = patterns();
    let mut word: Option<&str> = words.first().copied();
    let mut word_ip_after = None;
    if words.len() > 1 {
        word_ip_after = address_words(words);
        if word_ip_after.is_none() {
            warnings.push(format!("extra words in the from clause: {}", repr(head(&words[1..].join(" "), 40))));
        }
    }
    if word.is_some_and(is_unknown) {
        word = None;
    }
    let mut helo: Option<String> = word.map(str::to_string);
    let mut rdns: Option<String> = None;
    let mut ip: Option<String> = None;
    let mut word_is_rdns = false;
    for comment in comments {
        let mut inner: Cow<str> = Cow::Borrowed(strip(&comment[1..comment.len() - 1]));
        if inner.contains('(') {
            if inner.contains("may be forged") {
                warnings.push("the receiver noted the reverse DNS may be forged".into());
            }
            inner = Cow::Owned(strip(&p.nested.replace_all(&inner, " ")).to_string());
        }
        if inner.is_empty() {
            continue;
        }
        let bracket = inner.contains('[');
        if ip.is_none() && bracket && !inner.contains("helo=") {
            if let Some((mut name, address)) = tcp_info(&inner) {
                if name.len() > 1 && name.ends_with('.') {
                    name = &name[..name.len() - 1];
                }
                rdns = (!is_unknown(name)).then(|| name.to_string());
                ip = Some(address.to_string());
                continue;
            }
        }
        if inner.len() >= 4 && inner[2..4].eq_ignore_ascii_case("lo") {
            if let Some(name) = qmail_helo(&inner) {
                helo = Some(name.to_string());
                word_is_rdns = true;
                continue;
            }
        }
        if bracket || inner.starts_with("port=") || contains_ignore_case(&inner, b"helo=") {
            if let Some((g1, port, g3)) = exim(&inner) {
                if port || g3.is_some() || inner.starts_with("port=") || (text.contains("(Exim") && g1.is_some()) {
                    if let Some(g1) = g1 {
                        ip = Some(g1.to_string());
                    }
                    helo = g3.or(word).map(str::to_string);
                    word_is_rdns = true;
                    continue;
                }
            }
        }
        if ip.is_none() {
            if let Some(g) = ident_ip(&inner) {
                if g.contains('.') || g.contains(':') {
                    ip = Some(g.to_string());
                    continue;
                }
            }
        }
    }
    if ip.is_none() {
        ip = word_ip_after.map(str::to_string);
    }
    if let (Some(w), true) = (word, word_is_rdns) {
        match as_ip(w) {
            Some(word_ip) => ip = ip.or(Some(word_ip)),
            None => rdns = Some(w.trim_end_matches('.').to_string()),
        }
    } else if let (None, Some(w)) = (&ip, word) {
        if let Some(word_ip) = as_ip(w) {
            ip = Some(word_ip);
            helo = None;
        }
    }
    (helo, rdns, ip)
}

/// `needle in haystack.lower()` for a lower-case ASCII needle.
fn contains_ignore_case(haystack: &str, needle: &[u8]) -> bool {
    haystack.as_bytes().windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
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
