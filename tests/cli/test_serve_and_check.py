"""`mailboat check-config`, `mailboat serve` and `mailboat user` as a user runs them."""

from __future__ import annotations

import socket
import subprocess
import sys

MAILBOAT = [sys.executable, "-m", "mailboat"]


def run(*args: str, input: str | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*MAILBOAT, *args], capture_output=True, text=True, input=input, cwd=cwd, timeout=60)


def test_check_config_ok(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text('hostname = "mx.example.com"\n[domains]\nlocal = ["example.com"]\n')
    result = run("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: ok")


def test_check_config_one_line_per_error_with_key_path(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[listener]]\nkind = "smtp"\naddress = "127.0.0.1:25"\n'
                    '[[listener]]\nkind = "smtp"\naddress = "127.0.0.1:26"\ntls = "sometimes"\n'
                    '[queue]\nmax_lifetime = "forever"\n')
    result = run("check-config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"{path}: listener[1].tls: ")
    assert lines[1].startswith(f"{path}: queue.max_lifetime: ")
    assert "Traceback" not in result.stderr


def test_check_config_missing_file(tmp_path):
    result = run("check-config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"{tmp_path / 'nope.toml'}: no such file: give the path of a TOML configuration"


def test_serve_with_a_bad_config_is_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[relay]\nmx_port = 99999\n")
    result = run("serve", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "relay.mx_port" in result.stderr


def test_serve_on_a_busy_port_is_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = tmp_path / "busy.toml"
        path.write_text(f'data_dir = "data"\n[[listener]]\nkind = "smtp"\naddress = "127.0.0.1:{port}"\n')
        result = run("serve", "--config", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("mailboat: cannot start:")


def test_serve_with_an_unusable_data_dir_names_it_not_the_port(tmp_path):
    (tmp_path / "file").write_text("a file where a directory should be")
    path = tmp_path / "data.toml"
    path.write_text(f'data_dir = "{tmp_path / "file" / "data"}"\n'
                    '[[listener]]\nkind = "smtp"\naddress = "127.0.0.1:0"\n')
    result = run("serve", "--config", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("mailboat: cannot start:") and str(tmp_path / "file") in last, last
    assert "port" not in last, last


def test_usage_errors_exit_2(tmp_path):
    assert run("frobnicate").returncode == 2
    result = run("user", "add", "not-an-address", "--password-stdin", "--config", str(tmp_path / "c.toml"),
                 input="password123\n")
    assert result.returncode == 2


def test_user_commands_round_trip(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('data_dir = "data"\n[domains]\nlocal = ["example.com"]\n')
    assert run("user", "add", "Alice@Example.com", "--password-stdin", "--config", str(config),
               input="password123\n").stdout == "added alice@example.com\n"
    again = run("user", "add", "alice@example.com", "--password-stdin", "--config", str(config), input="password123\n")
    assert again.returncode == 1 and "already exists" in again.stderr
    listed = run("user", "list", "--config", str(config))
    assert listed.stdout.startswith("alice@example.com\t")
    assert run("user", "passwd", "alice@example.com", "--password-stdin", "--config", str(config),
               input="new-password\n").returncode == 0
    assert run("user", "del", "alice@example.com", "--config", str(config)).returncode == 0
    assert run("user", "list", "--config", str(config)).stdout == ""
    missing = run("user", "del", "alice@example.com", "--config", str(config))
    assert missing.returncode == 2 and missing.stderr.startswith("mailboat: no account alice@example.com")


def test_password_prompt_needs_a_terminal(tmp_path):
    (tmp_path / "c.toml").write_text('data_dir = "data"\n[domains]\nlocal = ["example.com"]\n')
    result = run("user", "add", "bob@example.com", "--config", str(tmp_path / "c.toml"), input="")
    assert result.returncode == 2 and "--password-stdin" in result.stderr


def test_embedded_default_starts_and_prints_how_to_send(tmp_path):
    import smtplib
    import time

    import pytest

    for port in (2525, 2587, 2465):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip(f"port {port} is in use on this machine")
    proc = subprocess.Popen([*MAILBOAT, "serve"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        text = "".join(proc.stdout.readline() for _ in range(8))
        assert "smtp         127.0.0.1:2525" in text
        assert "submission   127.0.0.1:2587" in text
        assert "submissions  127.0.0.1:2465" in text
        assert f"data:   {tmp_path / 'mailboat-data'}" in text
        assert "swaks --server 127.0.0.1:2525 --to postmaster@localhost" in text
        with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as client:
            client.sendmail("me@example.org", ["postmaster@localhost"], "Subject: hello\r\n\r\nfirst\r\n")
            client.mail("me@example.org")
            code, reply = client.rcpt("someone@example.net")
        assert (code, reply[:5]) == (554, b"5.7.1")  # no unauthenticated relay, not even from loopback
        new = tmp_path / "mailboat-data" / "mail" / "localhost" / "postmaster" / "new"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (new.exists() and any(new.iterdir())):
            time.sleep(0.1)
        [delivered] = list(new.iterdir())
        assert delivered.read_bytes().endswith(b"Subject: hello\r\n\r\nfirst\r\n")
        assert (tmp_path / "mailboat-data" / "tls" / "cert.pem").exists()
    finally:
        proc.terminate()
        proc.wait(15)


def test_an_unknown_server_user_is_one_line_from_check_config_and_serve(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('data_dir = "data"\n[server]\nuser = "no-such-user-here"\n')
    checked = run("check-config", str(path))
    assert checked.returncode == 2
    assert checked.stderr == (f"{path}: server.user: no such user 'no-such-user-here': create it "
                              "(useradd --system no-such-user-here) or name an existing one\n")
    served = run("serve", "--config", str(path))
    assert served.returncode == 2
    assert served.stderr.count("\n") == 1 and "server.user: no such user 'no-such-user-here'" in served.stderr
    assert not (tmp_path / "data").exists()


def _banner_and_log(tmp_path, extra: str, config_arg: str | None = None):
    """Start `mailboat serve` with `extra`, return (the whole banner, the log up to the start line)."""
    from mbtest import NO_DNS, start_config

    config = tmp_path / "mailboat.toml"
    config.write_text(f'hostname = "mx.test.example"\ndata_dir = "data"\n[[listener]]\nkind = "smtp"\n'
                      f'address = "127.0.0.1:0"\n[domains]\nlocal = ["example.com"]\n{extra}\n{NO_DNS}')
    server = start_config(config, tmp_path / "data")
    try:
        log = server.wait_log("daemon started")
        banner = server.banner + "".join(server.proc.stdout.readline() for _ in range(3))
    finally:
        server.stop()
    return banner, log


def test_banner_follows_postmaster_through_its_alias(tmp_path):
    banner, log = _banner_and_log(tmp_path, '[aliases]\n"postmaster@example.com" = ["alice@example.com"]\n')
    assert "--to postmaster@example.com\n" in banner
    assert f"  then look in {tmp_path / 'data' / 'mail' / 'example.com' / 'alice'}/new/\n" in banner
    assert "/postmaster/" not in banner
    assert f"configuration {tmp_path / 'mailboat.toml'}\n" in log


def test_banner_with_lmtp_delivery_names_the_lmtp_target(tmp_path):
    banner, _ = _banner_and_log(tmp_path, '[delivery]\nlmtp = "127.0.0.1:24"\n')
    assert "  then it is delivered over LMTP to 127.0.0.1:24\n" in banner
    assert "look in" not in banner
