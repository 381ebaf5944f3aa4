"""`mailboat trace FILE|- [--json] [--html FILE] [--summary]`: explain a message's Received chain.

Input is one message (a file, or ``-`` for stdin), an mbox (messages split at ``From `` lines
that start the file or follow an empty line, as in mboxrd) or a Maildir (``cur/`` and ``new/``;
any other directory: every regular file in it). One message gives the table, the SPEC JSON or an
HTML report; several give one trace each (``--json``: a JSON array), and ``--summary`` reduces a
whole mailbox to statistics after a progress bar on stderr.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mailboat.cli.errors import FAILURE, USAGE, CliError
from mailboat.trace.render import clean, json_bytes, render_html, render_text, to_json
from mailboat.trace.timeline import Trace, analyse_message, duration

_MBOX_SEP = re.compile(rb"(?:\A|(?<=\n\n)|(?<=\n\r\n))From [^\n]*\n")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "trace",
        help="analyse a message's Received chain",
        description="Read the Received headers of a message (file, '-' for stdin, mbox or Maildir) and "
        "explain its journey: hops, delays, TLS, forwarding, SPF/DKIM breakage.",
    )
    p.add_argument("file", metavar="FILE|-", help="message file, '-' for stdin, an mbox, or a Maildir directory")
    p.add_argument("--json", action="store_true",
                   help="print the SPEC JSON (an array when FILE holds several messages)")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report with a timeline")
    p.add_argument("--summary", action="store_true", help="statistics over every message of an mbox or Maildir")
    p.set_defaults(func=run)


def _read(path: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        return Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"trace: cannot read {path}: {exc.strerror or exc}; check the path", FAILURE) from None


def _messages(path: str) -> tuple[list[str], Iterator[bytes]]:
    """(labels, message bytes) for a file, stdin, mbox or Maildir."""
    p = Path(path)
    if path != "-" and p.is_dir():
        subdirs = [p / "cur", p / "new"]
        files = sorted(f for d in subdirs if d.is_dir() for f in d.iterdir() if f.is_file())
        if not any(d.is_dir() for d in subdirs):
            files = sorted(f for f in p.iterdir() if f.is_file())
        if not files:
            raise CliError(f"trace: {path} holds no messages (an empty Maildir?)", FAILURE)
        return [str(f) for f in files], (_read(str(f)) for f in files)
    data = _read(path)
    if not data.strip():
        raise CliError(f"trace: {path if path != '-' else 'stdin'} is empty; give a message with its headers", FAILURE)
    if data.startswith(b"From "):
        parts = [m for m in _MBOX_SEP.split(data) if m.strip()]
        name = "stdin" if path == "-" else path
        return [f"{name}#{i}" for i in range(1, len(parts) + 1)], iter(parts)
    return [path], iter([data])


def _write_json(value: object) -> None:
    """JSON on stdout as UTF-8 bytes, whatever the locale's encoding (SPEC: always valid UTF-8)."""
    sys.stdout.flush()
    stream = getattr(sys.stdout, "buffer", None)
    data = json_bytes(value)
    if stream is None:  # a text-only stdout (an embedding program): the text is valid UTF-8 already
        sys.stdout.write(data.decode("utf-8"))
    else:
        stream.write(data)
        stream.flush()


def run(args: argparse.Namespace) -> int:
    labels, messages = _messages(args.file)
    several = len(labels) > 1 or (args.file != "-" and Path(args.file).is_dir())
    out = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)
    if args.summary:
        return _summary(labels, messages, args, out)
    if args.html and len(labels) > 1:
        raise CliError(f"trace: --html takes one message and {args.file} holds {len(labels)}; use --summary", USAGE)
    traces = [analyse_message(m) for m in messages]
    if args.html:
        try:
            Path(args.html).write_text(render_html(traces[0], title=f"Received chain of {labels[0]}"), "utf-8")
        except OSError as exc:
            raise CliError(f"trace: cannot write {args.html}: {exc.strerror or exc}", FAILURE) from None
    if args.json:
        if several:
            _write_json([{"file": label, **to_json(t)} for label, t in zip(labels, traces, strict=True)])
        else:
            _write_json(to_json(traces[0]))
        return 0
    for label, trace in zip(labels, traces, strict=True):
        if several:
            out.rule(clean(label))
        if not trace.hops:
            out.print(f"{clean(label)}: no Received headers")
            continue
        render_text(trace, out)
    if args.html:
        print(f"mailboat: HTML report written to {args.html}", file=sys.stderr)
    return 0


def _summary(labels: list[str], messages: Iterator[bytes], args: argparse.Namespace, out: Console) -> int:
    traces: list[Trace] = []
    err = Console(stderr=True)
    columns = (TextColumn("tracing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("trace", total=len(labels))
        for data in messages:
            traces.append(analyse_message(data))
            progress.advance(task)
    stats = summarise(traces)
    if args.json:
        _write_json(stats)
        return 0
    out.print(f"{stats['messages']} messages, {stats['hops']} hops")
    out.print(
        f"hops without TLS: {stats['hops_without_tls']:.1%}  (TLS unknown: {stats['hops_tls_unknown']:.1%})"
    )
    table = Table(title="Median delay per receiving server", title_justify="left")
    table.add_column("server")
    table.add_column("hops", justify="right")
    table.add_column("median delay", justify="right")
    for host, row in list(stats["servers"].items())[:25]:
        median = row["median_delay_seconds"]
        delay = "?" if median is None else ("-" if median < 0 else "") + duration(median)
        table.add_row(clean(host), str(row["hops"]), delay)
    out.print(table)
    kinds = Table(title="Findings", title_justify="left")
    kinds.add_column("kind")
    kinds.add_column("count", justify="right")
    for kind, count in stats["findings"].items():
        kinds.add_row(kind, str(count))
    out.print(kinds if stats["findings"] else "No findings.")
    return 0


def summarise(traces: list[Trace]) -> dict:
    """Statistics over many traces: per-server median delay, TLS shares, findings by kind."""
    delays: dict[str, list[float]] = defaultdict(list)
    counts: Counter[str] = Counter()
    hops = no_tls = unknown = 0
    findings: Counter[str] = Counter()
    for trace in traces:
        for t in trace.hops:
            hops += 1
            host = t.hop.by_host or "(none)"
            counts[host] += 1
            no_tls += t.hop.tls is False
            unknown += t.hop.tls is None
            if t.delay_seconds is not None:
                delays[host].append(t.delay_seconds)
        findings.update(f.kind for f in trace.findings)
    servers = {
        host: {"hops": counts[host], "median_delay_seconds": statistics.median(delays[host]) if delays[host] else None}
        for host in counts
    }
    order = sorted(servers, key=lambda h: (-(servers[h]["median_delay_seconds"] or float("-inf")), h))
    return {
        "messages": len(traces),
        "hops": hops,
        "hops_without_tls": no_tls / hops if hops else 0.0,
        "hops_tls_unknown": unknown / hops if hops else 0.0,
        "servers": {h: servers[h] for h in order},
        "findings": dict(findings.most_common()),
    }
