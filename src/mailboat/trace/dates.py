"""Dates of Received headers, read by RFC 5322 §3.3 and the obsolete forms of §4.3.

``email.utils.parsedate_tz`` is not enough (reference/received-grammar.md §2.4): its two-digit
year pivot is 68 instead of 49/50, it returns naive datetimes for ``-0000`` and unknown zones, it
rejects fractional seconds and never checks the weekday. This module implements the RFC rules:

* ``[day-of-week ","] day month year hour ":" minute [":" second] zone [CFWS]``;
* obs-year (§4.3): 00-49 → 2000-2049, 50-99 → 1900-1999, three digits → +1900; a three-digit
  year written with a leading zero (``0102``: C's ``tm_year`` printed as ``%04d``) is read as
  three digits (2002) and flagged;
* obs-zone (§4.3): UT/GMT = +0000, EDT -4, EST -5, CDT -5, CST -6, MDT -6, MST -7, PDT -7, PST -8;
  zone names in common use beside them (``CEST``, ``BST``, ``JST``, ``AEST``...) are read with
  their usual offset and flagged as a guess (``IST`` is ambiguous: India +0530, the most common,
  and the warning says so); military letters and any other alphabetic zone (``UTC``, ``XYZ``)
  are read as ``-0000`` ("UTC, no information about the local zone") and flagged;
* missing seconds are ``:00``; fractional seconds are accepted and flagged;
* a trailing comment such as ``(PDT)`` is CFWS and ignored, but flagged when it contradicts the
  numeric offset; a weekday that does not match the date keeps the date and is flagged;
* seen in the wild against the rules, read and flagged: the Go ``time.String()`` form SendGrid
  writes (``2024-05-14 15:44:18.123456789 +0000 UTC m=+1234.5``), ISO 8601 timestamps, the
  month before the day with a 12-hour clock (``Aug, 25 2002 11:17:27 PM +1100``), ``DD/MM/YYYY``
  (``21/08/2002 11:17:27``) and C's ctime (``Wed Aug 21 11:17:27 2002``).

`parse_date` never raises: an unreadable date gives ``DateResult(None, warnings)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NAMED_ZONES = {
    "ut": 0, "gmt": 0,
    "edt": -4 * 60, "est": -5 * 60, "cdt": -5 * 60, "cst": -6 * 60,
    "mdt": -6 * 60, "mst": -7 * 60, "pdt": -7 * 60, "pst": -8 * 60,
}
# Zone names outside RFC 5322 that servers write, with their usual offset (minutes east of UTC).
# A name can mean several zones; the one taken is the most common in mail (IST: see _IST).
GUESSED_ZONES = {
    "wet": 0, "west": 60, "bst": 60, "cet": 60, "met": 60, "mez": 60, "cest": 120, "mest": 120,
    "mesz": 120, "eet": 120, "eest": 180, "sast": 120, "msk": 180, "msd": 240, "ist": 330, "ict": 420,
    "wib": 420, "hkt": 480, "sgt": 480, "awst": 480, "pht": 480, "jst": 540, "kst": 540, "acst": 570,
    "acdt": 630, "aest": 600, "aedt": 660, "nzst": 720, "nzdt": 780, "hst": -600, "akst": -540,
    "akdt": -480, "ast": -240, "adt": -180, "nst": -210, "ndt": -150,
}
_IST = "zone IST is ambiguous (India +0530, Irish Summer Time +0100, Israel +0200); read as India +0530, a guess"

# RFC 5322 date-time after comments are removed. Groups: weekday, day, month, year, hour,
# minute, second, fraction, zone.
_RFC_DATE = re.compile(
    r"(?:([A-Za-z]{3,9})\s*,?\s*)?"
    r"(\d{1,2})\s*[-\s]\s*([A-Za-z]{3,9})\.?\s*[-\s]\s*(\d{2,4})\s+"
    r"(\d{1,2})\s*:\s*(\d{2})(?:\s*:\s*(\d{2})(\.\d+)?)?"
    r"(?:\s*([+-]\d{4}|[+-]\d{2}:?\d{2}|[A-Za-z]{1,5}))?"
)
# ISO 8601 and the Go time.String() form (SendGrid): 2024-05-14 15:44:18.123456789 +0000 UTC
_ISO_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T\s]+(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?(?:\s+([A-Za-z]{1,5}))?"
)
# Forms seen in the wild against the rules (tried after the two above), with named groups wday,
# mon, day, year, hour, minute, sec, ampm, zone: the month before the day, ctime, DD/MM/YYYY.
_ZONE = r"[+-]\d{4}|[+-]\d{2}:?\d{2}|[A-Za-z]{1,5}"
_CLOCK = r"(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<sec>\d{2}))?(?:\s*(?P<ampm>[AaPp][Mm])\b)?"
_OTHER_FORMS = (
    (re.compile(rf"(?:(?P<wday>[A-Za-z]{{3,9}}),?\s+)?(?P<mon>[A-Za-z]{{3,9}})\.?,?\s+(?P<day>\d{{1,2}}),?\s+"
                rf"(?P<year>\d{{2,4}})\s+{_CLOCK}(?:\s*(?P<zone>{_ZONE}))?"), "month before day"),
    (re.compile(rf"(?:(?P<wday>[A-Za-z]{{3,9}}),?\s+)?(?P<mon>[A-Za-z]{{3,9}})\s+(?P<day>\d{{1,2}})\s+{_CLOCK}\s+"
                rf"(?P<year>\d{{4}})(?:\s*(?P<zone>{_ZONE}))?"), "ctime"),
    (re.compile(rf"(?P<day>\d{{1,2}})/(?P<mon>\d{{1,2}})/(?P<year>\d{{4}})\s+{_CLOCK}(?:\s*(?P<zone>{_ZONE}))?"),
     "DD/MM/YYYY"),
)
# The form nearly every server writes (RFC 5322 §3.3 without obsolete parts), read in one match.
FAST_DATE = (
    r"(?:(Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(\d{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"(\d{4}) (\d\d):(\d\d):(\d\d) ([+-]\d\d\d\d|UT|GMT|[ECMP][SD]T)(?: \((UTC|GMT|[A-Z]{3,4}|[+-]\d{4})\))?\s*\Z"
)
_FAST = re.compile(r"\s*" + FAST_DATE)
_FAST_MONTHS = {m.title(): i for m, i in _MONTHS.items()}
_FAST_DAYS = tuple(d.title() for d in _DAYS)
_UTC = UTC
_INT2 = {f"{i:02d}": i for i in range(100)} | {str(i): i for i in range(10)}  # int() of ASCII "07", "7"
_YEARS = {str(y): y for y in range(1970, 2100)}  # int() of the usual four-digit years
_UNSEEN: tuple[int, timedelta, bool] = (0, timedelta(0), False)  # a marker, compared by identity
# "+0200" → (offset minutes, timedelta to subtract, zone known), or None when the minutes are out
# of range; the obs-zone names of RFC 5322 §4.3 ("GMT", "PDT") are read exactly as the full path
# reads them. Numeric zones are added as seen (bounded: \d also takes non-ASCII digits).
_FAST_ZONES: dict[str, tuple[int, timedelta, bool] | None] = {
    name.upper(): (offset, timedelta(minutes=offset), True) for name, offset in _NAMED_ZONES.items()
}
_COMMENT = re.compile(r"\([^()]*\)")
_COMMENT_ZONE = re.compile(r"\(\s*([A-Za-z]{1,5}|[+-]\d{4})\s*\)")


@dataclass(frozen=True, slots=True)
class DateResult:
    """A parsed date: UTC datetime (None when unreadable) and what was odd about it."""

    value: datetime | None
    warnings: tuple[str, ...] = ()
    zone_known: bool = True  # False for -0000, military and unknown alphabetic zones


def _year(text: str, warnings: list[str]) -> int:
    year = int(text)
    if len(text) == 2:
        warnings.append(f"obsolete two-digit year {text}")
        return year + (2000 if year < 50 else 1900)
    if len(text) == 3:
        warnings.append(f"obsolete three-digit year {text}")
        return year + 1900
    if text[0] == "0" and year >= 100:  # "0102": a three-digit year printed with %04d
        warnings.append(f"obsolete three-digit year {text} (with a leading zero)")
        return year + 1900
    return year


def _hhmm(offset: int) -> str:
    """Minutes east of UTC as a numeric zone: 330 → "+0530"."""
    return f"{'-' if offset < 0 else '+'}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"


def _numeric_zone(text: str) -> int | None:
    """Minutes east of UTC for "+0200", "-07:00"; None when the minutes are out of range."""
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if minutes > 59:
        return None
    return sign * (hours * 60 + minutes)


def _zone(text: str | None, warnings: list[str]) -> tuple[int, bool]:
    """(offset in minutes, known) for a zone token; missing and unknown zones are -0000."""
    if not text:
        warnings.append("date has no time zone; read as UTC (-0000)")
        return 0, False
    if text[0] in "+-":
        offset = _numeric_zone(text)
        if offset is None:
            warnings.append(f"invalid zone {text}; read as UTC (-0000)")
            return 0, False
        if text in ("-0000", "-00:00"):
            return 0, False  # RFC 5322 §3.3: UTC with no information about the local zone
        return offset, True
    name = text.lower()
    if name in _NAMED_ZONES:
        return _NAMED_ZONES[name], True
    if name in GUESSED_ZONES:
        offset = GUESSED_ZONES[name]
        warnings.append(_IST if name == "ist" else
                        f"zone {text} is not an RFC 5322 zone; read as {_hhmm(offset)}, its usual offset (a guess)")
        return offset, False
    if len(name) == 1:
        warnings.append(f"military zone {text} read as -0000 (RFC 5322 §4.3)")
    else:
        warnings.append(f"unknown zone {text} read as -0000 (RFC 5322 §4.3)")
    return 0, False


def _build(
    y: int, mo: int, d: int, h: int, mi: int, s: int, frac: str | None, offset: int, warnings: list[str]
) -> datetime | None:
    if s == 60:  # leap second (RFC 5322 §3.3): keep the instant, one second later
        s, leap = 59, 1
    else:
        leap = 0
    try:
        local = datetime(y, mo, d, h, mi, s, 0, _UTC)  # the wall clock, labelled UTC until shifted
    except ValueError as exc:
        warnings.append(f"date out of range: {exc}")
        return None
    if frac:
        warnings.append(f"fractional seconds {frac} ignored")
    if offset or leap:
        try:
            return local - timedelta(minutes=offset, seconds=-leap)
        except OverflowError as exc:  # 1 Jan 0001 00:30 +0100 is before year 1 in UTC
            warnings.append(f"date out of range: {exc}")
            return None
    return local


def parse_date(text: str) -> DateResult:
    """Read the date-time of a Received header (the text after the last ``;``)."""
    m = _FAST.match(text)
    if m is not None:
        fast = _fast(m)
        if fast is not None:
            return DateResult(fast[0], (), fast[1])
    return _slow(text)


def date_value(text: str) -> tuple[datetime | None, tuple[str, ...]]:
    """``(parse_date(text).value, parse_date(text).warnings)`` without building a DateResult."""
    m = _FAST.match(text)
    if m is not None:
        fast = _fast(m)
        if fast is not None:
            return fast[0], ()
    value, warnings, _ = slow_fields(text)
    return value, warnings


def _slow(text: str) -> DateResult:
    return DateResult(*slow_fields(text))


def slow_fields(text: str) -> tuple[datetime | None, tuple[str, ...], bool]:
    """(value, warnings, zone_known) by the full rules, for any text (`parse_date` without its
    fast path; the Received fast path calls it directly when its embedded date groups fail)."""
    warnings: list[str] = []
    clean = text.strip()
    if not clean:
        return None, ("no date",), False
    comment_zone = None
    if "(" in clean:
        comment_zone = _COMMENT_ZONE.search(clean)
        while "(" in clean:
            stripped = _COMMENT.sub(" ", clean)
            if stripped == clean:
                clean = clean.replace("(", " ").replace(")", " ")
                break
            clean = stripped
    clean = " ".join(clean.split())  # = re.sub(r"\s+", " ", clean).strip(): str.split splits on \s
    if ":" not in clean:  # both forms need hour ":" minute; spare the two searches
        return None, (f"unreadable date {text.strip()[:60]!r}",), False
    m = _RFC_DATE.search(clean)
    if m:
        return _from_rfc(m, clean, comment_zone, warnings)
    m = _ISO_DATE.search(clean)
    if m:
        y, mo, d, h, mi, s, frac, zone, name = m.groups()
        warnings.append("date is not in RFC 5322 form (ISO 8601 / Go time format)")
        if zone and zone.upper() == "Z":
            offset, known = 0, True  # ISO 8601 "Z" is UTC (unlike the RFC 822 military Z)
        else:
            offset, known = _zone(zone or name, warnings)
        value = _build(int(y), int(mo), int(d), int(h), int(mi), int(s or 0), frac, offset, warnings)
        return value, tuple(warnings), known and value is not None
    for pattern, form in _OTHER_FORMS:
        m = pattern.search(clean)
        if m:
            return _other_form(m, form, clean, warnings)
    return None, (f"unreadable date {text.strip()[:60]!r}",), False


def _other_form(
    m: re.Match[str], form: str, clean: str, warnings: list[str]
) -> tuple[datetime | None, tuple[str, ...], bool]:
    """A date in one of `_OTHER_FORMS`, read by the RFC's rules for its parts, and flagged."""
    g = m.groupdict()
    wday, mon, day, year, hour, minute, sec, ampm, zone = (
        g.get("wday"), g["mon"], g["day"], g["year"], g["hour"], g["minute"], g["sec"], g["ampm"], g["zone"])
    d = int(day)
    month: int | None
    if mon.isdigit():
        month = int(mon)
        if month > 12 and d <= 12:
            month, d = d, month
            form = "MM/DD/YYYY"
    else:
        month = _MONTHS.get(mon[:3].lower())
        if month is None:
            return None, (f"unknown month {mon!r}",), False
    warnings.append(f"date is not in RFC 5322 form ({form})")
    if sec is None:
        warnings.append("date has no seconds; read as :00")
    h = int(hour)
    if ampm is not None and h <= 12:
        h = h % 12 + (12 if ampm in ("PM", "pm", "Pm", "pM") else 0)
    offset, known = _zone(zone, warnings)
    y = _year(year, warnings)
    value = _build(y, month, d, h, int(minute), int(sec or 0), None, offset, warnings)
    if value is None:
        return None, tuple(warnings), False
    if wday:
        _check_weekday(wday, y, month, d, warnings)
    if m.start() > 0 and not wday:
        warnings.append(f"text before the date ignored: {clean[: m.start()].strip()[:40]!r}")
    return value, tuple(warnings), known


def _check_weekday(wday: str, y: int, month: int, day: int, warnings: list[str]) -> None:
    """Flag a weekday that is not one, or not the date's (which is kept)."""
    expected = _DAYS[date(y, month, day).weekday()]
    written = wday[:3].lower()
    if written not in _DAYS:
        warnings.append(f"unknown weekday {wday!r}")
    elif written != expected:
        warnings.append(f"weekday {wday} does not match the date (it was a {expected.title()})")


def _fast_zone(zone: str) -> tuple[int, timedelta, bool] | None:
    minutes = int(zone[3:])
    if minutes > 59:
        entry = None
    else:
        offset = (int(zone[1:3]) * 60 + minutes) * (-1 if zone[0] == "-" else 1)
        # -0000: no information about the local zone
        entry = (offset, timedelta(minutes=offset), not (zone[0] == "-" and offset == 0))
    if len(_FAST_ZONES) < 4096:
        _FAST_ZONES[zone] = entry
    return entry


def _fast(m: re.Match[str]) -> tuple[datetime, bool] | None:
    return fast_fields(*m.groups())


def fast_fields(
    wday: str | None, day: str, mon: str, year: str, hour: str, minute: str, sec: str, zone: str, comment: str | None
) -> tuple[datetime, bool] | None:
    """(UTC value, zone known) from the groups of `_FAST`; None sends anything unusual (ranges,
    weekday, zone comment) to the full path."""
    value = fast_utc(wday, day, mon, year, hour, minute, sec, zone, comment)
    if value is None:
        return None
    entry = _FAST_ZONES.get(zone) or _fast_zone(zone)  # not None: fast_utc accepted the zone
    return None if entry is None else (value, entry[2])


def fast_utc(
    wday: str | None, day: str, mon: str, year: str, hour: str, minute: str, sec: str, zone: str, comment: str | None
) -> datetime | None:
    """`fast_fields` without the zone flag (the Received fast path, which embeds `FAST_DATE`,
    needs only the value)."""
    entry = _FAST_ZONES.get(zone, _UNSEEN)
    if entry is _UNSEEN:
        entry = _fast_zone(zone)
    s = _INT2.get(sec)
    if s is None:
        s = int(sec)
    if entry is None or s > 59:
        return None
    offset, delta, _ = entry
    if comment is not None and _NAMED_ZONES.get(comment.lower(), offset) != offset:
        return None  # "(PST)" after +0100: the full path flags the conflict
    y = _YEARS.get(year)
    if y is None:
        if year[0] == "0":
            return None  # "0102" (a three-digit year printed with %04d): the full path reads it
        y = int(year)
    d = _INT2.get(day)
    h = _INT2.get(hour)
    mi = _INT2.get(minute)
    try:
        local = datetime(y, _FAST_MONTHS[mon], int(day) if d is None else d,
                         int(hour) if h is None else h, int(minute) if mi is None else mi, s, 0, _UTC)
    except ValueError:
        return None
    if wday and _FAST_DAYS[local.weekday()] != wday:
        return None
    if not offset:
        return local
    try:
        return local - delta
    except OverflowError:  # outside years 1..9999 in UTC: the full path says so
        return None


def _from_rfc(
    m: re.Match[str], clean: str, comment_zone: re.Match[str] | None, warnings: list[str]
) -> tuple[datetime | None, tuple[str, ...], bool]:
    wday, day, mon, year, hour, minute, sec, frac, zone = m.groups()
    month = _MONTHS.get(mon[:3].lower())
    if month is None:
        return None, (f"unknown month {mon!r}",), False
    if sec is None:
        warnings.append("date has no seconds; read as :00")
    if zone and zone.isalpha() and zone.lower() in ("am", "pm"):
        zone = None
    offset, known = _zone(zone, warnings)
    if zone and zone.lower() == "utc":
        offset = 0  # common and unambiguous in practice, still "unknown" by RFC 5322 §4.3
    y = _year(year, warnings)
    value = _build(y, month, int(day), int(hour), int(minute), int(sec or 0), frac, offset, warnings)
    if value is None:
        return None, tuple(warnings), False
    if wday:  # the weekday of the date as written (a leap second 23:59:60 is still that day)
        _check_weekday(wday, y, month, int(day), warnings)
    if comment_zone and known and zone and zone[0] in "+-":
        name = comment_zone.group(1)
        named = _NAMED_ZONES.get(name.lower())
        if named is not None and named != offset:
            warnings.append(f"zone comment ({name}) contradicts offset {zone}; offset used")
    if m.start() > 0 and not m.group(1):
        warnings.append(f"text before the date ignored: {clean[: m.start()].strip()[:40]!r}")
    return value, tuple(warnings), known
