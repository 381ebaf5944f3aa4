"""The bounce notifier: turns the runner's final failures, delays and successes into DSNs.

Its three methods are the QueueRunner hooks (`on_final_failure`, `on_delay`, `on_success`). Each
decides who is owed a report (RFC 3461 NOTIFY, never to a null sender, never about a DSN: see
`mail.dsn`), builds it with `mail.dsn.build_dsn`, and enqueues it into the SAME store as a new
message from <> to the original sender, so bounces travel through the same durable queue, retry
schedule and transports as any other mail (Postfix's bounce daemon does the same, with cleanup).

Journey: the report gets a "dsn_for" event naming the original, recorded before its enqueue (so
by the store contract, point 8, durable no later than the report); the original gets a "dsn"
event naming the report's queue id once that is queued, or saying why no report was sent.

Double bounces (SPEC: "a delivery report that cannot itself be delivered goes to postmaster of
the first local domain, never nowhere"): when a message that no sender can be told about fails
for good (its sender is null, or it is itself a delivery report, such as our own bounce to a
sender whose address was refused), the report goes to `postmaster` instead, from <>, saying
why. A failure of such a report to the postmaster (its recipient, or the alias it came from, is
the postmaster address) is logged and dropped, as Postfix does with a failed double bounce:
reporting it would loop. Delay and success reports about such messages are never sent.

Log lines (logger "mailboat.bounce", Postfix's wording so log tools know them):
  QUEUEID: sender non-delivery notification: NEWID
  QUEUEID: sender delay notification: NEWID
  QUEUEID: sender delivery status notification: NEWID
  QUEUEID: postmaster non-delivery notification: NEWID
  QUEUEID: postmaster non-delivery notification to <ADDR> failed: dropped (warning)
and "NEWID: from=<>, size=N, nrcpt=1 (queue active)" (logger "mailboat.qmgr") for the report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from mailboat.delivery.outcome import RecipientOutcome
from mailboat.mail import dsn
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.mail.ids import new_queue_id
from mailboat.mail.received import format_local_received
from mailboat.queue.model import QueuedRecipient, QueueItem
from mailboat.queue.store import QueueStore
from mailboat.routing.router import normalize

_LOG_WORDS = {"failed": "non-delivery", "delayed": "delay", "delivered": "delivery status"}
_LOCAL_HOSTS = ("local", "none", "")


class Bouncer:
    """Builds and enqueues DSNs for one store. Pass its methods to QueueRunner.

    Args:
        store: the queue the reports are enqueued into (the runner's own store).
        hostname: Reporting-MTA, the MAILER-DAEMON domain and the Message-ID domain.
        postmaster: where double bounces go (postmaster of the first local domain); default
            postmaster@hostname.
        clock: Unix time.
        on_enqueued: called with the new queue id (e.g. QueueRunner.wake) so it goes out at once.
    """

    def __init__(self, store: QueueStore, hostname: str, *, postmaster: str | None = None,
                 clock: Callable[[], float] = time.time, on_enqueued: Callable[[str], None] | None = None,
                 logger: logging.Logger | None = None) -> None:
        self.store, self.hostname, self.clock = store, hostname, clock
        self.postmaster = postmaster or f"postmaster@{hostname}"
        self.on_enqueued = on_enqueued
        self.log = logger or logging.getLogger("mailboat.bounce")
        self.qmgr_log = logging.getLogger("mailboat.qmgr")

    async def on_final_failure(self, item: QueueItem, failures: list[RecipientOutcome]) -> None:
        """Non-delivery report for recipients that failed for good (expired ones: 4.4.7)."""
        await self._report(item, failures, "failed")

    async def on_delay(self, item: QueueItem, deferred: list[RecipientOutcome], until: float) -> None:
        """The one delay warning (Action: delayed) with Will-Retry-Until."""
        await self._report(item, deferred, "delayed", until)

    async def on_success(self, item: QueueItem, delivered: list[RecipientOutcome]) -> None:
        """Success reports, only for recipients that asked for them with NOTIFY=SUCCESS."""
        wanted = [o for o in delivered if (r := _row(item, o)) is not None and r.recipient.notify
                  and "SUCCESS" in r.recipient.notify]
        if wanted:  # skip loading the message for the usual case of nobody asking
            await self._report(item, wanted, "delivered")

    async def _report(self, item: QueueItem, outcomes: list[RecipientOutcome], kind: str,
                      until: float | None = None) -> None:
        now = self.clock()
        if item.envelope.is_bounce and kind != "failed":
            await self._suppressed(item, now, kind, "the sender is null (<>): no report to send it to")
            return
        reports = []
        for o in outcomes:
            row = _row(item, o)
            rcpt = row.recipient if row is not None else Recipient(o.recipient)
            if dsn.wants(rcpt, kind):
                reports.append(_recipient_report(o, rcpt, kind, until))
        if not reports:
            await self._suppressed(item, now, kind, "NOTIFY asked for no report of this kind")
            return
        try:
            original = await self.store.load_message(item.queue_id)
        except KeyError:
            return  # deleted by the operator meanwhile: nothing left to report on
        to, why = item.envelope.sender, None  # why: set when the report goes to the postmaster instead
        is_report = dsn.is_delivery_report(original)
        if item.envelope.is_bounce or is_report:
            if kind != "failed":
                await self._suppressed(item, now, kind, "the message is itself a delivery report")
                return
            reports = await self._not_to_postmaster(item, now, reports)
            if not reports:
                return
            to = self.postmaster
            why = "it is itself a delivery report" if is_report else "the message has no return address"
        report = dsn.DeliveryReport(
            reporting_mta=self.hostname, queue_id=item.queue_id, sender=item.envelope.sender,
            arrival=item.arrival, recipients=tuple(reports), envid=item.envelope.envid,
            ret=item.envelope.ret, to=to if why else None, why=why)
        new_id = new_queue_id()
        body = dsn.build_dsn(report, original, message_id=f"<{new_id}@{self.hostname}>", at=now)
        data = format_local_received(self.hostname, new_id) + body
        envelope = Envelope(
            sender="", recipients=(Recipient(to),),
            body="8BITMIME" if any(b > 0x7F for b in data) else None,
            smtputf8=not to.isascii(), protocol="local", client_helo="",
            client_ip="")
        await self.store.record_event(new_id, now, "dsn_for", {"queue_id": item.queue_id, "action": kind})
        await self.store.enqueue(new_id, envelope, data)  # raises: the runner keeps the failures open
        # Only now: the original's journey must never name a report that was not queued.
        await self.store.record_event(item.queue_id, now, "dsn", {
            "action": kind, "dsn_id": new_id, "to": to,
            "recipients": [r.final_recipient for r in reports]})
        whom = "postmaster" if why else "sender"
        self.log.info("%s: %s %s notification: %s", item.queue_id, whom, _LOG_WORDS.get(kind, kind), new_id)
        self.qmgr_log.info("%s: from=<>, size=%d, nrcpt=1 (queue active)", new_id, len(data))
        if self.on_enqueued is not None:
            self.on_enqueued(new_id)

    async def _not_to_postmaster(self, item: QueueItem, now: float,
                                 reports: list[dsn.RecipientReport]) -> list[dsn.RecipientReport]:
        """The reports that may go to the postmaster: a failure of mail to the postmaster itself
        (directly or through its alias) is logged and dropped, never reported (it would loop)."""
        postmaster = normalize(self.postmaster)

        def is_postmaster(address: str | None) -> bool:
            return address is not None and normalize(address) == postmaster

        keep = [r for r in reports if not (is_postmaster(r.final_recipient) or is_postmaster(r.alias))]
        for r in reports:
            if r not in keep:
                self.log.warning("%s: postmaster non-delivery notification to <%s> failed: dropped",
                                 item.queue_id, r.final_recipient)
        if not keep:
            await self._suppressed(item, now, "failed", "a report to the postmaster that failed: dropped, "
                                   "never reported (it would loop)")
        return keep

    async def _suppressed(self, item: QueueItem, at: float, kind: str, reason: str) -> None:
        await self.store.record_event(item.queue_id, at, "dsn", {"action": kind, "dsn_id": None, "reason": reason})


def _row(item: QueueItem, o: RecipientOutcome) -> QueuedRecipient | None:
    """The queued recipient an outcome belongs to (an alias expansion inherits ORCPT/NOTIFY)."""
    for row in item.recipients:
        if row.address == o.recipient and row.original == o.original:
            return row
    if o.original is not None:  # first run of an expansion: not recorded yet, use its alias
        for row in item.recipients:
            if row.address == o.original and row.original is None:
                return row
    return None


def _recipient_report(o: RecipientOutcome, rcpt: Recipient, kind: str, until: float | None) -> dsn.RecipientReport:
    # A failure with a 4xx reply is an expiry (the runner gave up after max_lifetime):
    # RFC 3463 X.4.7 "delivery time expired", as sendmail reports it.
    status = "4.4.7" if kind == "failed" and o.reply_code < 500 else o.enhanced_status
    if kind == "delivered" and o.host not in _LOCAL_HOSTS:
        kind = "relayed"  # handed to a next hop: it, not us, did the final delivery
    # Only a reply a server sent is "smtp;"; our own findings (a refused connection, no MX...)
    # are ours, without the status the Status field already gives.
    ours = o.reply_text[len(o.enhanced_status):].strip() if o.reply_text.startswith(o.enhanced_status) \
        else o.reply_text
    return dsn.RecipientReport(
        final_recipient=o.recipient, action=kind, status=status, original_recipient=rcpt.orcpt,
        alias=o.original, remote_mta=mta_name(o.host),
        diagnostic=f"{o.reply_code} {o.reply_text}" if o.remote else None,
        local_diagnostic=None if o.remote else ours, last_attempt=o.at,
        will_retry_until=until if kind == "delayed" else None)


def mta_name(host: str) -> str | None:
    """The Remote-MTA name of an outcome's host ("mx.example.net[192.0.2.1]:25" -> "mx.example.net"),
    None when no server answered ("none", "local") or the peer is a unix socket."""
    if host in _LOCAL_HOSTS:
        return None
    name, bracket, rest = host.partition("[")
    if bracket and rest.startswith("/"):
        return None
    return name or rest.split("]", 1)[0] or None

