"""`mailboat queue list|show|retry|delete|hold|release` and `mailboat mailq` (SPEC "Command line").

These open the queue directly (`mailboat.queue.open_store`), like Postfix's postqueue/postsuper,
so they work whether or not the server runs; the store's locking lets them write beside it. They
never drop the server's claim leases (that is for the serving process only). Work is done by the
service functions in `mailboat.services.queue`, shared with the web UI.

`list` prints Postfix mailq's layout so people and scripts that read mailq read ours: a marker
after the id (`!` on hold), size, arrival, sender (MAILER-DAEMON for <>),
then each recipient still to deliver, preceded by its last reply and next attempt in brackets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mailboat.cli.errors import FAILURE, CliError
from mailboat.cli.serve import add_config_option, config_from
from mailboat.config import Config
from mailboat.queue import open_store
from mailboat.queue.backend import queue_exists
from mailboat.queue.model import QueueItem
from mailboat.queue.store import QueueError, QueueStore
from mailboat.services import queue as service


def register(sub: argparse._SubParsersAction) -> None:
    queue = sub.add_parser("queue", help="inspect and manage the mail queue")
    verbs = queue.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser("list", help="the queue, mailq style")
    p.add_argument("--json", action="store_true", help="a JSON array, one object per message")
    add_config_option(p)
    p.set_defaults(func=run_list)
    p = verbs.add_parser("show", help="one message: envelope, recipients, attempts, headers")
    p.add_argument("queue_id", metavar="ID")
    p.add_argument("--json", action="store_true")
    add_config_option(p)
    p.set_defaults(func=run_show)
    p = verbs.add_parser("retry", help="try a message (or --all) again now")
    p.add_argument("queue_id", metavar="ID", nargs="?")
    p.add_argument("--all", action="store_true", help="every queued message that is not on hold")
    add_config_option(p)
    p.set_defaults(func=run_action)
    for verb, helptext in (("delete", "remove a message without delivering it"),
                           ("hold", "keep a message from being delivered until released"),
                           ("release", "take a message off hold; it is tried at once")):
        p = verbs.add_parser(verb, help=helptext)
        p.add_argument("queue_id", metavar="ID")
        add_config_option(p)
        p.set_defaults(func=run_action)
    mailq = sub.add_parser("mailq", help="alias of 'queue list'")
    mailq.add_argument("--json", action="store_true")
    add_config_option(mailq)
    mailq.set_defaults(func=run_list)


def queue_config(args: argparse.Namespace) -> tuple[Config, bool]:
    """The configuration (read once per command) and whether its queue was ever made (so that
    reading it need not create one)."""
    config = config_from(args)
    return config, queue_exists(config.queue, config.data_dir)


def with_store(config: Config, work: Callable[[QueueStore], Awaitable[Any]]) -> Any:
    """Open the queue, run `work(store)` on an event loop, close. QueueError -> one-line CliError."""

    async def main() -> Any:
        store = open_store(config.queue, config.data_dir)
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except QueueError as exc:
        raise CliError(f"queue: {exc}; check data_dir in the configuration", FAILURE) from None


def _unknown(queue_id: str) -> CliError:
    return CliError(f"queue: no message {queue_id} in the queue (delivered, deleted or never queued; "
                    f"'mailboat journey {queue_id}' shows its history)", FAILURE)


def _stamp(at: float) -> str:
    return time.strftime("%a %b %d %H:%M:%S", time.localtime(at))


def mailq_text(items: list[QueueItem], now: float) -> str:
    """Postfix mailq layout (see the module docstring)."""
    if not items:
        return "Mail queue is empty\n"
    out = ["-Queue ID-      --Size-- ----Arrival Time---- -Sender/Recipient-------"]
    for item in items:
        mark = "!" if item.held else " "
        sender = item.envelope.sender or "MAILER-DAEMON"
        out.append(f"{item.queue_id}{mark} {item.size:>8} {_stamp(item.arrival)}  {sender}")
        for row in item.open_recipients:
            last = row.last_attempt
            if last is not None:
                when = "on hold" if item.held else f"next attempt {_stamp(item.next_attempt)}"
                out.append(f"({last.reply_code} {last.reply_text}; {when})")
            out.append(f"{'':46}{row.address}")
        out.append("")
    kbytes = (sum(i.size for i in items) + 1023) // 1024
    out.append(f"-- {kbytes} Kbytes in {len(items)} Request{'s' if len(items) != 1 else ''}.")
    return "\n".join(out) + "\n"


def run_list(args: argparse.Namespace) -> int:
    config, exists = queue_config(args)
    items = with_store(config, service.list_queue) if exists else []
    if args.json:
        sys.stdout.write(json.dumps([service.item_json(i) for i in items], indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(mailq_text(items, time.time()))
    return 0


def show_text(detail: service.MessageDetail) -> str:
    item = detail.item
    env = item.envelope
    lines = [f"queue id:      {item.queue_id}",
             f"state:         {'on hold' if item.held else 'queued'}, {item.attempts} delivery runs",
             f"arrival:       {_stamp(item.arrival)}",
             f"next attempt:  {'on hold' if item.held else _stamp(item.next_attempt)}",
             f"sender:        <{env.sender}>",
             f"size:          {item.size} bytes",
             f"client:        {env.client_helo or '-'} [{env.client_ip or 'local'}] with {env.protocol or '?'}"
             + (f", authenticated as {env.auth_user}" if env.auth_user else "")]
    if env.envid or env.ret:
        lines.append(f"dsn:           ENVID={env.envid or '-'} RET={env.ret or 'FULL'}")
    lines.append("recipients:")
    for row in item.recipients:
        orig = f" (from <{row.original}>)" if row.original else ""
        lines.append(f"  <{row.address}>{orig}: {row.state.value}, {len(row.attempts)} attempts")
        for a in row.attempts:
            lines.append(f"      {_stamp(a.at)}  {a.host}  {a.reply_code} {a.reply_text}")
    lines.append("headers:")
    lines += [f"  {name}: {value}" for name, value in detail.headers]
    return "\n".join(lines) + "\n"


def run_show(args: argparse.Namespace) -> int:
    config, exists = queue_config(args)
    if not exists:
        raise _unknown(args.queue_id)
    try:
        detail = with_store(config, lambda store: service.get_message(store, args.queue_id))
    except service.UnknownMessage:
        raise _unknown(args.queue_id) from None
    if args.json:
        sys.stdout.write(json.dumps(service.detail_json(detail), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(show_text(detail))
    return 0


def run_action(args: argparse.Namespace) -> int:
    verb, queue_id = args.verb, args.queue_id
    if verb == "retry" and getattr(args, "all", False) == (queue_id is not None):
        raise CliError("queue retry: give one queue ID or --all", 2)
    config, exists = queue_config(args)
    if verb == "retry" and args.all:
        count = with_store(config, lambda store: service.retry_all(store, time.time())) if exists else 0
        print(f"{count} message{'s' if count != 1 else ''} due for delivery now")
        return 0
    if not exists:
        raise _unknown(queue_id)
    try:
        with_store(config, lambda store: service.act(store, verb, queue_id, time.time()))
    except service.UnknownMessage:
        raise _unknown(queue_id) from None
    except ValueError as exc:
        raise CliError(f"queue {verb}: {exc}", FAILURE) from None
    done = {"retry": "due for delivery now", "hold": "on hold", "release": "released", "delete": "deleted"}[verb]
    print(f"{queue_id}: {done}")
    return 0
