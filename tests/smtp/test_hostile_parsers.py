"""Hypothesis properties of the parsers the engine properties (test_properties.py) only reach
through whole sessions: smtp.address.parse_path, smtp.params, smtp.commands and the AUTH
exchanges (smtp.sasl, server.auth.SaslExchange).

The invariant is h11's: any input either parses, or raises the parser's own ReplyError subclass
carrying a 4xx/5xx reply; nothing else ever escapes. And what parses is safe to write: no CR,
LF, NUL or other control character survives into a decoded value (security.md §0 rule 5).
"""

from __future__ import annotations

import base64
import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mailboat.server.auth import SaslExchange
from mailboat.smtp import Reply, sasl
from mailboat.smtp.address import MAX_LOCAL_PART, MAX_PATH, Path, parse_path
from mailboat.smtp.commands import (
    MAX_LINE,
    LineReader,
    LineTooLong,
    decode_line,
    parse_auth,
    parse_bdat,
    parse_mail,
    parse_rcpt,
    split_command,
)
from mailboat.smtp.errors import AddressError, ParameterError, RemoteProtocolError, ReplyError
from mailboat.smtp.params import parse_mail_params, parse_rcpt_params, xtext_decode

UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# An alphabet that reaches deep into the grammars (Stalwart's "RFC 5321 alphabet" idea), plus
# the bytes attackers use: controls, quotes, backslash, %, !, brackets, UTF-8 and C1.
ADDRESS_CHARS = st.sampled_from(list("abcAB09.-_+@<>:,;[]\"\\%! ()=/") +
                                ["\r", "\n", "\x00", "\t", "\x7f", "\x85", "\u2028", "é", "ü", "\u0430",
                                 "IPv6:", "::1"])
addressish = st.lists(ADDRESS_CHARS, max_size=60).map("".join)
PARAM_CHARS = st.sampled_from(list("SIZEBODYRETENVIDAUTHNOTIFYORCPT=;,+0123456789ABCDEFabcdef<>@ .-") +
                              ["+0D", "+0A", "+00", "+7F", "+1B", "\\x{0D}", "\\x{85}", "é", "\x00", "\r", "utf-8;"])
paramish = st.lists(PARAM_CHARS, max_size=40).map("".join)


def assert_reply_error(exc: ReplyError) -> None:
    assert isinstance(exc.reply, Reply) and 400 <= exc.reply.code < 600, exc.reply
    assert exc.reply.status is not None and exc.reply.status[0] == exc.reply.code // 100


def assert_safe(text: str) -> None:
    assert not UNSAFE.search(text), repr(text)


# -- smtp.address ---------------------------------------------------------------------------------

@SETTINGS
@given(inner=addressish | st.text(max_size=80), null=st.booleans(), utf8=st.booleans())
@example(inner='"a\r\nb"@example.org', null=False, utf8=False)
@example(inner="a\u0085b@example.org", null=False, utf8=True)
@example(inner="@a,@b:c@d", null=True, utf8=False)
def test_parse_path_parses_or_refuses_and_never_yields_control_bytes(inner, null, utf8):
    try:
        path = parse_path(f"<{inner}>", allow_null=null, smtputf8=utf8)
    except AddressError as exc:
        assert_reply_error(exc)
        return
    assert isinstance(path, Path)
    assert_safe(path.address)
    if not utf8:
        assert path.address.isascii()
    if path.is_null:
        assert null
        return
    assert len(path.local_part.encode()) <= MAX_LOCAL_PART
    assert len(f"<{inner}>".encode("utf-8", "surrogateescape")) <= MAX_PATH
    # Normal form is a fixed point: the address re-parses to the same mailbox, route stripped.
    again = parse_path(f"<{path.address}>", allow_null=null, smtputf8=utf8)
    assert (again.local_part, again.domain, again.source_route) == (path.local_part, path.domain, ())


atom = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789!#$&'*+-/=?^_`{|}~", min_size=1, max_size=8)
label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)


@SETTINGS
@given(locals_=st.lists(atom, min_size=1, max_size=4), labels=st.lists(label, min_size=1, max_size=4),
       quoted=st.booleans(), route=st.lists(label, max_size=2))
def test_well_formed_paths_always_parse(locals_, labels, quoted, route):
    local = ".".join(locals_)
    if quoted:
        local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + ' x"'
    domain = ".".join(labels)
    adl = ",".join(f"@{r}" for r in route) + ":" if route else ""
    text = f"<{adl}{local}@{domain}>"
    if len(text) > MAX_PATH or len(local) > MAX_LOCAL_PART:
        return
    path = parse_path(text, allow_null=False, smtputf8=False)
    assert (path.local_part, path.domain, path.source_route) == (local, domain, tuple(route))


# -- smtp.params ------------------------------------------------------------------------------------

@SETTINGS
@given(text=paramish | st.text(max_size=60), esmtp=st.booleans(), utf8=st.booleans())
@example(text=" ENVID=a+0D+0Ab", esmtp=True, utf8=False)
@example(text=" ORCPT=utf-8;a\\x{0D}b@c", esmtp=True, utf8=True)
@example(text=" AUTH=<+0A>", esmtp=True, utf8=False)
def test_params_parse_or_refuse_and_decoded_values_are_safe(text, esmtp, utf8):
    try:
        mail = parse_mail_params(text, esmtp=esmtp)
    except ParameterError as exc:
        assert_reply_error(exc)
    else:
        for value in (mail.envid, mail.auth):
            if value is not None:
                assert_safe(value)
        assert mail.ret in (None, "FULL", "HDRS") and mail.body in (None, "7BIT", "8BITMIME")
        assert mail.size is None or mail.size >= 0
    try:
        rcpt = parse_rcpt_params(text, esmtp=esmtp, smtputf8=utf8)
    except ParameterError as exc:
        assert_reply_error(exc)
    else:
        if rcpt.orcpt is not None:
            assert_safe(rcpt.orcpt[0])
            assert_safe(rcpt.orcpt[1])
        if rcpt.notify is not None:
            assert set(rcpt.notify) <= {"NEVER", "SUCCESS", "FAILURE", "DELAY"}


def xtext_encode(value: str) -> str:
    return "".join(c if 0x21 <= ord(c) <= 0x7E and c not in "+=" else f"+{ord(c):02X}" for c in value)


@SETTINGS
@given(value=st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0xFF), max_size=30))
def test_xtext_round_trip(value):
    if any(ord(c) > 0x7F for c in value):
        return  # xtext encodes octets; non-ASCII goes raw under SMTPUTF8
    assert xtext_decode(xtext_encode(value)) == value


# -- smtp.commands ------------------------------------------------------------------------------------

@SETTINGS
@given(raw=st.binary(max_size=200))
@example(raw=b"MAIL FROM:<a@b>\rRCPT TO:<c@d>")
@example(raw=b"\xc3\x28")
def test_decode_line_refuses_line_breaks_nul_and_bad_utf8(raw):
    try:
        line = decode_line(raw)
    except RemoteProtocolError as exc:
        assert_reply_error(exc)
        return
    assert "\r" not in line and "\n" not in line and "\x00" not in line
    verb, _ = split_command(line)
    assert verb == "" or (verb.isascii() and verb.isalpha() and verb.isupper())


@SETTINGS
@given(arg=addressish | st.text(max_size=80), esmtp=st.booleans(), utf8=st.booleans())
def test_mail_rcpt_bdat_auth_arguments_parse_or_refuse(arg, esmtp, utf8):
    for parse in (lambda: parse_mail("FROM:" + arg, esmtp=esmtp),
                  lambda: parse_rcpt("TO:" + arg, esmtp=esmtp, smtputf8=utf8),
                  lambda: parse_mail(arg, esmtp=esmtp),
                  lambda: parse_bdat(arg),
                  lambda: parse_auth(arg)):
        try:
            result = parse()
        except ReplyError as exc:
            assert_reply_error(exc)
            continue
        if isinstance(result, tuple) and isinstance(result[0], Path):
            assert_safe(result[0].address)


def read_all(chunks: list[bytes]) -> list[bytes | str]:
    """Drive LineReader as the engine does (a growing buffer and a position)."""
    reader, buf, pos, out = LineReader(), b"", 0, []
    for chunk in chunks:
        buf = buf[pos:] + chunk
        pos = 0
        while True:
            pos, line = reader.read(buf, pos)
            if line is None:
                break
            out.append("TOO-LONG" if isinstance(line, LineTooLong) else line)
        assert len(buf) - pos <= MAX_LINE + len(chunk), "the reader kept more than one line"
    return out


line_soup = st.lists(st.sampled_from([b"NOOP", b"\r\n", b"\r", b"\n", b"x" * 300, b"MAIL FROM:<a@b>",
                                      b"AUTH PLAIN " + b"A" * 4000, b"y" * 6000]), max_size=12).map(b"".join)


@SETTINGS
@given(stream=line_soup, cuts=st.lists(st.integers(min_value=0, max_value=30000), max_size=8))
def test_line_reader_is_split_invariant(stream, cuts):
    points = sorted({c % (len(stream) + 1) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assert read_all(pieces) == read_all([stream])
    if len(stream) <= 2000:
        assert read_all([bytes([b]) for b in stream]) == read_all([stream])


# -- AUTH exchanges -------------------------------------------------------------------------------------

b64ish = st.one_of(st.text(alphabet="ABCDabcd0189+/=*", max_size=24), st.text(max_size=16),
                   st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()))


@SETTINGS
@given(mechanism=st.sampled_from(["PLAIN", "LOGIN", "CRAM-MD5", "plain"]),
       responses=st.lists(st.none() | b64ish, min_size=1, max_size=4))
def test_sasl_exchange_only_continues_answers_or_refuses(mechanism, responses):
    exchange = SaslExchange(mechanism)
    for response in responses:
        try:
            result = exchange.step(response)
        except (ValueError, PermissionError):
            return  # the session turns these into 501 5.5.2 / a failed login
        if isinstance(result, Reply):
            assert result.code == 334
            continue
        identity, password = result
        assert isinstance(identity, str) and isinstance(password, str)
        return


@SETTINGS
@given(authzid=st.text(max_size=10), authcid=st.text(min_size=1, max_size=20),
       password=st.text(min_size=1, max_size=20))
def test_plain_round_trip(authzid, authcid, password):
    encoded = base64.b64encode(f"{authzid}\0{authcid}\0{password}".encode()).decode()
    if "\0" in authzid + authcid + password:
        try:
            sasl.decode_plain(encoded)
        except ValueError:
            return
        return
    assert sasl.decode_plain(encoded) == (authzid, authcid, password)
    exchange = SaslExchange("LOGIN")
    assert exchange.step(None).code == 334
    assert exchange.step(base64.b64encode(authcid.encode()).decode()).code == 334
    assert exchange.step(base64.b64encode(password.encode()).decode()) == (authcid, password)
