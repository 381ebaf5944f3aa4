"""The envelope and message model: pure values and byte-level header work (no I/O)."""
