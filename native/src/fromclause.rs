//! The from clause of a Received header, by dialect: `hop.read_from` and the readings it shares
//! (TCP-info, Exim, qmail, Yahoo, address words after the from word), and qmail's own
//! "invoked from network[IP/rDNS]" (`hop.qmail_network`); split from received.rs, whose
//! tokenizer and clauses call them. The Python reader is the reference, step for step.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::Regex;

use crate::text::{head, is_space, is_word, repr, strip};

const UNKNOWN: [&str; 3] = ["unknown", "<unknown>", "[unknown]"];

struct Patterns {
    nested: Regex,
    qmail_network: Regex,
}

fn patterns() -> &'static Patterns {
    static CELL: OnceLock<Patterns> = OnceLock::new();
    CELL.get_or_init(|| Patterns {
        nested: Regex::new(r"\([^()]*\)").unwrap(),
        qmail_network: Regex::new(&format!(
                r"invoked from network\[((?:[0-9]{{1,3}}(?:\.[0-9]{{1,3}}){{3}}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(?:%[A-Za-z0-9_]+)?))(?:/([^\]\t\n\x0B\x0C\r\x1C-\x1F ]*))?\]"
        )).unwrap(),
    })
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
    tagged_ip(body.strip_suffix(']').unwrap_or(body))
}

/// The address `body` is, with an optional ``IPv6:`` tag: ``(?:IPv6:)?(IP)\Z`` (re.I).
fn tagged_ip(body: &str) -> Option<&str> {
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
    tagged_ip(word.strip_prefix('[')?.strip_suffix(']')?)
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
pub fn qmail_network(comments: &[Cow<str>]) -> (Option<String>, Option<String>) {
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
pub fn read_from(words: &[&str], comments: &[&str], text: &str, warnings: &mut Vec<String>)
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
