"""Whole header blocks (3-6 hops): ordering, signed delays, the slowest queue, and findings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mailboat.trace.timeline import analyse_message, duration

DATA = Path(__file__).resolve().parent.parent / "data" / "received"
NOW = datetime(2024, 4, 1, tzinfo=UTC)


def trace(name: str):
    return analyse_message((DATA / name).read_bytes(), now=NOW)


def kinds(t) -> list[tuple[str, int | None]]:
    return [(f.kind, f.hop) for f in t.findings]


def test_mailing_list_forward_breaks_spf_and_dkim() -> None:
    t = trace("block_mailing_list_forward.eml")
    assert [h.hop.by_host for h in t.hops] == ["out.example.org", "lists.example.net", "mail.example.com",
                                              "mail.example.com"]
    assert [h.delay_seconds for h in t.hops] == [None, 2.0, 7.0, 1.0]
    assert t.total_seconds == 11.0 and t.total_from == "date"  # from the Date header, 1 s before hop 1
    assert ("forwarded", 3) in kinds(t)  # team@lists.example.net -> bob@example.com
    assert ("spf_broken_by_forward", 3) in kinds(t)
    assert ("dkim_body_modified", 4) in kinds(t)
    spf = next(f for f in t.findings if f.kind == "spf_broken_by_forward")
    assert "lists.example.net [198.51.100.25]" in spf.message and "spf=pass (ARC i=1)" in spf.message
    dkim = next(f for f in t.findings if f.kind == "dkim_body_modified")
    assert "d=example.org s=sel1" in dkim.message and "bh=fIRlWOfBXCDYAPGMtevn34iKy71bb8XG3SmNs8B/48Q=" in dkim.message
    messages = " ".join(f.message for f in t.findings)
    assert "mailing list Team discussion <team.lists.example.net>" in messages and "ARC set" in messages
    assert "no_tls" not in {f.kind for f in t.findings}  # the LMTP hop has no client IP


def test_unmodified_body_has_no_body_hash_finding() -> None:
    data = (DATA / "block_mailing_list_forward.eml").read_bytes()
    original = data.split(b"Alice\n")[0] + b"Alice\n"  # the footer the list added is removed
    t = analyse_message(original, now=NOW)
    recomputed = [f for f in t.findings if f.kind == "dkim_body_modified" and "now" in f.message]
    assert not recomputed


def test_nine_hour_queue_delay_names_the_queue() -> None:
    t = trace("block_nine_hour_delay.eml")
    assert [h.delay_seconds for h in t.hops] == [None, 2.0, 1.0, 9 * 3600 + 128.0]
    assert t.slowest_hop == 4 and t.slowest_queue == "mx.example.net"
    assert kinds(t) == [("long_delay", 4)]
    assert "9 h 2 min" in t.findings[0].message and "queue of mx.example.net" in t.findings[0].message
    assert t.total_seconds == 9 * 3600 + 131.0


def test_clock_skewed_into_the_future_is_not_a_delay() -> None:
    t = trace("block_clock_skew.eml")
    assert [h.delay_seconds for h in t.hops] == [None, 1.0, 7202.0, -7198.0]
    assert kinds(t) == [("clock_skew", 3)]
    assert "relay.example.net (hop 3) is about 1 h 59 min ahead" in t.findings[0].message
    assert t.slowest_hop == 2  # the skewed hop is not "where time was lost"


def test_negative_delay_alone_is_clock_skew() -> None:
    data = (DATA / "block_clock_skew.eml").read_bytes().replace(b"14:00:03 +0000", b"12:00:03 +0000")
    data = data.replace(b"12:00:05 +0000", b"11:50:05 +0000")
    t = analyse_message(data, now=NOW)
    assert t.hops[3].delay_seconds == -598.0
    assert kinds(t) == [("clock_skew", 4)]


def test_future_timestamp_is_clock_skew() -> None:
    early = datetime(2024, 3, 27, 12, tzinfo=UTC)
    t = analyse_message((DATA / "block_nine_hour_delay.eml").read_bytes(), now=early)
    assert ("clock_skew", 4) in kinds(t)


def test_microsoft_365_internal_hand_offs() -> None:
    t = trace("block_m365_internal.eml")
    assert len(t.hops) == 5
    assert [h.hop.with_protocol for h in t.hops] == ["ESMTPSA", "Microsoft SMTP Server", "Microsoft SMTP Server",
                                                    "Microsoft SMTP Server", "mapi"]
    assert [h.delay_seconds for h in t.hops] == [None, 5.0, -1.0, 1.0, 1.0]  # CET converted; -1 s is tolerated
    assert [h.hop.tls for h in t.hops] == [True, True, True, True, None]
    assert t.hops[2].hop.via == "Frontend Transport" and t.hops[2].hop.from_ip == "2001:db8:30::f1"
    assert t.findings == ()


def test_unreadable_date_keeps_the_chain() -> None:
    t = trace("block_unreadable_date.eml")
    assert [h.hop.timestamp is None for h in t.hops] == [False, True, False]
    assert [h.delay_seconds for h in t.hops] == [None, None, None]
    assert t.total_seconds == 8.0
    assert kinds(t) == [("unparsable", 2)]
    assert "Wensday" in t.findings[0].message


def test_no_tls_and_forward_by_for_change() -> None:
    data = (
        b"Received: from mx.example.net (mx.example.net [198.51.100.2]) by mail.example.com with ESMTP id B\r\n"
        b"\tfor <carol@example.com>; Wed, 27 Mar 2024 15:03:00 +0000\r\n"
        b"Received: from out.example.org (out.example.org [192.0.2.10]) by mx.example.net with ESMTPS id A\r\n"
        b"\tfor <SRS0=abcd=LR=example.org=alice@example.net>; Wed, 27 Mar 2024 15:02:58 +0000\r\n\r\nx\r\n"
    )
    t = analyse_message(data, now=NOW)
    assert ("no_tls", 2) in kinds(t) and ("forwarded", 2) in kinds(t)
    assert any("SRS" in f.message for f in t.findings)
    assert "mx.example.net [198.51.100.2]" in next(f.message for f in t.findings if f.kind == "no_tls")


def test_headers_only_and_empty_input() -> None:
    assert analyse_message(b"").hops == ()
    t = analyse_message(b"Subject: nothing\r\n")
    assert t.hops == () and t.total_seconds is None and t.findings == ()


def test_duration_wording() -> None:
    assert [duration(s) for s in (0.4, 41, 125, 120, 3600, 32520, 90000, -7198)] == [
        "0 s", "41 s", "2 min 5 s", "2 min", "1 h", "9 h 2 min", "1 d 1 h", "1 h 59 min"]
