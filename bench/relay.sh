#!/usr/bin/env bash
# Relay benchmark: Postfix's smtp-source into mailboat relaying to
# Postfix's smtp-sink on another loopback address, and the same through a private Postfix
# instance relaying to the same smtp-sink, in one run. End-to-end messages per second (until the
# sink has every message and the relay's queue is empty), 1 KB, 1 and 20 sessions, medians of 3,
# ratio mailboat/Postfix.
#
#   bash bench/relay.sh        # the table on stdout, bench/relay-results.md, bench/relay-results.json
#
# Environment: BENCH_REPEAT (5), BENCH_SCALE (1.0: multiplies the message counts 1000 and 2000),
# BENCH_TIMEOUT (180 s per run), BENCH_BUDGET (1500 s for all runs), BENCH_WORK (bench/work-relay),
# BENCH_KEEP=1 keeps the work directory, PYTHON (.venv/bin/python).
#
# Layout (loopback only, nothing asks the machine's resolver):
#   smtp-source -> 127.0.0.1:MB_PORT mailboat  ([relay] smarthost = "127.0.0.2:SINK_PORT",
#                                               trusted_networks = ["127.0.0.0/8"], [dns] -> 127.0.0.1:9)
#   smtp-source -> 127.0.0.1:PF_PORT Postfix   (relayhost = [127.0.0.2]:SINK_PORT, DNS disabled)
#   both        -> 127.0.0.2:SINK_PORT smtp-sink, one dump file per transaction (the arrival count)
# The private Postfix instance is bench/lib/common.sh's, as in bench/accept.sh (own config, queue
# and data directories under $BENCH_WORK/postfix); /etc/postfix is never touched. Everything is stopped and removed
# by the EXIT trap, also on failure or Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
WORK=${BENCH_WORK:-$BENCH/work-relay}
PY=${PYTHON:-$ROOT/.venv/bin/python}
REPEAT=${BENCH_REPEAT:-5}
SCALE=${BENCH_SCALE:-1.0}
TIMEOUT=${BENCH_TIMEOUT:-180}
BUDGET=${BENCH_BUDGET:-1500}
RCPT=bench@example.net
SINK_ADDR=127.0.0.2
case "${1:-}" in
  -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
  "") ;;
  *) echo "unknown argument: $1" >&2; exit 2 ;;
esac

BENCH_NAME=relay.sh
PF="$WORK/postfix"
MB="$WORK/mailboat"
SINK_DIR="$WORK/sink"
# shellcheck source=bench/lib/common.sh
. "$BENCH/lib/common.sh"
bench_preflight
bench_workdir
mkdir -p "$SINK_DIR"
chmod 755 "$WORK"
read -r PF_PORT MB_PORT SINK_PORT < <(free_ports 127.0.0.1 127.0.0.1 "$SINK_ADDR")

# --- smtp-sink: the common destination; one file per transaction in $SINK_DIR ----------------------
chown nobody "$SINK_DIR"
"$SMTP_SINK" -u nobody -d "$SINK_DIR/%H%M%S." "$SINK_ADDR:$SINK_PORT" 256 >"$WORK/sink.out" 2>&1 &
SINK_PID=$!
wait_port "$SINK_ADDR" "$SINK_PORT" "smtp-sink"

# --- private Postfix instance relaying to the sink ----------------------------------------------------
postfix_start "$PF_PORT" "inet_interfaces = loopback-only
mydestination =
relayhost = [$SINK_ADDR]:$SINK_PORT
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtpd_relay_restrictions = permit_mynetworks, reject"

# --- mailboat relaying to the sink ---------------------------------------------------------------------
cat > "$MB/mailboat.toml" <<EOF
hostname = "mx.bench.test"
data_dir = "$MB/data"
[[listener]]
kind = "smtp"
address = "127.0.0.1:$MB_PORT"
[domains]
local = ["bench.test"]
[relay]
smarthost = "$SINK_ADDR:$SINK_PORT"
trusted_networks = ["127.0.0.0/8"]
[dns]
nameservers = ["127.0.0.1:9"]
timeout = "2s"
[log]
file = "$MB/mailboat.log"
EOF
mailboat_start "$MB_PORT"

say "smtp-sink $SINK_ADDR:$SINK_PORT; Postfix 127.0.0.1:$PF_PORT (master $PF_MASTER); mailboat 127.0.0.1:$MB_PORT (pid $MB_PID)"
"$PY" "$BENCH/lib/relay_bench.py" --smtp-source "$SMTP_SOURCE" --python "$PY" --rcpt "$RCPT" \
  --mailboat-port "$MB_PORT" --mailboat-config "$MB/mailboat.toml" --mailboat-pid "$MB_PID" \
  --postfix-port "$PF_PORT" --postfix-queue "$PF/spool" --postfix-pid "$PF_MASTER" \
  --sink "$SINK_ADDR:$SINK_PORT" --sink-dir "$SINK_DIR" \
  --repeat "$REPEAT" --scale "$SCALE" --timeout "$TIMEOUT" --budget "$BUDGET" \
  --out-md "$BENCH/relay-results.md" --out-json "$BENCH/relay-results.json"
