"""Configuration loading: defaults, key-path errors, relative paths, embedded default."""

from pathlib import Path

import pytest

from mailboat.config import ConfigError, default_config, load_config
from mailboat.config.schema import parse_duration


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mailboat.toml"
    path.write_text(text)
    return path


def test_embedded_default_matches_spec(tmp_path):
    config = default_config(tmp_path)
    assert [(li.kind, li.address, li.tls, li.auth) for li in config.listener] == [
        ("smtp", "127.0.0.1:2525", "optional", "none"),
        ("submission", "127.0.0.1:2587", "required", "required"),
        ("submissions", "127.0.0.1:2465", "implicit", "required"),
    ]
    assert config.data_dir == str(tmp_path / "mailboat-data")
    assert "localhost" in config.local_domains
    assert config.queue.retry == [60, 300, 900, 1800, 3600, 7200, 14400]
    assert config.queue.max_lifetime == 5 * 86400
    assert config.limits.hops == 50


def test_full_spec_example_loads(tmp_path):
    key = tmp_path / "dkim.key"
    key.write_text("x")
    config = load_config(write(tmp_path, f"""
hostname = "mx.example.com"
data_dir = "data"
[[listener]]
kind = "smtp"
address = "127.0.0.1:25"
tls = "optional"
auth = "none"
[[listener]]
kind = "lmtp"
address = "unix:/run/mailboat/lmtp.sock"
[[listener]]
kind = "smtp"
address = "[::1]:2525"
[domains]
local = ["Example.COM."]
catch_all = false
[aliases]
"postmaster@example.com" = ["alice@example.com"]
"abuse@example.com" = "alice@example.com"
[delivery]
maildir = "{{data_dir}}/mail/{{domain}}/{{local}}"
[relay]
smarthost = ""
mx_port = 25
trusted_networks = ["192.0.2.0/24", "2001:db8::/32"]
[[route]]
domain = "example.net"
smarthost = "127.0.0.3:2525"
[[dkim.sign]]
domain = "example.com"
selector = "mail"
key = "{key}"
[dns]
nameservers = ["127.0.0.1:5353"]
[queue]
backend = "sqlite"
retry = ["1m", "5m", 900]
max_lifetime = "5d"
delay_warning = ""
"""))
    assert config.hostname == "mx.example.com"
    assert config.data_dir == str(tmp_path / "data")
    assert config.local_domains == ["example.com"]
    assert config.aliases["abuse@example.com"] == ["alice@example.com"]
    assert config.listener[1].endpoint == "/run/mailboat/lmtp.sock"
    assert config.listener[2].endpoint == ("::1", 2525)
    assert config.queue.retry == [60, 300, 900]
    assert config.queue.delay_warning is None


@pytest.mark.parametrize("text, expected", [
    ('[[listener]]\nkind = "smtp"\naddress = "127.0.0.1:25"\n'
     '[[listener]]\nkind = "smtp"\naddress = "127.0.0.1:26"\ntls = "maybe"',
     "listener[1].tls: Input should be"),
    ('[[listener]]\nkind = "pop3"\naddress = "127.0.0.1:25"', "listener[0].kind: Input should be"),
    ('[[listener]]\nkind = "smtp"\naddress = "nowhere"', "listener[0].address: 'nowhere' is not host:port"),
    ('[[listener]]\nkind = "smtp"', "listener[0].address: required key is missing"),
    ('[queue]\nretry = ["soon"]', "queue.retry[0]: 'soon' is not a duration"),
    ('[queue]\nbackend = "postgresql"', "queue: backend = \"postgresql\" needs dsn"),
    ('[relay]\ntrusted_networks = ["10.0.0.0/33"]', "relay.trusted_networks: '10.0.0.0/33' is not a network"),
    ('[relay]\nmx_port = 0', "relay.mx_port: Input should be greater than or equal to 1"),
    ('colour = "blue"', "colour: unknown key"),
    ('[limits]\nrecipients = 10', "limits.recipients: Input should be greater than or equal to 100"),
    ('[tls]\ncert = "/nonexistent/cert.pem"\nkey = "/nonexistent/key.pem"',
     "tls.cert: cannot read /nonexistent/cert.pem"),
    ('[tls]\ncert = "/etc/hostname"', "tls: cert and key go together"),
    ('[delivery]\nmaildir = "/m/{user_name}"', "delivery.maildir: unknown placeholder {user_name}"),
    ('hostname = "bad host"',
     "hostname: 'bad host' is not a domain name such as \"mx.example.com\": ' ' is not allowed"),
    ('[[listener]]\nkind = "submissions"\naddress = "127.0.0.1:465"\ntls = "optional"',
     "listener[0].tls: a submissions listener"),
    ("this is = = not toml", "not valid TOML"),
])
def test_errors_name_the_key_path(tmp_path, text, expected):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert any(line.startswith(expected) for line in info.value.errors), info.value.errors


def test_every_error_is_reported_at_once(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, '[relay]\nmx_port = "x"\n[queue]\nmax_lifetime = "forever"\n'))
    assert len(info.value.errors) == 2


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.toml")
    assert info.value.errors == ["no such file: give the path of a TOML configuration"]


@pytest.mark.parametrize("text, seconds", [("90", 90), ("30s", 30), ("5m", 300), ("4h", 14400), ("5d", 432000), (7, 7)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5 minutes", "-1", True, "1y"])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)
