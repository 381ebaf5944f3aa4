"""The DNS boundary: a Resolver protocol and its dnspython adapter (the only dnspython user)."""

from mailboat.resolver.base import DnsError, NoSuchDomain, Resolver, TempDnsError

__all__ = ["DnsError", "NoSuchDomain", "Resolver", "TempDnsError"]
