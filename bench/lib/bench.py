"""The measuring half of bench/accept.sh: runs smtp-source against each target, interleaved, and
writes the table (stdout, bench/results.md, bench/results.json).

accept.sh starts and stops the servers; this script only sends load and watches outcomes:
- accept rate: messages / wall time of smtp-source (start to exit: every message got its 250).
- end to end: for mailboat, until the last file appears in the Maildir's new/; for Postfix, until
  its queue directories are empty (discard: delivered). Polled every POLL seconds.
Every smtp-source run has a message count and a timeout; a failed or timed-out run aborts the
benchmark (a non-zero exit), it is never reported as a figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

POLL = 0.02  # seconds between outcome polls (a few ms of resolution on runs of a few seconds)
SENDER = "bench-sender@example.org"


@dataclass
class Scenario:
    name: str
    size: int  # -l: payload bytes
    sessions: int  # -s
    count: int  # -m


@dataclass
class Target:
    name: str
    port: int
    done: str = "accept"  # "maildir": wait for new/ to fill; "postfix": wait for queue to empty
    path: Path | None = None  # the Maildir root or the Postfix queue directory
    runs: dict[str, list[dict]] = field(default_factory=dict)
    cpu: object = None  # () -> CPU seconds used so far by the server's processes, or None


TICK = os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()  # fields from "state" on (field 3)


def process_cpu(pid: int) -> float:
    """utime + stime + cutime + cstime of one process (all its threads, reaped children)."""
    fields = proc_stat(pid)
    return sum(int(v) for v in fields[11:15]) / TICK


def tree_cpu(master: int) -> float:
    """Postfix: master (with reaped children) plus every live child of master (smtpd, cleanup, ...)."""
    total = process_cpu(master)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = proc_stat(int(entry.name))
            except (OSError, ValueError):
                continue
            if int(fields[1]) == master:
                total += sum(int(v) for v in fields[11:13]) / TICK
    return total


def count_files(directory: Path) -> int:
    try:
        with os.scandir(directory) as entries:
            return sum(1 for _ in entries)
    except FileNotFoundError:
        return 0


def postfix_queue_files(queue_dir: Path) -> int:
    total = 0
    for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
        for _root, _dirs, files in os.walk(queue_dir / sub):
            total += len(files)
    return total


def clear_maildir(root: Path) -> None:
    for sub in ("new", "cur"):
        directory = root / sub
        if directory.is_dir():
            with os.scandir(directory) as entries:
                for entry in entries:
                    os.unlink(entry.path)


def one_run(smtp_source: str, target: Target, scenario: Scenario, rcpt: str, timeout: float) -> dict:
    if target.done == "maildir":
        clear_maildir(target.path)
    command = [smtp_source, "-s", str(scenario.sessions), "-m", str(scenario.count), "-l", str(scenario.size),
               "-f", SENDER, "-t", rcpt, f"127.0.0.1:{target.port}"]
    cpu_before = target.cpu() if target.cpu else None
    start = time.monotonic()
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"{target.name} {scenario.name}: smtp-source did not finish within {timeout} s")
    accepted = time.monotonic() - start
    if done.returncode != 0 or "fatal" in done.stdout:
        raise SystemExit(f"{target.name} {scenario.name}: smtp-source failed ({done.returncode}):\n{done.stdout[-2000:]}")
    result = {"accept_s": accepted, "accept_rate": scenario.count / accepted}
    if target.done == "accept":
        return result
    result.update(_wait_done(target, scenario, start, timeout))
    if cpu_before is not None:
        result["cpu_ms_per_msg"] = (target.cpu() - cpu_before) * 1000 / scenario.count
    return result


def _wait_done(target: Target, scenario: Scenario, start: float, timeout: float) -> dict:
    result = {}
    deadline = start + timeout
    new = target.path / "new" if target.done == "maildir" else None
    while True:
        if target.done == "maildir":
            finished = count_files(new) >= scenario.count
        else:
            finished = postfix_queue_files(target.path) == 0
        if finished:
            break
        if time.monotonic() > deadline:
            left = count_files(new) if new else postfix_queue_files(target.path)
            raise SystemExit(f"{target.name} {scenario.name}: not delivered within {timeout} s ({left})")
        time.sleep(POLL)
    end_to_end = time.monotonic() - start
    result.update(e2e_s=end_to_end, e2e_rate=scenario.count / end_to_end)
    if target.done == "maildir":
        delivered = count_files(new)
        if delivered != scenario.count:
            raise SystemExit(f"{target.name} {scenario.name}: {delivered} files in new/ for {scenario.count} sent")
        result["delivered"] = delivered
    return result


def median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else None


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


def server_loop(pid: int | None) -> str:
    """Which event loop the running mailboat uses (uvloop's extension mapped in, or not)."""
    if pid:
        try:
            if "uvloop" in Path(f"/proc/{pid}/maps").read_text():
                return "uvloop"
            return "asyncio"
        except OSError:
            pass
    return "unknown"


def machine(mailboat_pid: int | None = None) -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    postfix = subprocess.run(["postconf", "-h", "mail_version"], capture_output=True, text=True).stdout.strip()
    loop = server_loop(mailboat_pid)
    return {"cpus": os.cpu_count(), "cpu": cpu, "kernel": platform.release(), "python": platform.python_version(),
            "postfix": postfix, "mailboat_event_loop": loop,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smtp-source", required=True)
    parser.add_argument("--mailboat-port", type=int, required=True)
    parser.add_argument("--mailboat-maildir", type=Path, required=True)
    parser.add_argument("--mailboat-pid", type=int)
    parser.add_argument("--postfix-pid", type=int, help="Postfix's master")
    parser.add_argument("--postfix-port", type=int)
    parser.add_argument("--postfix-queue", type=Path)
    parser.add_argument("--sink-port", type=int)
    parser.add_argument("--rcpt", default="bench@example.com")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every message count")
    parser.add_argument("--timeout", type=float, default=120.0, help="per smtp-source run, seconds")
    parser.add_argument("--budget", type=float, default=1500.0, help="whole benchmark, seconds")
    parser.add_argument("--out-md", type=Path, required=True)
    parser.add_argument("--out-json", type=Path, required=True)
    parser.add_argument("--only", default="", help="run only scenarios whose name contains this "
                        "(e.g. '20 sessions'; for quick iteration, not for the published table)")
    args = parser.parse_args()

    def n(count: int) -> int:
        return max(20, int(count * args.scale))

    # Sized so each scenario runs a few seconds on a 2-core machine at the rates in performance.md.
    scenarios = [
        Scenario("1 KB, 1 session", 1024, 1, n(1500)),
        Scenario("1 KB, 20 sessions", 1024, 20, n(3000)),
        Scenario("100 KB, 1 session", 102400, 1, n(600)),
        Scenario("100 KB, 20 sessions", 102400, 20, n(1500)),
    ]
    scenarios = [s for s in scenarios if args.only in s.name]
    targets = []
    if args.sink_port:
        targets.append(Target("smtp-sink", args.sink_port))
    if args.postfix_port:
        targets.append(Target("Postfix", args.postfix_port, "postfix", args.postfix_queue,
                              cpu=(lambda: tree_cpu(args.postfix_pid)) if args.postfix_pid else None))
    mailboat = Target("mailboat", args.mailboat_port, "maildir", args.mailboat_maildir,
                      cpu=(lambda: tree_cpu(args.mailboat_pid)) if args.mailboat_pid else None)
    targets.append(mailboat)

    began = time.monotonic()
    print("warm-up: 200 messages over 20 sessions to each target", flush=True)
    warm = Scenario("warm-up", 1024, 20, 200)
    for target in targets:
        one_run(args.smtp_source, target, warm, args.rcpt, args.timeout)

    # Interleaved (round, scenario, target) so that drift in machine load hits every target alike.
    for round_no in range(1, args.repeat + 1):
        for scenario in scenarios:
            for target in targets:
                if time.monotonic() - began > args.budget:
                    raise SystemExit(f"benchmark budget of {args.budget} s exceeded")
                result = one_run(args.smtp_source, target, scenario, args.rcpt, args.timeout)
                target.runs.setdefault(scenario.name, []).append(result)
                extra = f", end to end {result['e2e_rate']:,.0f}/s" if "e2e_rate" in result else ""
                if "cpu_ms_per_msg" in result:
                    extra += f", CPU {result['cpu_ms_per_msg']:.2f} ms/msg"
                print(f"  round {round_no}  {scenario.name:<20} {target.name:<10} {scenario.count:>5} msgs "
                      f"accept {result['accept_rate']:,.0f}/s{extra}", flush=True)

    by_name = {t.name: t for t in targets}
    rows = []
    for scenario in scenarios:
        row = {"scenario": scenario.name, "size": scenario.size, "sessions": scenario.sessions,
               "messages": scenario.count}
        for target in targets:
            runs = target.runs[scenario.name]
            key = target.name.lower().replace("-", "_")
            row[f"{key}_accept"] = median(runs, "accept_rate")
            if target.done != "accept":
                row[f"{key}_e2e"] = median(runs, "e2e_rate")
                row[f"{key}_cpu_ms"] = median(runs, "cpu_ms_per_msg")
        if "Postfix" in by_name:
            row["ratio_accept"] = row["mailboat_accept"] / row["postfix_accept"]
            row["ratio_e2e"] = row["mailboat_e2e"] / row["postfix_e2e"]
        rows.append(row)

    info = machine(args.mailboat_pid)
    header = ("| scenario | msgs/run | smtp-sink (ceiling) | Postfix accept | Postfix end to end "
              "| mailboat accept | mailboat end to end | ratio accept | ratio end to end |")
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(
            f"| {row['scenario']} | {row['messages']:,} | {fmt(row.get('smtp_sink_accept'))} "
            f"| {fmt(row.get('postfix_accept'))} | {fmt(row.get('postfix_e2e'))} "
            f"| {fmt(row['mailboat_accept'])} | {fmt(row['mailboat_e2e'])} "
            f"| {ratio(row['mailboat_accept'], row.get('postfix_accept'))} "
            f"| {ratio(row['mailboat_e2e'], row.get('postfix_e2e'))} |")
    lines += ["", "CPU per message (ms, all server processes/threads; median):", "",
              "| scenario | Postfix | mailboat |", "|---|---:|---:|"]
    for row in rows:
        cells = [("-" if row.get(k) is None else f"{row[k]:.2f}") for k in ("postfix_cpu_ms", "mailboat_cpu_ms")]
        lines.append(f"| {row['scenario']} | {cells[0]} | {cells[1]} |")
    table = "\n".join(lines)
    print()
    print(table)

    spread = []
    for target in targets:
        for scenario in scenarios:
            values = [r["accept_rate"] for r in target.runs[scenario.name]]
            spread.append(f"{target.name} {scenario.name}: " + ", ".join(f"{v:,.0f}" for v in values))
    if "Postfix" in by_name:
        # Each round ran both servers back to back, so a round's ratio compares like with like
        # (the ratio in the table is of the medians; these show how much the rounds agree).
        for scenario in scenarios:
            pairs = zip(by_name["mailboat"].runs[scenario.name], by_name["Postfix"].runs[scenario.name], strict=True)
            ratios = [m["e2e_rate"] / p["e2e_rate"] for m, p in pairs]
            spread.append(f"ratio end to end by round, {scenario.name}: " + ", ".join(f"{r:.2f}" for r in ratios)
                          + f" (median {statistics.median(ratios):.2f})")
    md = [
        "# Accept benchmark: mailboat vs Postfix (bench/accept.sh)",
        "",
        f"{info['date']}; {info['cpus']} CPUs ({info['cpu']}), Linux {info['kernel']}, Python {info['python']}, "
        f"Postfix {info['postfix']}, mailboat event loop: {info['mailboat_event_loop']}.",
        "",
        "Messages per second, median of "
        f"{args.repeat} runs; load: Postfix's smtp-source on loopback (HELO, no pipelining, a new connection "
        "per message). *accept* = messages / smtp-source wall time (every message had its 250); "
        "*end to end* = until mailboat's last file is in the Maildir's new/, or Postfix's queue is empty "
        "(delivered to discard:). Durability on in both (Postfix's default fsync of queue files; mailboat's "
        "fsync before 250). ratio = mailboat / Postfix.",
        "",
        table,
        "",
        "Machine noise: these shared machines move 10-30 % between runs; compare ratios from one run, never "
        "absolute figures across runs. All three targets run on the same cores as smtp-source itself.",
        "",
        "Every run (accept, messages/s), and each round's ratio:",
        "",
        *[f"- {line}" for line in spread],
        "",
    ]
    args.out_md.write_text("\n".join(md))
    args.out_json.write_text(json.dumps({
        "machine": info, "repeat": args.repeat, "scenarios": rows,
        "runs": {t.name: t.runs for t in targets},
        "wall_seconds": round(time.monotonic() - began, 1),
    }, indent=2) + "\n")
    print(f"\nwrote {args.out_md} and {args.out_json} ({time.monotonic() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
