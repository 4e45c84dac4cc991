"""Item 2's probe, in the venue's process: the two stamps the issue defines, on one clock.

Issue 14 defines a reaction as "time from the venue writing that quote frame to the venue
receiving the replace request (one monotonic clock)". The probe stamps exactly there, the
same way for the daemon and for the SDK baseline (both talk to the same venue code):

- **frame written** — `StreamHub.on_data_frame_sent`: right after the market-data websocket
  frame carrying the symbol's quote was handed to the transport (aiohttp writes it before its
  first await; it awaits afterwards only when the transport is paused, which would stamp
  *later* and shorten the figure — the reaction stream never backs up that far);
- **request's first bytes** — `ArrivalProtocol.data_received`: the venue's HTTP server
  protocol (aiohttp's `RequestHandler`) wrapped by the loop that creates it
  (`StampingLoop.create_server`); the chunk that begins ``DELETE /v2/orders/<id>`` or
  ``PATCH /v2/orders/<id>`` is stamped before aiohttp parses it, keyed by the order id.

Rounds one to three stamped later on both ends: the quote when the venue *published* it (its
writer task had not yet written the frame) and the request when the venue's *handler* ran
(`Exchange.cancel_order` / `replace_order`, after aiohttp parsed and dispatched it). That
figure is still measured (``handler_latencies``) so runs stay comparable.

Latency = first bytes − the latest frame carrying that symbol's quote written before them;
one more than `MAX_ATTRIBUTED_S` later is not a reaction (a timeout re-peg) and is counted
apart, as is a request whose first bytes were not recognised (``unstamped``: none expected,
HTTP/1.1 clients here neither pipeline nor split a request line).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import uvloop

from execd.sim.exchange import Exchange
from execd.sim.streams_hub import StreamHub

MAX_ATTRIBUTED_S = 0.25
# A re-peg's first request: the cancel (`cancel_and_place`, the default) or the replace.
_REQUEST_LINES = (b"DELETE /v2/orders/", b"PATCH /v2/orders/")


def order_id_of(chunk: bytes) -> str | None:
    """The order id of a chunk that begins a cancel or replace request line, else None."""
    for prefix in _REQUEST_LINES:
        if chunk.startswith(prefix):
            end = chunk.find(b" ", len(prefix))
            if end < 0:
                return None
            target = chunk[len(prefix) : end].split(b"?", 1)[0]
            return target.decode("ascii", "replace") or None
    return None


class Probe:
    """Stamps frames written and requests arriving at the venue (module docstring)."""

    def __init__(self, exchange: Exchange | None = None, hub: StreamHub | None = None) -> None:
        # symbol -> (previous, latest) frame-written stamps: a frame written between a
        # request's first bytes and its handler must not be the one it reacted to.
        self.written: dict[str, tuple[float, float]] = {}
        self.published: dict[str, float] = {}
        self.first_bytes: dict[str, float] = {}
        self.latencies: list[float] = []
        self.handler_latencies: list[float] = []
        self.unattributed = 0
        self.unstamped = 0
        #: symbols whose requests are not reactions right now (the harness cancelling).
        self.ignoring: set[str] = set()
        if exchange is None or hub is None:
            return
        hub.on_data_frame_sent = self._on_frame
        exchange.on_market_data(self._on_market)
        replace: Callable[[str, Any], dict[str, Any]] = exchange.replace_order

        def replace_order(order_id: str, body: Any) -> dict[str, Any]:
            self._handled(order_id, exchange.get_order(order_id)["symbol"])
            return replace(order_id, body)

        setattr(exchange, "replace_order", replace_order)  # noqa: B010 (an instance hook)
        cancel: Callable[[str], None] = exchange.cancel_order

        def cancel_order(order_id: str) -> None:
            self._handled(order_id, exchange.get_order(order_id)["symbol"])
            cancel(order_id)

        setattr(exchange, "cancel_order", cancel_order)  # noqa: B010 (an instance hook)

    def on_bytes(self, chunk: bytes) -> None:
        """The venue's HTTP server received `chunk` (stamped before it is parsed)."""
        now = time.monotonic()
        order_id = order_id_of(chunk)
        if order_id is not None:
            self.first_bytes[order_id] = now

    def _on_frame(self, messages: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        for message in messages:
            if message.get("T") == "q":
                symbol = message["S"]
                last = self.written.get(symbol)
                self.written[symbol] = (last[1] if last else -1e18, now)

    def _on_market(self, message: dict[str, Any]) -> None:
        if message.get("T") == "q":
            self.published[message["S"]] = time.monotonic()

    def _handled(self, order_id: str, symbol: str) -> None:
        handled = time.monotonic()
        first = self.first_bytes.pop(order_id, None)
        if symbol in self.ignoring:
            return
        if first is None:
            self.unstamped += 1
            return
        written = self.written.get(symbol)
        frame = None
        if written is not None:
            frame = written[1] if written[1] <= first else written[0]
        if frame is None or not 0 <= first - frame <= MAX_ATTRIBUTED_S:
            self.unattributed += 1
            return
        self.latencies.append(first - frame)
        self.handler_latencies.append(handled - self.published.get(symbol, frame))

    def results(self) -> tuple[list[float], list[float], int, int]:
        """What crosses the pipe: (latencies, handler latencies, unattributed, unstamped)."""
        return self.latencies, self.handler_latencies, self.unattributed, self.unstamped

    def merge(self, results: tuple[list[float], list[float], int, int]) -> None:
        """Add a round's `results`."""
        latencies, handler, unattributed, unstamped = results
        self.latencies.extend(latencies)
        self.handler_latencies.extend(handler)
        self.unattributed += unattributed
        self.unstamped += unstamped


class ArrivalProtocol(asyncio.Protocol):
    """Forwards every transport callback to the server's real protocol; stamps each chunk
    first. Writes do not pass through it (the real protocol holds the transport)."""

    __slots__ = ("_inner", "_sink")

    def __init__(self, inner: asyncio.Protocol, sink: Callable[[bytes], None]) -> None:
        self._inner = inner
        self._sink = sink

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._sink(data)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class StampingLoop(uvloop.Loop):
    """uvloop whose servers' protocols are wrapped in `ArrivalProtocol` feeding `sink`
    (set it before requests arrive; chunks before that are ignored)."""

    sink: Callable[[bytes], None] | None = None

    def _stamp(self, chunk: bytes) -> None:
        if self.sink is not None:
            self.sink(chunk)

    async def create_server(  # type: ignore[override]
        self, protocol_factory: Callable[[], asyncio.Protocol], *args: Any, **kwargs: Any
    ) -> asyncio.AbstractServer:
        def wrapped() -> asyncio.Protocol:
            return ArrivalProtocol(protocol_factory(), self._stamp)

        server: asyncio.AbstractServer = await super().create_server(wrapped, *args, **kwargs)
        return server
