"""`mailboat dns-records` warns when the MX it prints would name a host that is not a FQDN."""

from __future__ import annotations

import subprocess
import sys

import pytest

MAILBOAT = [sys.executable, "-m", "mailboat"]


def dns_records(tmp_path, hostname: str, domain: str = "example.com") -> subprocess.CompletedProcess:
    config = tmp_path / "c.toml"
    config.write_text(f'hostname = "{hostname}"\ndata_dir = "data"\n[domains]\nlocal = ["example.com"]\n',
                      encoding="utf-8")
    return subprocess.run([*MAILBOAT, "dns-records", domain, "--config", str(config)], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("hostname", ["myhost", "localhost", "box.localdomain"])
def test_a_hostname_that_is_not_fully_qualified_gets_one_warning_line(tmp_path, hostname):
    result = dns_records(tmp_path, hostname)
    assert result.returncode == 0
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"mailboat: warning: hostname '{hostname}' is not a fully qualified domain name")
    assert "A/AAAA" in result.stderr and "hostname = " in result.stderr
    assert f"example.com. IN MX 10 {hostname}.\n" in result.stdout  # the records are printed all the same


def test_a_fully_qualified_hostname_gets_no_warning(tmp_path):
    result = dns_records(tmp_path, "mx.example.com")
    assert (result.returncode, result.stderr) == (0, "")
    assert "example.com. IN MX 10 mx.example.com.\n" in result.stdout


def test_an_international_domain_is_printed_in_its_ascii_form(tmp_path):
    result = dns_records(tmp_path, "MX.Bücher.Example", domain="Bücher.example")
    assert result.returncode == 0, result.stderr
    assert "xn--bcher-kva.example. IN MX 10 mx.xn--bcher-kva.example.\n" in result.stdout
