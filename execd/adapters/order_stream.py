"""The trade_updates websocket: every order event, routed to the leg that owns it.

Protocol (ALPACA.md §3): connect → ``{"action":"authenticate",…}`` →
``authorization/authorized`` → ``{"action":"listen","data":{"streams":["trade_updates"]}}``
→ ``listening`` → ``trade_updates`` events, JSON in text or *binary* frames (paper
sends binary, §3.1). Each event is decoded with msgspec into `wire.TradeUpdate`
(Decimal money) and handed to `route(client_order_id, update)` — the engine's
`OrderRouter.route`, which never blocks. An update no leg owns is logged as
``order_update_unrouted`` (with its event and order), never dropped silently, and
handed to `on_unrouted` (the daemon's orphan sweeper, which must not block either).

The protocol has no replay (§3.2): events sent while the socket was down are lost.
So after every (re)connection, once ``listening`` is confirmed and *before* any new
event is dispatched, the stream awaits `on_reconnected(down_since)`, where the engine
reconciles its orders over REST (``GET /v2/orders?status=all&after=…``). Events that
arrive meanwhile wait in the socket's buffer and are dispatched afterwards, so they
are applied on top of the reconciled state. A frame that cannot be decoded ends the
connection (logged) so that the reconciliation after the reconnect covers it: a
lost fill is worse than a reconnect.

Reconnection is the shared `execd.adapters.reconnect.Reconnector` (as `market_stream`):
classified failures, ``stream_reconnecting`` logs, jittered backoff reset after a session
that delivered events; a refused authorization is fatal after `max_auth_failures` in a
row. There is only ever one connection (Alpaca allows one trade_updates connection per
account, §3.1).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
import structlog
from websockets.asyncio.client import ClientConnection, connect

from execd.adapters.backoff import BackoffPolicy
from execd.adapters.reconnect import Reconnector, ReconnectPolicy
from execd.adapters.stream_errors import StreamRefused, classify_stream_error
from execd.adapters.wire import (
    Authorization,
    Ignored,
    Listening,
    TradeUpdate,
    decode_trading,
    encode_trading,
)

log = structlog.get_logger(__name__)

__all__ = ["OrderStream", "OrderStreamConfig", "OrderStreamStatistics"]

#: `route(client_order_id, update) -> bool`: True if a leg took it.
Route = Callable[[str, TradeUpdate], bool]
#: `on_reconnected(down_since)`: reconcile orders; `down_since` None on the first connection.
OnReconnected = Callable[[datetime | None], Awaitable[None]]
#: `on_unrouted(update)`: an update no leg took; must not block.
OnUnrouted = Callable[[TradeUpdate], None]


@dataclass(frozen=True, slots=True)
class OrderStreamConfig:
    """Where and how to stream trade updates (full ws URL incl. ``/stream``, §0.1)."""

    url: str
    key_id: str
    secret_key: str = field(repr=False)
    handshake_timeout: float = 10.0
    max_auth_failures: int = 3
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)


@dataclass(frozen=True, slots=True)
class OrderStreamStatistics:
    """Stream health for the daemon's `health` answer."""

    connected: bool
    connections: int
    reconnects: int
    events: int
    unrouted: int
    #: wall time the current outage began (None while connected).
    down_since: datetime | None


class OrderStream:
    """The trade_updates task. Run `run()` in the daemon's TaskGroup.

    `on_update`, if given, sees every event first (the journal); `route` then delivers
    it to its leg. Both must not block; an exception from either is a bug and ends
    `run()` (the supervisor restarts the daemon, which reconciles).
    """

    def __init__(
        self,
        config: OrderStreamConfig,
        route: Route,
        *,
        on_update: Callable[[TradeUpdate], None] | None = None,
        on_reconnected: OnReconnected | None = None,
        on_unrouted: OnUnrouted | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._config = config
        self._route = route
        self._on_update = on_update
        self._on_reconnected = on_reconnected
        self._on_unrouted = on_unrouted
        self._clock = clock
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._disconnected.set()
        self._connections = 0
        self._reconnector = Reconnector(
            "trade_updates",
            ReconnectPolicy(config.backoff, config.max_auth_failures),
            rand=rand,
        )
        self._events = 0
        self._unrouted = 0
        self._had_events = False
        self._down_since: datetime | None = None

    @property
    def connected(self) -> bool:
        """True while listening (after the reconciliation hook ran)."""
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        """Return once listening and reconciled (readiness for systemd's READY=1)."""
        await self._connected.wait()

    async def wait_disconnected(self) -> None:
        """Return once not listening (at once before the first connection)."""
        await self._disconnected.wait()

    def statistics(self) -> OrderStreamStatistics:
        """Counters for health."""
        return OrderStreamStatistics(
            connected=self.connected,
            connections=self._connections,
            reconnects=self._reconnector.reconnects,
            events=self._events,
            unrouted=self._unrouted,
            down_since=None if self.connected else self._down_since,
        )

    async def run(self) -> None:
        """Connect, listen, dispatch, reconnect forever.

        Ends only by cancellation (re-raised) or a fatal error (logged, raised).
        """
        await self._reconnector.run(
            self._connect_and_listen,
            classify=classify_stream_error,
            had_data=lambda: self._had_events,
            on_disconnect=self._on_disconnect,
            is_auth_refusal=lambda e: isinstance(e, StreamRefused),
        )

    def _on_disconnect(self) -> None:
        if self._connected.is_set():
            self._down_since = self._clock()
            log.warning("stream_disconnected", stream="trade_updates")
        self._connected.clear()
        self._disconnected.set()

    async def _connect_and_listen(self) -> None:
        self._had_events = False
        async with connect(
            self._config.url,
            open_timeout=self._config.handshake_timeout,
            ping_interval=10,
            ping_timeout=20,
            max_size=2**24,
        ) as ws:
            async with asyncio.timeout(self._config.handshake_timeout):
                await ws.send(
                    encode_trading(
                        {
                            "action": "authenticate",
                            "data": {
                                "key_id": self._config.key_id,
                                "secret_key": self._config.secret_key,
                            },
                        }
                    )
                )
                await self._expect_authorized(ws)
                await ws.send(
                    encode_trading({"action": "listen", "data": {"streams": ["trade_updates"]}})
                )
                await self._expect_listening(ws)
            self._reconnector.authenticated()
            self._connections += 1
            down_since = self._down_since if self._connections > 1 else None
            log.info(
                "stream_connected",
                stream="trade_updates",
                url=self._config.url,
                connection=self._connections,
                down_since=None if down_since is None else down_since.isoformat(),
            )
            if self._on_reconnected is not None:
                # Reconcile before acting on anything new (§3.2: no replay).
                await self._on_reconnected(down_since)
            self._down_since = None
            self._disconnected.clear()
            self._connected.set()
            while True:
                self._dispatch(await ws.recv())

    async def _expect_authorized(self, ws: ClientConnection) -> None:
        while True:
            message = decode_trading(await ws.recv())
            if isinstance(message, Authorization):
                if message.data.status == "authorized":
                    return
                log.error("stream_unauthorized", stream="trade_updates", action=message.data.action)
                raise StreamRefused(401, f"{message.data.status} ({message.data.action})")
            log.warning(
                "stream_unexpected_frame",
                stream="trade_updates",
                phase="authenticate",
                frame=type(message).__name__,
            )

    async def _expect_listening(self, ws: ClientConnection) -> None:
        while True:
            message = decode_trading(await ws.recv())
            if isinstance(message, Listening):
                if "trade_updates" not in message.data.streams:
                    raise StreamRefused(400, f"listening to {message.data.streams}")
                return
            if isinstance(message, Authorization) and message.data.status != "authorized":
                raise StreamRefused(401, f"{message.data.status} ({message.data.action})")
            if isinstance(message, TradeUpdate):
                # Cannot happen per §3.2; never drop an event if it does.
                self._dispatch_update(message)

    def _dispatch(self, frame: str | bytes) -> None:
        try:
            message = decode_trading(frame)
        except msgspec.DecodeError:
            log.error("trade_update_undecodable", stream="trade_updates", frame=frame[:500])
            raise
        match message:
            case TradeUpdate():
                self._dispatch_update(message)
            case Ignored(stream=stream, reason=reason):
                log.warning("trade_stream_frame_ignored", stream_name=stream, reason=reason)
            case Authorization() | Listening():
                log.info("trade_stream_control", frame=type(message).__name__)

    def _dispatch_update(self, update: TradeUpdate) -> None:
        self._had_events = True
        self._events += 1
        if self._on_update is not None:
            self._on_update(update)
        if not self._route(update.client_order_id, update):
            self._unrouted += 1
            log.info(
                "order_update_unrouted",
                client_order_id=update.client_order_id,
                order_id=update.order.id,
                order_event=update.event,
                symbol=update.order.symbol,
                status=update.order.status,
            )
            if self._on_unrouted is not None:
                self._on_unrouted(update)
