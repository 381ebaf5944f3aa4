"""Sans-I/O SMTP and LMTP protocol engine (RFC 5321, RFC 2033 and the ESMTP extensions).

Stdlib only, no sockets, no clock, nothing else from mailboat. The public API::

    from mailboat import smtp
    conn = smtp.ServerConnection(hostname="mx.example.com")
    conn.start()
    conn.receive_data(b"EHLO client.example\\r\\n")
    event = conn.next_event()          # smtp.Helo(domain="client.example", kind="EHLO")
    conn.accept()
    conn.data_to_send()                # b"220 mx.example.com ESMTP mailboat\\r\\n250-mx..."
"""

from . import replies, sasl
from .address import Path, parse_path
from .capabilities import ehlo_reply, parse_ehlo
from .errors import (
    AddressError,
    LocalProtocolError,
    ParameterError,
    ProtocolError,
    RemoteProtocolError,
    ReplyError,
)
from .events import (
    NEED_DATA,
    Auth,
    AuthResponse,
    CommandRejected,
    ConnectionClosed,
    Data,
    DataChunk,
    DecisionEvent,
    Event,
    Helo,
    MailFrom,
    MessageAborted,
    MessageComplete,
    NeedData,
    NonSmtpCommand,
    Quit,
    RcptTo,
    Reset,
    StartTls,
)
from .params import MailParams, RcptParams
from .reply import Reply
from .server import ServerConnection

__all__ = [
    "ServerConnection",
    "Reply",
    "replies",
    "sasl",
    "Path",
    "parse_path",
    "MailParams",
    "RcptParams",
    "ehlo_reply",
    "parse_ehlo",
    # events
    "Event",
    "DecisionEvent",
    "Helo",
    "MailFrom",
    "RcptTo",
    "Data",
    "MessageComplete",
    "Auth",
    "AuthResponse",
    "DataChunk",
    "MessageAborted",
    "Reset",
    "StartTls",
    "Quit",
    "CommandRejected",
    "NonSmtpCommand",
    "ConnectionClosed",
    "NeedData",
    "NEED_DATA",
    # errors
    "ProtocolError",
    "LocalProtocolError",
    "ReplyError",
    "RemoteProtocolError",
    "AddressError",
    "ParameterError",
]
