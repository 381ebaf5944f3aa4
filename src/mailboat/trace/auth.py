"""Authentication evidence the trace analyser reads: Authentication-Results and a DKIM body hash.

* Authentication-Results (RFC 8601 §2.2) and ARC-Authentication-Results (RFC 8617 §4.1.1): only
  the parts a trace needs are read (authserv-id, ``method=result``, ``reason``, ``header.d``,
  ``smtp.mailfrom``); a malformed header gives fewer results, never an exception.
* DKIM body hash (RFC 6376 §3.4.3 simple and §3.4.4 relaxed body canonicalisation, §3.5 ``bh=``
  and ``l=``, §3.7 hash step 1): recomputed with hashlib and compared to the signature's ``bh=``.
  A mismatch proves that the body changed after signing, whatever the receiver reported; the
  signature itself (``b=``, which needs DNS) is not checked here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

_SEGMENT = re.compile(r";(?![^()]*\))")  # a ';' that is not inside a (one-level) comment
_RESULT = re.compile(r"\b(spf|dkim|dmarc|arc|iprev|auth)\s*=\s*([A-Za-z]+)", re.I)
_PROP = re.compile(r"\b(header\.d|header\.i|header\.from|smtp\.mailfrom|header\.s)\s*=\s*([^\s;()]+)", re.I)
_REASON = re.compile(r"reason\s*=\s*(\"[^\"]*\"|\S+)", re.I)
_INSTANCE = re.compile(r"^\s*i\s*=\s*(\d+)\s*;", re.I)
_COMMENT = re.compile(r"\(([^()]*)\)")
_BODY_HASH_FAIL = re.compile(r"body ?hash|bh\b|body has been altered", re.I)
_WSP_RUN = re.compile(rb"[ \t]+")
_WSP_EOL = re.compile(rb"[ \t]+\r\n")
_EOL = re.compile(rb"\r?\n")
_TRAILING_EMPTY = re.compile(rb"(?:\r\n)+\Z")
_HASHES = {"sha256": hashlib.sha256, "sha1": hashlib.sha1}


@dataclass(frozen=True, slots=True)
class AuthResult:
    """One ``method=result`` from an (ARC-)Authentication-Results header."""

    header: str  # "Authentication-Results" or "ARC-Authentication-Results"
    instance: int | None  # ARC i= (None for Authentication-Results)
    authserv_id: str
    method: str  # "spf", "dkim", "dmarc", "arc"
    result: str  # "pass", "fail", "softfail", ...
    domain: str | None  # header.d (dkim) or the domain of smtp.mailfrom (spf)
    reason: str | None  # reason= or the comment after the result


def parse_auth_results(value: str, header: str = "Authentication-Results") -> list[AuthResult]:
    """Read the results of one header value (unfolded). Unknown methods are skipped."""
    instance = None
    m = _INSTANCE.match(value)
    if m:
        instance = int(m.group(1))
        value = value[m.end() :]
    parts = _SEGMENT.split(value)
    authserv = _COMMENT.sub("", parts[0]).strip().split(" ")[0] if parts else ""
    results: list[AuthResult] = []
    for part in parts[1:]:
        found = _RESULT.search(part)
        if found is None:
            continue
        props = {k.lower(): v for k, v in _PROP.findall(part)}
        domain = props.get("header.d") or props.get("smtp.mailfrom", "").rpartition("@")[2] or None
        reason_m = _REASON.search(part)
        comment = _COMMENT.search(part, found.end())
        reason = reason_m.group(1).strip('"') if reason_m else (comment.group(1).strip() if comment else None)
        results.append(
            AuthResult(header, instance, authserv, found.group(1).lower(), found.group(2).lower(), domain, reason)
        )
    return results


def body_hash_failed(result: AuthResult) -> bool:
    """True when a dkim=fail result says the body hash did not match."""
    return result.method == "dkim" and result.result == "fail" and bool(_BODY_HASH_FAIL.search(result.reason or ""))


@dataclass(frozen=True, slots=True)
class BodyHashCheck:
    """The recomputed body hash of one DKIM-Signature."""

    domain: str
    selector: str
    canonicalization: str  # body canonicalisation: "simple" or "relaxed"
    length: int | None  # l= tag
    expected: str  # bh= as signed
    computed: str

    @property
    def ok(self) -> bool:
        return self.expected == self.computed


def dkim_tags(value: str) -> dict[str, str]:
    """tag=value list of RFC 6376 §3.2; whitespace removed from values (b= and bh= are folded)."""
    tags: dict[str, str] = {}
    for item in value.split(";"):
        name, sep, val = item.partition("=")
        if sep:
            tags[name.strip().lower()] = "".join(val.split())
    return tags


def canonical_body(body: bytes, method: str) -> bytes:
    """RFC 6376 §3.4.3 (simple) / §3.4.4 (relaxed). Bare LF line ends are read as CRLF."""
    body = _EOL.sub(b"\r\n", body)
    if method == "relaxed":
        body = _WSP_RUN.sub(b" ", _WSP_EOL.sub(b"\r\n", body))
        if body and not body.endswith(b"\r\n"):
            body += b"\r\n"
        body = _TRAILING_EMPTY.sub(b"\r\n", body)
        return b"" if body == b"\r\n" else body
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return _TRAILING_EMPTY.sub(b"\r\n", body)


def check_body_hash(signature: str, body: bytes) -> BodyHashCheck | None:
    """Recompute bh= for one DKIM-Signature value; None when the signature cannot be used."""
    tags = dkim_tags(signature)
    algorithm = tags.get("a", "rsa-sha256").rpartition("-")[2].lower()
    expected = tags.get("bh")
    if algorithm not in _HASHES or not expected:
        return None
    body_method = tags.get("c", "simple/simple").partition("/")[2].lower() or "simple"
    if body_method not in ("simple", "relaxed"):
        return None
    canon = canonical_body(body, body_method)
    length = None
    if "l" in tags:
        try:
            length = int(tags["l"])
        except ValueError:
            return None
        canon = canon[:length]
    computed = base64.b64encode(_HASHES[algorithm](canon).digest()).decode("ascii")
    try:
        expected = base64.b64encode(base64.b64decode(expected)).decode("ascii")  # normalise padding
    except (binascii.Error, ValueError):
        pass
    return BodyHashCheck(tags.get("d", "?"), tags.get("s", "?"), body_method, length, expected, computed)
