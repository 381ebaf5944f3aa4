"""The configuration model: one frozen pydantic model per TOML section.

Every field states its default and meaning next to it; README's configuration reference is
checked against this file by tests/config/test_reference.py so the two cannot drift. Only `app`
and `cli` read these models: everything else receives plain constructor arguments.
"""

from __future__ import annotations

import ipaddress
import pwd
import re
import socket
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from mailboat.config.names import domain_name, mailbox

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> float:
    """"90", "30s", "5m", "4h", "5d", "1w" or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration such as \"30s\", \"5m\", \"4h\" or \"5d\" is expected")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    raise ValueError(f"{value!r} is not a duration such as \"30s\", \"5m\", \"4h\" or \"5d\"")


def _optional_duration(value: object) -> float | None:
    if value in ("", None):
        return None
    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(parse_duration)]
OptionalDuration = Annotated[float | None, BeforeValidator(_optional_duration)]
# Names written by hand, stored normalised (config/names.py): an error names the one bad entry.
DomainName = Annotated[str, BeforeValidator(domain_name)]  # two labels or more
LocalDomain = Annotated[str, BeforeValidator(lambda value: domain_name(value, min_labels=1))]  # localhost too
Mailbox = Annotated[str, BeforeValidator(mailbox)]


def parse_address(text: str) -> tuple[str, int] | str:
    """"host:port", "[v6]:port" -> (host, port); "unix:/path" -> "/path"."""
    if text.startswith("unix:"):
        path = text[5:]
        if not path.startswith("/"):
            raise ValueError("a unix socket address needs an absolute path: unix:/run/mailboat.sock")
        return path
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^\[\]:]+):(\d+)", text)
    if not match:
        raise ValueError(f"{text!r} is not host:port, [v6]:port or unix:/path")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    return host, port


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Per listener kind: (tls, auth) defaults. Submission requires AUTH and TLS (RFC 6409, RFC 8314).
KIND_DEFAULTS = {
    "smtp": ("optional", "none"),
    "submission": ("required", "required"),
    "submissions": ("implicit", "required"),
    "lmtp": ("none", "none"),
}


class Listener(_Section):
    kind: Literal["smtp", "submission", "submissions", "lmtp"]  # required
    address: str  # required: "host:port", "[v6]:port" or "unix:/path"
    tls: Literal["none", "optional", "required", "implicit"] | None = None  # default by kind
    auth: Literal["none", "optional", "required"] | None = None  # default by kind

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        parse_address(value)
        return value

    @field_validator("tls")
    @classmethod
    def _check_tls(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A field validator (not the model's), so it runs even when another key of the listener
        # is wrong, and its error names listener[N].tls. `kind` is checked first: it comes first.
        kind = info.data.get("kind")
        if kind == "submissions" and value not in (None, "implicit"):
            raise ValueError("a submissions listener always uses tls = \"implicit\" (RFC 8314)")
        if kind in ("submission", "lmtp") and value == "implicit":
            raise ValueError(f"tls = \"implicit\" is for submissions listeners, not {kind}")
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> Listener:
        tls, auth = KIND_DEFAULTS[self.kind]
        object.__setattr__(self, "tls", self.tls or tls)
        object.__setattr__(self, "auth", self.auth or auth)
        return self

    @property
    def endpoint(self) -> tuple[str, int] | str:
        return parse_address(self.address)


class Tls(_Section):
    cert: str = ""  # PEM certificate chain; "" = a self-signed one made in {data_dir}/tls/ on first start
    key: str = ""  # PEM private key for cert


class Domains(_Section):
    local: list[LocalDomain] | None = None  # final destinations here; default: localhost and this hostname
    catch_all: bool = False  # true: any local part of a local domain is a mailbox

    @field_validator("local")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else list(dict.fromkeys(value))


class Delivery(_Section):
    maildir: str = "{data_dir}/mail/{domain}/{local}"  # Maildir root per recipient
    lmtp: str = ""  # "host:port" or "unix:/path": deliver local mail over LMTP instead

    @field_validator("maildir")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        unknown = set(re.findall(r"\{([^}]*)\}", value)) - {"data_dir", "domain", "local", "user"}
        if unknown:
            raise ValueError(f"unknown placeholder {{{sorted(unknown)[0]}}}: use {{data_dir}}, {{domain}}, {{local}}")
        return value


class Relay(_Section):
    smarthost: str = ""  # "host:port" to send all remote mail through; "" = MX
    mx_port: int = Field(25, ge=1, le=65535)  # port used for MX hosts
    tls: Literal["opportunistic", "verify", "none"] = "opportunistic"  # outbound STARTTLS policy
    trusted_networks: list[str] = []  # CIDRs that may relay without AUTH (loopback is not implied)

    @field_validator("trusted_networks")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not a network such as \"192.0.2.0/24\"") from None
        return value


class Route(_Section):
    domain: DomainName  # the recipient domain this route applies to
    smarthost: str  # "host:port" that takes its mail


class DkimSign(_Section):
    domain: DomainName  # signing domain (d=)
    selector: str  # selector (s=)
    key: str  # path of the private key


class Dkim(_Section):
    sign: list[DkimSign] = []  # [[dkim.sign]] entries


class Auth(_Section):
    spf_reject_fail: bool = False  # true: 550 5.7.23 at MAIL FROM on SPF fail (default: DMARC decides)
    dmarc_reject: Literal["reject", "quarantine", "none"] = "reject"  # what p=reject does here
    dmarc_quarantine: Literal["junk", "none"] = "junk"  # what p=quarantine does: the Maildir .Junk folder
    temperror: Literal["accept", "defer"] = "accept"  # DNS failure while checking: accept, or 451 4.4.3
    sign_trusted_networks: bool = False  # also DKIM-sign mail from [relay].trusted_networks
    check_local_clients: bool = False  # also check SPF/DKIM/DMARC for loopback and unix-socket clients


class Dns(_Section):
    nameservers: list[str] = []  # ["127.0.0.1:5353"]; empty = system resolver
    timeout: Duration = 5.0  # per query


class Queue(_Section):
    backend: Literal["sqlite", "postgresql"] = "sqlite"
    dsn: str = ""  # postgresql://... when backend = "postgresql"
    retry: list[Duration] = [60, 300, 900, 1800, 3600, 7200, 14400]  # then every last step
    max_lifetime: Duration = 5 * 86400  # then bounce
    delay_warning: OptionalDuration = 4 * 3600  # "" = none
    journey_keep: OptionalDuration = 30 * 86400  # journey events of finished messages; "" = forever

    @model_validator(mode="after")
    def _check(self) -> Queue:
        if self.backend == "postgresql" and not self.dsn:
            raise ValueError("backend = \"postgresql\" needs dsn = \"postgresql://...\"")
        if not self.retry:
            raise ValueError("retry needs at least one interval")
        return self


class Limits(_Section):
    message_size: int = Field(10_240_000, ge=0)  # bytes; SIZE advertised; 0 = unlimited
    recipients: int = Field(1000, ge=100)  # per message; 452 4.5.3 past it (RFC 5321 needs >= 100)
    hops: int = Field(50, ge=1)  # Received headers before 554 5.4.6 (loop)
    connections: int = Field(1000, ge=1)  # simultaneous connections in total; 421 4.7.0 past it
    connections_per_ip: int = Field(50, ge=1)  # simultaneous connections per client IP
    errors: int = Field(20, ge=1)  # 4xx/5xx replies in one session (unknown recipients too) before 421 4.7.0
    soft_errors: int = Field(10, ge=0)  # past this many errors each error reply waits error_sleep; 0 = never
    error_sleep: Duration = 1.0  # the wait before each error reply past soft_errors (Postfix smtpd_error_sleep_time)
    junk_commands: int = Field(100, ge=0)  # NOOP/RSET/VRFY/EXPN/HELP per session before 421 4.7.0; 0 = unlimited
    # smtp listeners: silence before the 220; a client talking first gets 554 5.5.1 and is dropped; 0 = off
    greet_delay: Duration = 0.0
    # bytes; MAIL gets 452 4.3.1 with less than max(this, 1.5 x SIZE or message_size) free
    queue_minfree: int = Field(0, ge=0)


class Timeouts(_Section):
    command: Duration = 300.0  # waiting for the next command (RFC 5321 4.5.3.2.7: >= 5 min)
    data: Duration = 180.0  # waiting for each block of DATA/BDAT (RFC 5321 4.5.3.2.5)
    tls_handshake: Duration = 30.0  # STARTTLS or implicit TLS handshake
    min_data_rate: int = Field(500, ge=0)  # bytes/s: DATA/BDAT must end by data + bytes received / this; 0 = off


class Server(_Section):
    # processes accepting on the listeners (the queue runner in the first); 0 = one per CPU
    workers: int = Field(0, ge=0, le=64)
    # started as root: run as this user (and its group) once the listeners are open; "" = stay as started
    user: str = ""

    @field_validator("user")
    @classmethod
    def _known_user(cls, value: str) -> str:
        value = value.strip()
        if value:
            try:
                pwd.getpwuid(int(value)) if value.isdigit() else pwd.getpwnam(value)
            except (KeyError, OverflowError):
                raise ValueError(f"no such user {value!r}: create it (useradd --system {value}) "
                                 "or name an existing one") from None
        return value


class Log(_Section):
    file: str = ""  # "" = stderr; a path appends to that file
    level: Literal["debug", "info", "warning", "error"] = "info"


def default_hostname() -> str:
    name = socket.getfqdn()
    return name if name and name != "localhost" else socket.gethostname()


class Config(_Section):
    hostname: str = Field(default_factory=default_hostname)  # greeting, EHLO and Received
    data_dir: str = "./mailboat-data"  # queue, Maildirs, TLS, users; relative to the config file
    listener: list[Listener] = []  # [[listener]]; none = the embedded default set
    tls: Tls = Tls()
    domains: Domains = Domains()
    aliases: dict[Mailbox, list[Mailbox]] = {}  # address -> addresses (local or remote)
    delivery: Delivery = Delivery()
    relay: Relay = Relay()
    route: list[Route] = []
    dkim: Dkim = Dkim()
    auth: Auth = Auth()
    dns: Dns = Dns()
    queue: Queue = Queue()
    limits: Limits = Limits()
    timeouts: Timeouts = Timeouts()
    server: Server = Server()
    log: Log = Log()

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str) -> str:
        # One label is allowed (a machine's own name); `mailboat dns-records` warns about it.
        return domain_name(value, min_labels=1, example="mx.example.com")

    @field_validator("aliases", mode="before")
    @classmethod
    def _alias_lists(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @property
    def local_domains(self) -> list[str]:
        if self.domains.local is not None:
            return self.domains.local
        return sorted({"localhost", self.hostname.lower()})
