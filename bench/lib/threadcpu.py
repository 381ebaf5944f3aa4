"""Print the CPU time of every thread of a process as JSON: {"TID": ["name", user_s, system_s]}.

bench/accept.sh --profile takes one snapshot before and one after the profiled load;
profile_summary.py --threads-before/--threads-after turns the difference into a table.
"""

from __future__ import annotations

import json
import os
import sys

TICK = os.sysconf("SC_CLK_TCK")


def snapshot(pid: int) -> dict[str, list]:
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as handle:
                text = handle.read()
        except OSError:
            continue  # the thread ended meanwhile
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        threads[tid] = [name, int(fields[11]) / TICK, int(fields[12]) / TICK]
    return threads


def children(pid: int) -> list[int]:
    """The process and its direct children (mailboat's worker processes)."""
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    text = handle.read()
            except OSError:
                continue
            if int(text[text.rindex(")") + 2:].split()[1]) == pid:
                pids.append(int(entry))
    return pids


if __name__ == "__main__":
    threads: dict[str, list] = {}
    for each in children(int(sys.argv[1])):
        threads.update(snapshot(each))
    json.dump(threads, sys.stdout)
