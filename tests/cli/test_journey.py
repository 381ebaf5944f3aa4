"""`mailboat journey` against a real `mailboat serve`: SMTP in, Maildir delivery, events out."""

import json
import smtplib

import pytest

from mbtest import start_server


# "large": over runner.DELIVER_FIRST_MIN, so delivered before it is queued: same journey.
@pytest.mark.parametrize("body", [b"hello\r\n", b"hello\r\n" * 12_000], ids=["small", "large"])
def test_journey_of_a_delivered_message(tmp_path, body):
    server = start_server(tmp_path)
    try:
        with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as client:
            client.ehlo("client.example")
            client.sendmail("sender@example.org", ["sales@example.com"],
                            b"Received: from origin.example (origin.example [192.0.2.1]) by relay.example.org "
                            b"with ESMTP id AAA; Mon, 1 Jan 2024 10:00:00 +0000\r\nSubject: j\r\n\r\n" + body)
            reply = client.noop()
        server.wait_messages("alice@example.com", 1)
        server.wait_messages("bob@example.com", 1)
        qid = server.messages("alice@example.com")[0].split(b" id ", 1)[1][:14].decode()
        for _ in range(100):  # the runner journals just after the files appear
            result = server.cli("journey", qid, "--json")
            journey = json.loads(result.stdout)
            if journey["status"] == "delivered":
                break
        assert reply[0] == 250 and result.returncode == 0
        kinds = [e["kind"] for e in journey["events"]]
        assert kinds[0] == "hop" and kinds[-1] == "finished"  # the upstream hop, ours, then the end
        assert kinds.count("delivery") == 2 and "queued" in kinds
        deliveries = [e for e in journey["events"] if e["kind"] == "delivery"]
        assert {e["detail"]["to"] for e in deliveries} == {"alice@example.com", "bob@example.com"}
        assert all(e["detail"]["status"] == "sent" and e["detail"]["orig_to"] == "sales@example.com"
                   for e in deliveries)
        assert journey["our_hop"] == 2 and journey["received"]["hops"][1]["id"] == qid
        assert journey["events"][0]["offset_seconds"] == 0 and journey["events"][-1]["offset_seconds"] > 0
        text = server.cli("journey", qid)
        assert text.returncode == 0 and "Journey of" in text.stdout and "left the queue: 2 delivered" in text.stdout
        assert "Hop 2 is this server's own Received header." in text.stdout
        unknown = server.cli("journey", "ZZZZZZZZZZZZZZ")
        assert unknown.returncode == 1 and len(unknown.stderr.splitlines()) == 1
    finally:
        log = server.stop()
    assert "Traceback" not in log
