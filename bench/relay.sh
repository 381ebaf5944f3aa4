#!/usr/bin/env bash
# Relay benchmark (issue 3, "Figures to report"): Postfix's smtp-source into mailboat relaying to
# Postfix's smtp-sink on another loopback address, and the same through a private Postfix
# instance relaying to the same smtp-sink, in one run. End-to-end messages per second (until the
# sink has every message and the relay's queue is empty), 1 KB, 1 and 20 sessions, medians of 3,
# ratio mailboat/Postfix.
#
#   bash bench/relay.sh        # the table on stdout, bench/relay-results.md, bench/relay-results.json
#
# Environment: BENCH_REPEAT (3), BENCH_SCALE (1.0: multiplies the message counts 1000 and 2000),
# BENCH_TIMEOUT (180 s per run), BENCH_BUDGET (1500 s for all runs), BENCH_WORK (bench/work-relay),
# BENCH_KEEP=1 keeps the work directory, PYTHON (.venv/bin/python).
#
# Layout (loopback only, nothing asks the machine's resolver):
#   smtp-source -> 127.0.0.1:MB_PORT mailboat  ([relay] smarthost = "127.0.0.2:SINK_PORT",
#                                               trusted_networks = ["127.0.0.0/8"], [dns] -> 127.0.0.1:9)
#   smtp-source -> 127.0.0.1:PF_PORT Postfix   (relayhost = [127.0.0.2]:SINK_PORT, DNS disabled)
#   both        -> 127.0.0.2:SINK_PORT smtp-sink, one dump file per transaction (the arrival count)
# The private Postfix instance is the one of bench/accept.sh (own config, queue and data
# directories under $BENCH_WORK/postfix, chroot off, postlog to a file), started with
# `postfix -c DIR start` as root; /etc/postfix is never touched. Everything is stopped and removed
# by the EXIT trap, also on failure or Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
WORK=${BENCH_WORK:-$BENCH/work-relay}
PY=${PYTHON:-$ROOT/.venv/bin/python}
REPEAT=${BENCH_REPEAT:-3}
SCALE=${BENCH_SCALE:-1.0}
TIMEOUT=${BENCH_TIMEOUT:-180}
BUDGET=${BENCH_BUDGET:-1500}
RCPT=bench@example.net
SINK_ADDR=127.0.0.2
case "${1:-}" in
  -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
  "") ;;
  *) echo "unknown argument: $1" >&2; exit 2 ;;
esac

say() { printf '%s\n' "relay.sh: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: Postfix's master must start as root"
[ -x "$PY" ] || die "no Python at $PY (make install, or set PYTHON)"
export PATH="$PATH:/usr/sbin:/usr/lib/postfix/sbin"
command -v postfix >/dev/null || die "postfix is not installed (bash bench/accept.sh installs it, or apt-get install postfix)"
SMTP_SOURCE=$(command -v smtp-source) || die "smtp-source not found"
SMTP_SINK=$(command -v smtp-sink) || die "smtp-sink not found"

PF="$WORK/postfix"
MB="$WORK/mailboat"
SINK_DIR="$WORK/sink"
MB_PID=""
SINK_PID=""
PF_STARTED=0

stop_pid() {  # stop_pid PID: TERM, wait up to 15 s, then KILL; only a process we started
  local pid=$1 i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  say "pid $pid ignored SIGTERM for 15 s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$MB_PID"
  if [ "$PF_STARTED" = 1 ]; then
    local master_pid i
    master_pid=$(head -1 "$PF/spool/pid/master.pid" 2>/dev/null | tr -d ' ' || true)
    postfix -c "$PF/etc" stop >/dev/null 2>&1 || true
    for i in $(seq 100); do { [ -n "$master_pid" ] && kill -0 "$master_pid" 2>/dev/null; } || break; sleep 0.1; done
    if [ -n "$master_pid" ] && kill -0 "$master_pid" 2>/dev/null; then
      postfix -c "$PF/etc" abort >/dev/null 2>&1 || true
    fi
  fi
  stop_pid "$SINK_PID"
  if [ "$rc" != 0 ]; then
    [ -f "$MB/mailboat.log" ] && { say "last lines of mailboat's log:"; tail -5 "$MB/mailboat.log" >&2; }
    [ -f "$PF/maillog" ] && { say "last lines of Postfix's log:"; tail -5 "$PF/maillog" >&2; }
  fi
  if [ "${BENCH_KEEP:-0}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -e "$PF/spool/pid/master.pid" ] && die "$WORK holds a Postfix instance (a previous run?); stop it: postfix -c $PF/etc stop"
rm -rf "$WORK"
mkdir -p "$PF/etc" "$PF/spool" "$PF/data" "$MB" "$SINK_DIR"
chmod 755 "$WORK"

read -r PF_PORT MB_PORT SINK_PORT < <("$PY" -c 'import socket
a, b, c = socket.socket(), socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0)); c.bind(("127.0.0.2", 0))
print(a.getsockname()[1], b.getsockname()[1], c.getsockname()[1])')

wait_port() {  # wait_port HOST PORT WHAT: until something listens (10 s)
  local i
  for i in $(seq 100); do
    "$PY" -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('$1', $2)))" && return 0
    sleep 0.1
  done
  die "$3 is not listening on $1:$2"
}

# --- smtp-sink: the common destination; one file per transaction in $SINK_DIR ----------------------
chown nobody "$SINK_DIR"
"$SMTP_SINK" -u nobody -d "$SINK_DIR/%H%M%S." "$SINK_ADDR:$SINK_PORT" 256 >"$WORK/sink.out" 2>&1 &
SINK_PID=$!
wait_port "$SINK_ADDR" "$SINK_PORT" "smtp-sink"

# --- private Postfix instance relaying to the sink ----------------------------------------------------
cp /usr/share/postfix/master.cf.dist "$PF/etc/master.cf" 2>/dev/null || cp /etc/postfix/master.cf "$PF/etc/master.cf"
cat > "$PF/etc/main.cf" <<EOF
# Written by bench/relay.sh: a private instance that relays everything from 127.0.0.0/8 to
# smtp-sink at [$SINK_ADDR]:$SINK_PORT. Durability and concurrency: Postfix defaults.
compatibility_level = 3.6
queue_directory = $PF/spool
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = \$myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relayhost = [$SINK_ADDR]:$SINK_PORT
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
biff = no
append_dot_mydomain = no
readme_directory = no
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
EOF
postconf -c "$PF/etc" -M# smtp/inet
postconf -c "$PF/etc" -M "127.0.0.1:$PF_PORT/inet=127.0.0.1:$PF_PORT inet n - n - - smtpd"
postconf -c "$PF/etc" -F '*/*/chroot = n'
chown postfix "$PF/data"
chmod 700 "$PF/data"
postfix -c "$PF/etc" check >/dev/null 2>&1 || die "postfix check failed: $(tail -3 "$PF/maillog" 2>/dev/null)"
PF_STARTED=1
postfix -c "$PF/etc" start >/dev/null 2>&1 || die "postfix start failed: $(tail -3 "$PF/maillog" 2>/dev/null)"
wait_port 127.0.0.1 "$PF_PORT" "Postfix smtpd"
PF_MASTER=$(tr -d ' ' < "$PF/spool/pid/master.pid")

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
"$PY" -m mailboat serve --config "$MB/mailboat.toml" >"$MB/stdout" 2>"$MB/stderr" &
MB_PID=$!
wait_port 127.0.0.1 "$MB_PORT" "mailboat"

say "smtp-sink $SINK_ADDR:$SINK_PORT; Postfix 127.0.0.1:$PF_PORT (master $PF_MASTER); mailboat 127.0.0.1:$MB_PORT (pid $MB_PID)"
"$PY" "$BENCH/lib/relay_bench.py" --smtp-source "$SMTP_SOURCE" --python "$PY" --rcpt "$RCPT" \
  --mailboat-port "$MB_PORT" --mailboat-config "$MB/mailboat.toml" --mailboat-pid "$MB_PID" \
  --postfix-port "$PF_PORT" --postfix-queue "$PF/spool" --postfix-pid "$PF_MASTER" \
  --sink "$SINK_ADDR:$SINK_PORT" --sink-dir "$SINK_DIR" \
  --repeat "$REPEAT" --scale "$SCALE" --timeout "$TIMEOUT" --budget "$BUDGET" \
  --out-md "$BENCH/relay-results.md" --out-json "$BENCH/relay-results.json"
