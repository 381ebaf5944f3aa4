"""`mailboat sendmail [-t] [-i|-oi] [-f FROM] [-F NAME] [RCPT...]`: /usr/sbin/sendmail for mailboat.

Reads one message on stdin and writes it straight into `{data_dir}/queue.db`, so it is queued
even while the server is stopped; a running server's runner finds it within its poll interval.
Options follow Postfix's sendmail(1): -t takes recipients from To/Cc/Bcc (added to those on the
command line), -i/-oi: a line with a single dot does not end the message, -f/-r the envelope
sender (default: the invoking user @ the origin domain, below; `-f '<>'` is the null sender), -F the full name
for a From: we add, -N/-R/-V the RFC 3461 NOTIFY/RET/ENVID, -bp lists the queue. Harmless
historic options (-oem, -odb, -oee, -bm, -v, -U, -h N, ...) are accepted and ignored.

What it does to the message (Postfix cleanup does the same): LF line ends become CRLF; Bcc and
Resent-Bcc fields are removed (they must never reach a recipient); From, Date and Message-ID are
added when missing; our Received field (`mail.received.format_local_received`) goes on top.
A first line that is not a header field starts the body (a blank line is inserted).

The origin domain (Postfix myorigin) qualifies the default sender and every address without a
domain: the hostname when it is a local domain, else the first local domain, so bounces to the
default sender can be delivered here.

Recipients are checked before anything is stored, with the RCPT rules of the SMTP server
(`policy.filters.relay.RelayFilter` over the same `routing.Router`, as an authenticated local
user may relay): an unknown local recipient is refused as SMTP refuses it with 550 5.1.1, one
stderr line per refused recipient, exit 67, and nothing is queued, not even for the recipients
that were valid (SPEC; Postfix's sendmail would queue and bounce later).

Exit codes are sysexits(3), which scripts calling sendmail test: 64 usage or no recipients,
65 bad data (an address with control characters), 66 stdin unreadable, 67 a recipient refused
(unknown local user), 70 internal error, 75 the queue could not be written (try again),
78 configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import pwd
import re
import sqlite3
import sys
from datetime import datetime
from email.utils import format_datetime, getaddresses
from typing import NoReturn

from mailboat.cli.errors import CliError
from mailboat.cli.serve import config_from
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.mail.headers import unfold
from mailboat.mail.ids import new_queue_id
from mailboat.mail.received import format_local_received
from mailboat.queue import open_store
from mailboat.queue.backend import queue_location
from mailboat.queue.store import QueueError

EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_NOUSER, EX_SOFTWARE, EX_TEMPFAIL, EX_CONFIG = 64, 65, 66, 67, 70, 75, 78
_FIELD = re.compile(rb"[!-9;-~]+[ \t]*:")
_BARE_LF = re.compile(rb"(?<!\r)\n")
_IGNORED_WITH_ARG = {"-h", "-L", "-X", "-C", "-O", "-B"}  # historic options that take a value
_IGNORED = {"-bm", "-v", "-U", "-G", "-n", "-m", "-Am", "-Ac", "-odb", "-odi", "-odq"}


def register(sub: argparse._SubParsersAction) -> None:
    # prefix_chars="+": every argument reaches us unparsed, so sendmail's own option syntax
    # (-oi, -f<addr>, -bm) is handled here and usage errors exit 64, not argparse's 2.
    p = sub.add_parser("sendmail", prefix_chars="+", add_help=False,
                       help="sendmail-compatible submission: read a message on stdin and queue it")
    p.add_argument("argv", nargs="*")
    p.set_defaults(func=run)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CliError(f"sendmail: {message} (see 'mailboat sendmail --help')", EX_USAGE)


def _parser() -> _Parser:
    p = _Parser(prog="mailboat sendmail", add_help=False)
    p.add_argument("-t", action="store_true", help="recipients from To, Cc and Bcc")
    p.add_argument("-i", action="store_true", help="a line with a single dot does not end the message")
    p.add_argument("-f", metavar="FROM", help="envelope sender")
    p.add_argument("-F", metavar="NAME", help="full name for the From: header we add")
    p.add_argument("-N", metavar="DSN", help="NOTIFY: never, or success,delay,failure")
    p.add_argument("-R", metavar="RET", choices=("full", "hdrs", "FULL", "HDRS"), help="RET: full or hdrs")
    p.add_argument("-V", metavar="ENVID", help="ENVID for delivery reports")
    p.add_argument("--bp", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--help", action="store_true")
    p.add_argument("recipients", nargs="*", metavar="RCPT")
    return p


def normalise(argv: list[str]) -> list[str]:
    """sendmail's option dialect -> what argparse reads (see the module docstring)."""
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--":
            out.append(arg)
            out.extend(args)
            break
        if arg == "-oi":
            out.append("-i")
        elif arg in _IGNORED or (arg.startswith("-o") and len(arg) > 2) or arg.startswith("-X"):
            continue  # -oem, -oee, -odb ...: error and delivery modes we have no use for
        elif arg in _IGNORED_WITH_ARG:
            next(args, None)
        elif arg == "-bp":
            out.append("--bp")
        elif arg.startswith("-b"):
            raise CliError(f"sendmail: mode {arg} is not supported (only -bm and -bp)", EX_USAGE)
        elif arg.startswith("-r"):  # obsolete synonym of -f
            out.append("-f" + arg[2:])
        else:
            out.append(arg)
    return out


def split_header(data: bytes) -> tuple[list[bytes], bytes]:
    """(header fields, each with its folding and CRLF; body). Stops at a non-field line."""
    fields: list[bytes] = []
    lines = data.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line in (b"\r\n", b"\n"):
            return fields, b"".join(lines[i + 1:])
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        elif _FIELD.match(line):
            fields.append(line)
        else:
            return fields, b"".join(lines[i:])
    return fields, b""


def _name(field: bytes) -> str:
    return field.split(b":", 1)[0].strip().decode("ascii", "replace").lower()


def _addresses(values: list[str], origin: str) -> list[str]:
    """Addresses of header values or arguments; unqualified ones get @origin (Postfix myorigin)."""
    found = []
    for _, address in getaddresses(values):
        address = address.strip()
        if address:
            found.append(address if "@" in address else f"{address}@{origin}")
    return found


def read_message(stream, dot_ends: bool) -> bytes:
    try:
        data = stream.read()
    except OSError as exc:
        raise CliError(f"sendmail: cannot read the message on stdin: {exc.strerror or exc}", EX_NOINPUT) from None
    if dot_ends:  # without -i a line with a single "." ends the message (sendmail's default)
        match = re.search(rb"(?m)^\.\r?$", data)
        if match is not None:
            data = data[: match.start()]
    if data.startswith(b"From "):  # an mbox separator, not a header
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    return _BARE_LF.sub(b"\r\n", data)


def build_message(data: bytes, *, sender: str, full_name: str | None, hostname: str, queue_id: str,
                  uid: int, now: datetime, origin: str | None = None) -> tuple[bytes, list[str]]:
    """(the message to queue, To/Cc/Bcc addresses qualified with `origin`). See the module docstring."""
    fields, body = split_header(data)
    header_rcpts = _addresses([unfold(f.split(b":", 1)[1]) for f in fields if _name(f) in ("to", "cc", "bcc")],
                              origin or hostname)
    kept = [f if f.endswith(b"\n") else f + b"\r\n" for f in fields if _name(f) not in ("bcc", "resent-bcc")]
    names = {_name(f) for f in kept}
    if "from" not in names:
        shown = f'"{full_name}" <{sender}>' if full_name else f"<{sender}>" if sender else "<MAILER-DAEMON>"
        kept.append(f"From: {shown}\r\n".encode())
    if "date" not in names:
        kept.append(f"Date: {format_datetime(now)}\r\n".encode())
    if "message-id" not in names:
        kept.append(f"Message-ID: <{queue_id}@{hostname}>\r\n".encode())
    received = format_local_received(hostname, queue_id, uid=uid, at=now)
    return received + b"".join(kept) + b"\r\n" + body, header_rcpts


def _notify(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    words = tuple(w.strip().upper() for w in value.split(","))
    if not set(words) <= {"NEVER", "SUCCESS", "DELAY", "FAILURE"} or ("NEVER" in words and len(words) > 1):
        raise CliError("sendmail: -N takes never, or any of success,delay,failure", EX_USAGE)
    return words


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except CliError:
        raise
    except Exception as exc:  # a bug: still one line and a sysexits code for the calling script
        raise CliError(f"sendmail: internal error: {exc!r}", EX_SOFTWARE) from None


def _run(args: argparse.Namespace) -> int:
    opts = _parser().parse_intermixed_args(normalise(args.argv))
    if opts.help:
        sys.stdout.write(_parser().format_help())
        return 0
    try:
        config = config_from(opts)
    except CliError as exc:
        raise CliError(exc.message, EX_CONFIG) from None
    if opts.bp:
        from mailboat.cli.queue import run_list
        return run_list(argparse.Namespace(config=opts.config, json=False))
    if opts.V is not None and (len(opts.V) > 100 or not opts.V.isprintable() or not opts.V.isascii()):
        raise CliError("sendmail: -V: an ENVID is at most 100 printable ASCII characters", EX_USAGE)
    notify = _notify(opts.N)
    user = pwd.getpwuid(os.getuid()).pw_name
    origin = origin_domain(config)
    sender = (opts.f if opts.f is not None else f"{user}@{origin}").strip()
    sender = "" if sender in ("<>", "") else sender.strip("<>")
    if sender and "@" not in sender:
        sender = f"{sender}@{origin}"
    data = read_message(sys.stdin.buffer, dot_ends=not opts.i)
    queue_id = new_queue_id()
    message, header_rcpts = build_message(data, sender=sender, full_name=opts.F, hostname=config.hostname,
                                          queue_id=queue_id, uid=os.getuid(), now=datetime.now().astimezone(),
                                          origin=origin)
    wanted = _addresses(opts.recipients, origin) + (header_rcpts if opts.t else [])
    unique = list({a.lower(): a for a in reversed(wanted)}.values())[::-1]
    if not unique:
        raise CliError("sendmail: no recipients: name them as arguments or use -t", EX_USAGE)
    try:
        envelope = Envelope(sender, tuple(Recipient(a, notify=notify) for a in unique),
                            ret=opts.R.upper() if opts.R else None, envid=opts.V,
                            body="8BITMIME" if any(b > 0x7F for b in message) else None,
                            smtputf8=not (sender.isascii() and all(a.isascii() for a in unique)),
                            protocol="local")
    except ValueError as exc:
        raise CliError(f"sendmail: bad address: {exc}", EX_DATAERR) from None
    refused = asyncio.run(_refusals(config, envelope, user))
    if refused:
        for reply in refused[:-1]:  # one line each; main() prints the last one and exits 67
            print(f"mailboat: {_refusal_line(reply)}", file=sys.stderr)
        raise CliError(_refusal_line(refused[-1]), EX_NOUSER)
    _enqueue(config, queue_id, envelope, message, user)
    return 0


def origin_domain(config) -> str:
    """The domain of the default sender and of unqualified addresses (Postfix myorigin): the
    hostname when it is a local domain, else the first local domain; bounces to it land here."""
    local = [d.lower().rstrip(".") for d in config.local_domains]
    if not local or config.hostname.lower().rstrip(".") in local:
        return config.hostname
    return local[0]


class _NoAccounts:
    """The user database before its first account: nobody exists (and the file is not created)."""

    def exists(self, address: str) -> bool:
        return False

    def close(self) -> None:
        pass


async def _refusals(config, envelope: Envelope, user: str) -> list:
    """The SMTP server's RCPT replies refusing recipients of `envelope` ([] when all pass).

    The same RelayFilter and Router as the server's RCPT check, for a client that authenticated
    as the local user (so remote recipients may be relayed to, as for any submission).
    """
    from mailboat.accounts import UserStore
    from mailboat.app import build_router, users_path
    from mailboat.policy.context import SessionInfo, TransactionInfo
    from mailboat.policy.filters.relay import RelayFilter

    path = users_path(config)
    try:
        users = UserStore(path) if os.path.exists(path) else _NoAccounts()
    except (OSError, sqlite3.Error) as exc:
        raise CliError(f"sendmail: cannot read the user database {path}: {exc}; nothing was queued, "
                       "try again", EX_TEMPFAIL) from None
    try:
        relay = RelayFilter(build_router(config, users))
        session = SessionInfo(listener="local", peer_ip="", peer_port=0, auth_user=user, is_local=True)
        txn = TransactionInfo(sender=envelope.sender)
        refused = []
        for rcpt in envelope.recipients:
            verdict = await relay.on_rcpt(session, txn, rcpt.address)
            if verdict.reply is not None and verdict.reply.code >= 500:
                refused.append(verdict.reply)
        return refused
    except sqlite3.Error as exc:
        raise CliError(f"sendmail: cannot read the user database {path}: {exc}; nothing was queued, "
                       "try again", EX_TEMPFAIL) from None
    finally:
        users.close()


def _refusal_line(reply) -> str:
    return f"sendmail: {reply}; nothing was queued"


def _enqueue(config, queue_id: str, envelope: Envelope, message: bytes, user: str) -> None:
    path = queue_location(config.queue, config.data_dir)

    async def main() -> None:
        store = open_store(config.queue, config.data_dir)
        try:
            await store.enqueue(queue_id, envelope, message)
        finally:
            await store.close()

    try:
        os.makedirs(config.data_dir, mode=0o700, exist_ok=True)
        asyncio.run(main())
    except (QueueError, OSError) as exc:
        raise CliError(f"sendmail: cannot queue the message in {path}: {exc}; nothing was queued, "
                       "try again", EX_TEMPFAIL) from None
    if config.log.file:  # a terminal user does not want log lines on stderr; a log file does
        from mailboat.log import setup_logging

        setup_logging(config.log.file, config.log.level)
        logging.getLogger("mailboat.pickup").info("%s: uid=%d from=<%s>", queue_id, os.getuid(), user)
        logging.getLogger("mailboat.qmgr").info("%s: from=<%s>, size=%d, nrcpt=%d (queue active)", queue_id,
                                                envelope.sender, len(message), len(envelope.recipients))
