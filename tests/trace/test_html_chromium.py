"""The HTML report rendered by headless Chromium: it loads, and the timeline shows every hop.

Skips when /usr/bin/chromium is missing, except under CI=true where that is a failure (SPEC).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from mailboat.trace.render import render_html
from mailboat.trace.timeline import analyse_message

DATA = Path(__file__).resolve().parent.parent / "data" / "received"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required under CI=true (apt-get install chromium)")
        pytest.skip("chromium not installed (/usr/bin/chromium); apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120,
        )


@pytest.mark.parametrize("name", ["block_m365_internal.eml", "block_unreadable_date.eml", "block_clock_skew.eml"])
def test_timeline_shows_every_hop(tmp_path: Path, name: str) -> None:
    trace = analyse_message((DATA / name).read_bytes())
    page = tmp_path / "report.html"
    page.write_text(render_html(trace), "utf-8")
    r = chromium("--dump-dom", page.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    assert '<svg id="timeline"' in dom
    indexes = re.findall(r'<g class="hop" data-index="(\d+)"', dom)
    assert indexes == [str(i) for i in range(1, len(trace.hops) + 1)]
    for t in trace.hops:
        assert f'<tr id="hop-{t.index}">' in dom
        assert (t.hop.by_host or "?")[:22] in dom


def test_screenshot_is_drawn(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(analyse_message((DATA / "block_nine_hour_delay.eml").read_bytes())), "utf-8")
    shot = tmp_path / "shot.png"
    r = chromium(f"--screenshot={shot}", "--window-size=1200,800", page.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
