"""Record encoding shared by the persistent backends (SQLite now, PostgreSQL later).

Envelopes and recipient states are stored as compact JSON documents carrying a format version
("v"), so a future mailboat can read what an older one wrote. Decoding is strict: anything that
does not match raises CorruptRecordError, which the backend turns into "set aside, log, carry on".
"""

from __future__ import annotations

import json
from typing import Any

from mailboat.delivery.outcome import RecipientState
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.mail.headers import header_section
from mailboat.queue.model import Attempt, QueuedRecipient, QueueItem

FORMAT_VERSION = 1
MAX_EVENT_HEADERS = 64 * 1024  # header bytes kept in the "queued" event for `mailboat journey`


class CorruptRecordError(ValueError):
    """A stored record that cannot be decoded into queue values."""


def _not_serializable(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# Compact JSON (ensure_ascii=False keeps SMTPUTF8 addresses readable in the database). Every
# json.dumps() with options builds a JSONEncoder and a C encoder anew: 3.5 us for a journey
# event's detail against 0.9 us with one C encoder made once, and the hot path encodes five
# documents a message. Documents here are trees of plain values, so no cycle check (markers).
_MAKE_ENCODER = getattr(json.encoder, "c_make_encoder", None)  # the C accelerator, where built
_C_ENCODER = _MAKE_ENCODER and _MAKE_ENCODER(
    None, _not_serializable, json.encoder.encode_basestring, None, ":", ",", False, False, True)
_PY_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps_text(doc: Any) -> str:
    """`doc` as compact JSON text (queue records, journey event details)."""
    if _C_ENCODER is not None:
        return "".join(_C_ENCODER(doc, 0))
    return _PY_ENCODER.encode(doc)


def _dumps(doc: Any) -> bytes:
    return dumps_text(doc).encode("utf-8")


def _loads(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptRecordError(f"not JSON: {exc}") from None


def encode_envelope(envelope: Envelope) -> bytes:
    return _dumps({
        "v": FORMAT_VERSION,
        "sender": envelope.sender,
        "rcpt": [[r.address, r.orcpt, list(r.notify) if r.notify is not None else None]
                 for r in envelope.recipients],
        "ret": envelope.ret,
        "envid": envelope.envid,
        "body": envelope.body,
        "smtputf8": envelope.smtputf8,
        "client_ip": envelope.client_ip,
        "client_helo": envelope.client_helo,
        "auth_user": envelope.auth_user,
        "protocol": envelope.protocol,
        "quarantine": envelope.quarantine,
    })


def decode_envelope(data: bytes | str) -> Envelope:
    doc = _loads(data)
    try:
        if doc["v"] != FORMAT_VERSION:
            raise CorruptRecordError(f"unknown envelope format {doc['v']!r}")
        recipients = tuple(
            Recipient(address, orcpt, tuple(notify) if notify is not None else None)
            for address, orcpt, notify in doc["rcpt"]
        )
        return Envelope(
            sender=doc["sender"], recipients=recipients, ret=doc["ret"], envid=doc["envid"],
            body=doc["body"], smtputf8=bool(doc["smtputf8"]), client_ip=doc["client_ip"],
            client_helo=doc["client_helo"], auth_user=doc["auth_user"], protocol=doc["protocol"],
            quarantine=doc.get("quarantine"),  # absent: queued by a mailboat that did not record it
        )
    except CorruptRecordError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptRecordError(f"bad envelope: {exc!r}") from None


def encode_recipients(recipients: tuple[QueuedRecipient, ...]) -> bytes:
    return _dumps({
        "v": FORMAT_VERSION,
        "rcpt": [
            {
                "a": r.recipient.address,
                "orcpt": r.recipient.orcpt,
                "notify": list(r.recipient.notify) if r.recipient.notify is not None else None,
                "orig": r.original,
                "s": r.state.value,
                "t": [[a.at, a.host, a.reply_code, a.reply_text, a.state.value] for a in r.attempts],
            }
            for r in recipients
        ],
    })


def decode_recipients(data: bytes | str) -> tuple[QueuedRecipient, ...]:
    doc = _loads(data)
    try:
        if doc["v"] != FORMAT_VERSION:
            raise CorruptRecordError(f"unknown recipient format {doc['v']!r}")
        return tuple(
            QueuedRecipient(
                Recipient(r["a"], r["orcpt"], tuple(r["notify"]) if r["notify"] is not None else None),
                RecipientState(r["s"]),
                r["orig"],
                tuple(Attempt(float(at), host, int(code), text, RecipientState(state))
                      for at, host, code, text, state in r["t"]),
            )
            for r in doc["rcpt"]
        )
    except CorruptRecordError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptRecordError(f"bad recipient states: {exc!r}") from None


def queued_detail(envelope: Envelope, size: int, message: bytes = b"") -> dict[str, Any]:
    """The journey's first record: who handed us the message and what it was.

    "headers" is the message's header section (at most MAX_EVENT_HEADERS bytes, cut at a line
    end) so the journey can show the Received chain after the message has left the queue.
    """
    header = header_section(message) if message else b""
    if len(header) > MAX_EVENT_HEADERS:
        header = header[: header.rfind(b"\n", 0, MAX_EVENT_HEADERS) + 1]
    return {
        "sender": envelope.sender,
        "recipients": [r.address for r in envelope.recipients],
        "size": size,
        "client_ip": envelope.client_ip,
        "client_helo": envelope.client_helo,
        "auth_user": envelope.auth_user,
        "protocol": envelope.protocol,
        "headers": header.decode("utf-8", "replace"),
    }


def finished_detail(item: QueueItem) -> dict[str, Any]:
    """The compact history record kept after the message leaves the queue."""
    recipients = []
    for r in item.recipients:
        if r.state is RecipientState.EXPANDED:
            continue  # its expansions are listed instead
        last = r.last_attempt
        recipients.append({
            "to": r.address,
            "orig_to": r.original,
            "state": r.state.value,
            "reply": f"{last.reply_code} {last.reply_text}" if last else None,
            "host": last.host if last else None,
        })
    return {
        "sender": item.envelope.sender,
        "arrival": item.arrival,
        "size": item.size,
        "attempts": item.attempts,
        "recipients": recipients,
    }
