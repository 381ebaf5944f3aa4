"""Debian's Dovecot as a real peer: LMTP delivery into it, and IMAP over mailboat's own Maildirs.

Dovecot runs unprivileged-config in tmp (`dovecot -F -c CONF`): its own base_dir, state_dir and
log; LMTP and IMAP on free loopback ports; users from a passwd-file; Maildirs laid out as
mailboat lays them out ({data_dir}/mail/{domain}/{local}), so the same Dovecot can serve either
what it stored itself (LMTP) or what mailboat stored (Maildir transport). Dovecot never touches
mail as root ("Mail access not allowed for root"): under root the mail user is `nobody`, the mail
tree lives in a world-traversable temporary directory and is handed to `nobody`, as a real
installation runs mailboat and Dovecot under one mail user.
"""

from __future__ import annotations

import asyncio
import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from mailboat.delivery.lmtp import LmtpTransport
from mailboat.delivery.maildir import MaildirTransport
from mailboat.delivery.outcome import RecipientState
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.routing.route import Lmtp, Maildir

from interop_support import need_tool

pytestmark = pytest.mark.interop

CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = {me}
default_internal_group = {my_group}
default_login_user = {login}
first_valid_uid = 0
first_valid_gid = 0
mail_uid = {user}
mail_gid = {group}
mail_location = maildir:{mail}/%d/%n
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dovecot exited: {log.read_text() if log.exists() else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"dovecot did not listen on {port}")


def _mail_user() -> tuple[str, str]:
    if os.getuid() == 0:
        return "nobody", grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def hand_over(mail_root: Path) -> None:
    """Give the mail tree to the mail user (a no-op when not root)."""
    if os.getuid() == 0:
        entry = pwd.getpwnam("nobody")
        for path in [mail_root, *mail_root.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid)


@pytest.fixture
def mail_root():
    """Where the Maildirs live: {mail_root}/{domain}/{local}, reachable by the mail user."""
    top = Path(tempfile.mkdtemp(prefix="mailboat-dovecot-"))
    top.chmod(0o755)
    (top / "mail").mkdir()
    yield top / "mail"
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def dovecot(tmp_path):
    """Factory: dovecot(mail_root, users) -> (lmtp_port, imap_port)."""
    binary = need_tool("dovecot")
    need_tool("doveconf")
    procs: list[tuple[subprocess.Popen, Path]] = []

    def start(mail_root: Path, users: list[str]) -> tuple[int, int]:
        root = tmp_path / f"dovecot{len(procs)}"
        for sub in ("run", "state"):
            (root / sub).mkdir(parents=True)
        (root / "passwd").write_text("".join(f"{user}:{{PLAIN}}secret:::::\n" for user in users))
        user, group = _mail_user()
        login = user if os.getuid() != 0 else "nobody"
        hand_over(mail_root)
        lmtp, imap = _free_port(), _free_port()
        conf = root / "dovecot.conf"
        me, my_group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
        conf.write_text(CONF.format(root=root, mail=mail_root, user=user, group=group, login=login, me=me,
                                    my_group=my_group,
                                    imap=imap, lmtp=lmtp))
        proc = subprocess.Popen([binary, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append((proc, root))
        _wait_port(imap, proc, root / "dovecot.log")
        _wait_port(lmtp, proc, root / "dovecot.log")
        return lmtp, imap

    yield start
    for proc, _ in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def imap_messages(port: int, user: str) -> list[bytes]:
    client = imaplib.IMAP4("127.0.0.1", port)
    try:
        client.login(user, "secret")
        status, data = client.select("INBOX", readonly=True)
        assert status == "OK", data
        count = int(data[0])
        found = []
        for number in range(1, count + 1):
            status, parts = client.fetch(str(number), "(RFC822)")
            found.append(parts[0][1])
        return found
    finally:
        client.logout()


def test_lmtp_delivery_into_dovecot_then_imap(dovecot, mail_root) -> None:
    lmtp, imap = dovecot(mail_root, ["alice@example.com", "bob@example.com"])
    message = b"From: s@x.example\r\nSubject: via LMTP\r\n\r\nHello Dovecot\r\n.dot\r\n"
    rcpts = [Recipient("alice@example.com"), Recipient("nobody@example.com"), Recipient("bob@example.com")]

    async def main():
        transport = LmtpTransport("mx.test.example", target=f"127.0.0.1:{lmtp}")
        first = await transport.deliver(Envelope("s@x.example", tuple(rcpts)), message, rcpts, Lmtp(""))
        second = await transport.deliver(Envelope("s@x.example", tuple(rcpts[:1])), b"Subject: 2\r\n\r\n2\r\n",
                                         rcpts[:1], Lmtp(""))
        await transport.close()
        return first, second

    first, second = asyncio.run(main())
    states = {o.recipient: (o.state, o.reply_code) for o in first}
    assert states["alice@example.com"] == (RecipientState.DELIVERED, 250)
    assert states["bob@example.com"] == (RecipientState.DELIVERED, 250)
    assert states["nobody@example.com"][0] is RecipientState.FAILED
    assert states["nobody@example.com"][1] == 550
    assert second[0].state is RecipientState.DELIVERED
    seen = imap_messages(imap, "alice@example.com")
    assert len(seen) == 2 and b"Hello Dovecot\r\n.dot\r\n" in seen[0]
    assert b"Return-Path: <s@x.example>" in seen[0]  # Dovecot's LMTP adds it from MAIL FROM
    assert len(imap_messages(imap, "bob@example.com")) == 1


def test_dovecot_imap_serves_mailboats_own_maildirs(dovecot, mail_root) -> None:
    # mailboat's default layout is {data_dir}/mail/{domain}/{local}: point mail_location at it.
    transport = MaildirTransport(hostname="mx.test.example")
    rcpt = Recipient("alice@example.com")
    for n in range(3):
        got = asyncio.run(transport.deliver(Envelope("s@x.example", (rcpt,)),
                                            f"Subject: maildir {n}\r\n\r\nbody {n}\r\n".encode(), [rcpt],
                                            Maildir(str(mail_root / "example.com" / "alice"))))
        assert got[0].state is RecipientState.DELIVERED
    _, imap = dovecot(mail_root, ["alice@example.com"])
    seen = imap_messages(imap, "alice@example.com")
    assert [m.split(b"Subject: ")[1].split(b"\r\n")[0] for m in seen] == [b"maildir 0", b"maildir 1", b"maildir 2"]
    assert all(b"Delivered-To: alice@example.com" in m for m in seen)
