"""The durable queue: stores (memory, SQLite; PostgreSQL later), the retry schedule, the runner.

A store is opened from the configuration by `open_store` (backend.py), nowhere else.
"""

from mailboat.queue.backend import open_store, prepare_store

__all__ = ["open_store", "prepare_store"]
