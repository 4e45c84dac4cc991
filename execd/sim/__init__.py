"""The Alpaca-compatible simulated venue: market model, matching engine, account and order rules.

The engine (this package's ``exchange``, ``market``, ``book``, ``rules``, ``wire``) does no I/O; the
server modules built on it turn its dicts into HTTP responses and websocket frames.
"""
