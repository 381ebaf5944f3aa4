"""The auth filters in a real Pipeline, in the order proposed for app.py:
spf -> dkim-verify -> dmarc -> authentication-results (inbound), dkim-sign (submission)."""

from __future__ import annotations

import asyncio

from cryptography.hazmat.primitives.asymmetric import ed25519

from mailboat.auth.dkim.sign import DkimKey, sign_message
from mailboat.auth.dkim.verify import verify_message
from mailboat.auth.results import remove_fields
from mailboat.mail.headers import get_all
from mailboat.policy import Pipeline, SessionInfo, TransactionInfo
from mailboat.policy.filters.authresults import AuthLedger, AuthResultsFilter
from mailboat.policy.filters.dkim_sign import DkimSignFilter
from mailboat.policy.filters.dkim_verify import DkimVerifyFilter
from mailboat.policy.filters.dmarc import DmarcFilter
from mailboat.policy.filters.spf import SpfFilter
from mailboat.resolver.static import TIMEOUT, StaticResolver

KEY = DkimKey("example.com", "s1", ed25519.Ed25519PrivateKey.generate())
MESSAGE = (b"Authentication-Results: mx.test.example; dmarc=pass (forged by the sender)\r\n"
           b"X-Mailboat-Folder: Inbox/../../elsewhere\r\n"
           b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nHello\r\n")


def zone(dmarc: str = "v=DMARC1; p=reject", spf: str = "v=spf1 ip4:192.0.2.10 -all") -> StaticResolver:
    return StaticResolver({
        "example.com": [("TXT", spf)],
        "_dmarc.example.com": [("TXT", dmarc)],
        "s1._domainkey.example.com": [("TXT", KEY.dns_record())],
    })


def inbound(resolver, **dmarc_options) -> Pipeline:
    ledger = AuthLedger()
    return Pipeline([
        SpfFilter(resolver, ledger, receiver="mx.test.example"),
        DkimVerifyFilter(resolver, ledger),
        DmarcFilter(resolver, ledger, **dmarc_options),
        AuthResultsFilter("mx.test.example", ledger),
    ])


def deliver(pipeline: Pipeline, message: bytes, ip: str = "192.0.2.10", auth_user: str | None = None):
    session = SessionInfo(listener="smtp", peer_ip=ip, peer_port=2525, helo="mail.example.com", auth_user=auth_user)
    txn = TransactionInfo(sender="alice@example.com")

    async def main():
        assert (await pipeline.on_mail(session, txn)).reply is None
        return await pipeline.on_data(session, txn, message)
    return asyncio.run(main())


def auth_results(verdict) -> str:
    [field] = [h for h in verdict.headers if h.startswith(b"Authentication-Results")]
    return field.decode()


def test_aligned_spf_and_dkim_pass():
    signed = sign_message(MESSAGE, KEY) + MESSAGE
    verdict = deliver(inbound(zone()), signed)
    assert verdict.reply is None
    header = auth_results(verdict)
    assert "spf=pass smtp.mailfrom=alice@example.com" in header
    assert "dkim=pass header.d=example.com header.s=s1 header.a=ed25519-sha256" in header
    assert "dmarc=pass" in header and "header.from=example.com" in header


def test_p_reject_gives_550_at_end_of_data():
    verdict = deliver(inbound(zone()), MESSAGE, ip="198.51.100.7")
    assert verdict.reply.code == 550 and verdict.reply.status == (5, 7, 1)
    assert "DMARC policy for example.com" in " ".join(verdict.reply.lines)


def test_p_reject_can_be_configured_to_quarantine():
    verdict = deliver(inbound(zone(), on_reject="quarantine"), MESSAGE, ip="198.51.100.7")
    assert verdict.reply is None and b"X-Mailboat-Folder: Junk\r\n" in verdict.headers


def test_p_quarantine_goes_to_junk():
    verdict = deliver(inbound(zone("v=DMARC1; p=quarantine")), MESSAGE, ip="198.51.100.7")
    assert verdict.reply is None
    assert b"X-Mailboat-Folder: Junk\r\n" in verdict.headers
    assert "dmarc=fail" in auth_results(verdict) and "disposition=quarantine" in auth_results(verdict)


def test_quarantine_to_junk_can_be_disabled():
    verdict = deliver(inbound(zone("v=DMARC1; p=quarantine"), on_quarantine="none"), MESSAGE, ip="198.51.100.7")
    assert b"X-Mailboat-Folder: Junk\r\n" not in verdict.headers


def test_no_dmarc_record_accepts():
    resolver = StaticResolver({"example.com": [("TXT", "v=spf1 -all")]})
    verdict = deliver(inbound(resolver), MESSAGE, ip="198.51.100.7")
    assert verdict.reply is None and "dmarc=none" in auth_results(verdict) and "spf=fail" in auth_results(verdict)


def test_dns_timeout_accepts_or_defers_as_configured():
    resolver = StaticResolver({"example.com": [(TIMEOUT, "")], "_dmarc.example.com": [(TIMEOUT, "")]})
    accepted = deliver(inbound(resolver), MESSAGE)
    assert accepted.reply is None and "dmarc=temperror" in auth_results(accepted)
    assert "spf=temperror" in auth_results(accepted)
    deferred = deliver(inbound(resolver, temperror="defer"), MESSAGE)
    assert deferred.reply.code == 451 and deferred.reply.is_transient  # the client keeps it: never lost


def test_forged_results_and_folder_header_are_marked_for_removal():
    filt = AuthResultsFilter("mx.test.example", AuthLedger())
    session = SessionInfo(listener="smtp", peer_ip="192.0.2.10", peer_port=1)
    txn = TransactionInfo(sender="alice@example.com")
    # The verdict cannot carry removals until Verdict.remove_headers exists; the filter's own
    # helper computes them, and remove_fields applies them as the session will.
    from mailboat.auth.results import forged_fields
    cleaned = remove_fields(MESSAGE, [*forged_fields(MESSAGE, "mx.test.example"),
                                      *get_all(MESSAGE, "X-Mailboat-Folder")])
    assert b"forged by the sender" not in cleaned and b"X-Mailboat-Folder" not in cleaned
    assert cleaned.endswith(b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nHello\r\n")
    verdict = asyncio.run(filt.on_data(session, txn, MESSAGE))
    assert verdict.headers[0].startswith(b"Authentication-Results: mx.test.example;")
    if hasattr(verdict, "remove_headers"):
        assert len(verdict.remove_headers) == 2


def test_submission_is_signed_and_verifies_as_delivered():
    pipeline = Pipeline([DkimSignFilter([KEY])])
    verdict = deliver(pipeline, MESSAGE, auth_user="alice@example.com")
    [signature] = verdict.headers
    received = b"Received: from mail.example.com by mx.test.example; Mon, 23 Nov 2026 22:40:22 +0000\r\n"
    delivered = signature + received + MESSAGE  # the session puts filter headers above Received
    [result] = asyncio.run(verify_message(delivered, zone()))
    assert result.result == "pass", result.reason


def test_unauthenticated_or_foreign_domain_is_not_signed():
    pipeline = Pipeline([DkimSignFilter([KEY], trusted_networks=["10.0.0.0/8"])])
    assert deliver(pipeline, MESSAGE).headers == ()
    assert deliver(pipeline, MESSAGE, ip="10.1.2.3").headers  # trusted network
    other = MESSAGE.replace(b"alice@example.com", b"alice@other.example")
    assert deliver(pipeline, other, auth_user="alice@other.example").headers == ()
    sub = MESSAGE.replace(b"alice@example.com", b"alice@lists.example.com")
    assert deliver(pipeline, sub, auth_user="alice@example.com").headers  # parent domain's key


def test_authenticated_mail_is_not_judged_inbound():
    verdict = deliver(inbound(zone()), MESSAGE, ip="198.51.100.7", auth_user="alice@example.com")
    assert verdict.reply is None
    assert "auth=pass smtp.auth=alice@example.com" in auth_results(verdict)
    assert "dmarc" not in auth_results(verdict)


def test_auth_state_lives_and_ends_with_its_transaction():
    ledger = AuthLedger()
    txns = [TransactionInfo(sender=f"s{i}@example.com") for i in range(5)]
    for txn in txns:
        ledger.update(txn, sender=txn.sender)
    assert [ledger.get(txn).sender for txn in txns] == [txn.sender for txn in txns]
    assert ledger.pop(txns[0]).sender == "s0@example.com" and ledger.get(txns[0]).sender == ""
    assert ledger.get(TransactionInfo(sender="new@example.com")).sender == ""  # a new MAIL starts empty
