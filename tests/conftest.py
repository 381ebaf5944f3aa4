"""Fixtures shared by every test directory (helpers live in mbtest.py)."""

from __future__ import annotations

import pytest

from mbtest import MAILBOAT, ON_CI, RunningServer, need_tool, start_server  # noqa: F401  (re-exported)


@pytest.fixture
def server(tmp_path):
    running = start_server(tmp_path)
    yield running
    log = running.stop()
    assert "Traceback" not in log, log


@pytest.fixture
def nsd(tmp_path):
    """Factory: nsd(zones) -> DnsServer on a free loopback port; stopped after the test."""
    from dnsserver import start_nsd

    servers = []

    def start(zones: dict[str, str], address: str = "127.0.0.1"):
        server = start_nsd(tmp_path / f"dns{len(servers)}", zones, address)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
