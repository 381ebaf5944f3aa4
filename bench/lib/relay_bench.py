"""The measuring half of bench/relay.sh: smtp-source into mailboat and into Postfix, both relaying
to the same smtp-sink; writes the table (stdout, bench/relay-results.md, bench/relay-results.json).

relay.sh starts and stops the servers; this script only sends load and watches outcomes:
- accept: messages / wall time of smtp-source (start to exit: every message had its 250).
- end to end: from smtp-source's start until smtp-sink has received every message (it writes one
  file per transaction into its dump directory, counted every POLL seconds). A message is off the
  relay's queue a few ms after the sink's 250; that the queue is then empty is checked after each
  run (mailboat: `mailboat queue list --json` is []; Postfix: no file left in its queue
  directories), outside the timed part so the check's own cost is not in the figure.
- exactly once: the sink's count must equal the messages sent (more = duplicates: abort).
Every run has a message count and a timeout; a failed or timed-out run aborts the benchmark (a
non-zero exit), it is never reported as a figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (
    count_files,
    fmt,
    machine,
    median,
    postfix_queue_files,
    process_cpu,
    ratio,
    tree_cpu,
)

POLL = 0.02
SENDER = "bench-sender@example.org"


@dataclass
class Scenario:
    name: str
    size: int
    sessions: int
    count: int


@dataclass
class Target:
    name: str
    port: int
    queue_empty: object  # () -> bool
    cpu: object = None  # () -> CPU seconds of the server's processes so far
    runs: dict[str, list[dict]] = field(default_factory=dict)


def clear(directory: Path) -> None:
    with os.scandir(directory) as entries:
        for entry in entries:
            os.unlink(entry.path)


def one_run(args, target: Target, scenario: Scenario) -> dict:
    clear(args.sink_dir)
    command = [args.smtp_source, "-s", str(scenario.sessions), "-m", str(scenario.count), "-l", str(scenario.size),
               "-f", SENDER, "-t", args.rcpt, f"127.0.0.1:{target.port}"]
    cpu_before = target.cpu() if target.cpu else None
    start = time.monotonic()
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                              timeout=args.timeout)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"{target.name} {scenario.name}: smtp-source did not finish within {args.timeout} s")
    accepted = time.monotonic() - start
    if done.returncode != 0 or "fatal" in done.stdout:
        raise SystemExit(f"{target.name} {scenario.name}: smtp-source failed ({done.returncode}):\n{done.stdout[-2000:]}")
    deadline = start + args.timeout
    while count_files(args.sink_dir) < scenario.count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{target.name} {scenario.name}: {count_files(args.sink_dir)} of {scenario.count} "
                             f"at the sink after {args.timeout} s")
        time.sleep(POLL)
    end_to_end = time.monotonic() - start
    cpu = (target.cpu() - cpu_before) * 1000 / scenario.count if cpu_before is not None else None
    # Untimed checks: the queue empties, and nothing arrives twice.
    empty_by = time.monotonic() + 30
    while not target.queue_empty():
        if time.monotonic() > empty_by:
            raise SystemExit(f"{target.name} {scenario.name}: the queue is not empty 30 s after the last delivery")
        time.sleep(0.1)
    time.sleep(0.2)
    received = count_files(args.sink_dir)
    if received != scenario.count:
        raise SystemExit(f"{target.name} {scenario.name}: the sink received {received} for {scenario.count} sent")
    result = {"accept_s": accepted, "accept_rate": scenario.count / accepted, "e2e_s": end_to_end,
              "e2e_rate": scenario.count / end_to_end}
    if cpu is not None:
        result["cpu_ms_per_msg"] = cpu
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smtp-source", required=True)
    parser.add_argument("--python", default=sys.executable, help="runs `mailboat queue list --json`")
    parser.add_argument("--mailboat-port", type=int, required=True)
    parser.add_argument("--mailboat-config", type=Path, required=True)
    parser.add_argument("--mailboat-pid", type=int)
    parser.add_argument("--postfix-port", type=int, required=True)
    parser.add_argument("--postfix-queue", type=Path, required=True)
    parser.add_argument("--postfix-pid", type=int)
    parser.add_argument("--sink", required=True, help="smtp-sink's address, for the report")
    parser.add_argument("--sink-dir", type=Path, required=True, help="smtp-sink's dump directory")
    parser.add_argument("--rcpt", default="bench@example.net")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--budget", type=float, default=1500.0)
    parser.add_argument("--out-md", type=Path, required=True)
    parser.add_argument("--out-json", type=Path, required=True)
    args = parser.parse_args()

    def n(count: int) -> int:
        return max(20, int(count * args.scale))

    scenarios = [Scenario("1 KB, 1 session", 1024, 1, n(1000)), Scenario("1 KB, 20 sessions", 1024, 20, n(2000))]

    def mailboat_empty() -> bool:
        done = subprocess.run([args.python, "-m", "mailboat", "queue", "list", "--json", "--config",
                               str(args.mailboat_config)], capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise SystemExit(f"mailboat queue list failed: {done.stderr}")
        return json.loads(done.stdout) == []

    targets = [
        Target("Postfix", args.postfix_port, lambda: postfix_queue_files(args.postfix_queue) == 0,
               cpu=(lambda: tree_cpu(args.postfix_pid)) if args.postfix_pid else None),
        Target("mailboat", args.mailboat_port, mailboat_empty,
               cpu=(lambda: process_cpu(args.mailboat_pid)) if args.mailboat_pid else None),
    ]
    began = time.monotonic()
    print("warm-up: 200 messages over 20 sessions through each relay", flush=True)
    for target in targets:
        one_run(args, target, Scenario("warm-up", 1024, 20, 200))
    for round_no in range(1, args.repeat + 1):
        for scenario in scenarios:
            for target in targets:  # interleaved: drift in machine load hits both alike
                if time.monotonic() - began > args.budget:
                    raise SystemExit(f"benchmark budget of {args.budget} s exceeded")
                result = one_run(args, target, scenario)
                target.runs.setdefault(scenario.name, []).append(result)
                cpu = f", CPU {result['cpu_ms_per_msg']:.2f} ms/msg" if "cpu_ms_per_msg" in result else ""
                print(f"  round {round_no}  {scenario.name:<18} {target.name:<9} {scenario.count:>5} msgs  accept "
                      f"{result['accept_rate']:,.0f}/s, end to end {result['e2e_rate']:,.0f}/s{cpu}", flush=True)

    rows = []
    for scenario in scenarios:
        row = {"scenario": scenario.name, "size": scenario.size, "sessions": scenario.sessions,
               "messages": scenario.count}
        for target in targets:
            key = target.name.lower()
            runs = target.runs[scenario.name]
            row[f"{key}_accept"] = median(runs, "accept_rate")
            row[f"{key}_e2e"] = median(runs, "e2e_rate")
            row[f"{key}_cpu_ms"] = median(runs, "cpu_ms_per_msg")
        row["ratio_e2e"] = row["mailboat_e2e"] / row["postfix_e2e"]
        row["ratio_accept"] = row["mailboat_accept"] / row["postfix_accept"]
        rows.append(row)

    info = machine(args.mailboat_pid)
    lines = [("| scenario | msgs/run | Postfix accept | Postfix end to end | mailboat accept | mailboat end to end "
             "| ratio end to end | ratio accept | CPU ms/msg Postfix | CPU ms/msg mailboat |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        cpu = [("-" if row.get(k) is None else f"{row[k]:.2f}") for k in ("postfix_cpu_ms", "mailboat_cpu_ms")]
        lines.append(f"| {row['scenario']} | {row['messages']:,} | {fmt(row['postfix_accept'])} "
                     f"| {fmt(row['postfix_e2e'])} | {fmt(row['mailboat_accept'])} | {fmt(row['mailboat_e2e'])} "
                     f"| **{ratio(row['mailboat_e2e'], row['postfix_e2e'])}** "
                     f"| {ratio(row['mailboat_accept'], row['postfix_accept'])} | {cpu[0]} | {cpu[1]} |")
    table = "\n".join(lines)
    print()
    print(table)
    spread = [f"{t.name} {s.name}: end to end " + ", ".join(f"{r['e2e_rate']:,.0f}" for r in t.runs[s.name])
              for t in targets for s in scenarios]
    named = {t.name: t for t in targets}
    for s in scenarios:  # each round ran both relays back to back: its ratio compares like with like
        ratios = [m["e2e_rate"] / p["e2e_rate"]
                  for m, p in zip(named["mailboat"].runs[s.name], named["Postfix"].runs[s.name], strict=True)]
        spread.append(f"ratio end to end by round, {s.name}: " + ", ".join(f"{r:.2f}" for r in ratios)
                      + f" (median {statistics.median(ratios):.2f})")
    md = [
        "# Relay benchmark: mailboat vs Postfix, both relaying to smtp-sink (bench/relay.sh)",
        "",
        (f"{info['date']}; {info['cpus']} CPUs ({info['cpu']}), Linux {info['kernel']}, Python {info['python']}, "
        f"Postfix {info['postfix']}, mailboat event loop: {info['mailboat_event_loop']}."),
        "",
        (f"Messages per second, median of {args.repeat} runs. Load: Postfix's smtp-source on loopback "
        "(1 KB messages, one recipient, a new connection per message) into each relay: mailboat "
        f"(`[relay] smarthost`, client trusted by `trusted_networks`) and a private Postfix instance "
        f"(`relayhost`), both sending everything on to one smtp-sink at {args.sink} (it dumps each "
        "transaction to a file, which is how arrivals are counted). *end to end* = from smtp-source's "
        "start until the sink has every message (each relay's queue is then checked empty, untimed, and "
        "the sink must hold exactly the messages sent); *accept* = messages / smtp-source wall time. "
        "Both relays at their defaults for durability (Postfix fsyncs each queue file before its 250; "
        "mailboat fsyncs before its 250) and outbound concurrency (Postfix 20 per destination, "
        "mailboat 20 per destination). CPU = all the relay's processes/threads, per message. "
        "ratio = mailboat / Postfix (goal: at least 1.0 end to end)."),
        "",
        table,
        "",
        ("Machine noise: shared machines move 10-30 % between runs; compare ratios from one run. "
        "smtp-source, both relays and the sink share the same cores."),
        "",
        "Every run:",
        "",
        *[f"- {line}" for line in spread],
        "",
    ]
    args.out_md.write_text("\n".join(md))
    args.out_json.write_text(json.dumps({
        "machine": info, "repeat": args.repeat, "scenarios": rows,
        "runs": {t.name: t.runs for t in targets}, "wall_seconds": round(time.monotonic() - began, 1),
    }, indent=2) + "\n")
    print(f"\nwrote {args.out_md} and {args.out_json} ({time.monotonic() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
