"""Catalogue of the standard replies the engine sends on its own (RFC 5321 §4.2, RFC 3463).

Tests assert against these names. Conventions:

* Every reply carries an RFC 3463 enhanced status code, except the ones RFC 2034 and
  common practice (Postfix, Stalwart) leave bare: the 220 greeting, the HELO/EHLO/LHLO
  replies, and the intermediate 354 and 334 replies (3yz has no enhanced class).
* The text is generic; the internal reason travels separately (``ReplyError.reason``,
  ``MessageAborted.reason``).
"""

from __future__ import annotations

from functools import lru_cache

from .reply import Reply

R = Reply.make

# -- positive ------------------------------------------------------------------------------
OK = R(250, "2.0.0", "Ok")
MAIL_OK = R(250, "2.1.0", "Ok")
RCPT_OK = R(250, "2.1.5", "Ok")
START_DATA = R(354, None, "End data with <CR><LF>.<CR><LF>")
RESET_OK = R(250, "2.0.0", "Ok")
NOOP_OK = R(250, "2.0.0", "Ok")
HELP = R(214, "2.0.0", "See https://www.rfc-editor.org/rfc/rfc5321")
VRFY_CANNOT = R(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
GOODBYE = R(221, "2.0.0", "Bye")
TLS_READY = R(220, "2.0.0", "Ready to start TLS")
AUTH_OK = R(235, "2.7.0", "Authentication successful")


def bdat_received(octets: int) -> Reply:
    """RFC 3030 §3: the reply to each non-LAST BDAT chunk."""
    return R(250, "2.0.0", f"{octets} octets received")


# Replies that depend only on the configuration are built once per configuration and shared
# by every connection; a Reply keeps its rendered bytes, so they are rendered once too. The
# caches are small because their keys come from the configuration, never from a client.


@lru_cache(maxsize=64)
def greeting(hostname: str, banner: str) -> Reply:
    """The default 220 greeting: ``220 <hostname> <banner>``."""
    return Reply(220, None, (f"{hostname} {banner}".rstrip(),))


@lru_cache(maxsize=64)
def helo(hostname: str) -> Reply:
    """The reply to HELO (EHLO and LHLO get the capability list)."""
    return Reply(250, None, (hostname,))


# -- syntax (RFC 5321 §4.2.4, §4.5.3.1.9) ----------------------------------------------------
UNRECOGNIZED = R(500, "5.5.2", "Error: command not recognized")
WRONG_MODE = R(500, "5.5.1", "Error: command not valid in this mode")
LINE_TOO_LONG = R(500, "5.5.2", "Error: line too long")
BAD_LINE_ENDING = R(500, "5.5.2", "Error: bare <CR> or <LF> in command")
NUL_IN_COMMAND = R(500, "5.5.2", "Error: NUL character in command")
BAD_ENCODING = R(500, "5.5.2", "Error: 8-bit or invalid UTF-8 in command")
SYNTAX_ERROR = R(501, "5.5.4", "Syntax error in parameters or arguments")
NOT_IMPLEMENTED = R(502, "5.5.1", "Error: command not implemented")
EXPN_DISABLED = R(502, "5.5.1", "EXPN not available")
UNKNOWN_MECHANISM = R(504, "5.5.4", "Unrecognized authentication mechanism")

# -- sequence ----------------------------------------------------------------------------------
BAD_SEQUENCE = R(503, "5.5.1", "Error: bad sequence of commands")
NEED_HELO = R(503, "5.5.1", "Error: send HELO/EHLO first")
NEED_LHLO = R(503, "5.5.1", "Error: send LHLO first")
NEED_EHLO = R(503, "5.5.1", "Error: send EHLO first")
NESTED_MAIL = R(503, "5.5.1", "Error: nested MAIL command")
NEED_MAIL = R(503, "5.5.1", "Error: need MAIL command")
NEED_RCPT = R(503, "5.5.1", "Error: need RCPT command")
NO_VALID_RECIPIENTS = R(554, "5.5.1", "Error: no valid recipients")
DATA_AFTER_BDAT = R(503, "5.5.1", "Error: DATA not allowed after BDAT")
ALREADY_AUTHENTICATED = R(503, "5.5.1", "Error: already authenticated")
AUTH_IN_TRANSACTION = R(503, "5.5.1", "Error: AUTH not allowed during a mail transaction")
TLS_ALREADY_ACTIVE = R(503, "5.5.1", "Error: TLS already active")
STARTTLS_IN_TRANSACTION = R(503, "5.5.1", "Error: STARTTLS not allowed during a mail transaction")
SESSION_REFUSED = R(503, "5.5.1", "Error: service refused, only QUIT is accepted")

# -- limits ---------------------------------------------------------------------------------
TOO_MANY_RECIPIENTS = R(452, "4.5.3", "Error: too many recipients")
MESSAGE_TOO_BIG = R(552, "5.3.4", "Error: message exceeds fixed maximum message size")
TOO_MANY_ERRORS = R(421, "4.7.0", "Error: too many errors, closing connection")
TOO_MANY_JUNK = R(421, "4.7.0", "Error: too many NOOP/RSET/VRFY/HELP commands, closing connection")
# An HTTP request line or a header line in command position (Postfix smtpd_forbidden_commands):
# a browser or proxy was made to talk to us, and what follows must never run as SMTP.
NON_SMTP_COMMAND = R(521, "5.7.0", "Error: non-SMTP command, closing connection")
BDAT_UNSYNCHRONISED = R(421, "4.5.0", "Error: cannot resynchronise after invalid BDAT, closing")

# -- message content (end of DATA / BDAT LAST) ---------------------------------------------------
BARE_LINE_ENDING = R(550, "5.5.2", "Error: bare <CR> or <LF> in message data")
NUL_IN_DATA = R(550, "5.6.0", "Error: NUL character in message data")
DATA_LINE_TOO_LONG = R(500, "5.5.2", "Error: message text line too long")

# -- AUTH (RFC 4954) -------------------------------------------------------------------------
ENCRYPTION_REQUIRED = R(538, "5.7.11", "Encryption required for requested authentication mechanism")
AUTH_CANCELLED = R(501, "5.0.0", "Authentication cancelled")
AUTH_BAD_RESPONSE = R(501, "5.5.2", "Cannot Base64-decode client response")
AUTH_LINE_TOO_LONG = R(500, "5.5.6", "Authentication exchange line is too long")
AUTH_FAILED = R(535, "5.7.8", "Authentication credentials invalid")

# -- addresses and parameters (RFC 3463 §3.2, RFC 6531 §3.5) ----------------------------------
BAD_SENDER_SYNTAX = R(501, "5.1.7", "Bad sender address syntax")
BAD_RECIPIENT_SYNTAX = R(501, "5.1.3", "Bad recipient address syntax")
NON_ASCII_ADDRESS = R(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
UNKNOWN_PARAMETER = R(555, "5.5.4", "Unsupported MAIL/RCPT parameter")
DUPLICATE_PARAMETER = R(501, "5.5.4", "Duplicate MAIL/RCPT parameter")
BAD_PARAMETER = R(501, "5.5.4", "Invalid MAIL/RCPT parameter value")
