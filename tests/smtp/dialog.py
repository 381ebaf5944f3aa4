"""Scripted SMTP dialogs (chasquid ``.cmy`` style) and a fake application for ServerConnection.

Importable helper, not a test module: ``tests/smtp/test_dialogs.py`` runs every
``dialogs/*.dialog`` in-process; the integration suite can run the same files over TCP with
:class:`SocketTransport`.

Dialog format, one directive per line::

    # comment (blank lines are ignored too)
    O: lmtp=true max_errors=3       engine options (in-process only; see OPTION_TYPES)
    C: EHLO client.example          client sends the text + CRLF
    R: DATA\\r\\nbody\\n.\\r\\n           client sends raw bytes (Python escapes), nothing added
    S: 250 2.1.0 *                  next reply; the glob must match its last line ("*": any run)
    S~ ^250-STARTTLS$               next reply; re.search (MULTILINE) over all its lines
    S: <CLOSED>                     the server closed the connection: no reply is left

Every ``S`` consumes one complete reply, multi-line replies included, so pipelined
commands are followed by one ``S`` per command. In-process, the simulated TLS handshake
completes as soon as the engine emits StartTls.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any, Protocol

from mailboat import smtp

__all__ = [
    "Step",
    "DialogError",
    "parse_dialog",
    "run_dialog",
    "read_reply",
    "run_dialog_file",
    "Transport",
    "InProcessTransport",
    "SocketTransport",
    "FakeApp",
    "OPTION_TYPES",
]

OPTION_TYPES: dict[str, Callable[[str], Any]] = {
    "hostname": str,
    "lmtp": lambda v: v.lower() in ("1", "true", "yes"),
    "max_message_size": int,
    "max_recipients": int,
    "max_errors": int,
    "starttls_available": lambda v: v.lower() in ("1", "true", "yes"),
    "tls_active": lambda v: v.lower() in ("1", "true", "yes"),
    "auth_mechanisms": lambda v: tuple(m for m in v.split(",") if m),
    "auth_requires_tls": lambda v: v.lower() in ("1", "true", "yes"),
}

CLOSED = "<CLOSED>"


@dataclass(frozen=True, slots=True)
class Step:
    lineno: int
    kind: str  # "C", "R", "S", "S~"
    text: str


class DialogError(AssertionError):
    """The server's answer did not match the script."""


def parse_dialog(text: str) -> tuple[dict[str, Any], list[Step]]:
    """Parse a dialog script into (engine options, steps)."""
    options: dict[str, Any] = {}
    steps: list[Step] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        kind, rest = line[:2], line[3:] if len(line) > 2 else ""
        if kind == "O:":
            for item in rest.split():
                key, _, value = item.partition("=")
                options[key] = OPTION_TYPES[key](value)
        elif kind in ("C:", "R:", "S:", "S~"):
            steps.append(Step(lineno, kind.rstrip(":"), rest))
        else:
            raise ValueError(f"line {lineno}: unknown directive {line!r}")
    return options, steps


class Transport(Protocol):
    def send(self, data: bytes) -> None: ...
    def read_line(self) -> str | None:
        """The next server line without CRLF, or None if the connection is closed."""
        ...


def read_reply(transport: Transport) -> list[str] | None:
    """Read one complete reply (continuation lines included), or None if the peer closed."""
    lines: list[str] = []
    while True:
        line = transport.read_line()
        if line is None:
            return lines or None
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return lines


def run_dialog(steps: Iterable[Step], transport: Transport, *, name: str = "dialog") -> None:
    for step in steps:
        if step.kind == "C":
            transport.send(step.text.encode("utf-8") + b"\r\n")
        elif step.kind == "R":
            transport.send(step.text.encode("latin-1").decode("unicode_escape").encode("latin-1"))
        else:
            try:
                got = read_reply(transport)
            except DialogError as exc:
                raise DialogError(f"{name}:{step.lineno}: expected {step.text!r}: {exc}") from None
            if step.text == CLOSED:
                if got is not None:
                    raise DialogError(f"{name}:{step.lineno}: expected the connection closed, got {got!r}")
                continue
            if got is None:
                raise DialogError(f"{name}:{step.lineno}: expected {step.text!r}, connection closed / no reply")
            ok = (
                re.search(step.text, "\n".join(got), re.MULTILINE) is not None
                if step.kind == "S~"
                else re.fullmatch(re.escape(step.text).replace(r"\*", ".*"), got[-1], re.DOTALL) is not None
            )
            if not ok:
                raise DialogError(f"{name}:{step.lineno}: expected {step.text!r}, got {got!r}")


def run_dialog_file(path: FilePath, transport_factory: Callable[[dict[str, Any]], Transport]) -> None:
    options, steps = parse_dialog(path.read_text(encoding="utf-8"))
    run_dialog(steps, transport_factory(options), name=path.name)


# -- the fake application -----------------------------------------------------------------------

Hook = Callable[[smtp.Event], "smtp.Reply | list[smtp.Reply] | None"]


@dataclass
class FakeApp:
    """Drives a ServerConnection like the real driver, accepting everything by default.

    ``hooks`` maps an event class to a function returning the reply to send (None: default).
    For MessageComplete in LMTP a hook may return one reply per recipient. AUTH accepts
    PLAIN and LOGIN for ``user`` / ``pass``. ``simulate_tls`` completes STARTTLS at once.
    """

    conn: smtp.ServerConnection
    hooks: dict[type, Hook] = field(default_factory=dict)
    simulate_tls: bool = True
    events: list[smtp.Event] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    _body: bytearray = field(default_factory=bytearray)
    _login_user: str | None = None
    _queued: int = 0

    def run(self) -> None:
        """Process events until the engine needs data or the session is closed."""
        while True:
            event = self.conn.next_event()
            if event is smtp.NEED_DATA:
                return
            self.events.append(event)
            match event:
                case smtp.ConnectionClosed():
                    return
                case smtp.DataChunk(data=data):
                    self._body += data
                case smtp.MessageAborted() | smtp.Reset():
                    self._body.clear()
                case smtp.StartTls() if self.simulate_tls:
                    self.conn.tls_established()
                case smtp.DecisionEvent():
                    self._decide(event)

    def _decide(self, event: smtp.Event) -> None:
        hook = self.hooks.get(type(event))
        answer = hook(event) if hook else None
        if isinstance(event, smtp.MessageComplete):
            self.messages.append(bytes(self._body))
            self._body.clear()
            if answer is None:
                self._queued += 1
                n = len(self.conn.accepted_recipients) if self.conn.lmtp else 1
                answer = [smtp.Reply.make(250, "2.0.0", f"Ok: queued as Q{self._queued}")] * n
        elif answer is None and isinstance(event, smtp.Auth | smtp.AuthResponse):
            answer = self._sasl(event)
        if answer is None:
            self.conn.accept()
            return
        for reply in answer if isinstance(answer, list) else [answer]:
            self.conn.send(reply)

    def _sasl(self, event: smtp.Auth | smtp.AuthResponse) -> smtp.Reply:
        match event:
            case smtp.Auth(mechanism="PLAIN", initial_response=None):
                return smtp.sasl.challenge(b"")
            case smtp.Auth(mechanism="PLAIN", initial_response=data) | smtp.AuthResponse(data=data) if (
                self._login_user is None
            ):
                try:
                    _, user, password = smtp.sasl.decode_plain(data or "")
                except ValueError:
                    return smtp.replies.AUTH_FAILED
                return self._verdict(user, password)
            case smtp.Auth(mechanism="LOGIN"):
                self._login_user = ""
                return smtp.sasl.LOGIN_USERNAME
            case smtp.AuthResponse(data=data) if self._login_user == "":
                self._login_user = smtp.sasl.decode_response(data).decode("utf-8", "replace")
                return smtp.sasl.LOGIN_PASSWORD
            case smtp.AuthResponse(data=data):
                user, self._login_user = self._login_user or "", None
                return self._verdict(user, smtp.sasl.decode_response(data).decode("utf-8", "replace"))
        return smtp.replies.AUTH_FAILED

    def _verdict(self, user: str, password: str) -> smtp.Reply:
        if (user, password) == ("user", "pass"):
            self.conn.set_authenticated(user)
            return smtp.replies.AUTH_OK
        return smtp.replies.AUTH_FAILED


class InProcessTransport:
    """Runs the dialog against a ServerConnection in this process (no sockets)."""

    def __init__(self, options: dict[str, Any] | None = None, hooks: dict[type, Hook] | None = None) -> None:
        options = dict(options or {})
        options.setdefault("hostname", "mx.example.com")
        self.conn = smtp.ServerConnection(**options)
        self.app = FakeApp(self.conn, hooks=dict(hooks or {}))
        self._out = bytearray()
        self.conn.start()
        self._pump()

    def _pump(self) -> None:
        self.app.run()
        self._out += self.conn.data_to_send()

    def send(self, data: bytes) -> None:
        if not self.conn.closed:
            self.conn.receive_data(data)
        self._pump()

    def read_line(self) -> str | None:
        self._pump()
        end = self._out.find(b"\r\n")
        if end < 0:
            if self.conn.closed:
                return None
            raise DialogError("the server is waiting for input and has nothing more to say")
        line = bytes(self._out[:end]).decode("utf-8")
        del self._out[: end + 2]
        return line


class SocketTransport:
    """Runs the dialog against a real server over TCP (for the integration suite)."""

    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self._in = bytearray()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self) -> str | None:
        while (end := self._in.find(b"\r\n")) < 0:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                chunk = b""
            if not chunk:
                return None
            self._in += chunk
        line = bytes(self._in[:end]).decode("utf-8")
        del self._in[: end + 2]
        return line

    def close(self) -> None:
        self.sock.close()


# -- one-shot conversations for table tests -----------------------------------------------------


@dataclass
class Conversation:
    conn: smtp.ServerConnection
    app: FakeApp
    output: bytes

    @property
    def events(self) -> list[smtp.Event]:
        return self.app.events

    @property
    def lines(self) -> list[str]:
        """Every server line, greeting included, without CRLF."""
        return self.output.decode("utf-8").split("\r\n")[:-1]

    @property
    def last(self) -> str:
        return self.lines[-1]

    def of_type(self, cls: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]


def converse(
    chunks: bytes | Iterable[bytes],
    *,
    hooks: dict[type, Hook] | None = None,
    eof: bool = False,
    greeting: smtp.Reply | None = None,
    **options: Any,
) -> Conversation:
    """Run the fake app over ``chunks`` (each fed with one receive_data call)."""
    options.setdefault("hostname", "mx.example.com")
    conn = smtp.ServerConnection(**options)
    app = FakeApp(conn, hooks=dict(hooks or {}))
    conn.start(greeting)
    out = bytearray()
    app.run()
    out += conn.data_to_send()
    for chunk in [chunks] if isinstance(chunks, bytes) else chunks:
        if conn.closed:
            break
        conn.receive_data(chunk)
        app.run()
        out += conn.data_to_send()
    if eof and not conn.closed:
        conn.receive_data(b"")
        app.run()
        out += conn.data_to_send()
    return Conversation(conn, app, bytes(out))
