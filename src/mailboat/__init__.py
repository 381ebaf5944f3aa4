"""mailboat: a mail transfer agent that accepts, stamps, queues, routes, relays and traces mail."""

__version__ = "0.1.0"
