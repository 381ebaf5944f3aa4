"""DKIM (RFC 6376) with RSA-SHA256 and Ed25519-SHA256 (RFC 8463): signing and verification.

Both directions share tags.py (tag=value lists) and canonical.py (the byte rules), so what we
sign is exactly what we would verify. Crypto is `cryptography`'s (OpenSSL), DNS is our Resolver.
"""

from mailboat.auth.dkim.sign import DkimKey, load_key, sign_message
from mailboat.auth.dkim.verify import SignatureResult, verify_message

__all__ = ["DkimKey", "SignatureResult", "load_key", "sign_message", "verify_message"]
