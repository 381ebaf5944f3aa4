"""Replays the atheris harness's seeds and every saved finding (fuzz/seeds, fuzz/regressions)
through the same invariants (fuzz/fuzz_engine.py `check`), without atheris.

A crash the fuzzer finds is copied into fuzz/regressions/<short-name> (the raw input file
libFuzzer wrote as crash-<sha1>) once fixed, and from then on runs here on every `make test`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
_spec = importlib.util.spec_from_file_location("fuzz_engine", FUZZ / "fuzz_engine.py")
fuzz_engine = importlib.util.module_from_spec(_spec)
sys.modules["fuzz_engine"] = fuzz_engine  # dataclasses look their module up there
_spec.loader.exec_module(fuzz_engine)

INPUTS = sorted(p for d in ("seeds", "regressions") for p in (FUZZ / d).glob("*") if p.is_file()
                and not p.name.startswith(".") and p.suffix != ".md")


@pytest.mark.parametrize("path", INPUTS, ids=[f"{p.parent.name}/{p.name}" for p in INPUTS])
def test_saved_fuzz_input(path: Path) -> None:
    fuzz_engine.test_one_input(path.read_bytes())


@pytest.mark.parametrize("stream", [
    # The smuggling family as one stream each: never a second message from one DATA.
    b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@y>\r\nDATA\r\nbody" + end +
    b"MAIL FROM:<s@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nsmuggled\r\n.\r\n"
    for end in (b"\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\n", b"\r\n\x00.\r\n", b"\r.\r", b"\r\n.\r\r\n")
])
@pytest.mark.parametrize("flags", [0, 1, 8])
def test_smuggling_streams_hold_the_invariants(stream: bytes, flags: int) -> None:
    fuzz_engine.test_one_input(bytes([flags, 3, 7, 0, 50, 0, 90, 0]) + stream)
