"""`trace --json` is always UTF-8 JSON, and names each message when it traces several.

Mail in the wild carries raw 8-bit headers (a latin-1 HELO name, a `for` address typed in a
legacy charset): those bytes are not UTF-8, and the JSON output replaces them with U+FFFD
instead of passing them through (SPEC "mailboat trace --json").
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailboat.cli.main import main

LATIN1 = (
    b"Received: from caf\xe9.example.org (caf\xe9.example.org [203.0.113.5])\r\n"
    b"\tby mx.example.net (Postfix) with SMTP id 4VLatin1\r\n"
    b"\tfor <b\xf6b@example.net>; Wed, 27 Mar 2024 15:02:58 +0000\r\n"
    b"Subject: caf\xe9\r\n\r\nbody\r\n"
)


class _Stdio:
    """sys.stdin / sys.stdout as bytes: stdout is a strict UTF-8 text layer over a BytesIO, so a
    string that cannot be encoded fails there instead of being smuggled out as raw bytes."""

    def __init__(self, data: bytes) -> None:
        self.stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="strict")
        self.raw = io.BytesIO()
        self.stdout = io.TextIOWrapper(self.raw, encoding="utf-8", errors="strict", write_through=True)

    def run(self, *args: str) -> tuple[int, bytes]:
        saved = sys.stdin, sys.stdout
        sys.stdin, sys.stdout = self.stdin, self.stdout
        try:
            code = main(["trace", *args])
            self.stdout.flush()
        finally:
            sys.stdin, sys.stdout = saved
        return code, self.raw.getvalue()


HEADER_BYTES = st.binary(max_size=120).map(lambda b: b.replace(b"\r", b" ").replace(b"\n", b" "))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(HEADER_BYTES, min_size=1, max_size=4), HEADER_BYTES)
def test_json_output_is_utf8_for_any_header_bytes(received: list[bytes], subject: bytes) -> None:
    date = b"; Wed, 27 Mar 2024 15:02:58 +0000"
    head = b"".join(b"Received: from " + r + b" by mx.example.net with SMTP" + date + b"\r\n" for r in received)
    message = head + b"Subject: " + subject + b"\r\nList-Id: " + subject + b"\r\n\r\nbody\r\n"
    code, out = _Stdio(message).run("-", "--json")
    assert code == 0
    doc = json.loads(out.decode("utf-8"))  # strict: raises on any byte that is not UTF-8
    assert len(doc["hops"]) == len(received)


def trace(*args: str) -> subprocess.CompletedProcess[bytes]:
    # LC_ALL=C: the locale that makes Python write undecodable header bytes back out raw
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONIOENCODING", "LANG", "LC_CTYPE")} | {"LC_ALL": "C"}
    return subprocess.run([sys.executable, "-m", "mailboat", "trace", *args], capture_output=True, timeout=60,
                          check=False, env=env)


def test_cli_invalid_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.eml"
    path.write_bytes(LATIN1)
    r = trace(str(path), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout.decode("utf-8"))
    hop = doc["hops"][0]
    assert hop["from_helo"] == "caf\ufffd.example.org" and hop["from_ip"] == "203.0.113.5"
    assert hop["for"] == "b\ufffdb@example.net"
    assert "\ufffd" in hop["raw"] and "\xe9" not in hop["raw"]
    text = trace(str(path))
    assert text.returncode == 0 and b"Traceback" not in text.stderr
    text.stdout.decode("utf-8")
    html = tmp_path / "report.html"
    r = trace(str(path), "--html", str(html))
    assert r.returncode == 0, r.stderr
    assert "caf\ufffd.example.org" in html.read_text("utf-8")


def test_maildir_json_names_each_file(tmp_path: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (tmp_path / "md" / sub).mkdir(parents=True)
    (tmp_path / "md" / "cur" / "1.eml").write_bytes(LATIN1)
    (tmp_path / "md" / "new" / "2.eml").write_bytes(LATIN1.replace(b"4VLatin1", b"4VSecond"))
    r = trace(str(tmp_path / "md"), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout.decode("utf-8"))
    assert [d["file"] for d in doc] == [str(tmp_path / "md" / "cur" / "1.eml"), str(tmp_path / "md" / "new" / "2.eml")]
    assert [d["hops"][0]["id"] for d in doc] == ["4VLatin1", "4VSecond"]


def test_directory_of_one_message_is_still_an_array(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "m.eml").write_bytes(LATIN1)
    doc = json.loads(trace(str(tmp_path / "one"), "--json").stdout.decode("utf-8"))
    assert isinstance(doc, list) and doc[0]["file"] == str(tmp_path / "one" / "m.eml")


def test_mbox_json_names_path_and_index(tmp_path: Path) -> None:
    box = tmp_path / "inbox.mbox"
    sep = b"From MAILER-DAEMON Wed Mar 27 15:02:58 2024\n"
    box.write_bytes(b"".join(sep + LATIN1.replace(b"4VLatin1", b"4V%d" % i) + b"\n" for i in range(1, 4)))
    r = trace(str(box), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout.decode("utf-8"))
    assert [d["file"] for d in doc] == [f"{box}#1", f"{box}#2", f"{box}#3"]
    assert [d["hops"][0]["id"] for d in doc] == ["4V1", "4V2", "4V3"]
    keys = {"file", "hops", "total_seconds", "findings"}
    assert all(set(d) == keys for d in doc)
