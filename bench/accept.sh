#!/usr/bin/env bash
# Accept benchmark: Postfix's smtp-source against mailboat and against a private Postfix instance
# (and smtp-sink, the protocol ceiling) in the same run, on loopback. Run by `make bench`.
#
#   bash bench/accept.sh             # the table on stdout, bench/results.md, bench/results.json
#   bash bench/accept.sh --profile   # then profile mailboat under 1 KB x 20 sessions (py-spy):
#                                    #   bench/profile.md (+ bench/profile.raw, collapsed stacks)
#   bash bench/accept.sh --profile-only
#
# After the throughput table (bench/lib/bench.py) the same run measures, and bench/lib/extras.py
# folds into results.md/json: final-dot-to-250 latency at half of mailboat's peak accept rate,
# mailboat and Postfix (bench/lib/latency.py); RSS with 1,000 and 10,000 idle connections
# (bench/lib/idle.py); the trace parser vs mail-parser (bench/trace_bench.py); DKIM vs dkimpy
# (bench/dkim_bench.py); bench/relay.sh when it exists.
#
# Environment: BENCH_REPEAT (5), BENCH_SCALE (1.0: multiplies every message count),
# BENCH_TIMEOUT (120 s per smtp-source run), BENCH_BUDGET (1500 s for all runs),
# BENCH_WORK (bench/work), BENCH_KEEP=1 keeps the work directory, PYTHON (.venv/bin/python),
# BENCH_WORKERS (mailboat's [server] workers; empty, the default: leave the setting out, so
# mailboat runs as a user gets it, one process per CPU), BENCH_EXTRAS=0 skips everything after
# the throughput table, BENCH_IDLE ("1000 10000": idle-connection counts), BENCH_LATENCY_S (10:
# seconds of latency load),
# BENCH_ONLY (run only the scenarios whose name contains it, e.g. "20 sessions": for iterating).
#
# Postfix: installed from Debian when missing (unconfigured: debconf "No configuration"); the
# private instance (bench/lib/common.sh) accepts everything for example.com and delivers every
# recipient to `discard:`. Durability is Postfix's default (cleanup fsyncs each queue file before
# smtpd answers 250).
# mailboat: as `pip install` gives it (uvloop is a dependency) on its default settings, with its
# own config and data_dir under $BENCH_WORK/mailboat, Maildir delivery, and connection limits
# raised for the idle-connection count.
# Everything is stopped and removed by the EXIT trap, also on failure or Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
WORK=${BENCH_WORK:-$BENCH/work}
PY=${PYTHON:-$ROOT/.venv/bin/python}
REPEAT=${BENCH_REPEAT:-5}
SCALE=${BENCH_SCALE:-1.0}
TIMEOUT=${BENCH_TIMEOUT:-120}
BUDGET=${BENCH_BUDGET:-1500}
RCPT=bench@example.com
WORKERS=${BENCH_WORKERS:-}
EXTRAS=${BENCH_EXTRAS:-1}
IDLE_COUNTS=${BENCH_IDLE:-1000 10000}
LATENCY_S=${BENCH_LATENCY_S:-10}
PROFILE=0
BENCHMARK=1
for arg in "$@"; do
  case "$arg" in
    --profile) PROFILE=1 ;;
    --profile-only) PROFILE=1; BENCHMARK=0 ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

BENCH_NAME=accept.sh
PF="$WORK/postfix"
MB="$WORK/mailboat"
# shellcheck source=bench/lib/common.sh
. "$BENCH/lib/common.sh"
bench_preflight
bench_workdir
read -r PF_PORT MB_PORT SINK_PORT < <(free_ports 127.0.0.1 127.0.0.1 127.0.0.1)

# --- private Postfix instance ---------------------------------------------------------------------
postfix_start "$PF_PORT" "inet_interfaces = 127.0.0.1
mydestination = example.com
local_transport = discard:
default_transport = discard:
relay_transport = discard:
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination"

# --- mailboat ---------------------------------------------------------------------------------------
# Room for the idle-connection test (10,000 sockets in the server, as many in the client).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
cat > "$MB/mailboat.toml" <<EOF
hostname = "mx.bench.test"
data_dir = "$MB/data"
[[listener]]
kind = "smtp"
address = "127.0.0.1:$MB_PORT"
[domains]
local = ["example.com"]
[limits]
connections = 20000
connections_per_ip = 20000
[log]
file = "$MB/mailboat.log"
EOF
if [ -n "$WORKERS" ]; then printf '[server]\nworkers = %s\n' "$WORKERS" >> "$MB/mailboat.toml"; fi
"$PY" -m mailboat user add "$RCPT" --password-stdin --config "$MB/mailboat.toml" <<<"bench-password-1" >/dev/null
mailboat_start "$MB_PORT"
MAILDIR="$MB/data/mail/example.com/${RCPT%@*}"

# --- smtp-sink: the protocol ceiling (no storage) -----------------------------------------------------
"$SMTP_SINK" -u postfix "127.0.0.1:$SINK_PORT" 256 &
SINK_PID=$!
wait_port 127.0.0.1 "$SINK_PORT" "smtp-sink"

say "Postfix 127.0.0.1:$PF_PORT, mailboat 127.0.0.1:$MB_PORT (pid $MB_PID), smtp-sink 127.0.0.1:$SINK_PORT"

if [ "$BENCHMARK" = 1 ]; then
  "$PY" "$BENCH/lib/bench.py" --smtp-source "$SMTP_SOURCE" --rcpt "$RCPT" \
    --mailboat-port "$MB_PORT" --mailboat-maildir "$MAILDIR" --mailboat-pid "$MB_PID" \
    --postfix-port "$PF_PORT" --postfix-queue "$PF/spool" --postfix-pid "$PF_MASTER" --sink-port "$SINK_PORT" \
    --repeat "$REPEAT" --scale "$SCALE" --timeout "$TIMEOUT" --budget "$BUDGET" \
    --out-md "$BENCH/results.md" --out-json "$BENCH/results.json" --only "${BENCH_ONLY:-}"
fi

if [ "$BENCHMARK" = 1 ] && [ "$EXTRAS" = 1 ]; then
  # Latency at half of mailboat's peak (its median accept rate at 1 KB x 20 sessions, this run).
  RATE=$("$PY" -c "import json; r=json.load(open('$BENCH/results.json'))['scenarios'][1]; print(max(10, round(r['mailboat_accept'] / 2)))")
  say "latency: final dot to 250 at $RATE msgs/s for ${LATENCY_S} s (mailboat, then Postfix)"
  timeout $((LATENCY_S + 60)) "$PY" "$BENCH/lib/latency.py" --port "$MB_PORT" --rate "$RATE" --duration "$LATENCY_S" \
    --rcpt "$RCPT" >"$WORK/latency-mailboat.json" || say "latency run against mailboat failed"
  timeout $((LATENCY_S + 60)) "$PY" "$BENCH/lib/latency.py" --port "$PF_PORT" --rate "$RATE" --duration "$LATENCY_S" \
    --rcpt "$RCPT" >"$WORK/latency-postfix.json" || say "latency run against Postfix failed"
  say "memory: mailboat's RSS with $IDLE_COUNTS idle connections"
  idle_args=(); for c in $IDLE_COUNTS; do idle_args+=(--count "$c"); done
  timeout 300 "$PY" "$BENCH/lib/idle.py" --port "$MB_PORT" --pid "$MB_PID" "${idle_args[@]}" >"$WORK/idle.json" \
    || say "idle-connection run failed"
  say "trace parser vs mail-parser; DKIM vs dkimpy"
  COLUMNS=200 timeout 300 "$PY" "$BENCH/trace_bench.py" --repeat 3 >"$WORK/trace.txt" 2>&1 || say "trace_bench.py failed"
  timeout 300 "$PY" "$BENCH/dkim_bench.py" >"$WORK/dkim.txt" 2>&1 || say "dkim_bench.py failed"
  : >"$WORK/relay.txt"
  if [ -f "$BENCH/relay.sh" ]; then
    say "relay: bench/relay.sh"
    timeout 600 bash "$BENCH/relay.sh" >"$WORK/relay.txt" 2>&1 || say "bench/relay.sh failed (output kept in results.md)"
  fi
  "$PY" "$BENCH/lib/extras.py" --md "$BENCH/results.md" --json "$BENCH/results.json" \
    --latency-mailboat "$WORK/latency-mailboat.json" --latency-postfix "$WORK/latency-postfix.json" \
    --idle "$WORK/idle.json" --trace "$WORK/trace.txt" --dkim "$WORK/dkim.txt" --relay "$WORK/relay.txt" \
    --workers "${WORKERS:-default}" --processes "$(mailboat_processes)"
  sed -n '/^## Latency/,$p' "$BENCH/results.md"
fi

if [ "$PROFILE" = 1 ]; then
  SPY="$(dirname "$PY")/py-spy"
  [ -x "$SPY" ] || "$PY" -m pip install --quiet py-spy || die "py-spy is not installed and pip could not install it"
  PROFILE_COUNT=$("$PY" -c "print(max(200, int(6000 * float('$SCALE'))))")
  say "profiling mailboat (pid $MB_PID) under $PROFILE_COUNT x 1 KB over 20 sessions"
  find "$MAILDIR/new" -type f -delete 2>/dev/null || true
  # --gil: samples only the thread holding the GIL (Python CPU, the resource one process cannot
  # spread over two cores); per-thread CPU from /proc covers the C work done without the GIL.
  "$SPY" record --pid "$MB_PID" --subprocesses --rate 250 --gil --function --threads --format raw -o "$BENCH/profile.raw" \
    >"$WORK/py-spy.out" 2>&1 &
  SPY_PID=$!
  sleep 1
  "$PY" "$BENCH/lib/threadcpu.py" "$MB_PID" >"$WORK/threads.before"
  started=$(date +%s.%N)
  timeout "$TIMEOUT" "$SMTP_SOURCE" -s 20 -m "$PROFILE_COUNT" -l 1024 -f bench-sender@example.org -t "$RCPT" \
    "127.0.0.1:$MB_PORT" >/dev/null || die "smtp-source failed under the profiler"
  accepted=$(date +%s.%N)
  for i in $(seq $((TIMEOUT * 10))); do
    [ "$(find "$MAILDIR/new" -type f | wc -l)" -ge "$PROFILE_COUNT" ] && break; sleep 0.1
  done
  delivered=$(date +%s.%N)
  "$PY" "$BENCH/lib/threadcpu.py" "$MB_PID" >"$WORK/threads.after"
  kill -INT "$SPY_PID" 2>/dev/null || true
  for i in $(seq 100); do kill -0 "$SPY_PID" 2>/dev/null || break; sleep 0.1; done
  SPY_PID=""
  [ -s "$BENCH/profile.raw" ] || die "py-spy wrote no profile: $(cat "$WORK/py-spy.out")"
  "$PY" "$BENCH/lib/profile_summary.py" "$BENCH/profile.raw" --count "$PROFILE_COUNT" \
    --started "$started" --accepted "$accepted" --delivered "$delivered" \
    --threads-before "$WORK/threads.before" --threads-after "$WORK/threads.after" --out "$BENCH/profile.md"
fi
