"""Golden corpus: every tests/data/received/*.json case parses to exactly its expected fields."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

import pytest

from mailboat.trace.parse import parse_received
from mailboat.trace.render import hop_fields

DATA = Path(__file__).resolve().parent.parent / "data" / "received"

CASES = sorted(DATA.glob("*.json"))
DOC_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32",
                                              "127.0.0.0/8")]


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case(path) -> None:
    case = json.loads(path.read_text("utf-8"))
    assert case["reason"].strip()
    got = hop_fields(parse_received(case["raw"]))
    assert set(got) == set(case["expected"])
    assert got == case["expected"]


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case_uses_documentation_addresses_only(path) -> None:
    raw = json.loads(path.read_text("utf-8"))["raw"]
    for literal in re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", raw):
        if re.search(rf"[\d.]{re.escape(literal)}|{re.escape(literal)}\.\d", raw):
            continue  # part of a longer dotted id (Exchange build numbers, Gmail ids)
        if any(int(octet) > 255 for octet in literal.split(".")):
            continue  # a version number such as Exchange's 14.3.487.0
        assert any(ipaddress.ip_address(literal) in net for net in DOC_NETS), literal
    for v6 in re.findall(r"(?<![\w:])(?:[0-9a-f]{1,4}:){2,7}[0-9a-f:]*[0-9a-f](?![\w:])", raw, re.I):
        if re.fullmatch(r"\d{1,2}:\d{2}(?::\d{2})?", v6):
            continue  # a time of day
        assert ipaddress.ip_address(v6.split("%")[0]) in DOC_NETS[3], v6
    for domain in re.findall(r"@([\w.-]+)", raw):
        if re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}", domain):
            continue  # "user@IP" (Yahoo, qmail): an address, checked above
        assert domain.endswith((".example", "example.com", "example.net", "example.org", "localhost")), domain


def test_parse_accepts_bytes_and_the_field_name() -> None:
    hop = parse_received(b"Received: from a.example.org (a.example.org [192.0.2.1])\r\n\tby b.example.com; "
                         b"Wed, 27 Mar 2024 15:02:58 +0000")
    assert (hop.from_ip, hop.by_host, hop.warnings) == ("192.0.2.1", "b.example.com", ())
