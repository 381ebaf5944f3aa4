"""Envelope values: frozen, slotted, validated at the boundary."""

import dataclasses

import pytest

from mailboat.mail.envelope import Envelope, Recipient


def test_defaults_and_immutability():
    env = Envelope("alice@example.org", (Recipient("bob@example.net"),))
    assert (env.ret, env.envid, env.body, env.smtputf8, env.auth_user) == (None, None, None, False, None)
    assert env.recipients[0].notify is None and not env.is_bounce
    assert Envelope("", (Recipient("b@x"),)).is_bounce
    with pytest.raises(dataclasses.FrozenInstanceError):
        env.sender = "mallory@example.org"  # type: ignore[misc]
    assert not hasattr(env, "__dict__")  # slots
    assert env.recipient("bob@example.net") == Recipient("bob@example.net") and env.recipient("x") is None


def test_equality_and_hash():
    a = Envelope("s@x", (Recipient("r@x", "rfc822;r@x", ("SUCCESS", "FAILURE")),), ret="HDRS", envid="id1")
    b = Envelope("s@x", (Recipient("r@x", "rfc822;r@x", ("SUCCESS", "FAILURE")),), ret="HDRS", envid="id1")
    assert a == b and hash(a) == hash(b)


@pytest.mark.parametrize("kwargs", [
    {"sender": "a@x\r\nBcc: evil@x"}, {"ret": "ALL"}, {"body": "9BIT"}, {"recipients": [Recipient("r@x")]},
])
def test_envelope_refuses(kwargs):
    base = {"sender": "a@x", "recipients": (Recipient("r@x"),)}
    with pytest.raises((ValueError, TypeError)):
        Envelope(**{**base, **kwargs})


@pytest.mark.parametrize("kwargs", [
    {"address": "r@x\n"}, {"address": "r\x00@x"}, {"notify": ()}, {"notify": ("NEVER", "SUCCESS")},
    {"notify": ("SOMETIMES",)},
])
def test_recipient_refuses(kwargs):
    with pytest.raises(ValueError):
        Recipient(**{"address": "r@x", **kwargs})
