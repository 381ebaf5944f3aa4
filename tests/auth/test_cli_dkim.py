"""`mailboat dkim keygen` and `mailboat dns-records` as a user runs them."""

from __future__ import annotations

import re
import stat
import subprocess
import sys

from mailboat.auth.dkim.sign import load_key

MAILBOAT = [sys.executable, "-m", "mailboat"]


def run(tmp_path, *args):
    return subprocess.run([*MAILBOAT, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_keygen_writes_private_key_0600_and_prints_record(tmp_path):
    done = run(tmp_path, "dkim", "keygen", "example.com", "--selector", "s2026")
    assert done.returncode == 0, done.stderr
    path = tmp_path / "mailboat-data" / "dkim" / "example.com.s2026.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert re.fullmatch(r's2026\._domainkey\.example\.com\. IN TXT '
                        r'"v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]+"( "[A-Za-z0-9+/=]+")*\n',
                        done.stdout)
    key = load_key("example.com", "s2026", path)
    published = "".join(re.findall(r'"([^"]*)"', done.stdout))
    assert published == key.dns_record()
    again = run(tmp_path, "dkim", "keygen", "example.com", "--selector", "s2026")
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr


def test_keygen_ed25519_to_chosen_file(tmp_path):
    done = run(tmp_path, "dkim", "keygen", "example.org", "--type", "ed25519", "--out", str(tmp_path / "k" / "ed.pem"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('mail._domainkey.example.org. IN TXT "v=DKIM1; k=ed25519; p=')
    assert stat.S_IMODE((tmp_path / "k" / "ed.pem").stat().st_mode) == 0o600


def test_keygen_bad_input_is_one_line_usage_error(tmp_path):
    for args in (["not_a domain"], ["example.com", "--selector", "bad selector"], ["example.com", "--bits", "512"]):
        done = run(tmp_path, "dkim", "keygen", *args)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_dns_records(tmp_path):
    assert run(tmp_path, "dkim", "keygen", "example.com", "--out", str(tmp_path / "mail.key")).returncode == 0
    (tmp_path / "mailboat.toml").write_text(
        'hostname = "mx.example.com"\n[domains]\nlocal = ["example.com"]\n'
        f'[[dkim.sign]]\ndomain = "example.com"\nselector = "mail"\nkey = "{tmp_path / "mail.key"}"\n')
    done = run(tmp_path, "dns-records", "example.com")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "example.com. IN MX 10 mx.example.com." in out
    assert 'example.com. IN TXT "v=spf1 mx -all"' in out
    assert 'mail._domainkey.example.com. IN TXT "v=DKIM1; k=rsa; p=' in out
    assert '_dmarc.example.com. IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.com"' in out
    assert '_mta-sts.example.com. IN TXT "v=STSv1; id=' in out and "_smtp._tls.example.com." in out
    other = run(tmp_path, "dns-records", "example.net")
    assert "not in [domains].local" in other.stdout and "mailboat dkim keygen example.net" in other.stdout
