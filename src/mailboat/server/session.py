"""The per-connection driver: socket bytes <-> smtp.ServerConnection, policy, spool, queue.

Theory of operation. The protocol engine decides everything about SMTP syntax and sequence;
this driver feeds it bytes, answers its decision events with help from the policy pipeline, and
carries out what only I/O can do: TLS, time-outs, reverse DNS, and handing the finished message
to the queue. The queue's one entrance (queue/intake.py) hears of each transaction at MAIL
(`Intake.expect`) and takes the finished message (`Intake.put`), which decides how it is kept;
the 250 after the final dot (or BDAT LAST) is sent only once the intake says the message is
safe: envelope and bytes on stable storage (many sessions finishing at once share one fsync
there, the group commit), or every copy durable in its mailbox.

Limits on connections, time-outs and TLS handshakes live here, never in the engine (which has
no clock). Client-supplied strings reach logs only through `log.safe`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time

from mailboat import smtp
from mailboat.accounts.users import normalize_address
from mailboat.auth.results import remove_fields
from mailboat.log import safe, said
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.mail.headers import get_first
from mailboat.mail.ids import new_queue_id
from mailboat.mail.received import ReceivedInfo, format_received, with_protocol
from mailboat.policy import Action, SessionInfo, TransactionInfo, Verdict
from mailboat.queue.intake import Expected, QueueError, QueueFullError
from mailboat.resolver.base import forward_confirmed_rdns
from mailboat.server import auth
from mailboat.server.context import ListenerSettings, ServerContext, is_loopback, peer_address
from mailboat.server.limits import ErrorPacer, Limits, ReadDeadline
from mailboat.server.storage import space_refusal
from mailboat.stream import StreamProtocol

# Limits, ListenerSettings and ServerContext live in limits.py and context.py; importing them
# from here, as app.py and listener.py do, keeps working.
__all__ = ["SHUTTING_DOWN", "Limits", "ListenerSettings", "ServerContext", "Session"]

log = logging.getLogger("mailboat.smtpd")
SHUTTING_DOWN = smtp.Reply.make(421, "4.3.2", "Service shutting down, closing connection")
# pflogsumm reads sizes and senders from the qmgr line and message ids from cleanup, as Postfix writes them.
qmgr_log = logging.getLogger("mailboat.qmgr")
cleanup_log = logging.getLogger("mailboat.cleanup")


class Session:
    """One SMTP/LMTP conversation."""

    def __init__(self, ctx: ServerContext, listener: ListenerSettings, stream: StreamProtocol) -> None:
        self.ctx = ctx
        self.listener = listener
        self.stream = stream
        ip, port = peer_address(stream)
        self.info = SessionInfo(
            listener=listener.kind, peer_ip=ip, peer_port=port,
            auth_required=listener.auth == "required", tls_required=listener.tls == "required",
        )
        self.info.is_local = not ctx.check_local_clients and is_loopback(ip)
        tls_usable = ctx.ssl_context is not None
        self.conn = smtp.ServerConnection(
            hostname=ctx.hostname,
            lmtp=listener.kind == "lmtp",
            max_message_size=ctx.limits.message_size,
            max_recipients=ctx.limits.recipients,
            max_errors=ctx.limits.errors,
            max_junk_commands=ctx.limits.junk_commands,
            starttls_available=tls_usable and listener.tls in ("optional", "required"),
            tls_active=listener.tls == "implicit",
            auth_mechanisms=("PLAIN", "LOGIN") if listener.auth != "none" and ctx.authenticate else (),
        )
        self.txn: TransactionInfo | None = None
        self._expected: Expected | None = None  # this transaction, announced to the intake at MAIL
        self.chunks: list[bytes] = []
        self.in_data = False
        self._rdns_task: asyncio.Task[str | None] | None = None
        self._connected_at = time.time()
        self._sasl: auth.SaslExchange | None = None
        self._auth_failures = 0
        self._idle = False  # waiting for the client's next command (see shutdown())
        self.messages = 0
        self._deadline = ReadDeadline(ctx.limits)
        self._pacer = ErrorPacer(ctx.limits.soft_errors, ctx.limits.error_sleep)
        if listener.tls == "implicit":
            self._note_tls()

    @property
    def client(self) -> str:
        return f"{self.info.rdns or 'unknown'}[{self.info.peer_ip or 'local'}]"

    def _note_tls(self) -> None:
        obj = self.stream.ssl_object()
        if obj is not None:
            self.info.tls_version = obj.version()
            cipher = obj.cipher()
            self.info.tls_cipher = cipher[0] if cipher else None

    async def run(self) -> None:
        refusal = self.ctx.counter.admit(self.info.peer_ip, self.ctx.limits)
        if refusal is not None:
            log.warning("connect from %s: %s", self.client, refusal.lines[0])
            self.conn.start(refusal)
            self.stream.write(self.conn.data_to_send())
            self.stream.close()
            return
        try:
            if self.info.peer_ip in ("127.0.0.1", "::1"):  # FCrDNS says "localhost" without DNS: no task
                self.info.rdns = "localhost"
                log.info("connect from %s", self.client)
            else:
                self._rdns_task = asyncio.ensure_future(self._lookup_rdns())
            verdict = await self.ctx.pipeline.on_connect(self.info)
            if verdict.reply is None and not await self._pregreet_passed():
                return
            self.conn.start(verdict.reply)
            await self._loop()
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            log.info("lost connection from %s: %s", self.client, safe(exc))
        except Exception:  # a bug must cost one session, never the server
            log.exception("error: session with %s failed", self.client)
            self.stream.write(smtp.Reply.make(421, "4.3.0", "Internal error, closing").to_bytes())
        finally:
            self._arrived()  # a session lost in the middle of a transaction
            self.ctx.counter.release(self.info.peer_ip)
            if self._rdns_task is not None and not self._rdns_task.done():
                self._rdns_task.cancel()
            self.stream.close()
            log.info("disconnect from %s messages=%d", self.client, self.messages)

    async def _lookup_rdns(self) -> str | None:
        try:
            async with asyncio.timeout(self.ctx.limits.rdns_timeout):
                self.info.rdns = await forward_confirmed_rdns(self.ctx.resolver, self.info.peer_ip)
        except TimeoutError:
            self.info.rdns = None
        log.info("connect from %s", self.client)  # like Postfix: after the reverse look-up
        return self.info.rdns

    async def _pregreet_passed(self) -> bool:
        """Postscreen's pregreet test: a client that talks before our 220 is a bot (or a
        pipelining attacker), since RFC 5321 §3.1 makes the client wait for the greeting.
        Refuse it with 554 5.5.1 and drop it; False means the session is over."""
        delay = self.ctx.limits.greet_delay
        if delay <= 0 or self.listener.kind != "smtp":
            return True
        if not await self.stream.wait_readable(delay):
            return True
        early = await self.stream.read()  # consumed, so close() sends FIN, not RST
        if not early:
            return False  # connected and hung up without a word
        log.warning("PREGREET %d after %.2fs from %s: %s", len(early), time.time() - self._connected_at,
                    self.client, safe(early[:100]))
        self.stream.write(smtp.Reply.make(554, "5.5.1", "Error: SMTP protocol synchronization: "
                                          "client talked before the greeting").to_bytes())
        await self.stream.drain()
        return False

    def shutdown(self) -> None:
        """The server is stopping: a client waiting between commands gets 421 4.3.2 and is closed
        (RFC 5321 §3.8); one in the middle of a message is left to finish it."""
        if self._idle:
            self.stream.write(SHUTTING_DOWN.to_bytes())
            self.stream.close()

    async def _read(self) -> bytes:
        stream = self.stream
        try:
            if stream.readable:  # already here: no timer at all
                data = await stream.read()
            else:
                data = await stream.read(self._deadline.due(self.in_data) - time.monotonic())
            if self.in_data:
                self._deadline.data_bytes += len(data)
            return data
        except TimeoutError:
            log.info("timeout after %s from %s", "DATA" if self.in_data else "command", self.client)
            self.stream.write(smtp.Reply.make(421, "4.4.2", f"{self.ctx.hostname} Error: timeout exceeded").to_bytes())
            raise ConnectionAbortedError("timeout") from None

    async def _loop(self) -> None:
        conn = self.conn
        while True:
            await self._flush()
            event = conn.next_event()
            if event is not smtp.NEED_DATA and not isinstance(event, smtp.DataChunk):
                self._deadline.command_due = None  # a whole request arrived: the next one gets its own
            if event is smtp.NEED_DATA:
                # Replies the engine makes on its own (NOOP, RSET, refusals) were queued by the
                # next_event() call that returned NEED_DATA: send them before waiting.
                await self._flush()
                if conn.closed:
                    return
                self._idle = not self.in_data
                data = await self._read()
                self._idle = False
                conn.receive_data(data)
                continue
            match event:
                case smtp.DataChunk(data=data):
                    self.in_data = True  # BDAT has no Data event: its first chunk starts the phase
                    self.chunks.append(data)
                case smtp.MailFrom():
                    await self._on_mail(event)
                case smtp.RcptTo():
                    await self._on_rcpt(event)
                case smtp.Data():
                    self.in_data = True
                    conn.accept()
                case smtp.MessageComplete():
                    await self._on_message(event)
                case smtp.MessageAborted(reply=reply, reason=reason):
                    log.warning("%s: message refused: %s (%d %s)", self.client, safe(reason), reply.code,
                                safe(" ".join(reply.lines)))
                    self._end_transaction()
                case smtp.Helo(domain=domain, kind=kind):
                    self.info.helo = domain
                    self.info.esmtp = kind != "HELO"
                    verdict = await self.ctx.pipeline.on_helo(self.info)
                    self._answer(verdict.reply)
                case smtp.StartTls():
                    await self._starttls()
                case smtp.Auth(mechanism=mechanism, initial_response=initial):
                    await self._on_auth(mechanism, initial)
                case smtp.AuthResponse(data=response):
                    await self._sasl_step(response)
                case smtp.Reset():
                    self._end_transaction()
                case smtp.CommandRejected(command=command, reply=reply):
                    log.info("%s: rejected %s: %d %s", self.client, safe(command, 80), reply.code,
                             safe(" ".join(reply.lines)))
                case smtp.NonSmtpCommand(command=command):  # Postfix's wording (fail2ban knows it)
                    log.warning("non-SMTP command from %s: %s", self.client, safe(command, 100))
                case smtp.Quit() | smtp.ConnectionClosed():
                    if conn.max_errors and conn.errors >= conn.max_errors:
                        log.warning("too many errors from %s", self.client)
                    await self._flush()
                    return

    async def _flush(self) -> None:
        # Past limits.soft_errors, each error reply waits limits.error_sleep (Postfix
        # smtpd_error_sleep_time): probing recipients or passwords costs time, not only connections.
        slowed, delay = self._pacer.slowed, self._pacer.delay(self.conn.errors)
        if delay:
            if not slowed:
                log.warning("%s: %d errors, slowing down error replies (limits.soft_errors)", self.client,
                            self.conn.errors)
            await asyncio.sleep(delay)
        out = self.conn.data_to_send()
        if out:
            self.stream.write(out)
            if self.stream.write_paused:  # drain() only waits when the transport pushed back
                await self.stream.drain()

    def _answer(self, reply: smtp.Reply | None) -> None:
        if reply is None:
            self.conn.accept()
        else:
            self.conn.send(reply)

    async def _starttls(self) -> None:
        self.stream.write(self.conn.data_to_send())  # "220 2.0.0 Ready to start TLS"
        await self.stream.drain()
        assert self.ctx.ssl_context is not None
        try:
            await self.stream.start_tls(self.ctx.ssl_context, self.ctx.limits.tls_handshake_timeout)
        except (ssl.SSLError, ConnectionError, TimeoutError, OSError) as exc:
            log.info("%s: TLS handshake failed: %s", self.client, safe(exc))
            raise ConnectionAbortedError("TLS handshake failed") from None
        self._end_transaction()
        self.info.helo, self.info.esmtp, self.info.auth_user = "", False, None
        self.conn.tls_established()
        self._note_tls()
        log.info("%s: TLS established: %s %s", self.client, self.info.tls_version, self.info.tls_cipher)

    async def _on_auth(self, mechanism: str, initial: str | None) -> None:
        if self.ctx.auth_limiter.blocked(self.info.peer_ip):
            self.conn.send(auth.AUTH_THROTTLED)
            return
        self._sasl = auth.SaslExchange(mechanism)
        await self._sasl_step(initial)

    async def _sasl_step(self, response: str | None) -> None:
        exchange = self._sasl
        assert exchange is not None and self.ctx.authenticate is not None
        try:
            result = exchange.step(response)
        except PermissionError:
            result = ("", "")  # counts as a failed login
        except (ValueError, UnicodeDecodeError):
            self._sasl = None
            self.conn.send(auth.AUTH_SYNTAX)
            return
        if isinstance(result, smtp.Reply):
            self.conn.send(result)
            return
        self._sasl = None
        identity, password = result
        account = normalize_address(identity) if identity else ""
        if account and self.ctx.auth_limiter.blocked(self.info.peer_ip, account):
            self.conn.send(auth.AUTH_THROTTLED)
            return
        ok = bool(account) and await asyncio.to_thread(self.ctx.authenticate, account, password)
        if ok:
            self.conn.set_authenticated(account)
            self.info.auth_user = account
            self.conn.send(auth.AUTH_OK)
            log.info("%s: sasl_method=%s, sasl_username=%s", self.client, exchange.mechanism, safe(account))
            return
        self.ctx.auth_limiter.failed(self.info.peer_ip, account or None)
        self._auth_failures += 1
        # fail2ban's postfix filter matches this wording.
        log.warning("%s: SASL %s authentication failed: user=%s", self.client, exchange.mechanism, safe(account))
        self.conn.send(auth.AUTH_FAILED)
        if self._auth_failures >= auth.PER_SESSION and not self.conn.closed:
            await self._flush()
            self.stream.write(auth.TOO_MANY_FAILURES.to_bytes())
            raise ConnectionAbortedError("too many failed authentications")

    async def _on_mail(self, event: smtp.MailFrom) -> None:
        params = event.params
        limits = self.ctx.limits
        full = space_refusal(self.ctx.spool_path(), declared_size=params.size,
                             message_size_limit=limits.message_size, minfree=limits.queue_minfree,
                             multiplier=limits.space_multiplier)
        if full is not None:
            reply, reason = full
            log.warning("not enough free space in mail queue: %s", reason)  # a warning line, as Postfix's
            self._noqueue("MAIL", reply, event.path.address)
            self.conn.send(reply)
            return
        txn = TransactionInfo(sender=event.path.address, smtputf8=params.smtputf8, body=params.body,
                              ret=params.ret, envid=params.envid)
        try:  # the envelope model refuses control bytes; the parser should have already
            Envelope(sender=txn.sender, recipients=(), envid=txn.envid)
        except ValueError:
            self._noqueue("MAIL", smtp.replies.BAD_SENDER_SYNTAX, txn.sender)
            self.conn.send(smtp.replies.BAD_SENDER_SYNTAX)
            return
        verdict = await self.ctx.pipeline.on_mail(self.info, txn)
        if verdict.reply is None:
            self.txn = txn
            if self._expected is None:
                self._expected = self.ctx.intake.expect()
        else:
            self._noqueue("MAIL", verdict.reply, txn.sender)
        self._answer(verdict.reply)

    async def _on_rcpt(self, event: smtp.RcptTo) -> None:
        assert self.txn is not None, "the engine emits RCPT only inside a transaction"
        address = self.ctx.postmaster if event.path.is_postmaster and self.ctx.postmaster else event.path.address
        orcpt = f"{event.params.orcpt[0]};{event.params.orcpt[1]}" if event.params.orcpt else None
        try:  # as at MAIL: a value the model refuses is a syntax error, never a crash
            recipient = Recipient(address, orcpt=orcpt, notify=event.params.notify)
        except ValueError:
            self._noqueue("RCPT", smtp.replies.BAD_RECIPIENT_SYNTAX, self.txn.sender, address)
            self.conn.send(smtp.replies.BAD_RECIPIENT_SYNTAX)
            return
        verdict = await self.ctx.pipeline.on_rcpt(self.info, self.txn, address)
        if verdict.reply is None:
            self.txn.recipients.append(recipient)
        else:
            self._noqueue("RCPT", verdict.reply, self.txn.sender, address)
        self._answer(verdict.reply)

    def _end_transaction(self) -> None:
        self._arrived()
        self.txn = None
        self.chunks = []
        self.in_data = False
        self._deadline.data_started = None

    def _arrived(self) -> None:
        """This transaction no longer counts among those the queue's group commit waits for."""
        expected = self._expected
        if expected is not None:
            self._expected = None
            expected.close()

    def _reply_all(self, reply: smtp.Reply, count: int) -> None:
        """SMTP answers the end of data once; LMTP once per accepted recipient (RFC 2033 §4.2)."""
        for _ in range(count if self.listener.kind == "lmtp" else 1):
            self.conn.send(reply)

    async def _on_message(self, event: smtp.MessageComplete) -> None:
        txn = self.txn
        assert txn is not None and txn.recipients
        count = len(txn.recipients)
        message = b"".join(self.chunks)
        self.chunks = []
        verdict = await self.ctx.pipeline.on_data(self.info, txn, message)
        if verdict.reply is not None or verdict.action is Action.DISCARD:
            return self._refused(verdict, txn, count)
        queue_id = new_queue_id()
        if verdict.symbols or verdict.action is Action.QUARANTINE:
            log.info("%s: filter: %s", queue_id, safe(verdict.summary()))
        if self._rdns_task is not None and not self._rdns_task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._rdns_task), self.ctx.limits.rdns_timeout)
            except TimeoutError:
                pass
        protocol = with_protocol(esmtp=self.info.esmtp, tls=self.info.tls_version is not None,
                                 auth=self.info.auth_user is not None, lmtp=self.listener.kind == "lmtp",
                                 smtputf8=txn.smtputf8)
        received = format_received(ReceivedInfo(
            helo=self.info.helo, ip=self.info.peer_ip or "127.0.0.1", rdns=self.info.rdns,
            hostname=self.ctx.hostname, protocol=protocol, queue_id=queue_id,
            tls_version=self.info.tls_version, tls_cipher=self.info.tls_cipher,
            recipient=txn.recipients[0].address if count == 1 else None,
        ))
        if verdict.remove_headers:
            message = remove_fields(message, verdict.remove_headers)
        data = b"".join((*verdict.headers, received, message))
        envelope = Envelope(
            sender=txn.sender, recipients=tuple(txn.recipients), ret=txn.ret, envid=txn.envid,
            body=txn.body, smtputf8=txn.smtputf8, client_ip=self.info.peer_ip, client_helo=self.info.helo,
            auth_user=self.info.auth_user, protocol=protocol, quarantine=verdict.action is Action.QUARANTINE,
        )
        connect = {
            "client": self.client, "helo": self.info.helo, "listener": self.listener.kind,
            "tls": f"{self.info.tls_version} {self.info.tls_cipher}" if self.info.tls_version else None,
            "sasl_username": self.info.auth_user,
        }
        expected, self._expected = self._expected, None
        try:
            await self.ctx.intake.put(queue_id, envelope, data, expected=expected, connect=connect,
                                      connected_at=self._connected_at,
                                      accepted=lambda: self._accepted(queue_id, message, data, count))
        except QueueFullError as exc:
            log.warning("%s: queue full: %s", queue_id, safe(exc))
            self._reply_all(smtp.Reply.make(452, "4.3.1", "Insufficient system storage"), count)
            self._end_transaction()
        except QueueError as exc:
            log.error("%s: queue write error: %s", queue_id, safe(exc))
            self._reply_all(smtp.Reply.make(451, "4.3.0", "Queue write error, try again later"), count)
            self._end_transaction()

    def _refused(self, verdict: Verdict, txn: TransactionInfo, count: int) -> None:
        """End of data refused or deferred (the verdict's reply), or discarded (250, as Postfix's DISCARD)."""
        reply = verdict.reply or smtp.Reply.make(250, "2.0.0", f"Ok: queued as {(queue_id := new_queue_id())}")
        if verdict.reply is not None:
            self._noqueue("END-OF-MESSAGE", reply, txn.sender, txn.recipients[0].address)
        else:
            log.info("%s: discard: END-OF-MESSAGE from %s: %s", queue_id, self.client, safe(verdict.reason))
        self._reply_all(reply, count)
        self._end_transaction()

    def _noqueue(self, stage: str, reply: smtp.Reply, sender: str, to: str = "") -> None:
        """Postfix's line for a refused command (pflogsumm and fail2ban read it)."""
        log.info("NOQUEUE: reject: %s from %s: %s; from=<%s> %sproto=%s helo=<%s>", stage, self.client, said(reply),
                 safe(sender), to and f"to=<{safe(to)}> ", "ESMTP" if self.info.esmtp else "SMTP", safe(self.info.helo))

    def _accepted(self, queue_id: str, message: bytes, data: bytes, count: int) -> None:
        """Count and log a message taken in (Postfix's smtpd, cleanup and qmgr lines), answer
        250 (sent when _on_message returns) and end the transaction: the intake's `accepted`."""
        txn = self.txn
        assert txn is not None
        self.messages += 1
        log.info("%s: client=%s%s", queue_id, self.client,
                 f", sasl_username={safe(self.info.auth_user)}" if self.info.auth_user else "")
        message_id = get_first(message, "Message-ID")
        if message_id is not None:
            cleanup_log.info("%s: message-id=%s", queue_id, safe(message_id.value.strip()))
        qmgr_log.info("%s: from=<%s>, size=%d, nrcpt=%d (queue active)", queue_id, safe(txn.sender), len(data), count)
        self._reply_all(smtp.Reply.make(250, "2.0.0", f"Ok: queued as {queue_id}"), count)
        self._end_transaction()
