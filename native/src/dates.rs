//! The date of a Received header: `mailboat.trace.dates.date_value`, step for step.
//!
//! The canonical form is read as the one-match pattern `_FAST` reads it, anything else by the full
//! RFC 5322 §3.3/§4.3 rules with their warnings (`slow_fields`). Instants are kept as seconds
//! since the epoch and turned back into a UTC civil time at the end; one outside years 1..9999
//! is "date out of range", as Python's datetime arithmetic reports it.

use std::sync::OnceLock;

use regex::{Captures, Regex};

use crate::text::{head, one_space_all, repr, strip, S};

/// A UTC time: year, month, day, hour, minute, second.
pub type Stamp = (i64, u32, u32, u32, u32, u32);

pub struct DateOut {
    pub value: Option<Stamp>,
    pub warnings: Vec<String>,
}

const NAMED_ZONES: [(&str, i64); 10] = [
    ("ut", 0), ("gmt", 0), ("edt", -240), ("est", -300), ("cdt", -300), ("cst", -360),
    ("mdt", -360), ("mst", -420), ("pdt", -420), ("pst", -480),
];
/// `dates.GUESSED_ZONES`: names outside RFC 5322 read with their usual offset, flagged.
const GUESSED_ZONES: [(&str, i64); 36] = [
    ("wet", 0), ("west", 60), ("bst", 60), ("cet", 60), ("met", 60), ("mez", 60), ("cest", 120), ("mest", 120),
    ("mesz", 120), ("eet", 120), ("eest", 180), ("sast", 120), ("msk", 180), ("msd", 240), ("ist", 330), ("ict", 420),
    ("wib", 420), ("hkt", 480), ("sgt", 480), ("awst", 480), ("pht", 480), ("jst", 540), ("kst", 540), ("acst", 570),
    ("acdt", 630), ("aest", 600), ("aedt", 660), ("nzst", 720), ("nzdt", 780), ("hst", -600), ("akst", -540),
    ("akdt", -480), ("ast", -240), ("adt", -180), ("nst", -210), ("ndt", -150),
];
const IST: &str = "zone IST is ambiguous (India +0530, Irish Summer Time +0100, Israel +0200); read as India +0530, a guess";
pub(crate) const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FAST_DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
pub(crate) const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

struct Patterns {
    rfc: Regex,
    iso: Regex,
    comment: Regex,
    comment_zone: Regex,
}

fn patterns() -> &'static Patterns {
    static CELL: OnceLock<Patterns> = OnceLock::new();
    CELL.get_or_init(|| {
        let d = "[0-9]";
        let rfc = format!(
            r"(?:([A-Za-z]{{3,9}}){S}*,?{S}*)?({d}{{1,2}}){S}*[-\t\n\x0B\x0C\r\x1C-\x1F ]{S}*([A-Za-z]{{3,9}})\.?{S}*[-\t\n\x0B\x0C\r\x1C-\x1F ]{S}*({d}{{2,4}}){S}+({d}{{1,2}}){S}*:{S}*({d}{{2}})(?:{S}*:{S}*({d}{{2}})(\.{d}+)?)?(?:{S}*([+-]{d}{{4}}|[+-]{d}{{2}}:?{d}{{2}}|[A-Za-z]{{1,5}}))?"
        );
        let iso = format!(
            r"({d}{{4}})-({d}{{2}})-({d}{{2}})[T\t\n\x0B\x0C\r\x1C-\x1F ]+({d}{{2}}):({d}{{2}})(?::({d}{{2}})(\.{d}+)?)?{S}*(Z|[+-]{d}{{2}}:?{d}{{2}})?(?:{S}+([A-Za-z]{{1,5}}))?"
        );
        Patterns {
            rfc: Regex::new(&rfc).unwrap(),
            iso: Regex::new(&iso).unwrap(),
            comment: Regex::new(r"\([^()]*\)").unwrap(),
            comment_zone: Regex::new(&format!(r"\({S}*([A-Za-z]{{1,5}}|[+-][0-9]{{4}}){S}*\)")).unwrap(),
        }
    })
}

fn named_zone(name_lower: &str) -> Option<i64> {
    NAMED_ZONES.iter().find(|(n, _)| *n == name_lower).map(|(_, o)| *o)
}

pub(crate) fn num(s: &str) -> i64 {
    s.bytes().fold(0i64, |acc, b| acc * 10 + i64::from(b - b'0'))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Python's `datetime(y, mo, d, h, mi, s)` check: None when valid, else its ValueError text.
fn range_error(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<String> {
    if !(1..=9999).contains(&y) {
        return Some(format!("year {y} is out of range"));
    }
    if !(1..=12).contains(&mo) {
        return Some("month must be in 1..12".into());
    }
    if d < 1 || d > days_in_month(y, mo) {
        return Some("day is out of range for month".into());
    }
    if h > 23 {
        return Some("hour must be in 0..23".into());
    }
    if mi > 59 {
        return Some("minute must be in 0..59".into());
    }
    if s > 59 {
        return Some("second must be in 0..59".into());
    }
    None
}

pub(crate) fn epoch(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
    days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
}

/// Whether an instant lies in years 1..9999 (UTC), where Python's datetime arithmetic works.
fn in_range(t: i64) -> bool {
    (1..=9999).contains(&civil_from_days(t.div_euclid(86400)).0)
}

/// The UTC time of an instant that is `in_range`.
pub(crate) fn stamp(t: i64) -> Stamp {
    let (y, mo, d) = civil_from_days(t.div_euclid(86400));
    let r = t.rem_euclid(86400);
    (y, mo, d, (r / 3600) as u32, (r % 3600 / 60) as u32, (r % 60) as u32)
}

/// Monday = 0, as `datetime.weekday()`.
pub(crate) fn weekday(t: i64) -> usize {
    (t.div_euclid(86400) + 3).rem_euclid(7) as usize
}

/// `dates.date_value(text)`.
pub fn date_value(text: &str) -> DateOut {
    if let Some(groups) = fast_groups(text) {
        if let Some(t) = fast_utc(&groups) {
            return DateOut { value: Some(stamp(t)), warnings: Vec::new() };
        }
    }
    slow_fields(text)
}

/// `_FAST.match(text)`'s groups 1-9 (index 0 unused), read by hand:
/// ``\s*(?:(Mon|..|Sun), )?(\d{1,2}) (Jan|..|Dec) (\d{4}) (\d\d):(\d\d):(\d\d)
/// ([+-]\d\d\d\d|UT|GMT|[ECMP][SD]T)(?: \((UTC|GMT|[A-Z]{3,4}|[+-]\d{4})\))?\s*\Z``.
/// Every part is fixed or ends where the next literal begins, so the regex has one way to match
/// (tests/trace/test_native.py checks this reading against the regex on generated dates).
pub fn fast_groups(text: &str) -> Option<[Option<&str>; 10]> {
    let b = text.as_bytes();
    let mut g: [Option<&str>; 10] = [None; 10];
    let mut i = 0;
    while i < b.len() && crate::text::is_space(b[i]) {
        i += 1;
    }
    if b.len() >= i + 5 && b[i + 3] == b',' && b[i + 4] == b' ' && FAST_DAYS.contains(&&text[i..i + 3]) {
        g[1] = Some(&text[i..i + 3]);
        i += 5;
    }
    let digits = |from: usize, max: usize| {
        let mut j = from;
        while j < b.len() && j - from < max && b[j].is_ascii_digit() {
            j += 1;
        }
        j - from
    };
    let n = digits(i, 2);
    if n == 0 || b.get(i + n) != Some(&b' ') {
        return None;
    }
    g[2] = Some(&text[i..i + n]);
    i += n + 1;
    let month = text.get(i..i + 3)?;
    if !MONTHS.iter().any(|m| m[..1].to_ascii_uppercase() == month[..1] && m[1..] == month[1..]) || b.get(i + 3) != Some(&b' ') {
        return None;
    }
    g[3] = Some(month);
    i += 4;
    if digits(i, 4) != 4 || b.get(i + 4) != Some(&b' ') {
        return None;
    }
    g[4] = Some(&text[i..i + 4]);
    i += 5;
    for (k, sep) in [(5, b':'), (6, b':'), (7, b' ')] {
        if digits(i, 2) != 2 || b.get(i + 2) != Some(&sep) {
            return None;
        }
        g[k] = Some(&text[i..i + 2]);
        i += 3;
    }
    let zone_len = match b.get(i) {
        Some(b'+' | b'-') if digits(i + 1, 4) == 4 => 5,
        Some(b'U') if b.get(i + 1) == Some(&b'T') => 2,
        Some(b'G') if text.get(i..i + 3) == Some("GMT") => 3,
        Some(b'E' | b'C' | b'M' | b'P') if matches!(b.get(i + 1), Some(b'S' | b'D')) && b.get(i + 2) == Some(&b'T') => 3,
        _ => return None,
    };
    g[8] = Some(&text[i..i + zone_len]);
    i += zone_len;
    if b.len() >= i + 2 && b[i] == b' ' && b[i + 1] == b'(' {
        if let Some(close) = text[i + 2..].find(')').map(|p| i + 2 + p) {
            let inner = &text[i + 2..close];
            let upper = (3..=4).contains(&inner.len()) && inner.bytes().all(|c| c.is_ascii_uppercase());
            let numeric = inner.len() == 5 && matches!(inner.as_bytes()[0], b'+' | b'-') && digits(i + 3, 4) == 4;
            if (upper || numeric) && b[close + 1..].iter().all(|&c| crate::text::is_space(c)) {
                g[9] = Some(inner);
                return Some(g);
            }
        }
    }
    b[i..].iter().all(|&c| crate::text::is_space(c)).then_some(g)
}

/// `dates.fast_utc` on the groups of `_FAST`: the instant, or None for the full rules.
fn fast_utc(groups: &[Option<&str>; 10]) -> Option<i64> {
    let g = |i: usize| groups[i];
    let zone = g(8).unwrap_or("");
    let offset = if zone.starts_with('+') || zone.starts_with('-') {
        let minutes = num(&zone[3..]);
        if minutes > 59 {
            return None;
        }
        (num(&zone[1..3]) * 60 + minutes) * if zone.starts_with('-') { -1 } else { 1 }
    } else {
        match named_zone(&zone.to_ascii_lowercase()) {
            Some(o) => o,
            None => return None,
        }
    };
    let s = num(g(7).unwrap_or("0"));
    if s > 59 {
        return None;
    }
    if let Some(comment) = g(9) {
        if named_zone(&comment.to_ascii_lowercase()).unwrap_or(offset) != offset {
            return None;
        }
    }
    if g(4).is_some_and(|y| y.starts_with('0')) {
        return None; // "0102" (a three-digit year printed with %04d): the full path reads it
    }
    let (y, d, h, mi) = (num(g(4).unwrap_or("0")), num(g(2).unwrap_or("0")), num(g(5).unwrap_or("0")), num(g(6).unwrap_or("0")));
    let mon = g(3).unwrap_or("");
    let mo = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(mon)).map_or(0, |i| i as i64 + 1);
    if range_error(y, mo, d, h, mi, s).is_some() {
        return None;
    }
    let local = epoch(y, mo, d, h, mi, s);
    if let Some(wday) = g(1) {
        if FAST_DAYS[weekday(local)] != wday {
            return None;
        }
    }
    let t = local - offset * 60;
    in_range(t).then_some(t) // outside years 1..9999 in UTC: the full path says so
}

/// `dates.slow_fields` without the zone flag (the Received reader does not keep it).
fn slow_fields(text: &str) -> DateOut {
    let p = patterns();
    let unreadable = || DateOut { value: None, warnings: vec![format!("unreadable date {}", repr(head(strip(text), 60)))] };
    let mut clean = strip(text).to_string();
    if clean.is_empty() {
        return DateOut { value: None, warnings: vec!["no date".into()] };
    }
    let mut comment_zone: Option<String> = None;
    if clean.contains('(') {
        comment_zone = p.comment_zone.captures(&clean).and_then(|c| c.get(1)).map(|m| m.as_str().to_string());
        while clean.contains('(') {
            let stripped = p.comment.replace_all(&clean, " ").into_owned();
            if stripped == clean {
                clean = clean.replace(['(', ')'], " ");
                break;
            }
            clean = stripped;
        }
    }
    let clean = one_space_all(&clean);
    if !clean.contains(':') {
        return unreadable();
    }
    let mut warnings = Vec::new();
    if let Some(m) = p.rfc.captures(&clean) {
        return from_rfc(&m, &clean, comment_zone.as_deref(), warnings);
    }
    if let Some(m) = p.iso.captures(&clean) {
        let g = |i: usize| m.get(i).map(|x| x.as_str());
        warnings.push("date is not in RFC 5322 form (ISO 8601 / Go time format)".into());
        let offset = match g(8) {
            Some("Z") => 0,
            zone => zone_offset(zone.or(g(9)), &mut warnings).0,
        };
        let value = build(num(g(1).unwrap_or("0")), num(g(2).unwrap_or("0")), num(g(3).unwrap_or("0")),
                          num(g(4).unwrap_or("0")), num(g(5).unwrap_or("0")), num(g(6).unwrap_or("0")),
                          g(7), offset, &mut warnings);
        return DateOut { value: value.map(stamp), warnings };
    }
    if let Some(out) = crate::oddates::other_form(&clean, warnings) {
        return out;
    }
    unreadable()
}

/// `dates._zone`: (offset in minutes, known).
pub(crate) fn zone_offset(text: Option<&str>, warnings: &mut Vec<String>) -> (i64, bool) {
    let text = match text {
        Some(t) if !t.is_empty() => t,
        _ => {
            warnings.push("date has no time zone; read as UTC (-0000)".into());
            return (0, false);
        }
    };
    if text.starts_with('+') || text.starts_with('-') {
        let digits = text[1..].replace(':', "");
        let (hours, minutes) = (num(&digits[..2]), num(&digits[2..]));
        if minutes > 59 {
            warnings.push(format!("invalid zone {text}; read as UTC (-0000)"));
            return (0, false);
        }
        if text == "-0000" || text == "-00:00" {
            return (0, false);
        }
        return ((hours * 60 + minutes) * if text.starts_with('-') { -1 } else { 1 }, true);
    }
    let lower = text.to_ascii_lowercase();
    if let Some(o) = named_zone(&lower) {
        return (o, true);
    }
    if let Some(&(_, o)) = GUESSED_ZONES.iter().find(|(n, _)| *n == lower) {
        warnings.push(if lower == "ist" {
            IST.to_string()
        } else {
            let sign = if o < 0 { '-' } else { '+' };
            format!("zone {text} is not an RFC 5322 zone; read as {sign}{:02}{:02}, its usual offset (a guess)",
                    o.abs() / 60, o.abs() % 60)
        });
        return (o, false);
    }
    if text.len() == 1 {
        warnings.push(format!("military zone {text} read as -0000 (RFC 5322 §4.3)"));
    } else {
        warnings.push(format!("unknown zone {text} read as -0000 (RFC 5322 §4.3)"));
    }
    (0, false)
}

/// `dates._build`: the instant, or None (with a warning) when the fields make no date.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, frac: Option<&str>, offset: i64,
         warnings: &mut Vec<String>) -> Option<i64> {
    let (s, leap) = if s == 60 { (59, 1) } else { (s, 0) };
    if let Some(err) = range_error(y, mo, d, h, mi, s) {
        warnings.push(format!("date out of range: {err}"));
        return None;
    }
    if let Some(frac) = frac.filter(|f| !f.is_empty()) {
        warnings.push(format!("fractional seconds {frac} ignored"));
    }
    let t = epoch(y, mo, d, h, mi, s) - offset * 60 + leap;
    if !in_range(t) {
        warnings.push("date out of range: date value out of range".into()); // Python's OverflowError
        return None;
    }
    Some(t)
}

/// `dates._from_rfc` (value and warnings).
fn from_rfc(m: &Captures, clean: &str, comment_zone: Option<&str>, mut warnings: Vec<String>) -> DateOut {
    let g = |i: usize| m.get(i).map(|x| x.as_str());
    let mon = g(3).unwrap_or("");
    let month = MONTHS.iter().position(|x| mon.len() >= 3 && x.eq_ignore_ascii_case(&mon[..3]));
    let Some(month) = month else {
        return DateOut { value: None, warnings: vec![format!("unknown month {}", repr(mon))] };
    };
    if g(7).is_none() {
        warnings.push("date has no seconds; read as :00".into());
    }
    let mut zone = g(9);
    if let Some(z) = zone {
        if z.bytes().all(|b| b.is_ascii_alphabetic()) && (z.eq_ignore_ascii_case("am") || z.eq_ignore_ascii_case("pm")) {
            zone = None;
        }
    }
    let (mut offset, known) = zone_offset(zone, &mut warnings);
    if zone.is_some_and(|z| z.eq_ignore_ascii_case("utc")) {
        offset = 0;
    }
    let y = year(g(4).unwrap_or("0"), &mut warnings);
    let value = build(y, month as i64 + 1, num(g(2).unwrap_or("0")), num(g(5).unwrap_or("0")),
                      num(g(6).unwrap_or("0")), num(g(7).unwrap_or("0")), g(8), offset, &mut warnings);
    let Some(t) = value else {
        return DateOut { value: None, warnings };
    };
    if let Some(wday) = g(1) {
        check_weekday(wday, y, month as i64 + 1, num(g(2).unwrap_or("0")), &mut warnings);
    }
    if let (Some(name), true, Some(z)) = (comment_zone, known, zone) {
        if z.starts_with('+') || z.starts_with('-') {
            if let Some(named) = named_zone(&name.to_ascii_lowercase()) {
                if named != offset {
                    warnings.push(format!("zone comment ({name}) contradicts offset {z}; offset used"));
                }
            }
        }
    }
    let start = m.get(0).map_or(0, |x| x.start());
    if start > 0 && g(1).is_none() {
        warnings.push(format!("text before the date ignored: {}", repr(head(strip(&clean[..start]), 40))));
    }
    DateOut { value: Some(stamp(t)), warnings }
}

/// `dates._year`: the year of a 2-4 digit text by the obsolete rules of RFC 5322 §4.3.
pub(crate) fn year(text: &str, warnings: &mut Vec<String>) -> i64 {
    let y = num(text);
    if text.len() == 2 {
        warnings.push(format!("obsolete two-digit year {text}"));
        return y + if y < 50 { 2000 } else { 1900 };
    }
    if text.len() == 3 {
        warnings.push(format!("obsolete three-digit year {text}"));
        return y + 1900;
    }
    if text.starts_with('0') && y >= 100 {
        warnings.push(format!("obsolete three-digit year {text} (with a leading zero)"));
        return y + 1900;
    }
    y
}

/// `dates._check_weekday`: flag a weekday that is not one, or not the date's.
pub(crate) fn check_weekday(wday: &str, y: i64, month: i64, day: i64, warnings: &mut Vec<String>) {
    let expected = DAYS[weekday(epoch(y, month, day, 0, 0, 0))];
    let written = wday[..3].to_ascii_lowercase();
    if !DAYS.contains(&written.as_str()) {
        warnings.push(format!("unknown weekday {}", repr(wday)));
    } else if written != expected {
        let title = format!("{}{}", expected[..1].to_ascii_uppercase(), &expected[1..]);
        warnings.push(format!("weekday {wday} does not match the date (it was a {title})"));
    }
}
