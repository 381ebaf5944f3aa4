"""codec.dumps_text: the one C encoder made once writes what json.dumps would."""

import json

import pytest

from mailboat.queue import codec

DOCS = [
    {"client": "localhost[127.0.0.1]", "helo": "client.example.org", "tls": None, "sasl_username": None},
    {"v": 1, "rcpt": [["jürgen@exämple.org", "utf-8;j\u00fcrgen@ex\u00e4mple.org", ["SUCCESS", "DELAY"]]]},
    {"at": 1764000000.123456, "size": 1024, "ok": True, "nested": {"list": [1, 2.5, -0.0, 1e300]}},
    ["line\u2028separator", "nul\x00", 'quote " and \\ backslash'],
    {},
    "just a string",
]


@pytest.mark.parametrize("doc", DOCS)
def test_same_text_as_json_dumps(doc):
    assert codec.dumps_text(doc) == json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    assert json.loads(codec.dumps_text(doc)) == doc


def test_what_json_cannot_hold_is_a_type_error():
    with pytest.raises(TypeError, match="bytes is not JSON serializable"):
        codec.dumps_text({"data": b"raw"})
