"""DKIM cost per message: mailboat's signer/verifier vs dkimpy alone (the baseline).

    .venv/bin/python bench/dkim_bench.py [--n 200] [--size 4096]

Signs and verifies the same message (headers + a body of --size bytes) with RSA-2048 and Ed25519.
Keys come from an in-memory zone, so the figures are CPU cost only (no DNS). dkimpy's Ed25519 needs
pynacl; without it those rows are skipped. Prints milliseconds per message (median of 5 runs).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailboat.auth.dkim.sign import DkimKey, sign_message
from mailboat.auth.dkim.verify import verify_message
from mailboat.resolver.static import StaticResolver


def message(size: int) -> bytes:
    line = b"The quick brown fox jumps over the lazy dog, again and again.  \r\n"
    body = (line * (size // len(line) + 1))[:size]
    return (b"From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: benchmark\r\n"
            b"Date: Mon, 23 Nov 2026 22:40:22 +0000\r\nMessage-ID: <bench@example.com>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n" + body)


def per_message(fn, n: int) -> float:
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n * 1000)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="messages per timed run")
    parser.add_argument("--size", type=int, default=4096, help="body size in bytes")
    args = parser.parse_args()
    try:
        import dkim
    except ImportError:
        dkim = None
    try:
        import nacl  # noqa: F401
        have_nacl = True
    except ImportError:
        have_nacl = False
    msg = message(args.size)
    keys = {"rsa-2048": DkimKey("example.com", "rsa", rsa.generate_private_key(65537, 2048)),
            "ed25519": DkimKey("example.com", "ed", ed25519.Ed25519PrivateKey.generate())}
    zone = {f"{k.selector}._domainkey.example.com": [("TXT", k.dns_record())] for k in keys.values()}
    resolver = StaticResolver(zone)
    loop = asyncio.new_event_loop()
    print(f"message: {len(msg)} bytes; ms per message, median of 5 runs of {args.n}")
    print(f"{'algorithm':10} {'operation':8} {'mailboat':>10} {'dkimpy':>10} {'ratio':>7}")
    for name, key in keys.items():
        signed = sign_message(msg, key) + msg
        ours_sign = per_message(lambda: sign_message(msg, key), args.n)
        ours_verify = per_message(lambda: loop.run_until_complete(verify_message(signed, resolver)), args.n)
        theirs_sign = theirs_verify = None
        if dkim is not None and (name == "rsa-2048" or have_nacl):
            if name == "rsa-2048":
                private = key.private_key.private_bytes(serialization.Encoding.PEM,
                                                        serialization.PrivateFormat.TraditionalOpenSSL,
                                                        serialization.NoEncryption())
            else:
                private = base64.b64encode(key.private_key.private_bytes(
                    serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()))
            algorithm = b"rsa-sha256" if name == "rsa-2048" else b"ed25519-sha256"
            record = zone[f"{key.selector}._domainkey.example.com"][0][1].encode()

            def dnsfunc(_name, timeout=5):
                return record
            sign = lambda: dkim.sign(msg, key.selector.encode(), b"example.com", private,  # noqa: E731
                                     canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=algorithm)
            theirs_sign = per_message(sign, max(10, args.n // 10) if name == "rsa-2048" else args.n)
            theirs_verify = per_message(lambda: dkim.verify(signed, dnsfunc=dnsfunc), args.n)
        for op, ours, theirs in (("sign", ours_sign, theirs_sign), ("verify", ours_verify, theirs_verify)):
            if theirs is None:
                print(f"{name:10} {op:8} {ours:10.3f} {'n/a':>10} {'':>7}")
            else:
                print(f"{name:10} {op:8} {ours:10.3f} {theirs:10.3f} {theirs / ours:6.1f}x")
    loop.close()


if __name__ == "__main__":
    main()
