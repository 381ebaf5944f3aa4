"""`mailboat trace` end to end, run as a subprocess like a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data" / "received"
BLOCKS = sorted(DATA.glob("block_*.eml"))


def trace(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailboat", "trace", *args],
        input=stdin.decode() if stdin is not None else None, capture_output=True, text=True, timeout=60,
    )


def test_text_table() -> None:
    r = trace(str(DATA / "block_nine_hour_delay.eml"))
    assert r.returncode == 0, r.stderr
    assert "mx.example.net" in r.stdout and "+9 h 2 min" in r.stdout
    assert "long_delay" in r.stdout and "queue of mx.example.net" in r.stdout


def test_json_matches_spec_shape() -> None:
    r = trace(str(DATA / "block_mailing_list_forward.eml"), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) == {"hops", "total_seconds", "findings"}
    keys = {"index", "from_helo", "from_rdns", "from_ip", "by_host", "with_protocol", "tls", "id", "for", "via",
            "timestamp", "delay_seconds", "raw", "warnings"}
    assert all(set(h) == keys for h in doc["hops"])
    assert [h["index"] for h in doc["hops"]] == [1, 2, 3, 4]
    assert doc["hops"][0]["timestamp"] == "2024-03-27T15:02:59Z" and doc["hops"][0]["delay_seconds"] is None
    assert doc["hops"][2]["from_ip"] == "198.51.100.25" and doc["hops"][2]["for"] == "bob@example.com"
    assert doc["total_seconds"] == 11.0  # from the Date header (15:02:58) to the last hop (15:03:09)
    assert all(set(f) == {"kind", "hop", "message"} for f in doc["findings"])
    assert {"forwarded", "spf_broken_by_forward", "dkim_body_modified"} <= {f["kind"] for f in doc["findings"]}


def test_stdin() -> None:
    r = trace("-", "--json", stdin=(DATA / "block_clock_skew.eml").read_bytes())
    assert r.returncode == 0, r.stderr
    assert [f["kind"] for f in json.loads(r.stdout)["findings"]] == ["clock_skew"]


def test_html_report(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    r = trace(str(DATA / "block_m365_internal.eml"), "--html", str(out))
    assert r.returncode == 0, r.stderr
    page = out.read_text("utf-8")
    assert page.count('<g class="hop"') == 5 and "<svg" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page
    assert "<script" not in page and "<link" not in page


def mbox(tmp_path: Path) -> Path:
    path = tmp_path / "box.mbox"
    with path.open("wb") as f:
        for block in BLOCKS:
            f.write(b"From MAILER-DAEMON Wed Mar 27 15:02:58 2024\n" + block.read_bytes().rstrip(b"\n") + b"\n\n")
    return path


def test_mbox_summary(tmp_path: Path) -> None:
    r = trace(str(mbox(tmp_path)), "--summary", "--json")
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)
    assert stats["messages"] == len(BLOCKS) == 5
    assert stats["hops"] == 4 + 4 + 4 + 5 + 3
    assert stats["servers"]["mail.example.com"]["median_delay_seconds"] == 7.0  # 7 s, 1 s and 9 h
    assert stats["findings"]["long_delay"] == 1 and stats["findings"]["unparsable"] == 1
    assert 0 < stats["hops_without_tls"] < 1
    text = trace(str(mbox(tmp_path)), "--summary")
    assert text.returncode == 0 and "Median delay per receiving server" in text.stdout
    assert "hops without TLS" in text.stdout


def test_maildir_summary(tmp_path: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (tmp_path / "md" / sub).mkdir(parents=True)
    for i, block in enumerate(BLOCKS):
        (tmp_path / "md" / ("new" if i % 2 else "cur") / f"{i}.eml").write_bytes(block.read_bytes())
    r = trace(str(tmp_path / "md"), "--summary", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["messages"] == 5


def test_mbox_without_summary_traces_each(tmp_path: Path) -> None:
    r = trace(str(mbox(tmp_path)), "--json")
    assert r.returncode == 0
    assert len(json.loads(r.stdout)) == 5


def test_missing_file_is_one_line_exit_1() -> None:
    r = trace("/nonexistent/message.eml")
    assert r.returncode == 1
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("mailboat: trace: cannot read /nonexistent/message.eml")
    assert "Traceback" not in r.stderr


def test_empty_stdin_and_html_on_mbox_are_one_line_errors(tmp_path: Path) -> None:
    r = trace("-", stdin=b"")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    r = trace(str(mbox(tmp_path)), "--html", str(tmp_path / "x.html"))
    assert r.returncode == 2 and "use --summary" in r.stderr and "Traceback" not in r.stderr


def test_usage_error_exit_2() -> None:
    r = trace()
    assert r.returncode == 2 and "Traceback" not in r.stderr
