"""Transports: how a message leaves the queue (Maildir now; LMTP, relay and MX with issue 3)."""
