"""Sender authentication: SPF (RFC 7208), DKIM (RFC 6376, RFC 8463), DMARC (RFC 7489, RFC 9989)
and Authentication-Results (RFC 8601). Pure algorithms; DNS only through resolver.base.Resolver."""
