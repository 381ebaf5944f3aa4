"""The durable queue: stores (memory, SQLite; PostgreSQL later), the retry schedule, the runner."""
