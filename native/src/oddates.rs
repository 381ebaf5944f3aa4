//! Dates seen in the wild against RFC 5322, read and flagged: `dates._OTHER_FORMS` and
//! `dates._other_form`, step for step (the month before the day with a 12-hour clock, C's ctime,
//! DD/MM/YYYY). Tried only when neither the RFC form nor ISO 8601 was found.

use std::sync::OnceLock;

use regex::{Captures, Regex};

use crate::dates::{build, check_weekday, num, stamp, year, zone_offset, DateOut, MONTHS};
use crate::text::{head, repr, strip, S};

fn forms() -> &'static [(Regex, &'static str); 3] {
    static CELL: OnceLock<[(Regex, &'static str); 3]> = OnceLock::new();
    CELL.get_or_init(|| {
        let zone = "[+-][0-9]{4}|[+-][0-9]{2}:?[0-9]{2}|[A-Za-z]{1,5}";
        let clock = format!(
            r"(?P<hour>[0-9]{{1,2}}):(?P<minute>[0-9]{{2}})(?::(?P<sec>[0-9]{{2}}))?(?:{S}*(?P<ampm>[AaPp][Mm])(?-u:\b))?"
        );
        let month_first = format!(
            r"(?:(?P<wday>[A-Za-z]{{3,9}}),?{S}+)?(?P<mon>[A-Za-z]{{3,9}})\.?,?{S}+(?P<day>[0-9]{{1,2}}),?{S}+(?P<year>[0-9]{{2,4}}){S}+{clock}(?:{S}*(?P<zone>{zone}))?"
        );
        let ctime = format!(
            r"(?:(?P<wday>[A-Za-z]{{3,9}}),?{S}+)?(?P<mon>[A-Za-z]{{3,9}}){S}+(?P<day>[0-9]{{1,2}}){S}+{clock}{S}+(?P<year>[0-9]{{4}})(?:{S}*(?P<zone>{zone}))?"
        );
        let dmy = format!(
            r"(?P<day>[0-9]{{1,2}})/(?P<mon>[0-9]{{1,2}})/(?P<year>[0-9]{{4}}){S}+{clock}(?:{S}*(?P<zone>{zone}))?"
        );
        [
            (Regex::new(&month_first).unwrap(), "month before day"),
            (Regex::new(&ctime).unwrap(), "ctime"),
            (Regex::new(&dmy).unwrap(), "DD/MM/YYYY"),
        ]
    })
}

/// The date of `clean` (comments removed, spaces single) in one of the other forms, or None when
/// none is found.
pub fn other_form(clean: &str, warnings: Vec<String>) -> Option<DateOut> {
    forms().iter().find_map(|(re, form)| re.captures(clean).map(|m| read(&m, form, clean, warnings.clone())))
}

fn read(m: &Captures, form: &str, clean: &str, mut warnings: Vec<String>) -> DateOut {
    let g = |name: &str| m.name(name).map(|x| x.as_str());
    let mon = g("mon").unwrap_or("");
    let mut d = num(g("day").unwrap_or("0"));
    let mut form = form;
    let month = if mon.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        let mut month = num(mon);
        if month > 12 && d <= 12 {
            (month, d) = (d, month);
            form = "MM/DD/YYYY";
        }
        month
    } else {
        match MONTHS.iter().position(|x| mon.len() >= 3 && x.eq_ignore_ascii_case(&mon[..3])) {
            Some(i) => i as i64 + 1,
            None => return DateOut { value: None, warnings: vec![format!("unknown month {}", repr(mon))] },
        }
    };
    warnings.push(format!("date is not in RFC 5322 form ({form})"));
    let sec = g("sec");
    if sec.is_none() {
        warnings.push("date has no seconds; read as :00".into());
    }
    let mut h = num(g("hour").unwrap_or("0"));
    if let Some(ampm) = g("ampm") {
        if h <= 12 {
            h = h % 12 + if ampm.eq_ignore_ascii_case("pm") { 12 } else { 0 };
        }
    }
    let (offset, _) = zone_offset(g("zone"), &mut warnings);
    let y = year(g("year").unwrap_or("0"), &mut warnings);
    let value = build(y, month, d, h, num(g("minute").unwrap_or("0")), num(sec.unwrap_or("0")), None, offset,
                      &mut warnings);
    let Some(t) = value else {
        return DateOut { value: None, warnings };
    };
    let wday = g("wday");
    if let Some(wday) = wday {
        check_weekday(wday, y, month, d, &mut warnings);
    }
    let start = m.get(0).map_or(0, |x| x.start());
    if start > 0 && wday.is_none() {
        warnings.push(format!("text before the date ignored: {}", repr(head(strip(&clean[..start]), 40))));
    }
    DateOut { value: Some(stamp(t)), warnings }
}
