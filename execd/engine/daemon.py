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
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
import uvloop

from execd.adapters.budget import RequestBudget
from execd.adapters.errors import StreamAuthError, Unauthorized
from execd.adapters.journal import Journal, JournalError
from execd.adapters.journal_lock import JournalLock, journal_lock
from execd.adapters.market_stream import MarketStream, MarketStreamConfig
from execd.adapters.order_stream import OrderStream, OrderStreamConfig
from execd.adapters.rest import RestConfig, RestGateway
from execd.adapters.wire import TradeUpdate
from execd.config import ConfigError, Settings
from execd.control.server import default_allowed_uids, serve
from execd.engine.clock import VenueClock
from execd.engine.core import Engine, EngineInfo
from execd.engine.gc_tuning import GcTuning, tuned_gc
from execd.engine.journaling import EventRecorder
from execd.engine.leg import LegPorts
from execd.engine.order_poll import OrderPoller
from execd.engine.orphans import Orphan, OrphanSweeper
from execd.engine.params import ladder_params
from execd.engine.risk import RiskGuard, risk_limits
from execd.engine.router import OrderRouter
from execd.engine.systemd import Notifier
from execd.engine.telemetry import Telemetry
from execd.engine.venue import Endpoints, open_venue
from execd.engine.venue_reads import list_open_orphans

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
    except BaseException as exc:
        reason = startup_failure(exc)
        if reason is None:
            raise  # a bug: the traceback is worth having
        print(f"execd: {reason}", file=sys.stderr)
        return 1


def startup_failure(exc: BaseException) -> str | None:
    """One line for a failure the user must fix (keys, journal path, a second daemon),
    None for anything else.

    Unwraps the TaskGroup's `ExceptionGroup` (a stream refusing the keys fails inside it).
    """
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            reason = startup_failure(inner)
            if reason is not None:
                return reason
        return None
    if isinstance(exc, Unauthorized | StreamAuthError):
        return (
            f"the venue refused the API keys: {exc} (check APCA_API_KEY_ID / APCA_API_SECRET_KEY)"
        )
    if isinstance(exc, JournalError):
        return str(exc)
    return None


async def run_daemon(settings: Settings, notifier: Notifier | None = None) -> int:
    """The whole daemon; returns when shut down cleanly (exceptions mean a crash)."""
    notifier = notifier or Notifier()
    stop = asyncio.Event()
    with _signals(stop):
        try:
            async with running_daemon(settings, notifier, stop=stop) as daemon:
                await stop.wait()
                await daemon.shutdown()
        except* StoppedDuringStartup:  # raised inside the TaskGroup: it arrives grouped
            _log.info("daemon_stopped_during_startup")
    return 0


class StoppedDuringStartup(Exception):
    """SIGTERM/SIGINT arrived while the daemon was reconciling at start; it stopped cleanly
    (issue 11 §7: honoured within ``shutdown.grace_seconds``, not after the recovery)."""


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
        self.telemetry: Telemetry | None = None
        """Metrics and webhooks (set once running)."""
        self.orphans: OrphanSweeper | None = None
        """The live-orphan canceller (set once running)."""
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
        if leave and self.orphans is not None:
            self.orphans.deactivate()  # the legs unregister from orders left on purpose
        await self.engine.shutdown(grace=config.grace_seconds, leave_orders=leave)
        try:
            # The last cancel confirmations are in flight on the stream: keep them.
            async with asyncio.timeout(max(deadline - loop.time(), 0.5)):
                await self.recorder.drain()
        except TimeoutError:
            _log.error("journal_flush_timeout")
        for task in self._tasks:
            task.cancel()


@contextlib.asynccontextmanager
async def running_daemon(
    settings: Settings, notifier: Notifier | None = None, *, stop: asyncio.Event | None = None
) -> AsyncIterator[Daemon]:
    """Start every part of the daemon; yield it once ready; tear everything down on exit.

    `stop` set while the journal is reconciled with the venue abandons the recovery, shuts
    the engine down (under ``shutdown.grace_seconds``) and raises `StoppedDuringStartup`.
    """
    notifier = notifier or Notifier()
    params = ladder_params(settings)
    if not params.enable_smart_execution:
        # Seed 000 legacy mode: said once, loudly, because every leg becomes a plain
        # market order at every urgency (issue 10 item 5).
        _log.warning(
            "smart_execution_disabled",
            message="the ladder is off: every leg is one plain market order",
            setting="execution.enable_smart_execution = false",
        )
    async with _open_journal(settings) as (journal, lock), open_venue(settings) as endpoints:
        clock = VenueClock()
        budget = RequestBudget(
            limit=settings.gateway.requests_per_minute,
            cancel_reserve=settings.gateway.cancel_reserve,
            burst=settings.gateway.request_burst,
        )
        rest_config = RestConfig(
            trading_url=endpoints.trading_url,
            data_url=endpoints.data_url,
            key_id=endpoints.key_id,
            secret_key=endpoints.secret_key,
            feed=endpoints.feed,
            total_timeout=settings.gateway.request_timeout_seconds,
            write_window=settings.gateway.write_window_seconds,
        )
        data_budget = RequestBudget(limit=settings.gateway.data_requests_per_minute, read_reserve=0)
        async with RestGateway(
            rest_config, budget, data_budget=data_budget, clock=clock.now
        ) as rest:
            await _sync_clock(rest, clock)
            quotes = MarketStream(
                MarketStreamConfig(
                    url=endpoints.data_stream_url,
                    key_id=endpoints.key_id,
                    secret_key=endpoints.secret_key,
                    silence_timeout=settings.gateway.market_data_silence_seconds,
                    symbol_limit=settings.venue.symbol_limit(),
                ),
                clock=clock.now,
            )
            router: OrderRouter[TradeUpdate] = OrderRouter()
            holder: list[Engine] = []

            def claimed(client_order_id: str) -> bool:
                """A registered leg owns the order, or an unfinished leg may yet."""
                return router.owns(client_order_id) or (
                    bool(holder) and holder[0].leg_may_claim(client_order_id)
                )

            async def list_open() -> list[Orphan]:
                return await list_open_orphans(rest)

            orphans = OrphanSweeper(rest.cancel_order, claimed, list_open=list_open)
            router.on_unregister = orphans.released
            risk = RiskGuard(risk_limits(settings.risk), clock.monotonic)
            ports = LegPorts(
                rest,
                quotes,
                clock,
                params,
                endpoints.feed,
                journal,
                risk,
                rest_quote_interval=settings.ladder.rest_quote_interval_seconds,
            )
            recorder = EventRecorder(journal, clock.now)
            observers: list[Telemetry] = []

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
                on_update=lambda update: _observe_update(update, recorder, observers, orphans),
                on_reconnected=reconnected,
                on_unrouted=orphans.on_unrouted,
                clock=clock.now,
            )
            engine = Engine(
                settings, ports, router, orders, EngineInfo(endpoints.kind, endpoints.feed)
            )
            engine.failure_marker = lock
            holder.append(engine)
            telemetry = Telemetry(
                settings,
                engine.events,
                journal,
                market_stream=quotes.statistics,
                order_stream=orders.statistics,
                budget=rest.budget.statistics,
                data_budget=rest.data_budget.statistics,
                orphans=orphans.statistics,
                now=clock.now,
            )
            observers.append(telemetry)
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
                    group.create_task(telemetry.run(), name="telemetry"),
                    group.create_task(_journal_guard(journal, engine), name="journal_guard"),
                    group.create_task(orphans.run(), name="orphan_sweeper"),
                ]
                async with asyncio.timeout(STARTUP_TIMEOUT):
                    await socket_ready.wait()
                    await orders.wait_connected()
                # Not under STARTUP_TIMEOUT: it may wait out the settle window of an order
                # sent just before a crash (systemd's TimeoutStartSec bounds it).
                notifier.status("reconciling orders with the venue")
                if not await _recover_unless_stopped(engine, stop):
                    daemon = Daemon(settings, engine, endpoints, notifier, tasks, journal, recorder)
                    await daemon.shutdown()
                    raise StoppedDuringStartup
                # Recovery has claimed (or cancelled) every order it listed; from now on a
                # live execd order that no leg owns is cancelled as soon as it is seen, and
                # one that landed since recovery's listing by the first pass, before READY.
                orphans.activate()
                await orphans.first_pass()
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
                # Start-up objects out of the collector's reach before anything trades
                # (issue 14 item 2: a full collection stopped the loop for tens of ms).
                with tuned_gc(gc_tuning(settings)):
                    _log.info(
                        "daemon_ready",
                        socket=str(settings.api.socket_path),
                        clock_offset_seconds=clock.offset.total_seconds(),
                        **endpoints.redacted(),
                    )
                    notifier.ready(f"ready: venue {endpoints.kind}, feed {endpoints.feed}")
                    daemon = Daemon(settings, engine, endpoints, notifier, tasks, journal, recorder)
                    daemon.telemetry = telemetry
                    daemon.orphans = orphans
                    try:
                        yield daemon
                    finally:
                        for task in tasks:
                            task.cancel()
    _log.info("daemon_stopped")


def _observe_update(
    update: TradeUpdate,
    recorder: EventRecorder,
    observers: list[Telemetry],
    orphans: OrphanSweeper,
) -> None:
    """Every trade_updates event: to the journal first, then remembered by the orphan
    sweeper while live (swept if its leg ends without it), then counted for the metrics."""
    recorder.offer(update)
    orphans.watch(update)
    for observer in observers:
        observer.on_trade_update(update.event)


async def _recover_unless_stopped(engine: Engine, stop: asyncio.Event | None) -> bool:
    """`Engine.recover`, abandoned if `stop` is set first; True when it completed."""
    recovering = asyncio.create_task(engine.recover(), name="recovery")
    stopped = asyncio.create_task(stop.wait() if stop else asyncio.Event().wait())
    try:
        await asyncio.wait({recovering, stopped}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        recovering.cancel()
        raise
    finally:
        stopped.cancel()
    if not recovering.done():
        _log.warning("stopped_during_recovery")
        recovering.cancel()
        await asyncio.gather(recovering, return_exceptions=True)
        return False
    try:
        recovering.result()
    except Exception as exc:
        _log.exception("recovery_failed", error=repr(exc))
        raise
    return True


@contextlib.asynccontextmanager
async def _open_journal(settings: Settings) -> AsyncIterator[tuple[Journal, JournalLock]]:
    """The journal under its lock (`journal_lock`: one daemon per journal), or a
    `JournalError` naming the path — never a bare OS/SQLite traceback."""
    path = settings.journal.path
    with journal_lock(path) as lock:
        try:
            journal = await Journal.open(path)
        except JournalError:
            raise
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open the journal {path}: {exc}") from None
        _log.info("journal_opened", path=str(journal.path))
        async with journal:
            yield journal, lock


CLOCK_UNCERTAIN_SECONDS = 1.0
"""A `/v2/clock` round trip slower than this is logged as a warning at start."""


async def _sync_clock(rest: RestGateway, clock: VenueClock) -> None:
    """Measure the local clock's offset against the venue's `/v2/clock`.

    However slow the answer, trading stays safe: the clock is never ahead of the venue's
    (safe at the open) and each leg's last send before the close allows for the whole
    round trip (`domain.deadline.close_margin`), so a slow answer only ends legs earlier.
    It is said loudly rather than re-measured: a second read on the same slow path would
    likely be as slow, and a start that waited for a fast one could wait without bound."""
    sent = datetime.now(UTC)
    venue = await rest.clock()
    behind = clock.sync(venue.timestamp, sent, datetime.now(UTC))
    _log.info(
        "venue_clock_synced",
        offset_seconds=clock.offset.total_seconds(),
        behind_at_most_seconds=round(behind, 6),
    )
    if behind > CLOCK_UNCERTAIN_SECONDS:
        _log.warning(
            "venue_clock_uncertain",
            behind_at_most_seconds=round(behind, 6),
            message="the /v2/clock answer was slow: every leg ends this much earlier"
            " before the close (restart the daemon to measure again)",
        )


def gc_tuning(settings: Settings) -> GcTuning:
    """The collector's settings for the running daemon (`[runtime]`)."""
    return GcTuning(settings.runtime.gc_freeze, settings.runtime.gc_thresholds)


async def _journal_guard(journal: Journal, engine: Engine) -> None:
    """The first write the storage refuses stops trading (issue 11 §5)."""
    reason = await journal.wait_unwritable()
    await engine.on_journal_unwritable(reason)


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
