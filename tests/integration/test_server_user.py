"""`[server] user`: a mailboat started as root runs as that user, and its mail is Dovecot's to read.

Real parts throughout: a system user made for the test run (`useradd --system`, with a second,
supplementary group), `mailboat serve` started as root, `smtplib`, the kernel's own record of each
process's ids (/proc/PID/status), and a private Dovecot whose `mail_uid` is that user reading the
Maildirs over IMAP. Needs root (useradd, starting as root); skipped otherwise.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from mbtest import CONFIG_TEMPLATE, MAILBOAT, NO_DNS, children, start_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: it adds a system user and starts "
                                                           "mailboat as root")


def closed_parents(*paths: str) -> list[Path]:
    """Directories on the way to `paths` that other users cannot pass through."""
    found: list[Path] = []
    for path in paths:
        for parent in Path(path).resolve().parents:
            if not parent.stat().st_mode & 0o001 and parent not in found:
                found.append(parent)
    return found


@pytest.fixture(scope="module")
def mail_user():
    """A system user with its own group and one supplementary group; removed afterwards.

    The user must be able to read this Python and mailboat, as on any installation that runs
    it as a service user (mailboat refuses to start otherwise). A Python installed under root's
    closed home directory (pyenv) is made passable (o+x only: nothing there can be listed) for
    the module's duration, and the modes are restored afterwards."""
    name = f"mbt{uuid.uuid4().hex[:10]}"
    extra = f"{name}x"
    subprocess.run(["groupadd", "--system", extra], check=True, capture_output=True)
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    "--groups", extra, name], check=True, capture_output=True)
    import mailboat

    opened = {path: path.stat().st_mode & 0o7777 for path in
              closed_parents(sys.base_prefix, sys.prefix, os.path.dirname(os.__file__), mailboat.__file__)}
    try:
        for path, mode in opened.items():
            path.chmod(mode | 0o001)
        yield pwd.getpwnam(name)
    finally:
        for path, mode in opened.items():
            path.chmod(mode)
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", extra], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)  # (userdel removes it on most systems)


@pytest.fixture
def top():
    """A world-traversable directory (pytest's own tmp_path is closed to other users)."""
    path = Path(tempfile.mkdtemp(prefix="mailboat-user-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write_config(top: Path, extra: str = "", account: bool = True) -> tuple[Path, Path]:
    """The test configuration, and alice@example.com's account added (as root) unless not wanted."""
    data_dir = top / "data"
    config = top / "mailboat.toml"
    config.write_text(CONFIG_TEMPLATE.format(data_dir=data_dir, extra=extra + "\n" + NO_DNS))
    if account:
        added = cli(config, "user", "add", "alice@example.com", "--password-stdin", input="password123\n")
        assert added.returncode == 0, added.stderr
    return config, data_dir


def cli(config: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*MAILBOAT, *args, "--config", str(config)], input=input, capture_output=True,
                          text=True, timeout=60)


def ids(pid: int) -> dict[str, list[int]]:
    """Uid, Gid and Groups of a process, as the kernel keeps them."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {key: [int(v) for v in value.split()]
            for key, value in re.findall(r"^(Uid|Gid|Groups):[ \t]*(.*)$", status, re.MULTILINE)}


def not_owned_by(data_dir: Path, user: pwd.struct_passwd) -> list[str]:
    paths = [data_dir, *data_dir.rglob("*")]
    return [f"{p} {p.lstat().st_uid}:{p.lstat().st_gid}" for p in paths
            if (p.lstat().st_uid, p.lstat().st_gid) != (user.pw_uid, user.pw_gid)]


def send(port: int, rcpt: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("someone@example.org", [rcpt], f"Subject: {subject}\r\n\r\nbody of {subject}\r\n")


def test_started_as_root_every_process_runs_as_the_user_and_dovecot_reads_the_mail(mail_user, top, tmp_path):
    from test_dovecot import CONF, _free_port, _wait_port, imap_messages  # tests/interop

    dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not os.path.exists(dovecot):
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd)")
    config, data_dir = write_config(top, f'[server]\nuser = "{mail_user.pw_name}"\nworkers = 2\n')
    server = start_config(config, data_dir)
    try:
        log = server.wait_log("daemon started")
        assert f"running as {mail_user.pw_name}:" in log
        send(server.ports["smtp"], "alice@example.com", "for dovecot")
        server.wait_messages("alice@example.com", 1)
        workers = children(server.proc.pid)
        assert len(workers) == 1, workers
        groups = sorted(set(os.getgrouplist(mail_user.pw_name, mail_user.pw_gid)))
        assert len(groups) == 2  # its own group and the supplementary one, and not root's
        for pid in (server.proc.pid, *workers):
            seen = ids(pid)
            assert seen["Uid"] == [mail_user.pw_uid] * 4, (pid, seen)
            assert seen["Gid"] == [mail_user.pw_gid] * 4, (pid, seen)
            assert sorted(seen["Groups"]) == groups, (pid, seen)
        assert not_owned_by(data_dir, mail_user) == []
    finally:
        assert "Traceback" not in server.stop()

    # Dovecot as a mail server runs it: mail_uid/mail_gid = that user, first_valid_uid = its uid.
    root = tmp_path / "dovecot"
    for sub in ("run", "state"):
        (root / sub).mkdir(parents=True)
    (root / "passwd").write_text("alice@example.com:{PLAIN}secret:::::\n")
    imap, lmtp = _free_port(), _free_port()
    group = grp.getgrgid(mail_user.pw_gid).gr_name
    text = CONF.format(root=root, mail=data_dir / "mail", user=mail_user.pw_name, group=group, login="nobody",
                       me="root", my_group="root", imap=imap, lmtp=lmtp)
    text = text.replace("first_valid_uid = 0", f"first_valid_uid = {mail_user.pw_uid}")
    (root / "dovecot.conf").write_text(text)
    proc = subprocess.Popen([dovecot, "-F", "-c", str(root / "dovecot.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_port(imap, proc, root / "dovecot.log")
        [message] = imap_messages(imap, "alice@example.com")
        assert b"Subject: for dovecot" in message and b"body of for dovecot" in message
    finally:
        proc.terminate()
        proc.wait(15)


def test_a_data_dir_left_by_a_root_run_is_taken_over(mail_user, top):
    config, data_dir = write_config(top)
    server = start_config(config, data_dir)  # as root, no [server] user: everything is root's
    try:
        send(server.ports["smtp"], "alice@example.com", "as root")
        server.wait_messages("alice@example.com", 1)
    finally:
        server.stop()
    assert (data_dir / "queue.db").stat().st_uid == 0
    config.write_text(config.read_text() + f'\n[server]\nuser = "{mail_user.pw_name}"\n')
    server = start_config(config, data_dir)
    try:
        log = server.wait_log("daemon started")
        taken = re.findall(r"data_dir \S+: took over (\d+) entries left by another owner \(now (\S+)\)", log)
        assert len(taken) == 1, log
        assert int(taken[0][0]) >= 10 and taken[0][1].startswith(f"{mail_user.pw_name}:")
        assert not_owned_by(data_dir, mail_user) == []
        send(server.ports["smtp"], "alice@example.com", "as the user")  # into the Maildir root made
        assert len(server.wait_messages("alice@example.com", 2)) == 2
    finally:
        assert "Traceback" not in server.stop()
    server = start_config(config, data_dir)  # nothing left to take over: no line
    try:
        assert "took over" not in server.wait_log("daemon started")
    finally:
        server.stop()


def test_cli_commands_run_as_root_leave_nothing_root_owned(mail_user, top):
    # Each command is checked on its own: the next one would take over what the last one left.
    config, data_dir = write_config(top, f'[server]\nuser = "{mail_user.pw_name}"\n')  # (user add)
    assert not_owned_by(data_dir, mail_user) == []
    sent = cli(config, "sendmail", "alice@example.com", input="Subject: from cron\r\n\r\nhello\r\n")
    assert sent.returncode == 0, sent.stderr
    assert not_owned_by(data_dir, mail_user) == []
    big = cli(config, "sendmail", "alice@example.com", input="Subject: big\r\n\r\n" + ("x" * 998 + "\r\n") * 150)
    assert big.returncode == 0, big.stderr
    assert any((data_dir / "queue.db-bodies").iterdir())  # a spooled body, made by root's command
    assert not_owned_by(data_dir, mail_user) == []
    listed = cli(config, "queue", "list")
    assert listed.returncode == 0 and "alice@example.com" in listed.stdout, listed
    assert not_owned_by(data_dir, mail_user) == []
    server = start_config(config, data_dir)
    try:
        assert "took over" not in server.wait_log("daemon started")
        [message] = [m for m in server.wait_messages("alice@example.com", 2) if b"Subject: from cron" in m]
        assert b"Return-Path: <root@mx.test.example>" in message  # still root's own mail
        assert not_owned_by(data_dir, mail_user) == []
    finally:
        assert "Traceback" not in server.stop()


def test_a_data_dir_the_user_cannot_reach_is_one_line(mail_user, tmp_path):
    # tmp_path's parents are root's and closed to others: the dropped server could not use it.
    config, _ = write_config(tmp_path, f'[server]\nuser = "{mail_user.pw_name}"\n', account=False)
    result = subprocess.run([*MAILBOAT, "serve", "--config", str(config)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("mailboat:")]
    assert errors == [f"mailboat: cannot start: {tmp_path / 'data'} is not usable by "
                      f"{mail_user.pw_name}:{grp.getgrgid(mail_user.pw_gid).gr_name}: a parent directory is "
                      "closed to it (chmod o+x the parents, or move data_dir, e.g. to /var/lib/mailboat)"]
    assert "Traceback" not in result.stderr


def test_not_root_it_must_already_be_that_user(mail_user):
    from mailboat.server import privileges

    # A child process that has dropped to the test user asks, as `mailboat serve` would.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(mail_user.pw_gid)
            os.setuid(mail_user.pw_uid)
            answers = [repr(privileges.target(mail_user.pw_name))]
            try:
                privileges.target("nobody")
            except privileges.PrivilegeError as exc:
                answers.append(str(exc))
            os.write(write, "\n".join(answers).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answers = pipe.read().splitlines()
    os.waitpid(pid, 0)
    assert answers == ["None", f"server.user is 'nobody', but mailboat runs as {mail_user.pw_name!r}, "
                               "not root: start it as root or as nobody"]


def test_a_log_file_made_as_root_is_written_by_every_worker(mail_user, top):
    # The workers open log.file again after the fork, as the user: it must be theirs.
    log_file = top / "mailboat.log"
    config, data_dir = write_config(top, f'[server]\nuser = "{mail_user.pw_name}"\nworkers = 2\n'
                                         f'[log]\nfile = "{log_file}"\n')
    server = start_config(config, data_dir)
    try:
        deadline = time.monotonic() + 20
        while log_file.read_text().count("daemon started") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        text = log_file.read_text()
        pids = {int(pid) for pid in re.findall(r"mailboat/master\[(\d+)\]: daemon started", text)}
        assert pids == {server.proc.pid, *children(server.proc.pid)}, text
        assert (log_file.stat().st_uid, log_file.stat().st_gid) == (mail_user.pw_uid, mail_user.pw_gid)
    finally:
        server.stop()
    assert "Traceback" not in log_file.read_text()
