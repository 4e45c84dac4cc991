"""The control API: the Unix socket `execd` CLI commands talk to.

`protocol` is the pure wire format (framing, requests, responses, status models);
`server` serves a `ControlHandler` (the engine) on a Unix socket; `client` is the
asyncio client the CLI uses.
"""
