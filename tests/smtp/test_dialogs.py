"""Run every dialogs/*.dialog in-process against ServerConnection with the fake application."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialog import DialogError, InProcessTransport, parse_dialog, run_dialog, run_dialog_file

DIALOGS = sorted((Path(__file__).parent / "dialogs").glob("*.dialog"))


@pytest.mark.parametrize("path", DIALOGS, ids=[p.stem for p in DIALOGS])
def test_dialog(path: Path) -> None:
    run_dialog_file(path, InProcessTransport)


def test_there_are_dialogs() -> None:
    assert len(DIALOGS) >= 8


def test_runner_reports_mismatches() -> None:
    options, steps = parse_dialog("S: 220 *\nC: NOOP\nS: 500 *\n")
    with pytest.raises(DialogError, match=":3: expected '500 \\*'"):
        run_dialog(steps, InProcessTransport(options))


def test_runner_detects_missing_close() -> None:
    _, steps = parse_dialog("S: 220 *\nS: <CLOSED>\n")
    with pytest.raises(DialogError):
        run_dialog(steps, InProcessTransport())
