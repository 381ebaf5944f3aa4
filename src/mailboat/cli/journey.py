"""`mailboat journey ID [--json]`: this server's own record of a message, from connect to the end.

The events (connection, queueing, each delivery attempt with the host and its reply, deferrals
with the next attempt, reports sent, operator actions, the final status) come from the queue's
journey records, which outlive the message; the Received chain is the one kept at enqueue.
Assembly is `mailboat.services.journey` (shared with the web UI); this module only renders it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from rich.console import Console
from rich.table import Table

from mailboat.cli.errors import FAILURE, CliError
from mailboat.cli.queue import queue_config, with_store
from mailboat.cli.serve import add_config_option
from mailboat.services.journey import Journey, assemble_journey, journey_json
from mailboat.services.queue import UnknownMessage
from mailboat.trace.render import render_text

_STYLE = {"delivery": "", "dsn": "yellow", "deleted": "red", "hop": "dim", "finished": "bold"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("journey", help="every event of a message we handled, with replies",
                       description="Show what this server did with a message: connection, queueing, "
                       "delivery attempts and replies, reports, final status, and its Received chain.")
    p.add_argument("queue_id", metavar="ID", help="queue id, as in the logs, 'queue list' and our Received header")
    p.add_argument("--json", action="store_true", help="stable JSON instead of tables")
    add_config_option(p)
    p.set_defaults(func=run)


def _offset(seconds: float) -> str:
    """+0.12s, +41s, +2m05s, +9h02m, +3d04h: relative to the first event."""
    sign = "-" if seconds < 0 else "+"
    s = abs(seconds)
    if s < 10:
        return f"{sign}{s:.2f}s"
    s = int(round(s))
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{sign}{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{sign}{s // 86400}d{s % 86400 // 3600:02d}h"


def render(journey: Journey, console: Console) -> None:
    start = journey.start or 0.0
    table = Table(title=f"Journey of {journey.queue_id}: {journey.status}", title_justify="left")
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("at", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("what")
    for entry in journey.entries:
        table.add_row(_offset(entry.at - start), time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.at)),
                      entry.kind, entry.summary, style=_STYLE.get(entry.kind, ""))
    console.print(table)
    if journey.trace is not None and journey.trace.hops:
        console.print()
        render_text(journey.trace, console)
        if journey.our_hop is not None:
            console.print(f"Hop {journey.our_hop} is this server's own Received header.")


def run(args: argparse.Namespace) -> int:
    config, exists = queue_config(args)
    unknown = CliError(f"journey: no record of a message {args.queue_id} (check the id in the logs or "
                       "'mailboat queue list')", FAILURE)
    if not exists:
        raise unknown
    try:
        journey = with_store(config, lambda store: assemble_journey(store, args.queue_id))
    except UnknownMessage:
        raise unknown from None
    if args.json:
        sys.stdout.write(json.dumps(journey_json(journey), indent=2, ensure_ascii=False) + "\n")
        return 0
    render(journey, Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160))
    return 0
