"""The queue runner: claims due messages, routes each recipient, delivers, records, retries.

Theory of operation
-------------------
One asyncio task (`run()`) loops: claim due messages from the store (up to the free delivery
slots), start one `_process` task per message, then sleep until `wake()` is called (the session
driver calls it after each enqueue), a slot frees up while work is waiting, or `poll_interval`
passes (for deferred messages coming due, and for messages queued by another process).

Fresh messages accepted by the process that runs the queue need no claim: the intake
(queue/intake.py) enqueues one already leased (`store.enqueue(claim=True)`) and hands it to `deliver_now()` with
its bytes. The other worker processes' messages, retries, and hand-offs that found no free slot
go through claim_due().

Processing one message (`_process`):
1. load the bytes (unless handed over with them); for each open recipient: an envelope recipient is first expanded by
   `router.expand()` (aliases); an expansion recorded earlier (`original` set) is used as is;
2. `router.route(address)` for each final address; recipients are grouped by equal Route;
3. each group goes to `transports[route.kind]` concurrently; Discard and Refuse routes become
   outcomes here; a kind with no transport registered is deferred with
   "4.4.0 remote delivery not available yet";
4. deferred recipients get the next time from `retry.next_attempt`; past `max_lifetime` they
   become failed ("expired");
5. final failures go to `on_final_failure(item, outcomes)` BEFORE they are recorded: the
   bounce notifier (queue/bounce.py) enqueues the DSN there, so a crash in between duplicates a
   bounce rather than losing it. If the hook raises, the failures are recorded as deferred and
   retried (the bounce is owed). Likewise `on_success` for delivered recipients (NOTIFY=SUCCESS
   reports; best effort) and, once per message, `on_delay` when recipients are still deferred
   `delay_warning` seconds after arrival; the warning is then marked with
   `store.mark_delay_warned()` so a restart never sends it twice. Until it is sent, the next
   attempt is pulled in to the warning time, so the warning is not late by a whole retry step;
6. `store.record_outcomes()` commits all outcomes atomically under the claim's lease token (the
   message finishes when none is open; nothing is recorded if another runner claimed it since),
   after a Postfix-style log line and a "delivery" journey event (with the next attempt) each.
A crash anywhere before step 6 leaves the claim lease to expire: the message is delivered again
(duplicates possible, loss not). Every exception is contained per message; the loop never dies.

Delivering before queueing (`deliver_first`): a session that has a large message
(DELIVER_FIRST_MIN and up) for local mailboxes only asks the runner to deliver it BEFORE it is
queued, and answers 250 once every copy is durable in its Maildir: the bytes are then written
once (the mailbox) instead of twice (the queue, then the mailbox). The same steps 1-6 run, with
the routing decided first: only when every recipient expands and routes to a Maildir (or
Discard) is anything delivered. When every recipient is delivered, `finish_first` logs and
journals it like any delivery and the message is never queued (its journey: queued, delivery,
finished). Otherwise the session queues it as usual and `record_first` records this attempt as
its first run, so delivered recipients are not delivered again. A crash before the 250 leaves
delivered copies that the client sends again: a duplicate, never a loss (RFC 5321 §6.1).

Log lines carry the Postfix agent that made the outcome, so pflogsumm reads them: logger
"mailboat.local" (Maildir), "mailboat.lmtp", "mailboat.smtp" (relay, MX), "mailboat.discard",
"mailboat.error" (refusals), "mailboat.qmgr" (failed before any transport; "QUEUEID: removed"):
  QUEUEID: to=<rcpt>, [orig_to=<alias>, ]relay=local, delay=0.12, delays=a/b/c/d, dsn=2.0.0,
  status=sent (delivered to maildir)
delays: a = arrival to first claim, b = time deferred in the queue plus routing, c = connection
set-up (0 until remote transports report it), d = the transport's delivery time. An expired
recipient is returned to its sender: "dsn=4.4.7, status=bounced (delivery time expired: ...)"
(pflogsumm counts no other word as a bounce; its journey says "expired"), then qmgr's
"QUEUEID: from=<sender>, status=expired, returned to sender".
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from mailboat.delivery.transport import RecipientOutcome, RecipientState, Transport, outcome
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.queue import retry
from mailboat.queue.codec import finished_detail, queued_detail
from mailboat.queue.model import QueueItem, apply_outcomes, initial_recipients
from mailboat.queue.store import LeaseLostError, QueueError, QueueStore
from mailboat.routing.route import Discard, Maildir, Refuse, Route

FinalFailureHook = Callable[[QueueItem, list[RecipientOutcome]], Awaitable[None]]
# on_delay(item, deferred outcomes, will_retry_until): the delay-warning DSN.
DelayHook = Callable[[QueueItem, list[RecipientOutcome], float], Awaitable[None]]
_REMOTE_KINDS = frozenset({"lmtp", "relay", "mx"})
_STATUS_WORD = {RecipientState.DELIVERED: "sent", RecipientState.DEFERRED: "deferred",
                RecipientState.FAILED: "bounced"}
# The Postfix delivery agent whose name a transport's log lines carry (mailboat/smtp[PID]).
_AGENTS = {"maildir": "local", "lmtp": "lmtp", "relay": "smtp", "mx": "smtp"}
# Messages of this size and larger go to local mailboxes before they are queued (deliver_first).
# Measured side by side (20 sessions into Maildir, every worker delivering its own): 100 KB
# messages +15 to +40 % per second with 15-30 % less CPU each, since their bytes are no longer
# written to the queue as well; 1 KB messages 13-24 % slower, since every worker then runs its
# own Maildir syncs in smaller batches, which cost more than the queue's shared fsync saves.
DELIVER_FIRST_MIN = 64 * 1024
_LOCAL_ROUTES = (Maildir, Discard)
Groups = dict[Route, dict[str, tuple[Recipient, list[str | None]]]]
Timing = dict[str, tuple[float, str]]  # final address -> (transport time, agent that logs it)


@dataclass(slots=True)
class FirstAttempt:
    """What `deliver_first` did: the message as it would be queued, and the outcomes."""

    item: QueueItem
    outcomes: list[RecipientOutcome]
    timing: Timing
    message: bytes = field(repr=False)

    @property
    def complete(self) -> bool:
        """Every recipient delivered: the message need not be queued at all."""
        return all(o.state is RecipientState.DELIVERED for o in self.outcomes)


async def _maybe_await(value: Any) -> Any:
    # The router may be synchronous (static tables) or asynchronous (DNS, databases).
    return await value if inspect.isawaitable(value) else value


class QueueRunner:
    """Delivers what the store says is due. See the module docstring for the flow.

    Args:
        store: the QueueStore.
        router: has `expand(address) -> list[str]` and `route(address) -> Route` (sync or async).
        transports: Transport per route kind ("maildir", "lmtp", "relay", "mx").
        clock: Unix time; tests pass a fake.
        retry_schedule, max_lifetime: the retry policy in seconds (queue.retry).
        logger: the queue manager's logger; defaults to logging.getLogger("mailboat.qmgr").
        on_final_failure: awaited with the item and its newly failed outcomes (DSN hook).
        on_success: awaited with the item and its newly delivered outcomes (success DSNs).
        delay_warning: seconds after arrival at which `on_delay` is called once for a message
            that still has deferred recipients (None: never).
        on_delay: the delay-warning hook (see DelayHook).
        concurrency: messages delivered at once; batch_size: most claimed per store call.
            Remote transports bound their own connections per destination; this bounds the
            whole (a message waiting for its outcome to be recorded still holds its slot).
        handoff_bytes: most bytes of handed-over messages (deliver_now) held in memory at once.
        poll_interval: longest sleep between looks at the store.
        delivery_timeout: bound on one transport call; must stay below the store's lease.
    """

    def __init__(self, store: QueueStore, router: Any, transports: Mapping[str, Transport], *,
                 clock: Callable[[], float] = time.time,
                 retry_schedule: list[float] | tuple[float, ...] = retry.DEFAULT_SCHEDULE,
                 max_lifetime: float = retry.DEFAULT_MAX_LIFETIME,
                 logger: logging.Logger | None = None, on_final_failure: FinalFailureHook | None = None,
                 concurrency: int = 200, batch_size: int = 100, poll_interval: float = 5.0,
                 delivery_timeout: float = 240.0, on_success: FinalFailureHook | None = None,
                 delay_warning: float | None = None, on_delay: DelayHook | None = None,
                 handoff_bytes: int = 64 << 20) -> None:
        self.store, self.router, self.transports = store, router, dict(transports)
        self.clock, self.schedule, self.max_lifetime = clock, tuple(retry_schedule), max_lifetime
        self.log = logger or logging.getLogger("mailboat.qmgr")
        self.on_final_failure = on_final_failure
        self.concurrency, self.batch_size = concurrency, batch_size
        self.poll_interval, self.delivery_timeout = poll_interval, delivery_timeout
        self.on_success, self.delay_warning, self.on_delay = on_success, delay_warning, on_delay
        self.handoff_bytes = handoff_bytes
        self._handoff_bytes = 0  # bytes of handed-over messages in flight
        self._wakeup = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._backlog = False
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle ----------------------------------------------------------------------------

    def wake(self, queue_id: str | None = None) -> None:
        """Look at the store now. Call after each enqueue (the intake's and the bouncer's wake
        callback; `queue_id` is accepted for that and not needed). Cheap and idempotent."""
        self._wakeup.set()

    def start(self) -> asyncio.Task[None]:
        """Run `run()` as a task (or create that task yourself); `stop()` ends it either way."""
        return asyncio.get_running_loop().create_task(self.run(), name="mailboat-queue-runner")

    async def stop(self) -> None:
        """Stop claiming, let run() return, and wait for deliveries in flight so their outcomes
        are recorded (nothing is cut off mid-write; a lease covers anything that still is)."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None and self._task is not asyncio.current_task():
            await asyncio.gather(self._task, return_exceptions=True)
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def run(self) -> None:
        """Claim and deliver until stop(). Never raises for queue or delivery problems."""
        self._task = asyncio.current_task()  # so stop() can wait for it, whoever created it
        while not self._stopping:
            self._wakeup.clear()
            try:
                room = self.concurrency - len(self._inflight)
                started = await self._claim_and_start(room) if room > 0 else 0
                self._backlog = room <= 0 or started == min(room, self.batch_size)
            except QueueError as exc:
                self.log.error("queue runner: cannot claim from the queue: %s", exc)
            except Exception:
                self.log.exception("queue runner: unexpected error")
            if self._backlog and not self._inflight:
                continue  # a full batch was claimed and already finished: there may be more
            try:
                await asyncio.wait_for(self._wakeup.wait(), self.poll_interval)
            except TimeoutError:
                pass

    async def run_once(self) -> int:
        """Claim one batch and deliver it completely (tests, `queue flush`). Returns its size."""
        items = await self.store.claim_due(self.clock(), self.batch_size)
        await asyncio.gather(*(self._process(item) for item in items))
        return len(items)

    async def _claim_and_start(self, room: int) -> int:
        items = await self.store.claim_due(self.clock(), min(room, self.batch_size))
        for item in items:
            task = asyncio.get_running_loop().create_task(self._process(item))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        return len(items)

    @property
    def in_flight(self) -> int:
        """Messages being delivered now (claimed or handed over, outcome not recorded yet)."""
        return len(self._inflight)

    def has_room(self, size: int = 0) -> bool:
        """Whether deliver_now() of a `size`-byte message would start at once: a free delivery
        slot, room in the budget of handed-over bytes held in memory, not stopping."""
        return (not self._stopping and len(self._inflight) < self.concurrency
                and self._handoff_bytes + size <= self.handoff_bytes)

    def deliver_now(self, item: QueueItem, message: bytes) -> None:
        """Deliver a message this process just enqueued with `claim=True`, from its bytes in
        memory: the session hands it over after its 250, so the message skips the claim query
        and the re-read. The store holds the lease, so nobody else takes it meanwhile; if this
        process dies, the lease expires (or the next start releases it) and the message is
        claimed like any other."""
        task = asyncio.get_running_loop().create_task(self._process(item, message))
        self._inflight.add(task)
        self._handoff_bytes += len(message)
        task.add_done_callback(self._done)
        task.add_done_callback(lambda _: self._release(len(message)))

    # -- delivering before queueing (see the module docstring) --------------------------------

    async def deliver_first(self, queue_id: str, envelope: Envelope, message: bytes) -> FirstAttempt | None:
        """Deliver a message that is not queued yet, if every recipient is a local mailbox.

        None: some recipient is not local (or its expansion or routing failed): nothing was
        delivered, queue the message as usual. Otherwise the outcomes of the attempt: when
        `complete`, call `finish_first`; when not, queue the message (claim=True) and call
        `record_first` with the item the store returned."""
        now = self.clock()
        item = QueueItem(queue_id, envelope, len(message), now, now, recipients=initial_recipients(envelope))
        early, groups = await self._plan(item)
        if early or not groups or not all(isinstance(route, _LOCAL_ROUTES) for route in groups):
            return None
        outcomes, timing = await self._deliver_groups(item, message, groups)
        return FirstAttempt(item, outcomes, timing, message)

    async def finish_first(self, attempt: FirstAttempt) -> None:
        """Every recipient of `attempt` was delivered: log and journal it like a queued message
        delivered at its first attempt (queued, delivery, finished), without a queue record."""
        item = attempt.item
        await self._journal(item.queue_id, item.arrival, "queued",
                            queued_detail(item.envelope, item.size, attempt.message))
        await self._record(item, attempt.outcomes, item.arrival, attempt.timing, queued=False)

    def record_first(self, item: QueueItem, attempt: FirstAttempt) -> None:
        """Record `attempt` as the first run of `item`, the same message just queued with
        claim=True (in a task, like deliver_now: the caller answers its client meanwhile)."""
        task = asyncio.get_running_loop().create_task(self._record_contained(item, attempt))
        self._inflight.add(task)
        task.add_done_callback(self._done)

    async def _record_contained(self, item: QueueItem, attempt: FirstAttempt) -> None:
        try:
            await self._record(item, attempt.outcomes, attempt.item.arrival, attempt.timing)
        except Exception:
            self.log.exception("%s: recording the first delivery run failed; retried after the lease", item.queue_id)

    def _release(self, size: int) -> None:
        self._handoff_bytes -= size

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if self._backlog:
            self._wakeup.set()  # a slot freed while due work was waiting

    # -- one message --------------------------------------------------------------------------

    async def _process(self, item: QueueItem, message: bytes | None = None) -> None:
        claimed = self.clock()
        if message is None:
            try:
                message = await self.store.load_message(item.queue_id)
            except KeyError:
                return  # deleted after the claim
            except Exception as exc:
                self.log.error("%s: cannot load message, will retry: %s", item.queue_id, exc)
                return  # the lease expires and the message is claimed again
        try:
            outcomes, timing = await self._deliver_all(item, message, claimed)
            await self._record(item, outcomes, claimed, timing)
        except Exception:
            self.log.exception("%s: delivery run failed; it will be retried after the lease", item.queue_id)

    async def _deliver_all(self, item: QueueItem, message: bytes, claimed: float
                           ) -> tuple[list[RecipientOutcome], Timing]:
        """Expand, route, group and deliver every open recipient. Returns outcomes and, per final
        address, the transport time (for the delays= field) and the agent that logs it."""
        early, groups = await self._plan(item)
        outcomes, timing = await self._deliver_groups(item, message, groups)
        return early + outcomes, timing

    async def _plan(self, item: QueueItem) -> tuple[list[RecipientOutcome], Groups]:
        """Expand and route every open recipient: the outcomes of those that failed doing so,
        and the others grouped by route (two aliases reaching one mailbox are one delivery)."""
        outcomes: list[RecipientOutcome] = []
        groups: Groups = {}
        for row in item.open_recipients:
            if row.original is None:
                try:
                    finals = list(await _maybe_await(self.router.expand(row.address)))
                except Exception as exc:
                    self.log.warning("%s: alias expansion of %s failed: %s", item.queue_id, row.address, exc)
                    outcomes.append(outcome(row.address, 451, "4.3.0 alias expansion failed", "none", self.clock()))
                    continue
                if not finals:
                    outcomes.append(outcome(row.address, 550, "5.1.1 alias expands to no recipient", "none",
                                            self.clock()))
                    continue
                original = None if finals == [row.address] else row.address
            else:
                finals, original = [row.address], row.original
            for address in finals:
                try:
                    route = await _maybe_await(self.router.route(address))
                except Exception as exc:
                    self.log.warning("%s: routing %s failed: %s", item.queue_id, address, exc)
                    outcomes.append(replace(outcome(address, 451, "4.4.3 routing failed", "none", self.clock()),
                                            original=original))
                    continue
                rcpt = row.recipient if address == row.recipient.address else \
                    Recipient(address, row.recipient.orcpt, row.recipient.notify)
                # Two aliases reaching one mailbox: deliver once, record it for both.
                groups.setdefault(route, {}).setdefault(address, (rcpt, []))[1].append(original)
        return outcomes, groups

    async def _deliver_groups(self, item: QueueItem, message: bytes, groups: Groups
                              ) -> tuple[list[RecipientOutcome], Timing]:
        timing: Timing = {}
        if len(groups) == 1:  # the usual case: no task and gathering future for one group
            (route, members), = groups.items()
            return await self._deliver_group(item, message, route, members, timing), timing
        results = await asyncio.gather(*(self._deliver_group(item, message, route, members, timing)
                                         for route, members in groups.items()))
        return [o for group in results for o in group], timing

    async def _deliver_group(self, item: QueueItem, message: bytes, route: Route,
                             members: dict[str, tuple[Recipient, list[str | None]]],
                             timing: Timing) -> list[RecipientOutcome]:
        start = self.clock()
        recipients = [rcpt for rcpt, _ in members.values()]
        transport = self.transports.get(route.kind)
        agent = "error" if isinstance(route, Refuse) else "discard" if isinstance(route, Discard) \
            else "qmgr" if transport is None else _AGENTS.get(route.kind, route.kind)
        if isinstance(route, Refuse):
            text = f"{route.status} {route.text}"
            got = [outcome(r.address, route.code, text, "none", start) for r in recipients]
        elif isinstance(route, Discard):
            got = [outcome(r.address, 250, "2.0.0 discarded", "local", start) for r in recipients]
        elif transport is None:
            text = ("4.4.0 remote delivery not available yet" if route.kind in _REMOTE_KINDS
                    else f"4.3.5 no transport configured for {route.kind}")
            got = [outcome(r.address, 451, text, "none", start) for r in recipients]
        else:
            try:
                async with asyncio.timeout(self.delivery_timeout):
                    got = list(await transport.deliver(item.envelope, message, recipients, route))
            except Exception as exc:  # a transport bug or timeout: contained, retried later
                self.log.error("%s: %s transport error: %r", item.queue_id, route.kind, exc)
                got = []
        by_address = {o.recipient: o for o in got}
        end = self.clock()
        results: list[RecipientOutcome] = []
        for address, (_, originals) in members.items():
            result = by_address.get(address) or outcome(address, 451, "4.3.0 internal delivery error", "none", end)
            timing[address] = (end - start, agent)
            results.extend(result if original == result.original else replace(result, original=original)
                           for original in originals)
        return results

    async def _record(self, item: QueueItem, outcomes: list[RecipientOutcome], claimed: float,
                      timing: Timing, *, queued: bool = True) -> None:
        """Steps 4-6 for one run. queued=False: a message delivered to every recipient before it
        was queued (finish_first): its journey ends with a "finished" event, no record to update."""
        now, next_time, expired = self.clock(), None, False
        if any(o.state is RecipientState.DEFERRED for o in outcomes):
            next_time = retry.next_attempt(item.attempts + 1, item.arrival, now, self.schedule, self.max_lifetime)
            if next_time is None:  # max_lifetime reached: the open recipients fail now
                expired = True
                outcomes = [replace(o, state=RecipientState.FAILED) if o.state is RecipientState.DEFERRED else o
                            for o in outcomes]
        failures = [o for o in outcomes if o.state is RecipientState.FAILED]
        if failures and self.on_final_failure is not None:
            try:
                await self.on_final_failure(item, failures)
            except Exception:
                self.log.exception("%s: final-failure hook failed; failures kept open for retry", item.queue_id)
                outcomes = [replace(o, state=RecipientState.DEFERRED) if o.state is RecipientState.FAILED else o
                            for o in outcomes]
                next_time = now + self.schedule[0]
        delivered = [o for o in outcomes if o.state is RecipientState.DELIVERED]
        if delivered and self.on_success is not None:
            try:  # a success report is a courtesy: its failure never reopens a delivery
                await self.on_success(item, delivered)
            except Exception:
                self.log.exception("%s: success-notification hook failed", item.queue_id)
        next_time = await self._delay_warning(item, outcomes, now, next_time)
        # Log and journal the attempts first: they happened whatever recording does next, and the
        # journey then lists them before the "finished" record.
        for detail in self._log_outcomes(item, outcomes, claimed, timing, expired, next_time):
            await self._journal(item.queue_id, detail.pop("at"), "delivery", detail)
        after = apply_outcomes(item.recipients, outcomes)
        if queued:
            try:
                await self.store.record_outcomes(item.queue_id, outcomes, next_time, claimed=item, lease=item.lease)
            except LeaseLostError:  # it expired and another runner claimed the message: theirs stands
                self.log.warning("%s: lease lost to another claim; this run's outcomes are not recorded", item.queue_id)
                return
        else:  # the journey's end (the mail itself is delivered and durable)
            await self._journal(item.queue_id, now, "finished",
                                finished_detail(replace(item, attempts=1, recipients=after)))
        if not any(r.state.is_open for r in after):
            self.log.info("%s: removed", item.queue_id)

    async def _journal(self, queue_id: str, at: float, kind: str, detail: dict[str, Any]) -> None:
        """Record a journey event, best effort: the recipient states are what counts."""
        try:
            await self.store.record_event(queue_id, at, kind, detail)
        except Exception as exc:
            self.log.warning("%s: journey event not recorded: %s", queue_id, exc)

    async def _delay_warning(self, item: QueueItem, outcomes: list[RecipientOutcome], now: float,
                             next_time: float | None) -> float | None:
        """Send the delay warning when it is due; return the (possibly earlier) next attempt."""
        if self.delay_warning is None or self.on_delay is None or item.delay_warned or next_time is None:
            return next_time
        warn_at = item.arrival + self.delay_warning
        if now < warn_at:
            return min(next_time, warn_at)
        deferred = [o for o in outcomes if o.state is RecipientState.DEFERRED]
        if not deferred:
            return next_time
        try:
            await self.on_delay(item, deferred, item.arrival + self.max_lifetime)
            await self.store.mark_delay_warned(item.queue_id, now)
        except Exception:  # retried at the next attempt; the delivery itself goes on
            self.log.exception("%s: delay-warning hook failed", item.queue_id)
        return next_time

    def _log_outcomes(self, item: QueueItem, outcomes: list[RecipientOutcome], claimed: float,
                      timing: Timing, expired: bool, next_time: float | None = None) -> list[dict[str, Any]]:
        """One log line per outcome, by the agent that made it; returns the journey event details."""
        events = []
        first_wait = claimed - item.arrival
        a, b = (first_wait, 0.0) if item.attempts == 0 else (0.0, first_wait)
        for o in outcomes:
            d, agent = timing.get(o.recipient, (0.0, "qmgr"))
            delays = "/".join(_fmt(x) for x in (a, max(0.0, o.at - claimed - d) + b, 0.0, d))
            if o.host in ("local", "none"):
                reason = o.reply_text.split(" ", 1)[1] if o.reply_text.startswith(o.enhanced_status + " ") \
                    else o.reply_text
            else:
                reason = f"{o.reply_code} {o.reply_text}"
            status, word, dsn = _STATUS_WORD[o.state], _STATUS_WORD[o.state], o.enhanced_status
            if expired and o.state is RecipientState.FAILED and o.reply_code < 500:
                status, dsn, reason = "expired", "4.4.7", f"delivery time expired: {reason}"
            orig = f"orig_to=<{o.original}>, " if o.original and o.original != o.recipient else ""
            log = self.log if agent == "qmgr" else logging.getLogger(f"mailboat.{agent}")
            log.info("%s: to=<%s>, %srelay=%s, delay=%s, delays=%s, dsn=%s, status=%s (%s)",
                     item.queue_id, o.recipient, orig, o.host, _fmt(o.at - item.arrival), delays,
                     dsn, word, reason)
            event = {"at": o.at, "to": o.recipient, "orig_to": o.original, "relay": o.host,
                     "dsn": o.enhanced_status, "status": status, "reply": f"{o.reply_code} {o.reply_text}"}
            if o.state is RecipientState.DEFERRED and next_time is not None:
                event["next_attempt"] = next_time
            events.append(event)
        if any(e["status"] == "expired" for e in events):  # Postfix qmgr's words for a message past its lifetime
            self.log.info("%s: from=<%s>, status=expired, returned to sender", item.queue_id, item.envelope.sender)
        return events


def _fmt(seconds: float) -> str:
    """Postfix-style delay figures: "0", "0.12", "1.2", "35"."""
    if seconds < 0.005:
        return "0"
    if seconds < 10:
        return f"{seconds:.2f}".rstrip("0").rstrip(".")
    return f"{seconds:.0f}"
