"""Findings a deliverability engineer can trust, on real mail.

The messages are from the SpamAssassin public corpus (shared/corpus/spamassassin/, copied into
tests/data/spamassassin/, see its README): each test names the corpus file it reads. They cover
what a trace over real mailboxes meets all the time and must not report as a problem: fetchmail
download hops, mailing-list expansion, hops inside one organisation, one-hop messages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from mailboat.trace.render import render_html, render_text, to_json
from mailboat.trace.timeline import analyse_message

CORPUS = Path(__file__).resolve().parent.parent / "data" / "spamassassin"
RECEIVED = Path(__file__).resolve().parent.parent / "data" / "received"
NOW = datetime(2024, 4, 1, tzinfo=UTC)


def trace(name: str):
    return analyse_message((CORPUS / name).read_bytes(), now=NOW)


def hops_of(t, kind: str) -> list[int | None]:
    return [f.hop for f in t.findings if f.kind == kind]


def message(t, kind: str, hop: int | None) -> str:
    return next(f.message for f in t.findings if f.kind == kind and f.hop == hop)


def test_fetchmail_imap_hop_and_list_expansion() -> None:
    # shared/corpus/spamassassin/ham/easy-ham-1-00001.eml: exmh-workers@redhat.com is an alias of
    # the list (hop 5), the list expands to zzzz-exmh@ (hop 8), fetchmail writes `for zzzz@localhost` (hop 9)
    t = trace("easy-ham-1-00001.eml")
    assert t.hops[8].hop.with_protocol == "IMAP" and t.hops[8].hop.for_ == "zzzz@localhost"
    assert hops_of(t, "forwarded") == [8]
    assert message(t, "forwarded", 8) == (
        "list expansion: the mailing list Discussion list for EXMH developers <exmh-workers.spamassassin.taint.org> "
        "(List-Id header) re-sent the message for <exmh-workers@listman.redhat.com> at hop 6 to the subscriber "
        "<zzzz-exmh@spamassassin.taint.org> at hop 8 (dogma.slashnull.org)")


def test_fetchmail_pop3_hop_rewrites_for() -> None:
    # shared/corpus/spamassassin/ham/hard-ham-1-00185.eml: `for <cnice@nycap.rr.com>`, then
    # `by localhost with POP3 (fetchmail-5.9.0) for nice@localhost`
    t = trace("hard-ham-1-00185.eml")
    assert [h.hop.for_ for h in t.hops[3:5]] == ["cnice@nycap.rr.com", "nice@localhost"]
    assert hops_of(t, "forwarded") == []


def test_list_known_by_list_post_and_a_mailbox_wait() -> None:
    # shared/corpus/spamassassin/ham/easy-ham-1-01763.eml: no List-Id, List-Post names the list;
    # the message sat a day in the mailbox on dogma.slashnull.org before fetchmail took it
    t = trace("easy-ham-1-01763.eml")
    assert hops_of(t, "forwarded") == [3]
    assert ("(List-Post header) re-sent the message for <0xdeadbeef@petting-zoo.net> at hop 1 to the subscriber "
            "<jm-deadbeef@jmason.org> at hop 3") in message(t, "forwarded", 3)
    wait = message(t, "long_delay", 4)
    assert "fetched with IMAP" in wait and "queue" not in wait.split(":", 1)[1].replace("not a queue", "")
    assert t.slowest_hop == 3  # the mailbox wait is not "time lost in a queue"


def test_no_tls_skips_private_addresses() -> None:
    # shared/corpus/spamassassin/ham/easy-ham-1-00001.eml: 172.30.0.98, 172.16.48.31 and
    # 172.16.52.254 are RFC 1918 hops inside psu.ac.th and Red Hat; 127.0.0.1 is loopback
    t = trace("easy-ham-1-00001.eml")
    inside = {2: "172.30.0.98", 4: "172.16.48.31", 6: "172.16.52.254", 7: "127.0.0.1"}
    assert {i: t.hops[i - 1].hop.from_ip for i in inside} == inside
    assert all(t.hops[i - 1].hop.tls is False for i in (*inside, 3, 8))  # `with SMTP` / `with ESMTP`
    assert hops_of(t, "no_tls") == [3, 8]
    assert message(t, "no_tls", 3).startswith(
        "TLS not shown by hop 3 `with SMTP` from ratree.psu.ac.th [202.28.97.6] to mx1.spamassassin.taint.org")


def test_no_tls_skips_a_host_handing_to_itself() -> None:
    # shared/corpus/spamassassin/ham/easy-ham-1-00189.eml: hop 1 is
    # `from moon.campus.luth.se (tony@moon.campus.luth.se [130.240.202.158]) by moon.campus.luth.se`
    t = trace("easy-ham-1-00189.eml")
    assert t.hops[0].hop.tls is False and t.hops[0].hop.from_ip == "130.240.202.158"
    assert hops_of(t, "no_tls") == [2]


def _hop(ip: str, by: str) -> bytes:
    ip6 = f"IPv6:{ip}" if ":" in ip else ip
    return (f"Received: from h.example (h.example [{ip6}]) by {by} (Postfix) with ESMTP id X; "
            "Wed, 27 Mar 2024 15:02:58 +0000\r\n").encode()


def test_no_tls_private_ranges() -> None:
    ips = ["10.1.2.3", "172.20.0.1", "192.168.1.1", "127.0.0.2", "::1", "fd12:3456::1", "fc00::7", "fe80::1",
           "::ffff:10.0.0.1", "2001:db8::5", "203.0.113.5", "172.32.0.1", "192.169.0.1"]
    data = b"".join(_hop(ip, f"mx{i}.example.net") for i, ip in reversed(list(enumerate(ips, 1)))) + b"\r\n"
    t = analyse_message(data, now=NOW)
    assert [h.hop.from_ip for h in t.hops] == ips
    assert hops_of(t, "no_tls") == [10, 11, 12, 13]
    assert message(t, "no_tls", 10).startswith("TLS not shown by hop 10 `with ESMTP` from h.example [2001:db8::5]")


def test_findings_quote_their_evidence() -> None:
    data = (
        b"Received: from mx.example.net (mx.example.net [198.51.100.2]) by mail.example.com with ESMTP id B\r\n"
        b"\tfor <carol@example.com>; Wed, 27 Mar 2024 15:23:00 +0000\r\n"
        b"Received: from out.example.org (out.example.org [192.0.2.10]) by mx.example.net with ESMTPS id A\r\n"
        b"\tfor <alice@example.net>; Wed, 27 Mar 2024 15:02:58 +0000\r\n\r\nx\r\n"
    )
    t = analyse_message(data, now=NOW)
    assert message(t, "forwarded", 2) == ("for changed from <alice@example.net> at hop 1 to <carol@example.com> at "
                                          "hop 2 (mail.example.com): the message was forwarded")
    assert message(t, "no_tls", 2).startswith("TLS not shown by hop 2 `with ESMTP` from mx.example.net "
                                              "[198.51.100.2] to mail.example.com")
    assert message(t, "long_delay", 2).startswith(
        "20 min 2 s passed between mx.example.net (hop 1, stamped 2024-03-27 15:02:58 UTC) and mail.example.com "
        "(hop 2, stamped 2024-03-27 15:23:00 UTC)")


def test_unreadable_date_is_quoted() -> None:
    t = analyse_message((RECEIVED / "block_unreadable_date.eml").read_bytes(), now=NOW)
    assert message(t, "unparsable", 2) == ("hop 2 (relay.example.net): the date 'Wensday the 27th, about noon' of its "
                                           "Received header could not be read; the delays before and after it are "
                                           "unknown")


def _reports(t) -> tuple[str, str, float | None]:
    console = Console(record=True, width=200)
    render_text(t, console)
    return console.export_text(), render_html(t), to_json(t)["total_seconds"]


def test_one_hop_total_from_the_date_header() -> None:
    # shared/corpus/spamassassin/ham/hard-ham-1-00207.eml: Date 16:00:15 +0000, the only hop
    # stamped 11:29:04 -0500 (16:29:04 UTC)
    t = trace("hard-ham-1-00207.eml")
    assert len(t.hops) == 1
    text, page, total = _reports(t)
    assert total == t.total_seconds == 29 * 60 - 11 and t.total_from == "date"
    assert "Total transit: 28 min 49 s (from the Date header to hop 1)" in text
    assert "total transit 28 min 49 s (from the Date header to hop 1)" in page


def test_date_ahead_of_the_first_hop_is_the_senders_clock() -> None:
    # shared/corpus/spamassassin/spam/spam-1-00336.eml: Date 10:49:08 -0400 (14:49:08 UTC), the
    # only hop stamped 04:51:52 -0500 (09:51:52 UTC): dated 4 h 57 min in the future
    t = trace("spam-1-00336.eml")
    assert t.total_seconds is None
    skew = message(t, "clock_skew", None)
    assert skew.startswith("the Date header (Sat, 14 Sep 2002 10:49:08 -0400) is 4 h 57 min after hop 1 "
                           "(lerami.lerctr.org) stamped the message at 2002-09-14 09:51:52 UTC")
    text, page, total = _reports(t)
    assert total is None and "Total transit: unknown" in text and "total transit unknown" in page


def test_date_ahead_of_a_longer_chain_counts_from_hop_1() -> None:
    data = (RECEIVED / "block_nine_hour_delay.eml").read_bytes().replace(
        b"Date: Wed, 27 Mar 2024 06:00:00 -0400", b"Date: Wed, 27 Mar 2024 07:00:00 -0400")
    t = analyse_message(data, now=NOW)
    assert t.total_seconds == 9 * 3600 + 131.0 and t.total_from == "hop"
    assert hops_of(t, "clock_skew") == [None]
    text, _, _ = _reports(t)
    assert "Total transit: 9 h 2 min (from hop 1 to hop 4)" in text


def test_date_before_a_longer_chain_is_the_start() -> None:
    data = (RECEIVED / "block_nine_hour_delay.eml").read_bytes().replace(
        b"Date: Wed, 27 Mar 2024 06:00:00 -0400", b"Date: Wed, 27 Mar 2024 05:58:00 -0400")
    t = analyse_message(data, now=NOW)
    assert t.total_seconds == 9 * 3600 + 131.0 + 120 and t.total_from == "date"
    assert "clock_skew" not in {f.kind for f in t.findings}
