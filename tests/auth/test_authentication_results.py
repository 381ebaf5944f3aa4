"""Authentication-Results rendering (checked with the authres parser) and forgery removal."""

from __future__ import annotations

import authres  # noqa: E402  (the test extra installs it)

from mailboat.auth.results import MethodResult, authserv_id_of, forged_fields, remove_fields, render

RESULTS = [
    MethodResult("spf", "pass", properties=(("smtp.mailfrom", "alice@example.com"),)),
    MethodResult("dkim", "fail", 'body hash mismatch "quoted"', (("header.d", "example.com"), ("header.s", "sel"))),
    MethodResult("dmarc", "fail", "no aligned pass", (("header.from", "example.com"), ("policy.dmarc", "reject"))),
]


def test_render_parses_with_authres():
    field = render("mx.test.example", RESULTS)
    assert field.endswith(b"\r\n") and all(len(line) <= 78 for line in field.split(b"\r\n"))
    parsed = authres.AuthenticationResultsHeader.parse(field.decode().replace("\r\n", ""))
    assert parsed.authserv_id == "mx.test.example"
    assert [(r.method, r.result) for r in parsed.results] == [("spf", "pass"), ("dkim", "fail"), ("dmarc", "fail")]
    assert parsed.results[1].reason == "body hash mismatch 'quoted'"


def test_render_none():
    assert render("mx.test.example", []) == b"Authentication-Results: mx.test.example; none\r\n"


def test_peer_text_cannot_break_the_header():
    field = render("mx", [MethodResult("spf", "fail", "evil\r\nX-Injected: yes")])
    assert b"\r\nX-Injected" not in field


def test_authserv_id_parsing():
    assert authserv_id_of(" (comment) MX.Test.Example. ; spf=pass") == "mx.test.example"
    assert authserv_id_of("mx.test.example 1; none") == "mx.test.example"


def test_forged_fields_removed_and_others_kept():
    message = (b"Authentication-Results: other.example; spf=pass\r\n"
               b"Authentication-Results: (forged)\r\n mx.test.example; dmarc=pass\r\n"
               b"From: a@example.com\r\n\r\nAuthentication-Results: mx.test.example; in the body\r\n")
    forged = forged_fields(message, "mx.test.example")
    assert len(forged) == 1
    cleaned = remove_fields(message, forged)
    assert cleaned == (b"Authentication-Results: other.example; spf=pass\r\n"
                       b"From: a@example.com\r\n\r\nAuthentication-Results: mx.test.example; in the body\r\n")
