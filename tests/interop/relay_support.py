"""Shared by the relay interop tests (test_postfix_hop, test_relay_e2e, test_restart): a
`mailboat serve` on a chosen loopback address, a private Postfix instance, and small helpers.

The private Postfix instance follows bench/accept.sh: its own config_directory, queue_directory
and data_directory in a temporary directory, chroot off, logging to a file through postlog,
started with `postfix -c DIR start` (which needs root: the tests skip without it). It never
touches /etc/postfix and never asks the machine's resolver (smtpd_peername_lookup = no, a numeric
relayhost in brackets). Everything it starts is stopped by `stop()` (master by its own pid).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from email import message_from_bytes
from pathlib import Path

import pytest

from mbtest import MAILBOAT, ON_CI, RunningServer, need_tool, one_process, start_config

__all__ = ["MAILBOAT_CONFIG", "PostfixInstance", "free_port", "message_ids", "serve", "wait_for",
           "wait_listening"]

MAILBOAT_CONFIG = """\
hostname = "{hostname}"
data_dir = "{data_dir}"
[[listener]]
kind = "smtp"
address = "{address}"
[domains]
local = [{local}]
[relay]
mx_port = {mx_port}
trusted_networks = ["127.0.0.0/8"]
[dns]
nameservers = ["{nameserver}"]
timeout = "2s"
{extra}
"""


def free_port(address: str) -> int:
    """A TCP port free on `address` right now (the caller binds it soon after)."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def wait_listening(address: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((address, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {address}:{port} after {timeout} s")


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    """Poll `predicate()` until it returns something truthy (returned) or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def serve(directory: Path, *, hostname: str, address: str, local: tuple[str, ...] = (), mx_port: int = 25,
          nameserver: str = "127.0.0.1:9", extra: str = "", users: tuple[str, ...] = (),
          config: Path | None = None) -> RunningServer:
    """`mailboat serve` with one smtp listener on `address` (port 0 = a free one). With `config`,
    that existing file is served again (a restart: same data_dir, same queue)."""
    if config is None:
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "mailboat.toml"
        config.write_text(one_process(MAILBOAT_CONFIG.format(
            hostname=hostname, data_dir=directory / "data", address=address, mx_port=mx_port,
            local=", ".join(f'"{d}"' for d in local), nameserver=nameserver, extra=extra)))
        for user in users:
            subprocess.run([*MAILBOAT, "user", "add", user, "--password-stdin", "--config", str(config)],
                           input="password123\n", text=True, check=True, capture_output=True, timeout=60)
    return start_config(config, directory / "data")


def message_ids(messages: list[bytes]) -> list[str]:
    return [str(message_from_bytes(m)["Message-ID"]) for m in messages]


# --- a private Postfix instance ------------------------------------------------------------------


class PostfixInstance:
    """A private Postfix listening on `address:port` (smtpd), relaying every message it accepts
    from 127.0.0.0/8 to `relayhost` ("[127.0.0.4]:PORT"). `settings` are extra main.cf lines.

    Needs root (postfix(1) starts master as root); skips otherwise (fails under CI=true)."""

    def __init__(self, address: str, port: int, relayhost: str, *, hostname: str = "postfix.hop.test",
                 settings: dict[str, str] | None = None) -> None:
        need_tool("postfix")
        need_tool("postconf")
        if os.geteuid() != 0:
            message = "a private Postfix instance needs root (postfix -c DIR start)"
            if ON_CI:
                pytest.fail(message)
            pytest.skip(message)
        self.address, self.port, self.hostname = address, port, hostname
        # Not under pytest's tmp_path: that is 0700 root, and Postfix's daemons (user postfix)
        # must reach their queue directory.
        self.root = Path(tempfile.mkdtemp(prefix="mailboat-postfix-"))
        self.root.chmod(0o755)
        self.etc, self.spool, self.data = self.root / "etc", self.root / "spool", self.root / "data"
        for directory in (self.etc, self.spool, self.data):
            directory.mkdir()
        self.maillog = self.root / "maillog"
        self.started = False
        master_cf = Path("/usr/share/postfix/master.cf.dist")
        shutil.copy(master_cf if master_cf.exists() else Path("/etc/postfix/master.cf"), self.etc / "master.cf")
        main = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.spool),
            "data_directory": str(self.data),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            # Postfix wants inet_interfaces on a configured interface (lo has 127.0.0.1 only); the
            # smtpd service below binds its own address:port explicitly.
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "myhostname": hostname,
            "mydomain": "hop.test",
            "myorigin": "$myhostname",
            "mydestination": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "relayhost": relayhost,
            "smtp_bind_address": address,
            "smtp_dns_support_level": "disabled",
            "smtpd_peername_lookup": "no",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "biff": "no",
            "append_dot_mydomain": "no",
            "readme_directory": "no",
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(self.root),
            # Retry soon (a test may reload it after a soft reject), never wait long for a peer.
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
        }
        main.update(settings or {})
        (self.etc / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
        self.postconf("-M#", "smtp/inet")
        self.postconf("-M", f"{address}:{port}/inet={address}:{port} inet n - n - - smtpd")
        self.postconf("-F", "*/*/chroot = n")
        shutil.chown(self.data, "postfix")
        self.data.chmod(0o700)

    def postconf(self, *args: str) -> str:
        done = subprocess.run(["postconf", "-c", str(self.etc), *args], capture_output=True, text=True, timeout=30,
                              check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def postfix(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["postfix", "-c", str(self.etc), *args], capture_output=True, text=True, timeout=60,
                              check=False)

    def start(self) -> PostfixInstance:
        check = self.postfix("check")
        assert check.returncode == 0, f"postfix check: {check.stderr}{self.log()[-2000:]}"
        self.started = True
        started = self.postfix("start")
        assert started.returncode == 0, f"postfix start: {started.stderr}{self.log()[-2000:]}"
        wait_listening(self.address, self.port)
        return self

    def reload(self) -> None:
        done = self.postfix("reload")
        assert done.returncode == 0, done.stderr

    def master_pid(self) -> int | None:
        try:
            return int((self.spool / "pid" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def queue_files(self) -> int:
        total = 0
        for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _root, _dirs, files in os.walk(self.spool / sub):
                total += len(files)
        return total

    def log(self) -> str:
        return self.maillog.read_text(errors="replace") if self.maillog.exists() else ""

    def stop(self) -> None:
        self.stop_master()
        shutil.rmtree(self.root, ignore_errors=True)

    def stop_master(self) -> None:
        """`postfix stop` (the instance can be started again); abort, then SIGKILL if it hangs."""
        if self.started:
            pid = self.master_pid()
            self.postfix("stop")
            deadline = time.monotonic() + 10
            while pid and time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            if pid and _alive(pid):
                self.postfix("abort")
                time.sleep(0.5)
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
            self.started = False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
