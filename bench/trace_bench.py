"""Received-header parsing: mailboat.trace vs the mail-parser package, same corpus, one run.

    .venv/bin/pip install mail-parser      # dev/bench dependency only
    .venv/bin/python bench/trace_bench.py [--rounds N]

Speed: headers parsed per second (each includes reading the date to UTC) over every
``tests/data/received/*.json`` case. ``mailboat.trace`` is what mailboat uses: the native reader
when it is built (``make native``), else the pure-Python one; when native, the pure-Python
reader is timed too, in the same alternating rounds, as its own row. The two parsers are timed in alternating rounds of the same
process (these machines are noisy: alternating keeps both under the same load) and the best round
of each is kept; ``--repeat N`` does the whole measurement N times and reports the median.
mailboat.trace keeps no cache keyed on the header (only tiny tables of zone offsets and with-type
words), so every round really parses. Correctness: how many cases each gets exactly right.
mail-parser returns clauses as strings (``from``: "helo (rdns [ip])"), so it is scored through a
generous adapter that takes the first word of each clause and pulls HELO/rDNS/IP out of the
``from`` string the way Postfix writes it; fields it has no notion of (tls, via, warnings) are
compared only in the "all fields" column, where mail-parser is credited with nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from mailboat.trace import parse as trace_parse  # noqa: E402
from mailboat.trace.parse import parse_received  # noqa: E402
from mailboat.trace.render import hop_fields  # noqa: E402

COMMON = ("by_host", "with_protocol", "id", "for", "timestamp")
FROM = ("from_helo", "from_rdns", "from_ip")
_IP = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]|\(([0-9A-Fa-f:.]+)\)")
_RDNS = re.compile(r"\((\S+?)\.?\s+\[")


def load() -> list[dict]:
    return [json.loads(p.read_text("utf-8")) for p in sorted((ROOT / "tests/data/received").glob("*.json"))]


def _first(value: str | None) -> str | None:
    if not value:
        return None
    word = value.split("(")[0].split()
    return word[0] if word else None


def mailparser_fields(raw: str) -> dict:
    from mailparser.utils import receiveds_parsing

    try:
        hop = receiveds_parsing([raw])[0]
    except Exception:  # noqa: BLE001 - a failure counts as a miss
        return {}
    frm = hop.get("from", "")
    ip = _IP.search(frm)
    rdns = _RDNS.search(frm)
    date = hop.get("date_utc")
    rcpt = _first(hop.get("for"))
    return {
        "from_helo": _first(frm),
        "from_rdns": rdns.group(1) if rdns and rdns.group(1).lower() != "unknown" else None,
        "from_ip": (ip.group(1) or ip.group(2)) if ip else None,
        "by_host": _first(hop.get("by")),
        "with_protocol": _first(hop.get("with")),
        "id": _first(hop.get("id")),
        "for": rcpt.strip("<>;") if rcpt else None,
        "timestamp": datetime.fromisoformat(date).strftime("%Y-%m-%dT%H:%M:%SZ") if date else None,
    }


PURE_PYTHON = "pure Python"  # in `rates`: parse_received with the native reader switched off


def rates(fns, raws: list[str], rounds: int) -> list[float]:
    """Headers per second of each of `fns`: best of `rounds` alternating rounds over all `raws`."""
    best = [float("inf")] * len(fns)
    clock = time.perf_counter
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            native = trace_parse._native
            if fn is PURE_PYTHON:
                fn, trace_parse._native = parse_received, None
            try:
                start = clock()
                for raw in raws:
                    fn(raw)
                best[i] = min(best[i], clock() - start)
            finally:
                trace_parse._native = native
    return [len(raws) / b for b in best]


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20, help="timing rounds; the best is kept (default 20)")
    ap.add_argument("--repeat", type=int, default=1, help="whole measurements; the median is reported (default 1)")
    args = ap.parse_args()
    try:
        import mailparser  # noqa: F401
    except ImportError:
        print("mail-parser is not installed: .venv/bin/pip install mail-parser", file=sys.stderr)
        return 1
    logging.getLogger("mailparser").setLevel(logging.CRITICAL)
    cases = load()
    raws = [c["raw"] for c in cases]
    from mailparser.utils import receiveds_parsing

    console = Console()
    native = trace_parse.NATIVE
    fns = [parse_received, lambda r: receiveds_parsing([r])] + ([PURE_PYTHON] if native else [])
    runs = []
    for i in range(max(1, args.repeat)):
        run = rates(fns, raws, args.rounds)
        runs.append(run)
        if args.repeat > 1:
            console.print(f"run {i + 1}: mailboat.trace {run[0]:,.0f}/s, mail-parser {run[1]:,.0f}/s, "
                          f"ratio {run[0] / run[1]:.2f}x"
                          + (f"; pure Python {run[2]:,.0f}/s, {run[2] / run[1]:.2f}x" if native else ""))
    ours_rate = median([r[0] for r in runs])
    theirs_rate = median([r[1] for r in runs])
    ratio = median([r[0] / r[1] for r in runs])
    scores = {"mailboat": [0, 0, 0], "mail-parser": [0, 0, 0]}
    for case in cases:
        exp = case["expected"]
        for name, got in (("mailboat", hop_fields(parse_received(case["raw"]))), ("mail-parser",
                                                                                 mailparser_fields(case["raw"]))):
            scores[name][0] += all(got.get(k) == exp[k] for k in COMMON)
            scores[name][1] += all(got.get(k) == exp[k] for k in COMMON + FROM)
            scores[name][2] += got == exp
    what = f"best of {args.rounds} rounds" + (f", median of {len(runs)} runs" if len(runs) > 1 else "")
    table = Table(title=f"Received parsing, {len(cases)} corpus cases, {what}")
    for col in ("parser", "headers/s", "exact: by/with/id/for/date", "+ helo/rdns/ip", "exact: all fields"):
        table.add_column(col, justify="right")
    rows = [("mailboat.trace", ours_rate), ("mail-parser", theirs_rate)]
    if native:
        rows.insert(1, ("mailboat.trace (pure Python)", median([r[2] for r in runs])))
    for name, speed in rows:
        s = scores["mailboat" if name.startswith("mailboat") else "mail-parser"]
        table.add_row(name, f"{speed:,.0f}", *(f"{n}/{len(cases)}" for n in s))
    console.print(table)
    console.print("reader: " + ("native (mailboat._native, built by make native)" if native else
                                "pure Python (the native reader is not built: make native)"))
    console.print(f"speed ratio (mailboat.trace / mail-parser): {ratio:.1f}x")
    if native:
        console.print(f"pure Python alone: {median([r[2] / r[1] for r in runs]):.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
