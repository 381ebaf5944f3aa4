"""`mailboat check-config` as a user runs it: every error of a file at once, one line each.

Each file below holds several mistakes of different kinds (schema, cross-field, files, listener
clashes, addresses and domain names); the command must name each one with its key path, print
nothing else, exit 2, and never show a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MAILBOAT = [sys.executable, "-m", "mailboat"]


def check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*MAILBOAT, "check-config", str(path)], capture_output=True, text=True, timeout=60)


def errors_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "mailboat.toml"
    path.write_text(text, encoding="utf-8")
    result = check(path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    return [line.removeprefix(f"{path}: ") for line in lines]


def assert_lines(lines: list[str], expected: list[str]) -> None:
    """Each expected prefix matches exactly one line, and no line is left over."""
    for prefix in expected:
        matching = [line for line in lines if line.startswith(prefix)]
        assert len(matching) == 1, (prefix, lines)
    assert len(lines) == len(expected), lines


def test_schema_and_semantic_errors_are_reported_together(tmp_path):
    # Before: a schema error hid the unreadable files and the clashing listeners.
    lines = errors_of(tmp_path, """
hostname = "mx.example.com"
[[listener]]
kind = "smtp"
address = "0.0.0.0:2525"
[[listener]]
kind = "submission"
address = "127.0.0.1:2525"
tls = "sometimes"
[[listener]]
kind = "submissions"
address = "127.0.0.1:2465"
tls = "optional"
[tls]
cert = "/nonexistent/cert.pem"
key = "/nonexistent/key.pem"
[[dkim.sign]]
domain = "example.com"
selector = "mail"
key = "missing.key"
[queue]
max_lifetime = "forever"
""")
    assert_lines(lines, [
        "listener[1].tls: Input should be",
        "listener[2].tls: a submissions listener always uses tls = \"implicit\"",
        "queue.max_lifetime: 'forever' is not a duration",
        "tls.cert: cannot read /nonexistent/cert.pem",
        "tls.key: cannot read /nonexistent/key.pem",
        f"dkim.sign[0].key: cannot read {tmp_path / 'missing.key'}: make one with 'mailboat dkim keygen example.com'",
        "listener[1].address: 127.0.0.1:2525 clashes with listener[0] (0.0.0.0:2525)",
    ])


def test_a_listener_error_does_not_hide_its_tls_error(tmp_path):
    # Before: the submissions/tls check ran only once every key of the listener was valid.
    lines = errors_of(tmp_path, '[[listener]]\nkind = "submissions"\naddress = "nowhere"\ntls = "optional"\n'
                                '[[listener]]\nkind = "lmtp"\naddress = "127.0.0.1:24"\ntls = "implicit"\n')
    assert_lines(lines, [
        "listener[0].address: 'nowhere' is not host:port",
        "listener[0].tls: a submissions listener always uses tls = \"implicit\" (RFC 8314)",
        "listener[1].tls: tls = \"implicit\" is for submissions listeners, not lmtp",
    ])


def test_addresses_and_domain_names_are_checked(tmp_path):
    lines = errors_of(tmp_path, """
hostname = "mx.example.com;"
[domains]
local = ["example.com", "exa_mple.com", "bad..example", "192.0.2.1"]
[aliases]
"postmaster" = ["alice@example.com"]
"abuse@example.com" = ["alice", "bob@example.com", "carol@-bad.example", "two words@example.com"]
"sales@example.com" = "dave"
"Sales@Example.COM" = "erin@example.com"
[[route]]
domain = "example.net trailing"
smarthost = "127.0.0.1:2525"
[[route]]
domain = "example.org"
smarthost = "127.0.0.1:2525"
[[route]]
domain = "EXAMPLE.org."
smarthost = "127.0.0.1:2526"
[[dkim.sign]]
domain = "localhost"
selector = "mail"
key = "/etc/hostname"
""")
    assert_lines(lines, [
        "hostname: 'mx.example.com;' is not a domain name such as \"mx.example.com\": ';' is not allowed",
        "domains.local[1]: 'exa_mple.com' is not a domain name such as \"example.com\": '_' is not allowed",
        "domains.local[2]: 'bad..example' is not a domain name such as \"example.com\": it has an empty label",
        "domains.local[3]: '192.0.2.1' is not a domain name such as \"example.com\": an IP address",
        "aliases.postmaster: 'postmaster' is not a full address: write local@domain, "
        "e.g. \"postmaster@example.com\" (bare local parts are not accepted)",
        "aliases.\"abuse@example.com\"[0]: 'alice' is not a full address: write local@domain",
        "aliases.\"abuse@example.com\"[2]: 'carol@-bad.example': its domain '-bad.example' is not a domain name",
        "aliases.\"abuse@example.com\"[3]: 'two words@example.com' is not an address such as "
        "\"alice@example.com\": malformed local part",
        "aliases.\"sales@example.com\": 'dave' is not a full address",
        "aliases.\"Sales@Example.COM\": the same address as aliases.\"sales@example.com\"",
        "route[0].domain: 'example.net trailing' is not a domain name such as \"example.com\": ' ' is not allowed",
        "route[2].domain: EXAMPLE.org. is also route[1]: keep one route per domain",
        "dkim.sign[0].domain: 'localhost' is not a fully qualified domain name such as \"example.com\"",
    ])


def test_a_toml_syntax_error_is_alone_with_its_line_and_column(tmp_path):
    lines = errors_of(tmp_path,
                      'hostname = "mx.example.com"\n[domains]\nlocal = ["example.com"\n[relay]\nmx_port = 0\n')
    assert len(lines) == 1 and lines[0].startswith("not valid TOML: "), lines
    assert "line 4, column" in lines[0], lines


def test_international_names_are_accepted_and_normalised(tmp_path):
    path = tmp_path / "idn.toml"
    path.write_text('hostname = "MX.Bücher.example."\n[domains]\nlocal = ["Bücher.Example", "xn--bcher-kva.example", '
                    '"localhost"]\n[aliases]\n"josé@bücher.example" = ["用户@example.com"]\n', encoding="utf-8")
    result = check(path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("local domains: xn--bcher-kva.example, localhost)"), result.stdout

    from mailboat.config import load_config

    config = load_config(path)
    assert config.hostname == "mx.xn--bcher-kva.example"
    assert config.aliases == {"josé@xn--bcher-kva.example": ["用户@example.com"]}

    path.write_text('hostname = "myhost"\n', encoding="utf-8")  # one label: a machine's own name
    assert check(path).returncode == 0

