"""`mailboat queue ...` and `mailboat mailq` as real subprocesses on a real SQLite queue."""

import json
import re
import subprocess
import sys

import pytest

MAILBOAT = [sys.executable, "-m", "mailboat"]


@pytest.fixture
def mb(tmp_path):
    config = tmp_path / "mailboat.toml"
    config.write_text(f'hostname = "mx.example.com"\ndata_dir = "{tmp_path / "data"}"\n')

    def cli(*args, input=None):
        return subprocess.run([*MAILBOAT, *args, "--config", str(config)], input=input, capture_output=True,
                              text=True, timeout=60)
    return cli


def submit(mb, *rcpts, sender="bob@example.org"):
    assert mb("sendmail", "-f", sender, *rcpts, input="Subject: s\n\nbody\n").returncode == 0
    return json.loads(mb("queue", "list", "--json").stdout)[-1]["queue_id"]


def test_empty_queue(mb):
    for command in (("mailq",), ("queue", "list")):
        result = mb(*command)
        assert result.returncode == 0 and result.stdout == "Mail queue is empty\n"
    assert json.loads(mb("queue", "list", "--json").stdout) == []


def test_mailq_layout(mb):
    first = submit(mb, "a@example.net", "b@example.net")
    second = submit(mb, "c@example.net", sender="")
    out = mb("mailq").stdout.splitlines()
    assert out[0].startswith("-Queue ID-") and out[-1] == "-- 1 Kbytes in 2 Requests."
    row = re.compile(r"^(\w{14})[ !] +(\d+) \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d  (\S+)$")
    rows = [m.groups() for m in map(row.match, out) if m]
    assert [(r[0], r[2]) for r in rows] == [(first, "bob@example.org"), (second, "MAILER-DAEMON")]
    assert out[2].strip() == "a@example.net" and out[3].strip() == "b@example.net"
    assert out[2].index("a@") == out[1].index("bob@")  # recipients under the sender column


def test_show_and_actions(mb):
    qid = submit(mb, "a@example.net")
    show = mb("queue", "show", qid)
    assert show.returncode == 0 and f"queue id:      {qid}" in show.stdout and "<a@example.net>: pending" in show.stdout
    assert "  Subject: s" in show.stdout
    assert mb("queue", "hold", qid).stdout == f"{qid}: on hold\n"
    assert "!" in mb("mailq").stdout.splitlines()[1][:15]
    held = mb("queue", "retry", qid)
    assert held.returncode == 1 and "on hold" in held.stderr
    assert mb("queue", "release", qid).returncode == 0
    assert mb("queue", "retry", qid).stdout == f"{qid}: due for delivery now\n"
    assert mb("queue", "retry", "--all").stdout == "1 message due for delivery now\n"
    assert mb("queue", "delete", qid).returncode == 0
    assert mb("mailq").stdout == "Mail queue is empty\n"
    journey = json.loads(mb("journey", qid, "--json").stdout)
    assert journey["status"] == "deleted"
    assert [e["kind"] for e in journey["events"]] == ["queued", "hold", "release", "retry", "retry", "deleted"]


@pytest.mark.parametrize("verb", ["show", "retry", "delete", "hold", "release"])
def test_unknown_id_is_one_line_exit_1(mb, verb):
    submit(mb, "a@example.net")  # the queue exists; the id does not
    for qid in ("ZZZZZZZZZZZZZZ", "../etc/passwd"):
        result = mb("queue", verb, qid)
        assert result.returncode == 1 and result.stdout == ""
        assert len(result.stderr.splitlines()) == 1 and "no message" in result.stderr


def test_usage_errors_exit_2(mb):
    assert mb("queue", "retry").returncode == 2
    assert mb("queue", "frobnicate").returncode == 2


def test_large_message_spooled_by_sendmail_shows_and_deletes(mb, tmp_path):
    """A message over the spool threshold (queue/bodies.py) queued by `mailboat sendmail` with no
    server running: its body is a file beside queue.db, `queue show` reads it, and `queue
    delete` removes the file with the record."""
    body = "Subject: big\n\n" + ("y" * 78 + "\n") * 2000  # ~160 KB
    assert mb("sendmail", "-f", "bob@example.org", "a@example.net", input=body).returncode == 0
    [item] = json.loads(mb("queue", "list", "--json").stdout)
    spool = tmp_path / "data" / "queue.db-bodies"
    assert [p.name for p in spool.iterdir()] == [item["queue_id"]]
    assert item["size"] > 160_000
    show = mb("queue", "show", item["queue_id"])
    assert show.returncode == 0 and "  Subject: big" in show.stdout
    assert mb("queue", "delete", item["queue_id"]).returncode == 0
    assert mb("mailq").stdout == "Mail queue is empty\n" and list(spool.iterdir()) == []
