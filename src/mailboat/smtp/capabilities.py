"""EHLO/LHLO capability list: rendering for the server, parsing for the client (RFC 5321 §4.1.1.1).

Advertised extensions and their RFCs: PIPELINING (2920), SIZE (1870), 8BITMIME (6152),
SMTPUTF8 (6531), ENHANCEDSTATUSCODES (2034), CHUNKING (3030), DSN (3461), STARTTLS (3207),
AUTH (4954).
"""

from __future__ import annotations

from .reply import Reply

__all__ = ["ehlo_reply", "parse_ehlo"]


def ehlo_reply(
    hostname: str,
    *,
    max_message_size: int,
    starttls: bool,
    auth_mechanisms: tuple[str, ...],
) -> Reply:
    """The multi-line 250 reply to EHLO/LHLO.

    Like Postfix, the first line is just our hostname and no line carries an enhanced
    status code (the EHLO reply is a keyword list, RFC 2034 §3). ``max_message_size`` 0
    is advertised as a bare ``SIZE`` (RFC 1870 §4: no fixed maximum).
    """
    lines = [hostname, "PIPELINING", f"SIZE {max_message_size}" if max_message_size else "SIZE"]
    lines += ["8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "DSN"]
    if starttls:
        lines.append("STARTTLS")
    if auth_mechanisms:
        lines.append("AUTH " + " ".join(auth_mechanisms))
    return Reply(250, None, tuple(lines))


def parse_ehlo(reply: Reply) -> dict[str, tuple[str, ...]]:
    """Capabilities from a 250 EHLO reply: ``{"SIZE": ("10240000",), "AUTH": ("PLAIN",), …}``.

    Keywords are upper-cased; the first line (the server's name) is skipped.
    """
    caps: dict[str, tuple[str, ...]] = {}
    for line in reply.lines[1:]:
        words = line.split()
        if words:
            caps[words[0].upper()] = tuple(words[1:])
    return caps
