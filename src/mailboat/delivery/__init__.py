"""Transports: how a message leaves the queue (Maildir, LMTP, smarthost relay and MX)."""
