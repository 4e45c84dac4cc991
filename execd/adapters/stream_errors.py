"""How a websocket stream ended: retry it, or let the failure propagate.

Both streams (market data and ``trade_updates``) hand `classify_stream_error` to the
shared reconnect supervisor (`reconnect.Reconnector`) — websockets' `process_exception`
idea: network and protocol failures are retried, anything else is a bug. It lives here,
apart from either stream, with the two exceptions the streams raise to end a connection
on purpose: the server's error message (`StreamRefused`, ALPACA.md §4.4) and the
market stream's silence watchdog (`StreamSilent`).
"""

from __future__ import annotations

from typing import Literal

import msgspec
import websockets

__all__ = ["StreamRefused", "StreamSilent", "classify_stream_error"]


class StreamRefused(Exception):
    """The server answered an error message that ends this connection (§4.4)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


class StreamSilent(Exception):
    """The watchdog fired: no message for `silence_timeout` seconds while subscribed."""


def classify_stream_error(exc: BaseException) -> Literal["retry", "fatal"]:
    """Whether a stream failure is worth a reconnect (websockets' `process_exception`).

    Network and protocol failures, handshake refusals (HTTP 429/5xx on the upgrade)
    and server error messages are retried; anything else is a bug and propagates.
    """
    if isinstance(
        exc,
        OSError
        | TimeoutError
        | websockets.ConnectionClosed
        | websockets.InvalidHandshake
        | websockets.InvalidURI
        | StreamRefused
        | StreamSilent
        | msgspec.DecodeError,
    ):
        return "retry"
    return "fatal"
