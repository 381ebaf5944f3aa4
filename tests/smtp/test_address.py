"""RFC 5321 §4.1.2 path parsing and §4.5.3.1 limits (smtp/address.py)."""

import pytest

from mailboat.smtp import Path, parse_path
from mailboat.smtp.address import split_path
from mailboat.smtp.errors import AddressError

VALID = [
    # (text, allow_null, smtputf8, local_part, domain, source_route)
    ("<user@example.org>", False, False, "user", "example.org", ()),
    ("<User.Name+tag@Example.ORG>", False, False, "User.Name+tag", "Example.ORG", ()),
    ("<a!#$%&'*+-/=?^_`{|}~@x.y>", False, False, "a!#$%&'*+-/=?^_`{|}~", "x.y", ()),
    ('<"john doe"@example.org>', False, False, '"john doe"', "example.org", ()),
    ('<"a>b"@example.org>', False, False, '"a>b"', "example.org", ()),
    ('<"a\\"b"@example.org>', False, False, '"a\\"b"', "example.org", ()),
    ('<"a@b"@example.org>', False, False, '"a@b"', "example.org", ()),
    ("<u@[192.0.2.1]>", False, False, "u", "[192.0.2.1]", ()),
    ("<u@[IPv6:2001:db8::1]>", False, False, "u", "[IPv6:2001:db8::1]", ()),
    ("<u@[IPv6:::ffff:192.0.2.1]>", False, False, "u", "[IPv6:::ffff:192.0.2.1]", ()),
    ("<u@[x-tag:some-content]>", False, False, "u", "[x-tag:some-content]", ()),
    ("<@a.example,@b.example:u@c.example>", False, False, "u", "c.example", ("a.example", "b.example")),
    ("<@relay.example:u@c.example>", True, False, "u", "c.example", ("relay.example",)),
    ("<u@localhost>", False, False, "u", "localhost", ()),
    ("<u@1.example>", False, False, "u", "1.example", ()),
    ("<Postmaster>", False, False, "Postmaster", "", ()),
    ("<POSTMASTER>", False, False, "Postmaster", "", ()),
    ("<>", True, False, "", "", ()),
    ("<jöran@exämple.org>", False, True, "jöran", "exämple.org", ()),
    ("<用户@例子.广告>", True, True, "用户", "例子.广告", ()),
    ("<" + "l" * 64 + "@example.org>", False, False, "l" * 64, "example.org", ()),
]


@pytest.mark.parametrize(("text", "allow_null", "utf8", "local", "domain", "route"), VALID)
def test_valid_paths(text: str, allow_null: bool, utf8: bool, local: str, domain: str, route: tuple) -> None:
    path = parse_path(text, allow_null=allow_null, smtputf8=utf8)
    assert (path.local_part, path.domain, path.source_route) == (local, domain, route)


INVALID = [
    # (text, allow_null, smtputf8, code, status)
    ("user@example.org", False, False, 501, "5.1.3"),
    ("<user@example.org", False, False, 501, "5.1.3"),
    ("<>", False, False, 501, "5.1.3"),
    ("<Postmaster>", True, False, 501, "5.1.7"),
    ("<user>", False, False, 501, "5.1.3"),
    ("<@example.org>", False, False, 501, "5.1.3"),
    ("<user@>", False, False, 501, "5.1.3"),
    ("<user@@example.org>", False, False, 501, "5.1.3"),
    ("<.user@example.org>", False, False, 501, "5.1.3"),
    ("<user.@example.org>", False, False, 501, "5.1.3"),
    ("<us..er@example.org>", False, False, 501, "5.1.3"),
    ("<us er@example.org>", False, False, 501, "5.1.3"),
    ('<"unterminated@example.org>', False, False, 501, "5.1.3"),
    ("<user@-example.org>", False, False, 501, "5.1.3"),
    ("<user@example-.org>", False, False, 501, "5.1.3"),
    ("<user@example.org.>", False, False, 501, "5.1.3"),
    ("<user@exa_mple.org>", False, False, 501, "5.1.3"),
    ("<user@" + "a" * 64 + ".org>", False, False, 501, "5.1.3"),
    ("<user@[192.0.2.256]>", False, False, 501, "5.1.3"),
    ("<user@[192.0.2.01]>", False, False, 501, "5.1.3"),
    ("<user@[IPv6:fe80::1%eth0]>", False, False, 501, "5.1.3"),
    ("<user@[IPv6:2001:db8::g]>", False, False, 501, "5.1.3"),
    ("<user@[]>", False, False, 501, "5.1.3"),
    ("<user@[192.0.2.1>", False, False, 501, "5.1.3"),
    ("<a.example:user@b.example>", False, False, 501, "5.1.3"),
    ("<@a.example user@b.example>", False, False, 501, "5.1.3"),
    ("<@a_b:user@b.example>", False, False, 501, "5.1.3"),
    ("<" + "l" * 65 + "@example.org>", False, False, 501, "5.1.3"),
    ("<u@" + ".".join(["a" * 60] * 5) + ">", False, False, 501, "5.1.3"),  # path > 256
    ("<bad@sender>>", True, False, 501, "5.1.7"),
    ("<jöran@example.org>", False, False, 553, "5.6.7"),
    ("<joran@exämple.org>", True, False, 553, "5.6.7"),
    ("<" + "ö" * 33 + "@example.org>", False, True, 501, "5.1.3"),  # 66 octets of UTF-8
]


@pytest.mark.parametrize(("text", "allow_null", "utf8", "code", "status"), INVALID)
def test_invalid_paths(text: str, allow_null: bool, utf8: bool, code: int, status: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_path(text, allow_null=allow_null, smtputf8=utf8)
    assert (info.value.reply.code, info.value.reply.status_text) == (code, status)


def test_path_properties() -> None:
    null = parse_path("<>", allow_null=True, smtputf8=False)
    assert null.is_null and null.address == "" and str(null) == "<>"
    pm = parse_path("<postmaster>", allow_null=False, smtputf8=False)
    assert pm.is_postmaster and pm.address == "Postmaster" and not pm.is_null
    p = parse_path('<"a b"@Example.ORG>', allow_null=False, smtputf8=False)
    assert p.address == '"a b"@Example.ORG'
    assert p.domain_lower == "example.org"
    assert p.unquoted_local_part == "a b"
    assert Path("x", "y").unquoted_local_part == "x"


def test_domain_length_limit() -> None:
    domain = ".".join(["a" * 63] * 3) + "." + "b" * 59  # 251 octets, path of 256: fine
    assert parse_path(f"<u@{domain}>", allow_null=False, smtputf8=False).domain == domain


@pytest.mark.parametrize(
    ("arg", "path", "rest"),
    [
        ("<a@b>", "<a@b>", ""),
        ("<a@b> SIZE=1", "<a@b>", " SIZE=1"),
        ('<"x>y"@b> BODY=8BITMIME', '<"x>y"@b>', " BODY=8BITMIME"),
        ('<"x\\">"@b>', '<"x\\">"@b>', ""),
    ],
)
def test_split_path(arg: str, path: str, rest: str) -> None:
    assert split_path(arg) == (path, rest)


@pytest.mark.parametrize("arg", ["a@b", "<a@b", '<"a>@b'])
def test_split_path_errors(arg: str) -> None:
    with pytest.raises(AddressError):
        split_path(arg)
