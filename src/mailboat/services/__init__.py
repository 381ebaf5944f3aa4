"""Service functions shared by the CLI and the web UI (STYLE: they never import each other).

Each takes a QueueStore (the CLI opens it with `queue.open_store`, the web UI uses the server's store) and
returns plain values or JSON-ready dicts; rendering for a terminal or a page stays with the caller.
"""
