"""Command handling for ServerConnection: reading a command line, then its verb's checks and events.

RFC 5321 §4.1.1 (commands), §4.1.4 (order of commands), §3.3 (mail transactions);
RFC 2033 §4.1 (LHLO); RFC 3030 (BDAT); RFC 3207 (STARTTLS); RFC 4954 (AUTH).

Each handler is a function of the connection, passed explicitly: it reads and changes the
connection's session and transaction (`state.py`), and either queues a decision event for the
application, answers by itself, or raises a :class:`~mailboat.smtp.errors.ReplyError` that the
dispatcher turns into a refusal. These functions are the engine's other half: they use the
connection's engine-internal members (the underscore names), which a driver never touches.
Sequence checks come before argument parsing, as in Postfix: a client that is out of step
learns that first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from . import replies
from .commands import (
    MAX_AUTH_LINE,
    LineTooLong,
    decode_line,
    is_base64,
    parse_auth,
    parse_bdat,
    parse_mail,
    parse_rcpt,
    split_command,
)
from .data import BdatReceiver, ContentCheck
from .errors import RemoteProtocolError, ReplyError
from .events import (
    Auth,
    AuthResponse,
    CommandRejected,
    ConnectionClosed,
    Data,
    Helo,
    MailFrom,
    MessageAborted,
    MessageComplete,
    NonSmtpCommand,
    Quit,
    RcptTo,
    Reset,
    StartTls,
)
from .limits import is_non_smtp
from .reply import Reply
from .state import InputMode

if TYPE_CHECKING:
    from .server import ServerConnection

__all__ = [
    "CONNECTION_CLOSED", "end_of_message", "handle_command", "read_auth_line", "read_command", "refuse_non_smtp",
    "reject",
]

# Module-level aliases: reading a member through the Enum class costs about ten times more
# than a global.
_COMMAND = InputMode.COMMAND
_BDAT = InputMode.BDAT
_TLS_PENDING = InputMode.TLS_PENDING

# Events without fields are immutable values: one instance each serves every connection.
_DATA_EVENT = Data()
_RESET = Reset()
_QUIT = Quit()
_START_TLS = StartTls()
CONNECTION_CLOSED = ConnectionClosed()


_SYNTAX = {
    verb: Reply.make(501, "5.5.4", f"Syntax: {usage}")
    for verb, usage in {
        "HELO": "HELO hostname",
        "EHLO": "EHLO hostname",
        "LHLO": "LHLO hostname",
        "DATA": "DATA",
        "RSET": "RSET",
        "QUIT": "QUIT",
        "VRFY": "VRFY address",
        "STARTTLS": "STARTTLS",
    }.items()
}


def read_command(conn: ServerConnection) -> bool:
    """Cut one command line and handle it. False if no complete line is buffered yet."""
    conn._pos, line = conn._lines.read(conn._buf, conn._pos)
    if line is None:
        return False
    if type(line) is LineTooLong:
        if is_non_smtp(line.head.decode("latin-1")):
            refuse_non_smtp(conn, line.head)  # e.g. an HTTP GET with a long URL
        elif line.endless:
            reject(conn, line.head, replies.LINE_TOO_LONG, count=False)
            conn._close()
        else:
            reject(conn, line.head, replies.LINE_TOO_LONG)
        return True
    try:
        text = decode_line(line)
    except RemoteProtocolError as exc:
        reject(conn, line, exc.reply)
        return True
    handle_command(conn, text)
    return True


def handle_command(conn: ServerConnection, line: str) -> None:
    """Check one decoded command line against the session, then run its verb's handler.

    The verb is looked up in :data:`_VERBS` as written first (clients send upper case),
    and only then through :func:`split_command`, which validates and upper-cases it.
    """
    verb, _, arg = line.partition(" ")
    handler = _VERBS.get(verb)
    if handler is None:
        if is_non_smtp(line):  # HTTP or a header: end the session before anything else runs
            refuse_non_smtp(conn, line)
            return
        verb, arg = split_command(line)
        handler = _VERBS.get(verb, _unknown)
    if not line.isascii() and verb not in ("MAIL", "RCPT"):
        reject(conn, line, replies.BAD_ENCODING)  # 8-bit only in SMTPUTF8 paths
        return
    if conn._session.refused and verb != "QUIT":
        reject(conn, line, replies.SESSION_REFUSED)
        return
    try:
        handler(conn, verb, arg, line)
    except ReplyError as exc:
        reject(conn, line, exc.reply)


# -- refusals and the limits (limits.py) ---------------------------------------------------


def reject(conn: ServerConnection, command: bytes | str, reply: Reply, *, count: bool = True) -> None:
    """Send an engine refusal, report it (CommandRejected), and enforce max_errors."""
    if isinstance(command, bytes):
        command = command.decode("utf-8", "backslashreplace")
    if command[:4].upper() == "AUTH":
        command = " ".join(command.split()[:2])  # never log SASL initial responses
    conn._out.append(reply.to_bytes())
    conn._pending.append(CommandRejected(command[:200], reply))
    if count:
        conn._count_error()


def refuse_non_smtp(conn: ServerConnection, line: bytes | str) -> None:
    """521 5.7.0 and close: nothing after this line is read (limits.py)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "backslashreplace")
    conn._out.append(replies.NON_SMTP_COMMAND.to_bytes())
    conn._pending.append(NonSmtpCommand(line[:200], replies.NON_SMTP_COMMAND))
    conn._close()


def _junk_command(conn: ServerConnection, line: str) -> bool:
    """Count NOOP/RSET/VRFY/EXPN/HELP; True if this one is over the limit (421 sent, closed)."""
    if conn._limits.junk_command():
        reject(conn, line, replies.TOO_MANY_JUNK, count=False)
        conn._close()
        return True
    return False


# -- checks shared by several verbs --------------------------------------------------------


def _no_argument(verb: str, arg: str) -> None:
    if arg.strip(" "):
        raise ReplyError(_SYNTAX[verb], f"{verb} takes no argument")


def _require_helo(conn: ServerConnection) -> None:
    if conn._session.helo_name is None:
        raise ReplyError(replies.NEED_LHLO if conn.lmtp else replies.NEED_HELO, "no HELO yet")


def _require_recipients(conn: ServerConnection) -> None:
    """Shared by DATA and BDAT: a transaction with at least one accepted recipient."""
    _require_helo(conn)
    txn = conn._txn
    if txn.mail is None:
        raise ReplyError(replies.NEED_MAIL, "no MAIL yet")
    if not txn.rcpts:
        if txn.rcpt_attempted:  # RFC 5321 §3.3: 554 when every RCPT was refused
            raise ReplyError(replies.NO_VALID_RECIPIENTS, "no recipient accepted")
        raise ReplyError(replies.NEED_RCPT, "no RCPT yet")


# -- verbs ---------------------------------------------------------------------------------

# Every handler takes (conn, verb, arg, line): the connection, the upper-cased verb, the text
# after its space, and the whole line (for the logs of a refusal). Each ignores what it does
# not need.


def _hello(conn: ServerConnection, verb: str, arg: str, line: str) -> None:
    if (verb == "LHLO") != conn.lmtp:
        raise ReplyError(replies.WRONG_MODE, f"{verb} in {'LMTP' if conn.lmtp else 'SMTP'} mode")
    domain = arg.strip(" ")
    # Policy on the name (FCrDNS, syntax) is the application's; we only need one word.
    if not domain or " " in domain or not domain.isprintable():
        raise ReplyError(_SYNTAX[verb], f"{verb} without a single hostname")
    if conn._txn.mail is not None:  # RFC 5321 §4.1.4: EHLO implies RSET
        conn._txn.reset()
        conn._pending.append(_RESET)
    session = conn._session
    session.helo_name, session.esmtp = None, False
    kind: Literal["HELO", "EHLO", "LHLO"] = "HELO" if verb == "HELO" else "EHLO" if verb == "EHLO" else "LHLO"
    conn._pending.append(Helo(domain, kind))


def _mail_from(conn: ServerConnection, verb: str, arg: str, line: str) -> None:
    _require_helo(conn)
    if conn._txn.mail is not None:
        raise ReplyError(replies.NESTED_MAIL, "MAIL inside a transaction")
    path, params = parse_mail(arg, esmtp=conn._session.esmtp)
    if params.size is not None and conn.max_message_size and params.size > conn.max_message_size:
        raise ReplyError(replies.MESSAGE_TOO_BIG, f"declared SIZE {params.size}")  # RFC 1870 §6.1
    conn._pending.append(MailFrom(path, params))


def _rcpt_to(conn: ServerConnection, verb: str, arg: str, line: str) -> None:
    _require_helo(conn)
    txn = conn._txn
    if txn.mail is None:
        raise ReplyError(replies.NEED_MAIL, "RCPT before MAIL")
    txn.rcpt_attempted = True
    if conn.max_recipients and len(txn.rcpts) >= conn.max_recipients:
        reject(conn, f"RCPT {arg}", replies.TOO_MANY_RECIPIENTS, count=False)
        return
    path, params = parse_rcpt(arg, esmtp=conn._session.esmtp, smtputf8=txn.mail.params.smtputf8)
    conn._pending.append(RcptTo(path, params))


def _data(conn: ServerConnection, verb: str, arg: str, line: str) -> None:
    _no_argument("DATA", arg)
    _require_recipients(conn)
    if conn._txn.body_kind == "BDAT":  # RFC 3030 §3: DATA and BDAT never mix
        raise ReplyError(replies.DATA_AFTER_BDAT, "DATA after BDAT")
    conn._pending.append(_DATA_EVENT)


def _bdat(conn: ServerConnection, verb: str, arg: str, line: str) -> None:
    try:
        size, last = parse_bdat(arg)
    except ReplyError as exc:
        # Without a size we cannot skip the chunk: its octets would be read as commands.
        reject(conn, line, exc.reply)
        if not conn.closed:
            conn._out.append(replies.BDAT_UNSYNCHRONISED.to_bytes())
            conn._close()
        return
    check: ContentCheck | None = None
    try:
        _require_recipients(conn)
        if not conn._session.esmtp:
            raise ReplyError(replies.NEED_EHLO, "BDAT needs EHLO/LHLO (CHUNKING)")
    except ReplyError as exc:
        reject(conn, line, exc.reply)  # the chunk is still read, and dropped
    else:
        txn = conn._txn
        if txn.bdat_check is None:
            txn.bdat_check = ContentCheck(conn.max_message_size)
        txn.body_kind = "BDAT"
        check = txn.bdat_check
    if not conn.closed:
        conn._receiver = BdatReceiver(size, last, check)
        conn._mode = _BDAT


def _starttls(conn: ServerConnection, verb: str, arg: str, line: str) -> None:
    if conn._session.tls_active:
        raise ReplyError(replies.TLS_ALREADY_ACTIVE, "STARTTLS under TLS")
    if not conn.starttls_available:
        raise ReplyError(replies.NOT_IMPLEMENTED, "STARTTLS not offered")
    _no_argument("STARTTLS", arg)
    if conn._txn.mail is not None:
        raise ReplyError(replies.STARTTLS_IN_TRANSACTION, "STARTTLS inside a transaction")
    conn._out.append(replies.TLS_READY.to_bytes())
    # CVE-2011-0411: whatever follows STARTTLS in the plaintext buffer was not sent
    # through TLS and must never be executed as if it had been.
    conn._buf, conn._pos = b"", 0
    conn._mode = _TLS_PENDING
    conn._pending.append(_START_TLS)


def _auth(conn: ServerConnection, verb: str, arg: str, line: str) -> None:
    session = conn._session
    if not conn.auth_mechanisms:
        raise ReplyError(replies.NOT_IMPLEMENTED, "AUTH not offered")
    if session.helo_name is None or not session.esmtp:
        raise ReplyError(replies.NEED_EHLO, "AUTH before EHLO")
    if session.authenticated:
        raise ReplyError(replies.ALREADY_AUTHENTICATED, "second AUTH")  # RFC 4954 §4
    if conn._txn.mail is not None:
        raise ReplyError(replies.AUTH_IN_TRANSACTION, "AUTH inside a transaction")
    if not conn._auth_allowed():
        raise ReplyError(replies.ENCRYPTION_REQUIRED, "AUTH before TLS")  # RFC 4954 §6
    mechanism, initial = parse_auth(arg)
    if mechanism not in conn.auth_mechanisms:
        raise ReplyError(replies.UNKNOWN_MECHANISM, f"mechanism {mechanism}")
    conn._pending.append(Auth(mechanism, initial))


def _rset(conn: ServerConnection, verb: str, arg: str, line: str) -> None:
    if _junk_command(conn, line):
        return
    _no_argument(verb, arg)
    conn._txn.reset()
    conn._pending.append(_RESET)
    conn._out.append(replies.RESET_OK.to_bytes())


def _noop(conn: ServerConnection, verb: str, arg: str, line: str) -> None:
    if _junk_command(conn, line):
        return
    conn._out.append(replies.NOOP_OK.to_bytes())  # RFC 5321 §4.1.1.9: an argument is allowed


def _quit(conn: ServerConnection, verb: str, arg: str, line: str) -> None:
    _no_argument(verb, arg)
    conn._out.append(replies.GOODBYE.to_bytes())
    conn._pending.append(_QUIT)
    conn._close()


def _vrfy(conn: ServerConnection, verb: str, arg: str, line: str) -> None:
    if _junk_command(conn, line):
        return
    if not arg.strip():
        raise ReplyError(_SYNTAX["VRFY"], "VRFY without argument")
    conn._out.append(replies.VRFY_CANNOT.to_bytes())  # RFC 5321 §3.5.3: 252, never disclose


def _expn(conn: ServerConnection, verb: str, arg: str, line: str) -> None:
    if _junk_command(conn, line):
        return
    conn._out.append(replies.EXPN_DISABLED.to_bytes())  # RFC 5321 §7.3: lists are not exposed


def _help(conn: ServerConnection, verb: str, arg: str, line: str) -> None:
    if _junk_command(conn, line):
        return
    conn._out.append(replies.HELP.to_bytes())


def _unknown(conn: ServerConnection, verb: str, arg: str, line: str) -> None:
    raise ReplyError(replies.UNRECOGNIZED, "unknown command")


# -- phases that follow a command: end of message, SASL continuation lines --------------------


def end_of_message(conn: ServerConnection, check: ContentCheck) -> None:
    """CRLF.CRLF or the end of BDAT LAST: ask the application, or refuse on our own."""
    txn = conn._txn
    count = len(txn.rcpts) if conn.lmtp else 1
    if check.error is None:
        txn.replies_owed = count
        conn._pending.append(MessageComplete(check.size))
        return
    reply, reason = check.error
    conn._out.append(reply.to_bytes() * count)  # LMTP: one reply per accepted recipient
    conn._pending.append(MessageAborted(reply, reason))
    txn.reset()
    conn._count_error()


def read_auth_line(conn: ServerConnection) -> bool:
    """One client line of a SASL exchange (RFC 4954 §4), after the application sent 334."""
    conn._pos, line = conn._lines.read(conn._buf, conn._pos, MAX_AUTH_LINE)
    if line is None:
        return False
    conn._mode = _COMMAND  # the exchange ends unless the application sends 334
    if isinstance(line, LineTooLong):
        reject(conn, b"<SASL response>", replies.AUTH_LINE_TOO_LONG, count=not line.endless)
        if line.endless:
            conn._close()
    elif line == b"*":  # RFC 4954 §4: the client cancels
        reject(conn, b"*", replies.AUTH_CANCELLED, count=False)
    elif not line.isascii() or not is_base64(line.decode("ascii")):
        reject(conn, b"<SASL response>", replies.AUTH_BAD_RESPONSE)
    else:
        conn._pending.append(AuthResponse(line.decode("ascii")))
    return True


_VERBS: dict[str, Callable[[ServerConnection, str, str, str], None]] = {
    "HELO": _hello,
    "EHLO": _hello,
    "LHLO": _hello,
    "MAIL": _mail_from,
    "RCPT": _rcpt_to,
    "DATA": _data,
    "BDAT": _bdat,
    "RSET": _rset,
    "NOOP": _noop,
    "QUIT": _quit,
    "VRFY": _vrfy,
    "EXPN": _expn,
    "HELP": _help,
    "STARTTLS": _starttls,
    "AUTH": _auth,
}
"""Each verb's handler, keyed by the upper-cased verb (RFC 5321 §4.1.1; RFC 3030, 3207, 4954)."""
