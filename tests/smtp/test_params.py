"""ESMTP parameters of MAIL and RCPT (RFC 1870, 6152, 6531, 3461, 4954) in smtp/params.py."""

import pytest

from mailboat.smtp import MailParams, RcptParams
from mailboat.smtp.errors import ParameterError
from mailboat.smtp.params import parse_mail_params, parse_rcpt_params, xtext_decode

MAIL_OK = [
    ("", MailParams()),
    (" SIZE=1000", MailParams(size=1000)),
    (" size=0", MailParams(size=0)),
    (" BODY=8bitmime", MailParams(body="8BITMIME")),
    (" BODY=7BIT", MailParams(body="7BIT")),
    (" SMTPUTF8", MailParams(smtputf8=True)),
    (" RET=hdrs ENVID=QQ+2B1", MailParams(ret="HDRS", envid="QQ+1")),
    (" AUTH=<>", MailParams(auth="<>")),
    (" AUTH=joe+40example.org", MailParams(auth="joe@example.org")),
    ("  SIZE=5   BODY=7BIT", MailParams(size=5, body="7BIT")),
    (" SIZE=1 BODY=8BITMIME SMTPUTF8 RET=FULL ENVID=x", MailParams(1, "8BITMIME", True, "FULL", "x")),
]


@pytest.mark.parametrize(("text", "expected"), MAIL_OK)
def test_mail_params(text: str, expected: MailParams) -> None:
    assert parse_mail_params(text, esmtp=True) == expected


MAIL_BAD = [
    (" SIZE", 501),
    (" SIZE=", 501),
    (" SIZE=-1", 501),
    (" SIZE=1x", 501),
    (" SIZE=" + "9" * 21, 501),
    (" SIZE=1 SIZE=2", 501),
    (" size=1 SIZE=1", 501),
    (" BODY=BINARYMIME", 501),
    (" BODY", 501),
    (" SMTPUTF8=yes", 501),
    (" RET=ALL", 501),
    (" ENVID=" + "x" * 101, 501),
    (" ENVID=a+zz", 501),
    (" ENVID=a+", 501),
    (" AUTH", 501),
    (" FOO=bar", 555),
    (" REQUIRETLS", 555),
    (" -bad=1", 501),
    (" SIZE=1=2", 501),
    (" ENVID=é", 501),
]


@pytest.mark.parametrize(("text", "code"), MAIL_BAD)
def test_mail_params_errors(text: str, code: int) -> None:
    with pytest.raises(ParameterError) as info:
        parse_mail_params(text, esmtp=True)
    assert info.value.reply.code == code
    assert info.value.reply.status_text == "5.5.4"


def test_mail_params_need_ehlo() -> None:
    with pytest.raises(ParameterError) as info:
        parse_mail_params(" SIZE=10", esmtp=False)
    assert info.value.reply.code == 555
    assert parse_mail_params("", esmtp=False) == MailParams()


def test_utf8_values_only_with_smtputf8() -> None:
    assert parse_mail_params(" SMTPUTF8 ENVID=é", esmtp=True).envid == "é"


RCPT_OK = [
    ("", RcptParams()),
    (" NOTIFY=NEVER", RcptParams(notify=("NEVER",))),
    (" NOTIFY=success,failure", RcptParams(notify=("SUCCESS", "FAILURE"))),
    (" NOTIFY=DELAY ORCPT=rfc822;a+40b.example", RcptParams(("DELAY",), ("rfc822", "a@b.example"))),
    (" ORCPT=utf-8;j\\x{F6}ran@example.org", RcptParams(orcpt=("utf-8", "jöran@example.org"))),
]


@pytest.mark.parametrize(("text", "expected"), RCPT_OK)
def test_rcpt_params(text: str, expected: RcptParams) -> None:
    assert parse_rcpt_params(text, esmtp=True, smtputf8=False) == expected


RCPT_BAD = [
    (" NOTIFY=NEVER,SUCCESS", 501),
    (" NOTIFY=SUCCESS,SUCCESS", 501),
    (" NOTIFY=", 501),
    (" NOTIFY=SOMETIMES", 501),
    (" NOTIFY", 501),
    (" ORCPT=rfc822", 501),
    (" ORCPT=;a@b", 501),
    (" ORCPT=rfc822;", 501),
    (" ORCPT=rfc822;a+4", 501),
    (" ORCPT=rfc822;" + "a" * 500, 501),
    (" ORCPT=utf-8;\\x{D800}", 501),
    (" NOTIFY=NEVER NOTIFY=NEVER", 501),
    (" SIZE=10", 555),
]


@pytest.mark.parametrize(("text", "code"), RCPT_BAD)
def test_rcpt_params_errors(text: str, code: int) -> None:
    with pytest.raises(ParameterError) as info:
        parse_rcpt_params(text, esmtp=True, smtputf8=False)
    assert info.value.reply.code == code


@pytest.mark.parametrize(("text", "decoded"), [("abc", "abc"), ("a+2Bb", "a+b"), ("+3D", "="), ("", "")])
def test_xtext(text: str, decoded: str) -> None:
    assert xtext_decode(text) == decoded


@pytest.mark.parametrize("text", ["a=b", "a+", "a+G0", "a b"])
def test_xtext_errors(text: str) -> None:
    with pytest.raises(ValueError):
        xtext_decode(text)
