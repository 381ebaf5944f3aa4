"""Router: local existence, aliases (loop-safe), Maildir paths that cannot escape, routes."""

import os

import pytest

from mailboat.routing.route import Lmtp, Maildir, Mx, Relay
from mailboat.routing.router import Router


def make(**kw):
    accounts = {"alice@example.com", "bob@example.com"}
    base = dict(
        local_domains=["example.com", "localhost"], account_exists=lambda a: a in accounts,
        aliases={"sales@example.com": ["alice@example.com", "carol@example.org"],
                 "loop1@example.com": ["loop2@example.com"], "loop2@example.com": ["loop1@example.com"],
                 "self@example.com": ["self@example.com", "bob@example.com"],
                 "team@example.com": ["sales@example.com", "bob@example.com"]},
        catch_all=False, maildir_template="{data_dir}/mail/{domain}/{local}", data_dir="/srv/mb",
        hostname="mx.example.com",
    )
    base.update(kw)
    return Router(**base)


@pytest.mark.parametrize("address, exists", [
    ("alice@example.com", True),
    ("ALICE@EXAMPLE.COM.", True),
    ("alice+lists@example.com", True),
    ("sales@example.com", True),
    ("postmaster@example.com", True),
    ("Postmaster", False),  # bare postmaster is postmaster@mx.example.com, not a local domain here
    ("nobody@example.com", False),
    ("alice@example.org", False),
    ("user%example.net@example.com", False),
    ("example.net!user@example.com", False),
    ('"user@example.net"@example.com', False),
])
def test_recipient_exists(address, exists):
    assert make().recipient_exists(address) is exists


def test_catch_all():
    router = make(catch_all=True)
    assert router.recipient_exists("anything@example.com")
    assert not router.recipient_exists("user%evil.net@example.com")


def test_alias_expansion_recursive_and_loop_safe():
    router = make()
    assert router.expand("team@example.com") == ["alice@example.com", "carol@example.org", "bob@example.com"]
    assert sorted(router.expand("loop1@example.com")) == ["loop1@example.com"]
    assert router.expand("self@example.com") == ["self@example.com", "bob@example.com"]
    assert router.expand("alice@example.com") == ["alice@example.com"]


@pytest.mark.parametrize("address, tail", [
    ("alice@example.com", "example.com/alice"),
    ("Alice+tag@Example.com", "example.com/alice"),
    ("../../etc@example.com", "example.com/%2E.%2F..%2Fetc"),
    (".hidden@example.com", "example.com/%2Ehidden"),
    ('"a b"@example.com', "example.com/%22a%20b%22"),
])
def test_maildir_paths_stay_inside(address, tail):
    path = make(catch_all=True).maildir_path(address)
    assert path == os.path.join("/srv/mb/mail", tail)
    assert os.path.normpath(path).startswith("/srv/mb/mail/example.com/")


def test_routes():
    router = make(routes={"example.net": "127.0.0.3:2525"})
    assert router.route("alice@example.com") == Maildir("/srv/mb/mail/example.com/alice")
    assert router.route("x@example.net") == Relay("127.0.0.3:2525")
    assert router.route("x@example.org") == Mx("example.org")
    assert make(smarthost="smart:25").route("x@example.org") == Relay("smart:25")
    assert make(lmtp="127.0.0.1:24").route("alice@example.com") == Lmtp("127.0.0.1:24")


def test_routes_are_kept_and_the_cache_stays_bounded(monkeypatch):
    from mailboat.routing import router as router_module

    monkeypatch.setattr(router_module, "ROUTE_CACHE_SIZE", 3)
    router = make(routes={"partner.test": "[10.0.0.9]:25"})
    first = router.route("Alice+x@Example.COM")
    assert router.route("Alice+x@Example.COM") is first  # the kept answer
    assert first == Maildir("/srv/mb/mail/example.com/alice")
    answers = {a: router.route(a) for a in ("bob@example.com", "x@partner.test", "y@far.test", "postmaster")}
    assert len(router._route_cache) <= 3
    # Whatever was dropped is worked out again, the same.
    assert answers == {"bob@example.com": Maildir("/srv/mb/mail/example.com/bob"),
                       "x@partner.test": Relay("[10.0.0.9]:25"), "y@far.test": Mx("far.test"),
                       "postmaster": Mx("mx.example.com")}
    assert router.route("Alice+x@Example.COM") == first
