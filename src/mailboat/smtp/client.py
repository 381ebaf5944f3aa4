"""ClientConnection: the sans-I/O SMTP (RFC 5321) and LMTP (RFC 2033) client engine.

The mirror of :class:`~mailboat.smtp.server.ServerConnection`: server replies go in with
:meth:`ClientConnection.receive_data`, events come out of :meth:`ClientConnection.next_event`,
command bytes come out of :meth:`ClientConnection.data_to_send`. No sockets, no clock.
Extensions used: PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8
(RFC 6531), DSN (RFC 3461), STARTTLS (RFC 3207), ENHANCEDSTATUSCODES (RFC 2034).
"""

# ---------------------------------------------------------------------------------------------
# Theory of operation
# ---------------------------------------------------------------------------------------------
#
# The driver turns the same loop as on the server side, but it is the one who speaks first:
#
#     conn = ClientConnection(helo_name="mx.example.com")
#     loop:  write(conn.data_to_send())          ALWAYS before a blocking read
#            ev = conn.next_event()
#            NEED_DATA        -> conn.receive_data(await read())          (b"" = EOF)
#            Greeting(220)    -> conn.hello()                             EHLO, or LHLO
#            HelloDone(2yz)   -> conn.starttls() | conn.start_transaction(txn) | conn.quit()
#            TlsReady(220)    -> handshake; conn.tls_established()        (queues EHLO again)
#            TransactionDone  -> per-recipient replies; next transaction or quit()
#            Closed           -> close the socket
#
# Replies are matched to the commands they answer through a FIFO of expectations: every
# command sent pushes one, every complete reply pops one. A reply with nothing to answer is
# a protocol error, as is a malformed one (Reply.parse), an over-long line or reply; the
# engine then raises RemoteProtocolError and the session is unusable. A 421 answers whatever
# was pending and closes the session (RFC 5321 §3.8); undecided recipients get the 421.
#
# Session state:
#
#     GREETING -> HELLO (EHLO; 5yz -> HELO fallback; LHLO in LMTP) -> READY
#     READY -> STARTTLS -> 220 -> TLS_PENDING -> tls_established() -> HELLO (EHLO again) -> READY
#     READY -> TRANSACTION -> READY ... -> QUIT -> CLOSED
#
# STARTTLS (security.md §2.3, aiosmtplib GHSA-vxj7-4xrp-5vr4): bytes already buffered after
# the 220 were sent in plaintext by whoever sits on the path; they are DISCARDED, never read
# as replies from inside TLS. Capabilities learnt before TLS are forgotten (RFC 3207 §4.2).
#
# A transaction is MAIL, RCPT per recipient, DATA, content, final reply. With PIPELINING
# (RFC 2920) the commands up to DATA leave in one write and the content follows the 354, so
# one message costs two round trips; without it, each command waits for its reply. When
# the previous transaction was left open (a refused RCPT set or DATA), RSET goes first, in
# the same write when pipelining. Each recipient's fate is the first negative reply on its
# way (MAIL, its RCPT, DATA) or else the final reply: in LMTP one final reply per accepted
# recipient, in RCPT order. Local refusals need no round trip: a message larger than the
# server's SIZE (552 5.3.4) and one that needs SMTPUTF8 where it is not offered (550 5.6.7).
# ---------------------------------------------------------------------------------------------

from __future__ import annotations

from collections import deque
from enum import Enum, auto

from .capabilities import parse_ehlo
from .client_events import ClientEvent, Closed, Greeting, HelloDone, TlsReady, TransactionDone, TransactionResult
from .client_txn import PendingTransaction, encode_command, local_refusal
from .errors import LocalProtocolError, RemoteProtocolError
from .events import NEED_DATA, NeedData
from .outgoing import OutgoingRecipient, Transaction, orcpt_param, xtext_encode
from .reply import Reply

__all__ = [
    "ClientConnection", "Transaction", "OutgoingRecipient", "TransactionResult", "ClientEvent",
    "Greeting", "HelloDone", "TlsReady", "TransactionDone", "Closed", "MAX_REPLY_LINE", "MAX_REPLY_LINES",
]

MAX_REPLY_LINE = 4096  # octets; RFC 5321 §4.5.3.1.5 says 512, real servers send longer
MAX_REPLY_LINES = 200
PROTOCOL_ERROR = Reply.make(451, "4.5.0", "remote server protocol error")


class _State(Enum):
    GREETING = auto()
    HELLO = auto()
    READY = auto()
    STARTTLS = auto()
    TLS_PENDING = auto()
    TRANSACTION = auto()
    QUIT = auto()
    CLOSED = auto()


# -- the engine ----------------------------------------------------------------------------------


class ClientConnection:
    """One outbound SMTP or LMTP session, without I/O.

    Args:
        helo_name: our name for EHLO/HELO/LHLO (RFC 5321 §4.1.1.1: the FQDN of this host).
        lmtp: speak LMTP (RFC 2033): LHLO, no HELO fallback, one final reply per recipient.

    Public read-only state: ``capabilities`` (EHLO keywords, upper-case, to their arguments),
    ``esmtp`` (EHLO/LHLO accepted), ``tls_active``, ``state_name`` and ``awaiting`` (the
    command whose reply is awaited, for the driver's timeouts: "GREETING", "MAIL", "DATA",
    "DOT" ...), ``reusable`` (the session can take another transaction).
    """

    def __init__(self, helo_name: str, *, lmtp: bool = False) -> None:
        self.helo_name = helo_name
        self.lmtp = lmtp
        self.capabilities: dict[str, tuple[str, ...]] = {}
        self.esmtp = False
        self.tls_active = False
        self.discarded_after_starttls = 0  # octets of injected plaintext dropped (for logs)
        self._state = _State.GREETING
        self._buf = bytearray()
        self._eof = False
        self._out: list[bytes] = []
        self._expect: deque[tuple[str, int]] = deque([("GREETING", 0)])
        self._events: deque[ClientEvent] = deque()
        self._txn: PendingTransaction | None = None
        self._reset_needed = False
        self._closing: Reply | None = None

    # -- driver API --------------------------------------------------------------------------

    @property
    def state_name(self) -> str:
        return self._state.name

    @property
    def awaiting(self) -> str | None:
        return self._expect[0][0] if self._expect else None

    @property
    def reusable(self) -> bool:
        return self._state is _State.READY and not self._expect and self._closing is None

    @property
    def in_transaction(self) -> bool:
        return self._txn is not None

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the server; ``b""`` signals EOF."""
        if self._state is _State.TLS_PENDING:
            raise LocalProtocolError("plaintext received after STARTTLS 220; call tls_established() first")
        if not data:
            self._eof = True
        elif self._state is not _State.CLOSED:
            self._buf += data

    def data_to_send(self) -> bytes:
        """Bytes to write to the server (commands, message content); ``b""`` if none."""
        out, self._out = self._out, []
        return out[0] if len(out) == 1 else b"".join(out)

    def next_event(self) -> ClientEvent | NeedData:
        """The next event, NEED_DATA, or Closed once the session is over.

        Raises:
            RemoteProtocolError: the server sent a malformed, over-long or unsolicited reply.
                The session is then closed; use :meth:`abort_transaction` for the outcomes.
        """
        while not self._events:
            if self._state is _State.CLOSED:
                return Closed(self._closing)
            if self._state is _State.TLS_PENDING:
                raise LocalProtocolError("handshake first, then call tls_established()")
            reply = self._read_reply()
            if reply is None:
                if not self._eof:
                    return NEED_DATA
                self._state = _State.CLOSED  # EOF: the driver collects outcomes via abort_transaction
                continue
            if not self._expect:
                self._fail(f"unsolicited reply: {reply}")
            kind, index = self._expect.popleft()
            self._handle(kind, index, reply)
        return self._events.popleft()

    def hello(self) -> None:
        """Send EHLO (LHLO in LMTP mode) after a 220 greeting."""
        self._require(_State.GREETING, "hello()")
        if self._expect:
            raise LocalProtocolError("hello() before the greeting arrived")
        self._command("LHLO" if self.lmtp else "EHLO", 0, f"{'LHLO' if self.lmtp else 'EHLO'} {self.helo_name}")
        self._state = _State.HELLO

    def starttls(self) -> None:
        """Send STARTTLS (only when offered and not yet under TLS)."""
        self._require(_State.READY, "starttls()")
        if "STARTTLS" not in self.capabilities or self.tls_active:
            raise LocalProtocolError("STARTTLS is not offered on this session")
        self._command("STARTTLS", 0, "STARTTLS")
        self._state = _State.STARTTLS

    def tls_established(self) -> None:
        """The handshake after TlsReady(220) succeeded: forget the session and EHLO again."""
        self._require(_State.TLS_PENDING, "tls_established()")
        self.tls_active = True
        self.capabilities, self.esmtp = {}, False
        self._buf.clear()
        self._state = _State.GREETING
        self.hello()

    def start_transaction(self, txn: Transaction) -> None:
        """Send one message. Its TransactionDone may come from the very next next_event()."""
        self._require(_State.READY, "start_transaction()")
        if not txn.recipients:
            raise LocalProtocolError("a transaction needs at least one recipient")
        state = self._txn = PendingTransaction(txn)
        self._state = _State.TRANSACTION
        caps = self.capabilities
        refusal = local_refusal(txn, caps)
        if refusal is not None:
            self._finish(state.result(refusal, remote=False))
            return
        mail = f"MAIL FROM:<{txn.sender}>"
        if "SIZE" in caps:
            mail += f" SIZE={txn.message.size}"
        if txn.message.eight_bit and "8BITMIME" in caps:
            mail += " BODY=8BITMIME"
        if (txn.smtputf8 or txn.needs_smtputf8) and "SMTPUTF8" in caps:
            mail += " SMTPUTF8"
        dsn = "DSN" in caps
        if dsn and txn.ret:
            mail += f" RET={txn.ret}"
        if dsn and txn.envid:
            mail += f" ENVID={xtext_encode(txn.envid)}"
        lines = state.lines
        if self._reset_needed:
            lines.append(("RSET", 0, b"RSET\r\n"))
        lines.append(("MAIL", 0, encode_command(mail)))
        for index, rcpt in enumerate(txn.recipients):
            line = f"RCPT TO:<{rcpt.address}>"
            if dsn and rcpt.notify:
                line += " NOTIFY=" + ",".join(rcpt.notify)
            if dsn and rcpt.orcpt:
                line += " ORCPT=" + orcpt_param(rcpt.orcpt)
            lines.append(("RCPT", index, encode_command(line)))
        lines.append(("DATA", 0, b"DATA\r\n"))
        self._reset_needed = False
        if "PIPELINING" in caps:  # RFC 2920 §3.1: DATA is the last command of the group
            while lines:
                self._send_queued()
        else:
            self._send_queued()

    def quit(self) -> None:
        """Send QUIT; Closed(221) follows. Valid whenever no transaction is in flight."""
        if self._state in (_State.TRANSACTION, _State.TLS_PENDING, _State.QUIT, _State.CLOSED):
            raise LocalProtocolError(f"quit() in state {self._state.name}")
        self._command("QUIT", 0, "QUIT")
        self._state = _State.QUIT

    def abort_transaction(self, reply: Reply) -> TransactionResult | None:
        """Give up the session (EOF, timeout, protocol error): the transaction's outcomes so far,
        with ``reply`` (made up locally) for every recipient not yet decided. None if none ran."""
        txn, self._txn = self._txn, None
        self._state, self._expect = _State.CLOSED, deque()
        return None if txn is None else txn.result(reply, remote=False)

    # -- internals -------------------------------------------------------------------------

    def _require(self, state: _State, what: str) -> None:
        if self._state is not state:
            raise LocalProtocolError(f"{what} in state {self._state.name}")

    def _command(self, kind: str, index: int, line: str | bytes) -> None:
        raw = encode_command(line) if isinstance(line, str) else line
        self._out.append(raw)
        self._expect.append((kind, index))

    def _send_queued(self) -> None:
        assert self._txn is not None
        kind, index, raw = self._txn.lines.popleft()
        self._command(kind, index, raw)

    def _fail(self, reason: str) -> None:
        self._state = _State.CLOSED
        raise RemoteProtocolError(PROTOCOL_ERROR, reason)

    def _read_reply(self) -> Reply | None:
        """Cut one complete reply from the buffer (CRLF-terminated lines, RFC 5321 §4.2.1)."""
        buf, pos, lines = self._buf, 0, 0
        while True:
            end = buf.find(b"\r\n", pos, pos + MAX_REPLY_LINE + 2)
            if end < 0:
                if len(buf) - pos > MAX_REPLY_LINE:
                    self._fail("reply line too long")
                return None
            lines += 1
            if lines > MAX_REPLY_LINES:
                self._fail("reply has too many lines")
            if buf[pos + 3 : pos + 4] != b"-" or end - pos < 4:
                break
            pos = end + 2
        raw = bytes(buf[: end + 2])
        del buf[: end + 2]
        try:
            return Reply.parse(raw)
        except ValueError as exc:
            self._fail(f"malformed reply {raw[:100]!r}: {exc}")
        raise AssertionError("unreachable")

    def _handle(self, kind: str, index: int, reply: Reply) -> None:
        if reply.code == 421:  # RFC 5321 §3.8: the server is closing; nothing else will come
            self._closing = reply
        match kind:
            case "GREETING":
                self._events.append(Greeting(reply))
            case "EHLO" if reply.is_permanent and self._closing is None:
                self._command("HELO", 0, f"HELO {self.helo_name}")  # RFC 5321 §3.2: fall back
            case "EHLO" | "HELO" | "LHLO":
                if 200 <= reply.code < 300:
                    self.esmtp = kind != "HELO"
                    self.capabilities = parse_ehlo(reply) if self.esmtp else {}
                    self._state = _State.READY
                self._events.append(HelloDone(reply))
            case "STARTTLS":
                if reply.code == 220 and self._closing is None:
                    self.discarded_after_starttls = len(self._buf)
                    self._buf.clear()  # response injection: never read plaintext as TLS replies
                    self._state = _State.TLS_PENDING
                else:
                    self._state = _State.READY
                self._events.append(TlsReady(reply))
            case "QUIT":
                self._closing = reply
            case "DOT_IGNORED":
                pass
            case _:
                self._transaction_reply(kind, index, reply)
        if self._closing is not None:
            if self._txn is not None:
                self._finish(self._txn.result(self._closing, remote=True))
            self._expect.clear()
            self._state = _State.CLOSED
        elif self._txn is not None and not self._expect:
            if self._txn.lines:
                self._send_queued()  # lock-step: the next command
            elif self._txn.finals_left == 0:
                self._finish(self._txn.result(reply, remote=True))

    def _transaction_reply(self, kind: str, index: int, reply: Reply) -> None:
        txn = self._txn
        if txn is None:
            self._fail(f"reply to {kind} outside a transaction")
        assert txn is not None
        positive = 200 <= reply.code < 300
        match kind:
            case "RSET":
                if not positive:
                    self._fail(f"RSET refused: {reply}")
            case "MAIL":
                txn.mail_ok = positive
                self._reset_needed = positive  # until the final reply closes the transaction
                if not positive:
                    for i in range(len(txn.decided)):
                        txn.decide(i, reply)
                    txn.lines.clear()  # lock-step: RCPT and DATA are not sent
            case "RCPT":
                if not positive:
                    txn.decide(index, reply)
                elif txn.decided[index] is None:  # (after a refused MAIL, a 250 here means nothing)
                    txn.accepted.append(index)
                if len(txn.lines) == 1 and txn.lines[0][0] == "DATA" and not txn.accepted:
                    txn.lines.clear()  # lock-step, every RCPT refused: no DATA (RSET comes next time)
            case "DATA" if reply.code == 354:
                if txn.accepted and txn.mail_ok:
                    self._out.append(txn.spec.message.wire)
                    txn.finals_left = len(txn.accepted) if self.lmtp else 1
                    for _ in range(txn.finals_left):
                        self._expect.append(("DOT", 0))
                else:  # RFC 2920 §3.1: DATA accepted with no recipient: send an empty message
                    self._out.append(b".\r\n")
                    self._expect.append(("DOT_IGNORED", 0))
                    self._reset_needed = True
            case "DATA":
                for i in txn.accepted:
                    txn.decide(i, reply)
            case "DOT":
                if self.lmtp:
                    done = len(txn.accepted) - txn.finals_left
                    txn.decide(txn.accepted[done], reply)
                else:
                    for i in txn.accepted:
                        txn.decide(i, reply)
                txn.finals_left -= 1
                if txn.finals_left == 0:
                    self._reset_needed = False

    def _finish(self, result: TransactionResult) -> None:
        self._txn = None
        self._state = _State.READY
        self._events.append(TransactionDone(result))
