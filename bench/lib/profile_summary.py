"""Summarise a py-spy raw profile (`record --format raw --function --threads`) of mailboat.

Each input line is a collapsed stack `thread (TID): NAME;frame;frame;... COUNT`, root first, leaf
last. Self time = samples where a function is the leaf; cumulative = samples where it is anywhere
on the stack (counted once per stack). py-spy leaves idle threads out by default, so the samples
are CPU (or at least runnable) time, not time spent waiting in epoll.

    python bench/lib/profile_summary.py bench/profile.raw [--count N --started T0 --accepted T1
        --delivered T2] [--out bench/profile.md] [--top 20]
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
# The frames every event-loop sample shares; they say nothing about where the time goes.
PLUMBING = re.compile(
    r"^(_run_module_as_main|_run_code|<module>|main|run_serve|run|Runner\.run|"
    r"BaseEventLoop\.(run_until_complete|run_forever|_run_once)|Handle\._run|Thread\.(_bootstrap|_bootstrap_inner|run)|"
    r"_worker) \(")

CATEGORIES = [  # first match on the stack, leaf first
    ("logging (format + write of log lines)", re.compile(r"logging/|mailboat/log\.py")),
    ("SQLite queue (group commit writer, reads)", re.compile(r"sqlite3|mailboat/queue/(sqlite|groupcommit)\.py")),
    ("Maildir delivery (write, fsync, rename)", re.compile(r"mailboat/delivery/")),
    ("queue runner (scheduling, bookkeeping)", re.compile(r"mailboat/queue/")),
    ("TLS", re.compile(r"ssl\.py|sslproto")),
    ("Received header, ids, message model", re.compile(r"mailboat/mail/")),
    ("SMTP engine (sans-I/O parsing, replies)", re.compile(r"mailboat/smtp/")),
    ("policy filters, routing, accounts", re.compile(r"mailboat/(policy|routing|accounts)/")),
    ("DNS (reverse lookup for Received)", re.compile(r"mailboat/resolver/|dns/")),
    ("session driver / server", re.compile(r"mailboat/server/")),
    ("asyncio transport + event loop", re.compile(r"asyncio/")),
]


def parse(path: Path) -> list[tuple[str, list[str], int]]:
    stacks = []
    for raw in path.read_text(errors="replace").splitlines():
        match = LINE.match(raw)
        if not match:
            continue
        stack = match.group("stack")
        process = ""
        while stack.startswith("process "):  # py-spy --subprocesses: 'process PID:"cmd";' first
            head, _, stack = stack.partition(";")
            process = head.split(":", 1)[0].replace("process ", "pid ")
        thread, _, rest = stack.partition(": ")
        if process:
            thread = f"{thread} of {process}"
        name, _, frames = rest.partition(";")
        stacks.append((f"{name} {thread}", frames.split(";") if frames else [name], int(match.group("count"))))
    return stacks


def strip_root(frame: str) -> str:
    return re.sub(r" \((?:.*/)?(?:site-packages/|lib/python3\.\d+/)?", " (", frame)


def category(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, pattern in CATEGORIES:
            if pattern.search(frame):
                return name
    return "other"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("raw", type=Path)
    parser.add_argument("--count", type=int)
    parser.add_argument("--started", type=float)
    parser.add_argument("--accepted", type=float)
    parser.add_argument("--delivered", type=float)
    parser.add_argument("--rate", type=int, default=250, help="py-spy sampling rate (Hz)")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--threads-before", type=Path, help="threadcpu.py snapshot before the load")
    parser.add_argument("--threads-after", type=Path, help="threadcpu.py snapshot after the load")
    parser.add_argument("--mode", default="gil", help="what the samples are: gil | wall")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    stacks = parse(args.raw)
    total = sum(count for _, _, count in stacks)
    if not total:
        raise SystemExit(f"{args.raw}: no samples")
    self_time: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    for thread, frames, count in stacks:
        threads[thread] += count
        self_time[strip_root(frames[-1])] += count
        for frame in {strip_root(f) for f in frames}:
            cumulative[frame] += count
        groups[category(frames)] += count

    out = ["# Where mailboat's time goes: py-spy under 1 KB x 20 sessions (bench/accept.sh --profile)", ""]
    seconds = total / args.rate
    if args.mode == "gil":
        out += ["Samples: `py-spy record --gil`, i.e. only the thread holding the GIL: Python-level CPU, which "
                "one process cannot spread over more than one core. C code that releases the GIL (fsync, "
                "SQLite's commit, socket syscalls) shows in the per-thread CPU table instead.", ""]
    if args.threads_before and args.threads_after:
        before = json.loads(args.threads_before.read_text())
        after = json.loads(args.threads_after.read_text())
        per_name: Counter[str] = Counter()
        per_name_sys: Counter[str] = Counter()
        names = {}
        for thread, _, _ in stacks:  # "MainThread thread (TID)": py-spy knows the Python names
            match = re.match(r"(.*) thread \((\d+)\)(?: of pid \d+)?$", thread)
            if match:
                names[match.group(2)] = match.group(1)
        for tid, (name, user, system) in after.items():
            old = before.get(tid, [name, 0.0, 0.0])
            key = re.sub(r"_\d+$", "_*", names.get(tid, f"{name} (no Python samples)"))
            per_name[key] += user - old[1]
            per_name_sys[key] += system - old[2]
        used = sum(per_name.values()) + sum(per_name_sys.values())
        window = (args.delivered - args.started) if args.delivered and args.started else None
        out += ["## CPU by thread (/proc, user + system, during the load)", "",
                "| thread | user s | system s | share of the process |", "|---|---:|---:|---:|"]
        for key in sorted(per_name, key=lambda k: -(per_name[k] + per_name_sys[k])):
            total_k = per_name[key] + per_name_sys[key]
            if total_k > 0:
                out.append(f"| {key} | {per_name[key]:.2f} | {per_name_sys[key]:.2f} | {100 * total_k / used:.0f} % |")
        if window:
            out += ["", f"Process total: {used:.2f} s CPU in {window:.2f} s wall = {used / window:.2f} cores"
                    + (f"; {used * 1000 / args.count:.2f} ms CPU per message." if args.count else ".")]
        out.append("")
    if args.count and args.started and args.accepted and args.delivered:
        accept, e2e = args.accepted - args.started, args.delivered - args.started
        out += [f"{args.count} messages: accepted in {accept:.2f} s ({args.count / accept:,.0f}/s), in the Maildir "
                f"after {e2e:.2f} s ({args.count / e2e:,.0f}/s). {total} samples at {args.rate} Hz = "
                f"{seconds:.1f} s of non-idle thread time, {seconds * 1000 / args.count:.2f} ms per message.", ""]
    else:
        out += [f"{total} samples at {args.rate} Hz ({seconds:.1f} s of non-idle thread time).", ""]

    def pct(n: int) -> str:
        return f"{100 * n / total:5.1f} %"

    out += ["## By thread", "", "| thread | samples | share |", "|---|---:|---:|"]
    out += [f"| {name} | {n} | {pct(n)} |" for name, n in threads.most_common()]
    out += ["", "## By area (innermost mailboat/library area on each stack)", "", "| area | share |", "|---|---:|"]
    out += [f"| {name} | {pct(n)} |" for name, n in groups.most_common()]
    out += ["", f"## Top {args.top} by self time", "", "| self | cumulative | function |", "|---:|---:|---|"]
    out += [f"| {pct(n)} | {pct(cumulative[f])} | `{f}` |" for f, n in self_time.most_common(args.top)]
    out += ["", f"## Top {args.top} by cumulative time (event-loop plumbing frames left out)", "",
            "| cumulative | self | function |", "|---:|---:|---|"]
    shown = [(f, n) for f, n in cumulative.most_common() if not PLUMBING.match(f)][: args.top]
    out += [f"| {pct(n)} | {pct(self_time[f])} | `{f}` |" for f, n in shown]
    text = "\n".join(out) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
