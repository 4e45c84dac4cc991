"""`execd run`: the daemon's lifecycle, startup → main loop → shutdown (uvicorn's shape).

One asyncio process on uvloop. Startup opens the journal, resolves the venue (starting the
in-process simulator when configured), measures the venue clock's offset, and starts the
named tasks of one root `TaskGroup`: the quote stream, the order-update stream, the journal
recorder of order events and the control socket. Once the order stream listens, the engine
reconciles the journal's unfinished plans with the venue (`Engine.recover`); only then are
plans accepted and `READY=1` sent to systemd. SIGTERM or SIGINT sets an event (nothing
polls); shutdown then stops accepting plans, cancels working orders (or, with
`shutdown.working_orders = "leave"`, leaves them for the next start to adopt) under one
grace timeout, flushes the journal and stops the tasks. A second SIGINT exits at once. An
infrastructure task that crashes propagates out of the TaskGroup: the daemon exits
non-zero and systemd restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
import uvloop

from execd.adapters.budget import RequestBudget
from execd.adapters.journal import Journal
from execd.adapters.market_stream import MarketStream, MarketStreamConfig
from execd.adapters.order_stream import OrderStream, OrderStreamConfig
from execd.adapters.rest import RestConfig, RestGateway
from execd.adapters.wire import TradeUpdate
from execd.config import ConfigError, Settings
from execd.control.server import default_allowed_uids, serve
from execd.engine.clock import VenueClock
from execd.engine.core import Engine, EngineInfo
from execd.engine.journaling import EventRecorder
from execd.engine.leg import LegPorts
from execd.engine.order_poll import OrderPoller
from execd.engine.params import ladder_params
from execd.engine.risk import RiskGuard, risk_limits
from execd.engine.router import OrderRouter
from execd.engine.systemd import Notifier
from execd.engine.venue import Endpoints, open_venue

if TYPE_CHECKING:
    from execd.sim.venue import SimVenue  # loaded only when the venue runs in-process

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
        journal: Journal,
        recorder: EventRecorder,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.endpoints = endpoints
        self.journal = journal
        self.recorder = recorder
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
        """Stop accepting, cancel (or leave) working orders, flush the journal, then stop
        the streams and the socket."""
        config = self.settings.shutdown
        leave = config.working_orders == "leave"
        _log.info("daemon_stopping", working_orders=config.working_orders)
        self._notifier.stopping("leaving working orders" if leave else "cancelling working orders")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + config.grace_seconds
        await self.engine.shutdown(grace=config.grace_seconds, leave_orders=leave)
        try:
            # The last cancel confirmations are in flight on the stream: keep them.
            await asyncio.wait_for(self.recorder.drain(), max(deadline - loop.time(), 0.5))
        except TimeoutError:
            _log.error("journal_flush_timeout")
        for task in self._tasks:
            task.cancel()


@contextlib.asynccontextmanager
async def running_daemon(
    settings: Settings, notifier: Notifier | None = None
) -> AsyncIterator[Daemon]:
    """Start every part of the daemon; yield it once ready; tear everything down on exit."""
    notifier = notifier or Notifier()
    params = ladder_params(settings)
    journal = await Journal.open(settings.journal.path)
    _log.info("journal_opened", path=str(journal.path))
    async with journal, open_venue(settings) as endpoints:
        clock = VenueClock()
        budget = RequestBudget(limit=settings.gateway.requests_per_minute)
        rest_config = RestConfig(
            trading_url=endpoints.trading_url,
            data_url=endpoints.data_url,
            key_id=endpoints.key_id,
            secret_key=endpoints.secret_key,
            feed=endpoints.feed,
            total_timeout=settings.gateway.request_timeout_seconds,
            write_window=settings.gateway.write_window_seconds,
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
            risk = RiskGuard(risk_limits(settings.risk), clock.monotonic)
            ports = LegPorts(rest, quotes, clock, params, endpoints.feed, journal, risk)
            recorder = EventRecorder(journal, clock.now)
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
                on_update=recorder.offer,
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
                    group.create_task(recorder.run(), name="journal_recorder"),
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
                # Not under STARTUP_TIMEOUT: it may wait out the settle window of an order
                # sent just before a crash (systemd's TimeoutStartSec bounds it).
                notifier.status("reconciling orders with the venue")
                try:
                    await engine.recover()
                except Exception as exc:
                    _log.exception("recovery_failed", error=repr(exc))
                    raise
                if notifier.enabled:
                    tasks.append(
                        group.create_task(_status_reporter(notifier, engine), name="status")
                    )
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
                daemon = Daemon(settings, engine, endpoints, notifier, tasks, journal, recorder)
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


STATUS_INTERVAL = 2.0
"""How often the systemd STATUS= line is refreshed (sent only when it changed)."""


async def _status_reporter(notifier: Notifier, engine: Engine) -> None:
    """`systemctl status execd` shows a live one-line summary (issue 5 §6)."""
    last = ""
    while True:
        await asyncio.sleep(STATUS_INTERVAL)
        summary = engine.summary()
        if summary != last:
            notifier.status(summary)
            last = summary


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
