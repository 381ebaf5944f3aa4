"""RFC 5322 §3.3 / §4.3 date parsing, including the obsolete and in-the-wild forms."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailboat.trace.dates import parse_date


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected", "known"),
    [
        ("Wed, 27 Mar 2024 15:02:58 +0000", utc(2024, 3, 27, 15, 2, 58), True),
        ("Wed, 27 Mar 2024 08:02:58 -0700 (PDT)", utc(2024, 3, 27, 15, 2, 58), True),
        ("27 Mar 2024 15:02:58 -0000", utc(2024, 3, 27, 15, 2, 58), False),
        ("Wed, 27 Mar 24 10:02:58 EST", utc(2024, 3, 27, 15, 2, 58), True),
        ("Wed, 27 Mar 49 10:02:58 EDT", utc(2049, 3, 27, 14, 2, 58), True),
        ("Sun, 27 Mar 55 10:02:58 CST", utc(1955, 3, 27, 16, 2, 58), True),  # email.utils says 2055
        ("27 Mar 124 15:02:58 UT", utc(2024, 3, 27, 15, 2, 58), True),
        ("27 Mar 2024 15:02:58 GMT", utc(2024, 3, 27, 15, 2, 58), True),
        ("27 Mar 2024 15:02:58 MST", utc(2024, 3, 27, 22, 2, 58), True),
        ("27 Mar 2024 15:02:58 MDT", utc(2024, 3, 27, 21, 2, 58), True),
        ("27 Mar 2024 15:02:58 CDT", utc(2024, 3, 27, 20, 2, 58), True),
        ("27 Mar 2024 15:02:58 PST", utc(2024, 3, 27, 23, 2, 58), True),
        ("27 Mar 2024 15:02:58 Z", utc(2024, 3, 27, 15, 2, 58), False),  # military: -0000
        ("27 Mar 2024 15:02:58 j", utc(2024, 3, 27, 15, 2, 58), False),
        ("27 Mar 2024 15:02:58 XYZ", utc(2024, 3, 27, 15, 2, 58), False),
        ("27 Mar 2024 15:02:58 CEST", utc(2024, 3, 27, 13, 2, 58), False),  # a guess: not "known"
        ("27 Mar 2024 15:02 +0100", utc(2024, 3, 27, 14, 2, 0), True),
        ("  Wed ,  27   Mar   2024   15:02:58   +0530  ", utc(2024, 3, 27, 9, 32, 58), True),
        ("Wed, 27 Mar 2024 15:02:58 +0000 (UTC)", utc(2024, 3, 27, 15, 2, 58), True),
        ("2024-05-14 15:44:18.123456789 +0000 UTC m=+1234.5", utc(2024, 5, 14, 15, 44, 18), True),
        ("2024-05-14T15:44:18Z", utc(2024, 5, 14, 15, 44, 18), True),
        ("Wed, 27 Mar 2024 15:02:58.987 +0000", utc(2024, 3, 27, 15, 2, 58), True),
        ("Sat, 31 Dec 2016 23:59:60 +0000", utc(2017, 1, 1, 0, 0, 0), True),
    ],
)
def test_dates(text: str, expected: datetime, known: bool) -> None:
    result = parse_date(text)
    assert result.value == expected
    assert result.zone_known is known


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        ("Thu, 27 Mar 2024 15:02:58 +0000", "weekday Thu does not match the date (it was a Wed)"),
        ("27 Mar 24 15:02:58 +0000", "obsolete two-digit year 24"),
        ("27 Mar 2024 15:02 +0000", "date has no seconds; read as :00"),
        ("27 Mar 2024 15:02:58 A", "military zone A read as -0000 (RFC 5322 §4.3)"),
        ("27 Mar 2024 15:02:58 XYZ", "unknown zone XYZ read as -0000 (RFC 5322 §4.3)"),
        ("27 Mar 2024 15:02:58 +0100 (PST)", "zone comment (PST) contradicts offset +0100; offset used"),
        ("27 Mar 2024 15:02:58", "date has no time zone; read as UTC (-0000)"),
    ],
)
def test_date_warnings(text: str, warning: str) -> None:
    result = parse_date(text)
    assert result.value is not None
    assert warning in result.warnings


@pytest.mark.parametrize("text", ["", "yesterday", "31 Feb 2024 10:00:00 +0000", "27 Mar 2024 25:00:00 +0000",
                                  "27 Foo 2024 10:00:00 +0000", "27 Mar 2024 10:00:00 +0175"])
def test_unreadable_dates_give_none_and_a_warning(text: str) -> None:
    result = parse_date(text)
    assert (result.value is None) or text.endswith("+0175")
    assert result.warnings


def test_a_leap_second_belongs_to_its_written_day() -> None:
    # 23:59:60 on Saturday 31 Dec 2016 is one second before 1 Jan 2017: no weekday complaint
    result = parse_date("Sat, 31 Dec 2016 23:59:60 +0000")
    assert result.value == datetime(2017, 1, 1, tzinfo=UTC)
    assert not any("weekday" in w for w in result.warnings)


@pytest.mark.parametrize("text", ["Mon, 1 Jan 0001 00:30:00 +0100", "Fri, 31 Dec 9999 23:59:59 -1400"])
def test_a_date_outside_the_years_datetime_holds_is_a_warning_not_a_lost_hop(text: str) -> None:
    from mailboat.trace.parse import parse_received

    assert parse_date(text).value is None
    assert "date out of range: date value out of range" in parse_date(text).warnings
    hop = parse_received(f"from a.example (a.example [192.0.2.1]) by mx.example with ESMTP id X; {text}")
    assert (hop.from_helo, hop.from_ip, hop.by_host, hop.id, hop.timestamp) == ("a.example", "192.0.2.1",
                                                                              "mx.example", "X", None)
    assert hop.warnings == ("date out of range: date value out of range",)
