"""Wires the daemon's observers: metrics, webhooks, event-loop lag, stream outages.

`Telemetry` subscribes the metrics and the webhook sender to the engine's event hub,
observes the journal's commits and the trade_updates stream, and `run()` supervises the
background work in one task group: the ``/metrics`` server (only when enabled), the
webhook sender (only with URLs), the event-loop lag sampler, and the stream watch that
turns an outage longer than `notify.stream_down_seconds` into one ``stream_down`` event.
None of it is on trading's path: every hand-off is a counter or a bounded queue.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

import structlog

from execd.adapters.budget import BudgetStatistics
from execd.adapters.journal import Journal
from execd.adapters.market_stream import MarketStreamStatistics
from execd.adapters.order_stream import OrderStreamStatistics
from execd.config import Settings, split_listen
from execd.engine.events import EventHub
from execd.engine.metrics import LiveSources, Metrics, serve_metrics
from execd.engine.orphans import OrphanStatistics
from execd.engine.webhooks import WebhookSender

_log = structlog.get_logger("execd.telemetry")

LAG_PERIOD = 0.5
"""Seconds between event-loop lag samples."""
STREAM_CHECK_PERIOD = 1.0
JOURNAL_ALERT_INTERVAL = 60.0
"""At most one `journal_unhealthy` notification per this many seconds."""


RESTART_MAX = 60.0
"""Longest pause before a crashed telemetry task is restarted (doubling from 1 s)."""


async def _supervise(name: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run `work()`; if it crashes, log it and run it again after a growing pause."""
    delay = 1.0
    while True:
        try:
            await work()
            return
        except Exception as exc:
            _log.error("telemetry_task_crashed", task=name, error=repr(exc), restart_in=delay)
        await asyncio.sleep(delay)  # restart backoff
        delay = min(delay * 2, RESTART_MAX)


class Telemetry:
    """See the module docstring."""

    def __init__(
        self,
        settings: Settings,
        hub: EventHub,
        journal: Journal,
        *,
        market_stream: Callable[[], MarketStreamStatistics],
        order_stream: Callable[[], OrderStreamStatistics | None],
        budget: Callable[[], BudgetStatistics],
        data_budget: Callable[[], BudgetStatistics] | None = None,
        orphans: Callable[[], OrphanStatistics] | None = None,
        now: Callable[[], datetime],
        check_period: float = STREAM_CHECK_PERIOD,
    ) -> None:
        self._settings = settings
        self._hub = hub
        self._now = now
        self._check_period = check_period
        self._market = market_stream
        self._orders = order_stream
        self.loop_lag: float | None = None
        self.metrics = Metrics(
            LiveSources(
                market_stream,
                order_stream,
                budget,
                self._lag,
                orphans=orphans,
                data_budget=data_budget,
            )
        )
        notify = settings.notify
        self.webhooks = WebhookSender(
            [url.get_secret_value() for url in notify.webhook_urls],
            apprise_urls=[url.get_secret_value() for url in notify.apprise_urls],
            timeout=notify.timeout_seconds,
            max_attempts=notify.max_attempts,
            queue_size=notify.queue_size,
            on_delivery=lambda outcome: self.metrics.notifications.labels(outcome).inc(),
        )
        hub.subscribe(self.metrics.on_event)
        hub.subscribe(self.webhooks.offer)
        self._loop = asyncio.get_running_loop()
        self._last_journal_alert = float("-inf")
        journal.observe_commits(self._on_commit)
        self.metrics_ready = asyncio.Event()

    def _lag(self) -> float | None:
        return self.loop_lag

    def on_trade_update(self, event: str) -> None:
        """Every trade_updates event (hooked beside the journal recorder)."""
        self.metrics.on_trade_update(event)

    def _on_commit(self, seconds: float, ok: bool) -> None:
        """Journal thread: count; a failure becomes a (rate-limited) event on the loop."""
        self.metrics.on_commit(seconds, ok)
        if not ok:
            self._loop.call_soon_threadsafe(self._journal_failed)

    def _journal_failed(self) -> None:
        mono = time.monotonic()
        if mono - self._last_journal_alert >= JOURNAL_ALERT_INTERVAL:
            self._last_journal_alert = mono
            self._hub.daemon_event("journal_unhealthy", self._now(), detail="a transaction failed")

    async def run(self) -> None:
        """The background work, until cancelled. Each part is supervised on its own: a
        crash (a metrics port in use, a bug) is logged and the part restarted with backoff;
        it never reaches the daemon's task group, so observing can never stop trading."""
        async with asyncio.TaskGroup() as group:
            if self._settings.metrics.enabled:
                host, port = split_listen(self._settings.metrics.listen)
                group.create_task(
                    _supervise(
                        "metrics_http",
                        lambda: serve_metrics(self.metrics, host, port, self.metrics_ready),
                    ),
                    name="metrics_http",
                )
                _log.info("metrics_listening", listen=self._settings.metrics.listen)
            if self.webhooks.enabled:
                group.create_task(_supervise("webhooks", self.webhooks.run), name="webhooks")
            group.create_task(_supervise("loop_lag", self._sample_lag), name="loop_lag")
            group.create_task(_supervise("stream_watch", self._watch_streams), name="stream_watch")

    async def _sample_lag(self) -> None:
        while True:
            start = time.monotonic()
            await asyncio.sleep(LAG_PERIOD)  # the measurement itself: how late is this wake-up
            self.loop_lag = max(0.0, time.monotonic() - start - LAG_PERIOD)

    async def _watch_streams(self) -> None:
        """Notify a stream down longer than `stream_down_seconds`, once per outage."""
        limit = self._settings.notify.stream_down_seconds
        down_since: dict[str, float] = {}
        told: set[str] = set()
        while True:
            await asyncio.sleep(self._check_period)  # a poll of two booleans, by design
            orders = self._orders()
            states = {"market_data": self._market().connected}
            if orders is not None:
                states["trade_updates"] = orders.connected
            mono = time.monotonic()
            for stream, connected in states.items():
                if connected:
                    down_since.pop(stream, None)
                    told.discard(stream)
                    continue
                since = down_since.setdefault(stream, mono)
                if mono - since >= limit and stream not in told:
                    told.add(stream)
                    self._hub.daemon_event(
                        "stream_down", self._now(), stream=stream, down_seconds=round(mono - since)
                    )
