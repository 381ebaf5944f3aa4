"""ClientConnection wired back to back with ServerConnection, in process (h11 ConnectionPair style).

Importable helper, not a test module. The "server application" accepts everything unless a
hook returns a Reply for that event; LMTP final replies come from ``finals`` (one per accepted
recipient). ``writes`` records every client write, so tests can count round trips.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mailboat import smtp
from mailboat.smtp.client import ClientConnection, ClientEvent, Closed
from mailboat.smtp.outgoing import OutgoingRecipient, Transaction, prepare_message

Hook = Callable[[smtp.Event], smtp.Reply | None]
OK_FINAL = smtp.Reply.make(250, "2.0.0", "Ok: queued as TEST")


@dataclass
class Pair:
    lmtp: bool = False
    hooks: dict[type, Hook] = field(default_factory=dict)
    finals: Callable[[tuple[smtp.Path, ...]], list[smtp.Reply]] | None = None
    server_options: dict = field(default_factory=dict)
    writes: list[bytes] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    events: list[smtp.Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.server = smtp.ServerConnection("mx.example.net", lmtp=self.lmtp, **self.server_options)
        self.client = ClientConnection("client.example", lmtp=self.lmtp)
        self.server.start()
        self._chunks: list[bytes] = []

    def _pump(self) -> bool:
        data = self.client.data_to_send()
        if data:
            self.writes.append(data)
            self.server.receive_data(data)
        while True:
            event = self.server.next_event()
            if event is smtp.NEED_DATA or isinstance(event, smtp.ConnectionClosed):
                break
            self.events.append(event)
            hook = self.hooks.get(type(event))
            answer = hook(event) if hook else None
            match event:
                case smtp.DataChunk(data=chunk):
                    self._chunks.append(chunk)
                case smtp.StartTls():
                    self._flush()
                    self.server.tls_established()  # simulated handshake
                    return True
                case smtp.MessageComplete():
                    self.messages.append(b"".join(self._chunks))
                    self._chunks.clear()
                    recipients = self.server.accepted_recipients
                    if answer is not None:
                        replies = [answer] * (len(recipients) if self.lmtp else 1)
                    elif self.finals is not None:
                        replies = self.finals(recipients)
                    else:
                        replies = [OK_FINAL] * (len(recipients) if self.lmtp else 1)
                    for reply in replies:
                        self.server.send(reply)
                case smtp.DecisionEvent():
                    if answer is None:
                        self.server.accept()
                    else:
                        self.server.send(answer)
                case smtp.MessageAborted():
                    self._chunks.clear()
        return self._flush() or bool(data)

    def _flush(self) -> bool:
        out = self.server.data_to_send()
        if out:
            self.client.receive_data(out)
        if self.server.closed:
            self.client.receive_data(b"")
        return bool(out)

    def next(self) -> ClientEvent:
        for _ in range(50):
            event = self.client.next_event()
            if event is not smtp.NEED_DATA:
                return event
            if not self._pump():
                raise AssertionError("deadlock: both sides wait")
        raise AssertionError("no event after 50 pumps")

    def ready(self) -> None:
        """Greeting and EHLO/LHLO done."""
        assert self.next().reply.code == 220
        self.client.hello()
        assert self.next().reply.code == 250

    def send(self, message: bytes, *recipients: str, sender: str = "a@client.example", **kw) -> list[str]:
        txn = Transaction(sender, tuple(OutgoingRecipient(r) if isinstance(r, str) else r for r in recipients),
                          prepare_message(message), **kw)
        self.client.start_transaction(txn)
        result = self.next().result
        return [str(reply) for reply in result.replies]

    def close(self) -> Closed:
        self.client.quit()
        event = self.next()
        assert isinstance(event, Closed)
        return event
