"""Hostile input against a real `mailboat serve` over raw sockets.

Every case checks three things: the attacker gets the right reply (with an enhanced status
code) or a clean close; a second, well-behaved client completes a whole transaction while the
attack is still running (the server keeps serving everyone else); and for the bulky attacks the
server's resident memory (VmRSS) stays within a generous bound.

Limits used here (the module's server): 100 recipients, 5 errors, 1 MB messages, 3 s per
command and 3 s + bytes/500 B/s for DATA/BDAT (min_data_rate default).
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from security_support import MESSAGE, Raw, bystander, need_wiring, rss_kb, start_server, wait_until

# growth allowed across one attack: less than the 16-24 MiB the attacks send, so keeping them would show
MEMORY_SLACK_KB = 12 * 1024
CONFIG = """\
[limits]
recipients = 100
errors = 5
message_size = 1000000
[timeouts]
command = "3s"
data = "3s"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("hostile"), extra=CONFIG)
    bystander(running, tag="warm-up")  # import/alloc warm-up before any RSS baseline
    yield running
    log = running.stop()
    assert "Traceback" not in log, log[-4000:]


def delivered_tags(server, address: str = "bob@example.com") -> set[bytes]:
    return {m.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0] for m in server.messages(address) if b"Subject: " in m}


def assert_memory_bounded(server, before_kb: int, what: str) -> None:
    after = rss_kb(server)
    print(f"{what}: VmRSS {before_kb} -> {after} KiB")
    assert after - before_kb < MEMORY_SLACK_KB, f"{what}: RSS grew from {before_kb} to {after} KiB"


def assert_bystander_served(server, tag: str) -> None:
    bystander(server, tag=tag)
    assert wait_until(lambda: tag.encode() in delivered_tags(server)), f"{tag} was not delivered"


# -- over-long lines ------------------------------------------------------------------------------

def test_overlong_command_line_is_refused_with_bounded_memory(server):
    before = rss_kb(server)
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        # RFC 5321 §4.5.3.1.4: 512 octets for ordinary commands, more for MAIL/RCPT parameters.
        assert raw.command(b"HELP " + b"x" * 600).startswith(b"500 5.5.2 Error: line too long")
        assert raw.command(b"NOOP").startswith(b"250 ")  # in sync: one reply for one line
        assert raw.command(b"MAIL FROM:<s@example.org> " + b"X" * 1100).startswith(b"500 5.5.2")
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        raw.send(b"NOOP ")
        chunk = b"A" * (1 << 20)
        try:
            for _ in range(16):  # 16 MiB of one line: closed 4 KiB past the limit, not read on
                raw.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert raw.closed_by_server()
        assert_bystander_served(server, "after-long-line")
    assert_memory_bounded(server, before, "16 MiB command line")


def test_overlong_header_line_and_huge_header_refused(server):
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        raw.command(b"MAIL FROM:<s@example.org>")
        raw.command(b"RCPT TO:<alice@example.com>")
        assert raw.command(b"DATA").startswith(b"354")
        raw.send(b"Subject: " + b"x" * 5000 + b"\r\n")
        assert_bystander_served(server, "during-long-header")
        raw.send(b"\r\nbody\r\n.\r\n")
        assert raw.reply().startswith(b"500 5.5.2")  # RFC 5321 §4.5.3.1.6: 1000 octets per line
        assert raw.command(b"NOOP").startswith(b"250")


def test_huge_number_of_header_lines(server):
    before = rss_kb(server)
    with Raw(server.ports["smtp"], timeout=30) as raw:
        raw.hello()
        raw.command(b"MAIL FROM:<s@example.org>")
        raw.command(b"RCPT TO:<alice@example.com>")
        assert raw.command(b"DATA").startswith(b"354")
        # ~0.9 MB of headers, just under the size limit: 120,000 header lines.
        raw.send(b"".join(b"X-H%d: v\r\n" % i for i in range(120_000)) + b"\r\nbody\r\n.\r\n")
        started = time.monotonic()
        reply = raw.reply()
        assert time.monotonic() - started < 10, "end of DATA took too long (quadratic header handling?)"
        assert reply[:3] in (b"250", b"552", b"554"), reply
        # Folding bomb: one header continued over 100,000 lines, over the size limit -> 552.
        raw.command(b"MAIL FROM:<s@example.org>")
        raw.command(b"RCPT TO:<alice@example.com>")
        assert raw.command(b"DATA").startswith(b"354")
        raw.send(b"X-Fold: a\r\n" + b"\tb b b b b b b\r\n" * 100_000 + b"\r\nbody\r\n.\r\n")
        assert raw.reply().startswith(b"552 5.3.4")
        assert_bystander_served(server, "after-header-bomb")
    assert_memory_bounded(server, before, "120k header lines + folding bomb")


# -- limits on counts ------------------------------------------------------------------------------

def test_too_many_recipients_gets_452_4_5_3(server):
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        raw.command(b"MAIL FROM:<s@example.org>")
        # Pipelined, as a bulk sender would: 100 accepted, the 101st and later get 452 4.5.3.
        raw.send(b"".join(b"RCPT TO:<alice+%d@example.com>\r\n" % i for i in range(105)))
        replies = [raw.reply() for _ in range(105)]
        assert all(r.startswith(b"250 ") for r in replies[:100]), replies[:100]
        assert all(r.startswith(b"452 4.5.3") for r in replies[100:]), replies[100:]
        assert_bystander_served(server, "during-rcpt-flood")
        assert raw.command(b"RSET").startswith(b"250")
        assert raw.command(b"QUIT").startswith(b"221")


def test_too_many_bad_commands_disconnect_at_the_limit(server):
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        for n in range(4):
            assert raw.command(b"BOGUS %d" % n).startswith(b"500 5.5.2")
        raw.send(b"BOGUS 5\r\n")
        assert raw.reply().startswith(b"500 5.5.2")
        assert raw.reply().startswith(b"421 4.7.0")
        assert raw.closed_by_server(5)
    assert_bystander_served(server, "after-bad-commands")


# -- bytes that must not be in commands -------------------------------------------------------------

@pytest.mark.parametrize("line, expected", [
    (b"EHLO h\xc3\xa9.example", b"500 5.5.2"),                      # 8-bit HELO
    (b"NOOP \xff\xfe", b"500 5.5.2"),                               # invalid UTF-8
    (b"MAIL FROM:<j\xc3\xbcrgen@example.org>", b"553 5.6.7"),       # UTF-8 address, no SMTPUTF8
    (b"MAIL FROM:<\xff@example.org>", b"500 5.5.2"),                # not UTF-8 at all
    (b"MAIL FROM:<s@example.org> SMTPUTF8 ENVID=\xc3\xa9", None),   # fine under SMTPUTF8 (raw UTF-8)
    (b"NOOP\x00", b"500 5.5.2"),                                    # NUL
    (b"\x00\x00\x00\x00", b"500 5.5.2"),
    (b"MAIL FROM:<s@exa\x00mple.org>", b"500 5.5.2"),
])
def test_8bit_and_nul_in_commands(server, line, expected):
    # (An HTTP request line ends the session instead: test_protocol_abuse.py.)
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        reply = raw.command(line)
        if expected is None:
            assert reply.startswith(b"250 "), reply
        else:
            assert reply.startswith(expected), reply
        assert_bystander_served(server, "during-8bit-" + line[:4].hex())
        assert raw.command(b"RSET").startswith(b"250")


def test_nul_in_message_data_is_refused(server):
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        raw.command(b"MAIL FROM:<s@example.org>")
        raw.command(b"RCPT TO:<alice@example.com>")
        raw.command(b"DATA")
        raw.send(b"Subject: x\r\n\r\na\x00b\r\n")
        assert_bystander_served(server, "during-nul-data")
        assert raw.command(b".").startswith(b"550 5.6.0")
        assert raw.command(b"NOOP").startswith(b"250")


# -- BDAT size mismatches -----------------------------------------------------------------------------

def test_bdat_with_more_bytes_than_announced(server):
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        raw.command(b"MAIL FROM:<s@example.org>")
        raw.command(b"RCPT TO:<alice@example.com>")
        # 5 octets announced, 16 sent: the chunk is exactly 5 octets; the rest is read as a
        # command line and refused, never as message content.
        raw.send(b"BDAT 5 LAST\r\nhelloXYZZY not-content\r\n")
        assert raw.reply().startswith(b"250 2.0.0 Ok: queued as ")  # RFC 3030: the 5 octets are the message
        assert raw.reply().startswith(b"500 5.5.2")
        assert raw.command(b"NOOP").startswith(b"250")
        assert_bystander_served(server, "after-bdat-overrun")


def test_bdat_with_fewer_bytes_than_announced_times_out(server):
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        raw.command(b"MAIL FROM:<s@example.org>")
        raw.command(b"RCPT TO:<alice@example.com>")
        raw.send(b"BDAT 1000 LAST\r\nonly a few octets\r\nQUIT\r\n")  # QUIT is chunk content here
        assert_bystander_served(server, "during-short-bdat")
        assert raw.reply().startswith(b"421 4.4.2")  # data deadline: 3 s + 23 B / 500 B/s
        assert raw.closed_by_server(5)


def test_bdat_without_size_closes_and_huge_size_is_bounded(server):
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        raw.command(b"MAIL FROM:<s@example.org>")
        raw.command(b"RCPT TO:<alice@example.com>")
        raw.send(b"BDAT LAST\r\n")
        assert raw.reply().startswith(b"501 5.5.4")
        assert raw.reply().startswith(b"421 4.5.0")  # cannot resynchronise without a size
        assert raw.closed_by_server(5)
    before = rss_kb(server)
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        raw.command(b"MAIL FROM:<s@example.org>")
        raw.command(b"RCPT TO:<alice@example.com>")
        raw.send(b"BDAT 99999999999999999999 LAST\r\n")  # 20 digits: about 10^20 octets announced
        block = b"y" * (1 << 20)
        for _ in range(24):  # 24 MiB: far past the 1 MB limit, only counted, never kept
            raw.send(block)
        assert_bystander_served(server, "during-huge-bdat")
    assert_memory_bounded(server, before, "24 MiB into a 10^20-octet BDAT")


# -- slow clients ----------------------------------------------------------------------------------------

def trickle(raw: Raw, data: bytes, interval: float, stop: threading.Event) -> None:
    for byte in data:
        if stop.is_set():
            return
        try:
            raw.send(bytes([byte]))
        except OSError:
            return
        time.sleep(interval)


def test_one_byte_at_a_time_in_data_is_dropped(server):
    # Each byte arrives well within the 3 s data timeout, but the data rate is far below
    # min_data_rate: the deadline (3 s + bytes/500) passes and the client gets 421 4.4.2.
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        raw.command(b"MAIL FROM:<s@example.org>")
        raw.command(b"RCPT TO:<alice@example.com>")
        assert raw.command(b"DATA").startswith(b"354")
        stop = threading.Event()
        sender = threading.Thread(target=trickle, args=(raw, MESSAGE * 10, 0.2, stop), daemon=True)
        started = time.monotonic()
        sender.start()
        try:
            assert_bystander_served(server, "during-data-trickle")
            assert raw.closed_by_server(15)
        finally:
            stop.set()
        assert b"421 4.4.2" in raw.buffer, raw.buffer
        assert time.monotonic() - started < 10
    server.wait_log("timeout after DATA")


def test_one_byte_at_a_time_command_hits_the_per_command_deadline(server):
    # Before the per-request deadline, every byte restarted the 3 s command timer.
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        stop = threading.Event()
        sender = threading.Thread(target=trickle, args=(raw, b"NOOP " + b"z" * 400 + b"\r\n", 0.5, stop),
                                  daemon=True)
        started = time.monotonic()
        sender.start()
        try:
            assert_bystander_served(server, "during-command-trickle")
            assert raw.closed_by_server(15)
        finally:
            stop.set()
        assert b"421 4.4.2" in raw.buffer, raw.buffer
        assert 2.5 < time.monotonic() - started < 10


def test_idle_client_is_dropped_with_421(server):
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        assert_bystander_served(server, "during-idle")
        assert raw.closed_by_server(10)
        assert raw.buffer.startswith(b"421 4.4.2")


# -- connection limits ------------------------------------------------------------------------------------

def connect_from(port: int, source: str) -> Raw:
    raw = Raw.__new__(Raw)
    raw.sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    raw.buffer = b""
    return raw


def test_connection_limits_per_ip_and_in_total(tmp_path):
    server = start_server(tmp_path, extra="[limits]\nconnections = 4\nconnections_per_ip = 3\n")
    port = server.ports["smtp"]
    opened: list[Raw] = []
    try:
        for _ in range(3):
            opened.append(connect_from(port, "127.0.0.1"))
            assert opened[-1].reply().startswith(b"220 ")
        extra = connect_from(port, "127.0.0.1")
        assert extra.reply().startswith(b"421 4.7.0 Too many connections from 127.0.0.1")
        assert extra.closed_by_server(5)
        extra.close()
        opened.append(connect_from(port, "127.0.0.2"))  # another client address still gets in
        assert opened[-1].reply().startswith(b"220 ")
        total = connect_from(port, "127.0.0.3")
        assert total.reply().startswith(b"421 4.7.0 Too many connections")
        total.close()
        # The admitted sessions still work while the limit is being enforced.
        assert opened[0].command(b"EHLO client.example.org").startswith(b"250")
        for raw in opened:
            raw.close()
        assert wait_until(lambda: "disconnect from" in server.log and server.log.count("disconnect from") >= 4)
        again = connect_from(port, "127.0.0.3")
        assert again.reply().startswith(b"220 ")  # the slots were given back
        again.close()
    finally:
        for raw in opened:
            raw.close()
        log = server.stop()
    assert "Traceback" not in log


# -- early talkers (postscreen-style pregreet test) --------------------------------------------------------

def test_early_talker_is_refused_and_patient_pipeliner_is_served(tmp_path):
    need_wiring("limits", "greet_delay")
    server = start_server(tmp_path, extra='[limits]\ngreet_delay = "1s"\n')
    try:
        port = server.ports["smtp"]
        with Raw(port) as early:  # talks before the 220
            early.send(b"EHLO bot.example\r\nMAIL FROM:<spam@example.net>\r\n")
            assert early.reply().startswith(b"554 5.5.1")
            assert early.closed_by_server(5)
            assert b"250" not in early.buffer
        with Raw(port) as patient:  # waits for the 220, then pipelines EHLO+MAIL+RCPT
            assert patient.reply().startswith(b"220 ")
            patient.send(b"EHLO ok.example\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.com>\r\n")
            assert patient.reply().startswith(b"250")
            assert patient.reply().startswith(b"250 2.1.0")
            assert patient.reply().startswith(b"250 2.1.5")
        assert_bystander_served(server, "after-pregreet")
    finally:
        log = server.stop()
    assert "PREGREET" in log and "Traceback" not in log
