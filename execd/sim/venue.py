"""``async with SimVenue(config) as venue:`` — the whole simulated venue on a loopback port.

Used by tests, by the daemon's in-process ``--venue sim`` and by ``execd sim``
(:mod:`execd.sim.cli`). Entering starts the engine's market task and one aiohttp server that
serves Alpaca's trading REST, market-data REST, both websockets and the ``/sim/`` fault API
(DESIGN.md "The venue"); leaving closes every socket, stops the server and the engine task, and
re-raises the engine task's failure if it had one (nothing is fire-and-forget).

The async admin helpers call the same code as the HTTP ``/sim/`` routes (:mod:`execd.sim.admin`),
so a test can use either.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Literal, Self

from aiohttp import web

from execd.sim.admin import AdminError, HttpFault, stream_kinds
from execd.sim.clock import VenueClock
from execd.sim.config import SimConfig
from execd.sim.exchange import Exchange
from execd.sim.ratelimit import RateLimiter
from execd.sim.server import ServerOptions, VenueServices, build_app, credentials_match
from execd.sim.streams import StreamKind
from execd.sim.streams_hub import StreamHub, StreamOptions

__all__ = ["SimVenue"]

StreamName = Literal["trading", "data", "all"]


class SimVenue:
    """The simulated venue as an async context manager; see the module docstring.

    After entering: ``trading_url``, ``trading_stream_url``, ``data_url``, ``data_stream_url``
    (the IEX feed), ``admin_url``, ``key_id``, ``secret_key``, ``exchange``, ``clock``, ``port``.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        options: ServerOptions | None = None,
        clock: VenueClock | None = None,
    ) -> None:
        self.config = config or SimConfig()
        self.host = host
        self._requested_port = port
        self.options = options or ServerOptions()
        self.clock = clock or VenueClock.from_config(self.config)
        self.exchange = Exchange(self.config, self.clock)
        self.key_id = self.config.key_id
        self.secret_key = self.config.secret_key
        self.hub = StreamHub(
            lambda key, secret: credentials_match(self.key_id, self.secret_key, key, secret),
            StreamOptions(
                symbol_limit=self.options.data_symbol_limit,
                auth_timeout=self.options.data_auth_timeout,
                connections_per_key=self.options.data_connections_per_key,
                slow_client_backlog=self.options.slow_client_backlog,
                slow_client_timeout=self.options.slow_client_timeout,
                send_buffer=self.options.stream_send_buffer,
            ),
        )
        self.services = VenueServices(
            exchange=self.exchange,
            clock=self.clock,
            hub=self.hub,
            key_id=self.key_id,
            secret_key=self.secret_key,
            trading_limiter=RateLimiter(self.options.rate_limit, self.options.rate_window_seconds),
            data_limiter=RateLimiter(
                self.options.data_rate_limit, self.options.rate_window_seconds
            ),
            data_page_limit=self.options.data_page_limit,
        )
        self._runner: web.AppRunner | None = None
        self._engine_task: asyncio.Task[None] | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        self.hub.attach(self.exchange.on_trade_update, self.exchange.on_market_data)
        self.hub.on_subscribe = self.exchange.activate
        self._engine_task = asyncio.create_task(self.exchange.run(), name="sim-exchange")
        runner = web.AppRunner(
            build_app(self.services), handle_signals=False, access_log=None, shutdown_timeout=1.0
        )
        try:
            await runner.setup()
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            await self._stop_engine()
            self.hub.detach()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.hub.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        failure = await self._stop_engine()
        if failure is not None and exc is None:
            raise failure

    async def _stop_engine(self) -> BaseException | None:
        """Cancel the engine task, wait for it and return its failure (None: none).

        ``asyncio.wait`` waits without raising the engine's own ``CancelledError``, so a cancel
        of the closing task that lands in the wait still propagates (awaiting the task under
        ``suppress(CancelledError)`` absorbed it)."""
        task, self._engine_task = self._engine_task, None
        if task is None:
            return None
        if not task.done():
            task.cancel("venue closing")
            await asyncio.wait({task})
        if task.cancelled():
            return None
        return task.exception()

    # ------------------------------------------------------------------ addresses

    @property
    def trading_url(self) -> str:
        """Trading REST origin (alpaca-py ``url_override``; paths are ``/v2/...``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def trading_stream_url(self) -> str:
        """The trade_updates websocket (alpaca-py ``TradingStream(url_override=...)``)."""
        return f"ws://{self.host}:{self.port}/stream"

    @property
    def data_url(self) -> str:
        """Market-data REST origin (same server as trading, §0.1)."""
        return f"http://{self.host}:{self.port}"

    @property
    def data_stream_url(self) -> str:
        """The market-data websocket, IEX feed (``/v2/sip`` and ``/v2/test`` work too)."""
        return f"ws://{self.host}:{self.port}/v2/iex"

    @property
    def admin_url(self) -> str:
        """The ``/sim`` fault API (not Alpaca's)."""
        return f"http://{self.host}:{self.port}/sim"

    def urls(self) -> dict[str, str]:
        """The five URLs under the daemon's venue-config key names (printed by ``execd sim``)."""
        return {
            "trading_url": self.trading_url,
            "trading_stream_url": self.trading_stream_url,
            "data_url": self.data_url,
            "data_stream_url": self.data_stream_url,
            "admin_url": self.admin_url,
        }

    # ------------------------------------------------------------------ admin helpers

    async def drop_streams(self, stream: StreamName = "all", *, abort: bool = False) -> int:
        """Close the stream connections (``abort``: without a close frame); how many."""
        dropped = 0
        for kind in stream_kinds(stream):
            dropped += await self.hub.drop(kind, abort=abort)
        return dropped

    async def mute_streams(self, stream: StreamName, seconds: float) -> None:
        """Keep the sockets open but deliver nothing for ``seconds``."""
        for kind in stream_kinds(stream):
            self.hub.mute(kind, seconds)

    async def refuse_streams(self, stream: StreamName, seconds: float, status: int = 429) -> None:
        """Answer new stream connections with HTTP ``status`` for ``seconds``."""
        for kind in stream_kinds(stream):
            self.hub.refuse(kind, seconds, status)

    async def silence_quotes(self, symbol: str, seconds: float | None) -> None:
        """No quotes for ``symbol`` for ``seconds`` (None: until silenced again with 0)."""
        self.exchange.silence_quotes(symbol, seconds)

    async def halt(self, symbol: str, seconds: float | None = None) -> None:
        """Halt trading in ``symbol`` (for ``seconds``, else until :meth:`resume`)."""
        self.exchange.halt(symbol, seconds)

    async def resume(self, symbol: str) -> None:
        """Resume trading in a halted ``symbol``."""
        self.exchange.resume(symbol)

    async def reject_next_orders(
        self, count: int, status: int, message: str, code: int | None = None
    ) -> None:
        """The next ``count`` order submissions fail with this HTTP error."""
        self.exchange.reject_next_orders(count, status, message, code)

    async def reject_next_replaces(self, count: int = 1) -> None:
        """The next ``count`` replacements are rejected when they reach the exchange (the
        PATCH still answers 200; §1.7)."""
        self.exchange.reject_next_replaces(count)

    async def fail_next_requests(
        self,
        count: int = 1,
        *,
        status: int | None = None,
        delay: float = 0.0,
        method: str | None = None,
        path: str | None = None,
        when: Literal["before", "after"] = "before",
        body: str | None = None,
        rate_limit_remaining: int | None = None,
    ) -> None:
        """The next ``count`` matching REST calls are delayed and/or answered ``status``
        (with ``X-RateLimit-Remaining`` set to `rate_limit_remaining` when given)."""
        if status is None and delay <= 0:
            raise AdminError("a fault needs a status, a delay, or both")
        fault = HttpFault(
            status=status,
            delay=delay,
            method=method,
            path=path,
            when=when,
            body=body,
            rate_limit_remaining=rate_limit_remaining,
        )
        self.services.faults.add(fault, count)

    async def clear_faults(self) -> None:
        """Drop every pending HTTP fault."""
        self.services.faults.clear()

    async def set_rate_limit(
        self, limit: int, window_seconds: float | None = None, *, reset: bool = True
    ) -> None:
        """Change the trading request budget (``reset``: a fresh window for everyone)."""
        self.services.trading_limiter.configure(limit, window_seconds)
        if reset:
            self.services.trading_limiter.reset()

    async def set_fill_delay(self, seconds: float) -> None:
        """Fill-report latency for subsequent matches."""
        self.exchange.set_fill_delay(seconds)

    async def set_avg_price_lag(self, seconds: float) -> None:
        """`filled_avg_price` reads null for `seconds` after each later fill."""
        self.exchange.set_avg_price_lag(seconds)

    async def history(self) -> dict[str, Any]:
        """Every order and fill so far (``GET /sim/history``)."""
        return self.exchange.history()

    async def wait_streams(
        self, *, trading: int | None = None, data: int | None = None, ready: bool = True
    ) -> None:
        """Wait until exactly this many connections are open on each stream.

        ``ready`` counts only trading connections that are listening to trade_updates and
        market-data connections that are authenticated.
        """
        if trading is not None:
            await self.hub.wait_connections(StreamKind.TRADING, trading, ready=ready)
        if data is not None:
            await self.hub.wait_connections(StreamKind.DATA, data, ready=ready)

    def statistics(self) -> dict[str, Any]:
        """Stream connection counts (as ``GET /sim`` reports them)."""
        return self.hub.statistics()
