"""Inbound asyncio I/O: listeners and the per-connection driver of smtp.ServerConnection."""
