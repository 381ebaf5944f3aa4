"""Fold the other benchmarks into bench/results.md and bench/results.json (bench/accept.sh).

Inputs (each optional; a missing one is reported as "not run"): the latency JSON of
bench/lib/latency.py for mailboat and for Postfix, the idle-connection JSON of bench/lib/idle.py,
the text output of bench/trace_bench.py and bench/dkim_bench.py, and bench/relay.sh's output.
Appends sections to the Markdown written by bench.py and adds keys to its JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path


def read_json(path: Path | None):
    if path is None or not path.is_file() or not path.read_text().strip():
        return None
    try:
        return json.loads(path.read_text().strip().splitlines()[-1])
    except ValueError:
        return None


MAILBOAT, PURE = "mailboat.trace", "mailboat.trace (pure Python)"


def parse_trace(text: str) -> dict | None:
    rows, reader = {}, "unknown"
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[│|┃]", line) if c.strip()]
        if len(cells) >= 2 and cells[0] in (MAILBOAT, PURE, "mail-parser") and cells[1].replace(",", "").isdigit():
            rows[cells[0]] = {"headers_per_s": int(cells[1].replace(",", "")), "exact": cells[2:]}
        elif line.startswith("reader: "):
            reader = line.removeprefix("reader: ").split(" (")[0]
    if MAILBOAT not in rows:
        return None
    result = {"mailboat": rows[MAILBOAT], "mail_parser": rows.get("mail-parser"), "reader": reader,
              "pure_python": rows.get(PURE)}
    if rows.get("mail-parser"):
        result["ratio"] = rows[MAILBOAT]["headers_per_s"] / rows["mail-parser"]["headers_per_s"]
        if rows.get(PURE):
            result["pure_python_ratio"] = rows[PURE]["headers_per_s"] / rows["mail-parser"]["headers_per_s"]
    return result


def parse_dkim(text: str) -> list[dict]:
    rows = []
    for line in text.splitlines():
        m = re.match(r"^(rsa-\d+|ed25519)\s+(sign|verify)\s+([\d.]+)\s+([\d.]+|n/a)", line)
        if m:
            theirs = None if m.group(4) == "n/a" else float(m.group(4))
            rows.append({"algorithm": m.group(1), "operation": m.group(2), "mailboat_ms": float(m.group(3)),
                         "dkimpy_ms": theirs, "speedup": theirs / float(m.group(3)) if theirs else None})
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--md", type=Path, required=True)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--latency-mailboat", type=Path)
    p.add_argument("--latency-postfix", type=Path)
    p.add_argument("--idle", type=Path)
    p.add_argument("--trace", type=Path)
    p.add_argument("--dkim", type=Path)
    p.add_argument("--relay", type=Path)
    p.add_argument("--workers", default="", help="[server] workers as configured; \"default\": left out")
    p.add_argument("--processes", type=int, help="mailboat's processes, counted while it ran")
    args = p.parse_args()

    data = json.loads(args.json.read_text()) if args.json.is_file() else {}
    md = args.md.read_text() if args.md.is_file() else ""
    out = [md.rstrip(), ""]
    if args.workers:
        data.setdefault("machine", {})["mailboat_workers"] = args.workers
        setting = ("`[server] workers` left at its default (one per CPU)" if args.workers == "default"
                   else f"`[server] workers = {args.workers}`")
        processes = f", {args.processes} processes" if args.processes else ""
        out += [f"mailboat ran with {setting}{processes}.", ""]
    if args.processes:
        data.setdefault("machine", {})["mailboat_processes"] = args.processes

    lat_mb, lat_pf = read_json(args.latency_mailboat), read_json(args.latency_postfix)
    data["latency"] = {"mailboat": lat_mb, "postfix": lat_pf}
    out += ["## Latency: final dot to 250", ""]
    if lat_mb:
        out += [f"Open-loop load: a new session every 1/{lat_mb['offered_rate']:.0f} s for "
                f"{lat_mb['duration_s']:.0f} s (half of mailboat's median accept rate at 1 KB x 20 sessions "
                "in this run), 1 KB messages, no pipelining (bench/lib/latency.py).", "",
                "| server | offered msgs/s | completed | errors | p50 ms | p90 ms | p99 ms | max ms |",
                "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, r in (("mailboat", lat_mb), ("Postfix", lat_pf)):
            if r:
                out.append(f"| {name} | {r['offered_rate']:.0f} | {r['completed']:,} | {r['errors'] + r['skipped']} "
                           f"| {r.get('p50_ms', '-')} | {r.get('p90_ms', '-')} | {r.get('p99_ms', '-')} "
                           f"| {r.get('max_ms', '-')} |")
    else:
        out.append("not run")
    out.append("")

    idle = read_json(args.idle)
    data["idle_connections"] = idle
    out += ["## Memory: idle connections", ""]
    if idle:
        out += ["RSS summed over mailboat's processes (every worker), each connection greeted and silent "
                "(bench/lib/idle.py).", "",
                "| connections | opened | processes | RSS before MB | RSS with them open MB | KB per connection |",
                "|---:|---:|---:|---:|---:|---:|"]
        for r in idle:
            out.append(f"| {r['connections'] + r['failed']:,} | {r['connections']:,} | {r['processes']} "
                       f"| {r['rss_before_mb']} | {r['rss_mb']} | {r['kb_per_connection']} |")
    else:
        out.append("not run")
    out.append("")

    trace = parse_trace(args.trace.read_text()) if args.trace and args.trace.is_file() else None
    dkim = parse_dkim(args.dkim.read_text()) if args.dkim and args.dkim.is_file() else []
    data["trace"], data["dkim"] = trace, dkim
    out += ["## Trace parser and DKIM (CPU only)", ""]
    if trace:
        mp = trace.get("mail_parser") or {}
        pure = trace.get("pure_python")
        out += ["| Received parsing (bench/trace_bench.py) | headers/s | / mail-parser |", "|---|---:|---:|",
                f"| mailboat.trace ({trace.get('reader', 'unknown')} reader) | {trace['mailboat']['headers_per_s']:,} "
                f"| {trace.get('ratio', 0):.1f}x |"]
        if pure:
            out.append(f"| mailboat.trace, pure-Python reader | {pure['headers_per_s']:,} "
                       f"| {trace.get('pure_python_ratio', 0):.1f}x |")
        out += [f"| mail-parser | {mp.get('headers_per_s', 0):,} | 1.0x |", ""]
    else:
        out += ["trace benchmark: not run or unreadable", ""]
    if dkim:
        out += ["| DKIM (bench/dkim_bench.py) | mailboat ms/msg | dkimpy ms/msg | dkimpy / mailboat |",
                "|---|---:|---:|---:|"]
        for r in dkim:
            theirs = "-" if r["dkimpy_ms"] is None else f"{r['dkimpy_ms']:.3f}"
            speedup = "-" if r["speedup"] is None else f"{r['speedup']:.1f}x"
            out.append(f"| {r['algorithm']} {r['operation']} | {r['mailboat_ms']:.3f} | {theirs} | {speedup} |")
        out.append("")
    else:
        out += ["DKIM benchmark: not run or unreadable", ""]

    out += ["## Relay", ""]
    if args.relay and args.relay.is_file() and args.relay.read_text().strip():
        text = args.relay.read_text().strip()
        data["relay"] = {"output": text}
        out += ["bench/relay.sh (smtp-source into the server, relaying to smtp-sink):", "", "```", text, "```", ""]
    else:
        data["relay"] = None
        out += ["bench/relay.sh not present yet: not run.", ""]

    args.md.write_text("\n".join(out))
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
