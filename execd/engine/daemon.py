"""`execd run`: the daemon's lifecycle, startup → main loop → shutdown (uvicorn's shape).

One asyncio process on uvloop. Startup resolves the venue (starting the in-process
simulator when configured), measures the venue clock's offset, and starts the named tasks
of one root `TaskGroup`: the quote stream, the order-update stream and the control socket.
`READY=1` goes to systemd only when the order stream is listening and the socket is bound.
SIGTERM or SIGINT sets an event (nothing polls); shutdown then stops accepting plans,
cancels working orders under one grace timeout, and stops the tasks. A second SIGINT exits
at once. An infrastructure task that crashes propagates out of the TaskGroup: the daemon
exits non-zero and systemd restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import structlog
import uvloop

from execd.adapters.budget import RequestBudget
from execd.adapters.market_stream import MarketStream, MarketStreamConfig
from execd.adapters.order_stream import OrderStream, OrderStreamConfig
from execd.adapters.rest import RestConfig, RestGateway
from execd.adapters.wire import TradeUpdate
from execd.config import ConfigError, Settings
from execd.control.server import default_allowed_uids, serve
from execd.engine.clock import VenueClock
from execd.engine.core import Engine, EngineInfo
from execd.engine.leg import LegPorts
from execd.engine.order_poll import OrderPoller
from execd.engine.params import ladder_params
from execd.engine.router import OrderRouter
from execd.engine.systemd import Notifier
from execd.engine.venue import Endpoints, open_venue
from execd.sim.venue import SimVenue

_log = structlog.get_logger("execd.daemon")

STARTUP_TIMEOUT = 60.0
"""Streams and socket must be up within this, or the daemon exits (systemd retries)."""


def main(settings: Settings, venue: str | None = None) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT; the process exit code."""
    if venue is not None:
        settings = settings.model_copy(
            update={"venue": settings.venue.model_copy(update={"kind": venue})}
        )
    try:
        return uvloop.run(run_daemon(settings))
    except ConfigError as exc:
        print(f"execd: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def run_daemon(settings: Settings, notifier: Notifier | None = None) -> int:
    """The whole daemon; returns when shut down cleanly (exceptions mean a crash)."""
    notifier = notifier or Notifier()
    stop = asyncio.Event()
    with _signals(stop):
        async with running_daemon(settings, notifier) as daemon:
            await stop.wait()
            await daemon.shutdown()
    return 0


class Daemon:
    """The running daemon as tests and `run_daemon` see it."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        endpoints: Endpoints,
        notifier: Notifier,
        tasks: list[asyncio.Task[None]],
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.endpoints = endpoints
        self._notifier = notifier
        self._tasks = tasks

    @property
    def venue(self) -> SimVenue | None:
        """The in-process simulated venue, if the daemon started one (`venue.kind = "sim"`)."""
        return self.endpoints.sim

    @property
    def socket_path(self) -> str:
        return str(self.settings.api.socket_path)

    async def shutdown(self) -> None:
        """Stop accepting, cancel working orders, then stop the streams and the socket."""
        _log.info("daemon_stopping")
        self._notifier.stopping("cancelling working orders")
        await self.engine.shutdown(grace=self.settings.ladder.confirm_timeout_seconds * 3)
        for task in self._tasks:
            task.cancel()


@contextlib.asynccontextmanager
async def running_daemon(
    settings: Settings, notifier: Notifier | None = None
) -> AsyncIterator[Daemon]:
    """Start every part of the daemon; yield it once ready; tear everything down on exit."""
    notifier = notifier or Notifier()
    params = ladder_params(settings)
    async with open_venue(settings) as endpoints:
        clock = VenueClock()
        budget = RequestBudget(limit=settings.gateway.requests_per_minute)
        rest_config = RestConfig(
            trading_url=endpoints.trading_url,
            data_url=endpoints.data_url,
            key_id=endpoints.key_id,
            secret_key=endpoints.secret_key,
            feed=endpoints.feed,
            total_timeout=settings.gateway.request_timeout_seconds,
        )
        async with RestGateway(rest_config, budget, clock=clock.now) as rest:
            await _sync_clock(rest, clock)
            quotes = MarketStream(
                MarketStreamConfig(
                    url=endpoints.data_stream_url,
                    key_id=endpoints.key_id,
                    secret_key=endpoints.secret_key,
                    silence_timeout=settings.gateway.market_data_silence_seconds,
                ),
                clock=clock.now,
            )
            router: OrderRouter[TradeUpdate] = OrderRouter()
            ports = LegPorts(rest, quotes, clock, params, endpoints.feed)
            holder: list[Engine] = []

            async def reconnected(down_since: datetime | None) -> None:
                if holder:
                    await holder[0].on_order_stream_reconnected(down_since)

            orders = OrderStream(
                OrderStreamConfig(
                    url=endpoints.trading_stream_url,
                    key_id=endpoints.key_id,
                    secret_key=endpoints.secret_key,
                ),
                router.route,
                on_reconnected=reconnected,
                clock=clock.now,
            )
            engine = Engine(
                settings, ports, router, orders, EngineInfo(endpoints.kind, endpoints.feed)
            )
            holder.append(engine)
            poller = OrderPoller(
                orders,
                engine,
                rest,
                interval=settings.gateway.order_poll_seconds,
                timeout=settings.gateway.request_timeout_seconds,
                requests_per_minute=settings.gateway.requests_per_minute,
            )
            socket_ready = asyncio.Event()
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(quotes.run(), name="quote_stream"),
                    group.create_task(orders.run(), name="order_stream"),
                    group.create_task(
                        serve(
                            engine,
                            settings.api.socket_path,
                            ready=socket_ready,
                            group=settings.api.socket_group,
                            allowed_uids=default_allowed_uids(settings.api.allowed_uids),
                        ),
                        name="control_api",
                    ),
                    group.create_task(poller.run(), name="order_poll"),
                ]
                async with asyncio.timeout(STARTUP_TIMEOUT):
                    await socket_ready.wait()
                    await orders.wait_connected()
                if notifier.watchdog_interval is not None:
                    tasks.append(
                        group.create_task(
                            _watchdog(notifier, notifier.watchdog_interval), name="watchdog"
                        )
                    )
                _log.info(
                    "daemon_ready",
                    socket=str(settings.api.socket_path),
                    clock_offset_seconds=clock.offset.total_seconds(),
                    **endpoints.redacted(),
                )
                notifier.ready(f"ready: venue {endpoints.kind}, feed {endpoints.feed}")
                daemon = Daemon(settings, engine, endpoints, notifier, tasks)
                try:
                    yield daemon
                finally:
                    for task in tasks:
                        task.cancel()
    _log.info("daemon_stopped")


async def _sync_clock(rest: RestGateway, clock: VenueClock) -> None:
    """Measure the local clock's offset against the venue's `/v2/clock`."""
    sent = datetime.now(UTC)
    venue = await rest.clock()
    clock.sync(venue.timestamp, sent, datetime.now(UTC))
    _log.info("venue_clock_synced", offset_seconds=clock.offset.total_seconds())


async def _watchdog(notifier: Notifier, interval: float) -> None:
    """WATCHDOG=1 from the event loop itself: a blocked loop stops the pings."""
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)


@contextlib.contextmanager
def _signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    seen: dict[int, int] = {}

    def on_signal(signum: int) -> None:
        seen[signum] = seen.get(signum, 0) + 1
        if signum == signal.SIGINT and seen[signum] > 1:
            _log.error("second_sigint_exiting_now")
            os._exit(130)
        _log.info("signal_received", signal=signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        yield
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
