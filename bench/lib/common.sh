# Shared by bench/accept.sh and bench/relay.sh (sourced, not run): messages, the checks before a
# run, the work directory and its clean-up, port waits, mailboat and the private Postfix instance.
# The caller sets BENCH_NAME, PY, WORK, PF (the instance's directory) and MB (mailboat's).
#
# The private instance never touches /etc/postfix: its own config_directory, queue_directory
# and data_directory live under $PF, and `postfix -c $PF/etc start` runs it as root. As root,
# postfix(1) accepts a non-default -c directory without alternate_config_directories (that
# check is for the set-gid postdrop/postqueue). What a non-default instance needs: queue and
# data directories of its own (data_directory owned by mail_owner), chroot off (the Debian
# master.cf chroots into the default queue directory), maillog_file_prefixes covering
# maillog_file, and the postlog service (there is no syslog here).

PF_STARTED=0
MB_PID=""
SINK_PID=""
SPY_PID=""

say() { printf '%s\n' "$BENCH_NAME: $*" >&2; }
die() { say "$*"; exit 1; }

bench_preflight() {  # root, Python, Postfix (installed from Debian when missing), smtp-source/-sink
  [ "$(id -u)" = 0 ] || die "run as root: Postfix's master must start as root (and apt-get may be needed)"
  [ -x "$PY" ] || die "no Python at $PY (make install, or set PYTHON)"
  if ! command -v postfix >/dev/null 2>&1 && [ ! -x /usr/sbin/postfix ]; then
    command -v apt-get >/dev/null || die "postfix is missing and there is no apt-get"
    say "installing postfix from Debian (unconfigured)"
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix >/dev/null; }
  fi
  export PATH="$PATH:/usr/sbin:/usr/lib/postfix/sbin"
  SMTP_SOURCE=$(command -v smtp-source) || die "smtp-source not found"
  SMTP_SINK=$(command -v smtp-sink) || die "smtp-sink not found"
}

bench_workdir() {  # a fresh $WORK (with $MB), removed again by the EXIT trap unless BENCH_KEEP=1
  [ -e "$PF/spool/pid/master.pid" ] && die "$WORK holds a Postfix instance (a previous run?); stop it: postfix -c $PF/etc stop"
  rm -rf "$WORK"
  mkdir -p "$MB"
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {  # the EXIT trap: stop what we started, show the logs on failure, remove $WORK
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$SPY_PID"
  stop_pid "$MB_PID"
  postfix_stop
  stop_pid "$SINK_PID"
  show_logs_on_failure "$rc" "$MB/mailboat.log"
  if [ "${BENCH_KEEP:-0}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}

free_ports() {  # free_ports ADDR...: one free port on each loopback address, in order
  "$PY" - "$@" <<'PY'
import socket, sys
socks = [socket.socket() for _ in sys.argv[1:]]
for sock, address in zip(socks, sys.argv[1:]):
    sock.bind((address, 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

mailboat_start() {  # mailboat_start PORT: serve $MB/mailboat.toml, wait for PORT; sets MB_PID
  "$PY" -m mailboat serve --config "$MB/mailboat.toml" >"$MB/stdout" 2>"$MB/stderr" &
  MB_PID=$!
  wait_port 127.0.0.1 "$1" "mailboat"
}

mailboat_processes() {  # mailboat_processes: how many processes the server runs ($MB_PID and its workers)
  echo $((1 + $( (ps -o pid= --ppid "$MB_PID" || true) | wc -l)))
}

stop_pid() {  # stop_pid PID: TERM, wait up to 15 s, then KILL; only a process we started
  local pid=$1 i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  say "pid $pid ignored SIGTERM for 15 s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

wait_port() {  # wait_port HOST PORT WHAT: until something listens (10 s)
  local i
  for i in $(seq 100); do
    "$PY" -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('$1', $2)))" && return 0
    sleep 0.1
  done
  die "$3 is not listening on $1:$2"
}

postfix_start() {  # postfix_start PORT "MAIN.CF LINES": a private instance with smtpd on 127.0.0.1:PORT
  local port=$1 extra=$2
  [ -e "$PF/spool/pid/master.pid" ] && die "$PF holds a Postfix instance (a previous run?); stop it: postfix -c $PF/etc stop"
  mkdir -p "$PF/etc" "$PF/spool" "$PF/data"
  cp /usr/share/postfix/master.cf.dist "$PF/etc/master.cf" 2>/dev/null || cp /etc/postfix/master.cf "$PF/etc/master.cf"
  cat > "$PF/etc/main.cf" <<MAINCF
# Written by bench/lib/common.sh for a benchmark: a private instance on 127.0.0.1:$port.
# Durability and concurrency: Postfix defaults.
compatibility_level = 3.6
queue_directory = $PF/spool
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
inet_protocols = ipv4
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = \$myhostname
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
biff = no
append_dot_mydomain = no
readme_directory = no
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
$extra
MAINCF
  postconf -c "$PF/etc" -M# smtp/inet
  postconf -c "$PF/etc" -M "127.0.0.1:$port/inet=127.0.0.1:$port inet n - n - - smtpd"
  postconf -c "$PF/etc" -F '*/*/chroot = n'
  chown postfix "$PF/data"
  chmod 700 "$PF/data"
  # postfix(1) writes its errors to stderr only on a terminal; the maillog has them otherwise.
  postfix -c "$PF/etc" check >/dev/null 2>&1 || die "postfix check failed: $(tail -3 "$PF/maillog" 2>/dev/null)"
  PF_STARTED=1
  postfix -c "$PF/etc" start >/dev/null 2>&1 || die "postfix start failed: $(tail -3 "$PF/maillog" 2>/dev/null)"
  wait_port 127.0.0.1 "$port" "Postfix smtpd"
  PF_MASTER=$(tr -d ' ' < "$PF/spool/pid/master.pid")
}

postfix_stop() {  # stop the private instance if postfix_start started it (stop, then abort)
  [ "$PF_STARTED" = 1 ] || return 0
  local master_pid i
  master_pid=$(head -1 "$PF/spool/pid/master.pid" 2>/dev/null | tr -d ' ' || true)
  postfix -c "$PF/etc" stop >/dev/null 2>&1 || true
  for i in $(seq 100); do { [ -n "$master_pid" ] && kill -0 "$master_pid" 2>/dev/null; } || break; sleep 0.1; done
  if [ -n "$master_pid" ] && kill -0 "$master_pid" 2>/dev/null; then
    postfix -c "$PF/etc" abort >/dev/null 2>&1 || true
  fi
  PF_STARTED=0
}

show_logs_on_failure() {  # show_logs_on_failure RC MAILBOAT_LOG
  [ "$1" = 0 ] && return 0
  [ -f "$2" ] && { say "last lines of mailboat's log:"; tail -5 "$2" >&2; }
  [ -f "$PF/maillog" ] && { say "last lines of Postfix's log:"; tail -5 "$PF/maillog" >&2; }
  return 0
}
