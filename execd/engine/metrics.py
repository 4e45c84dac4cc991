"""Prometheus metrics for operators (issue 13 item 5), on loopback, off by default.

`Metrics` owns its own `CollectorRegistry` (never the process-global one: two daemons in
one test process must not share counters) and two kinds of figures:

- **counted as they happen**, from the event hub and the trade_updates stream: plans and
  legs by outcome, fills, re-pegs, fallbacks, the slippage histogram (bps vs the arrival
  mid, by urgency), journal commit latency and failures, webhook deliveries;
- **read at scrape time** from the live objects (`_LiveCollector`): stream connection
  state and reconnects, the age of each symbol's newest quote, the request budget (left,
  in flight, 429s), the event loop's lag as last sampled, and the orphan sweeper's counts.

`serve_metrics` answers ``GET /metrics`` with the standard text exposition through
aiohttp on the configured loopback address. Nothing listens when `metrics.enabled` is
false.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from execd.adapters.budget import BudgetStatistics
from execd.adapters.market_stream import MarketStreamStatistics
from execd.adapters.order_stream import OrderStreamStatistics
from execd.engine.events import DaemonEvent
from execd.engine.orphans import OrphanStatistics

#: Slippage buckets, bps vs arrival mid (positive = cost).
SLIPPAGE_BUCKETS = (-50.0, -20.0, -10.0, -5.0, -2.0, 0.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
#: Journal commit buckets, seconds (a commit is an fsync: milliseconds on a healthy disk).
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


@dataclass(frozen=True, slots=True)
class LiveSources:
    """Where the scrape-time figures come from (each a cheap, non-blocking read)."""

    market_stream: Callable[[], MarketStreamStatistics]
    order_stream: Callable[[], OrderStreamStatistics | None]
    budget: Callable[[], BudgetStatistics]
    loop_lag: Callable[[], float | None]
    orphans: Callable[[], OrphanStatistics] | None = None
    """The orphan sweeper's counts (None: no sweeper, e.g. a test's telemetry)."""
    data_budget: Callable[[], BudgetStatistics] | None = None
    """The market-data API's own budget (latest-quote reads; None: not wired)."""


class _LiveCollector(Collector):
    """Reads the live objects at each scrape."""

    def __init__(self, sources: LiveSources) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        market = self._sources.market_stream()
        orders = self._sources.order_stream()
        connected = GaugeMetricFamily(
            "execd_stream_connected", "1 while the stream is connected", labels=["stream"]
        )
        reconnects = CounterMetricFamily(
            "execd_stream_reconnects", "Reconnections of the stream since start", labels=["stream"]
        )
        connected.add_metric(["market_data"], float(market.connected))
        reconnects.add_metric(["market_data"], float(market.reconnects))
        if orders is not None:
            connected.add_metric(["trade_updates"], float(orders.connected))
            reconnects.add_metric(["trade_updates"], float(orders.reconnects))
        yield connected
        yield reconnects
        age = GaugeMetricFamily(
            "execd_quote_age_seconds",
            "Seconds since the newest quote or trade of each subscribed symbol",
            labels=["symbol"],
        )
        for symbol, seconds in sorted(market.message_age.items()):
            if seconds is not None:
                age.add_metric([symbol], seconds)
        yield age
        budget = self._sources.budget()
        yield GaugeMetricFamily(
            "execd_request_budget_limit", "Trading-API requests allowed per minute", budget.limit
        )
        yield GaugeMetricFamily(
            "execd_request_budget_remaining", "Requests still grantable now", budget.remaining
        )
        yield GaugeMetricFamily(
            "execd_request_budget_used",
            "Requests counted against the budget now (limit minus remaining)",
            budget.limit - budget.remaining,
        )
        yield GaugeMetricFamily(
            "execd_request_budget_in_flight", "Requests sent, not answered", budget.in_flight
        )
        yield CounterMetricFamily(
            "execd_rate_limited", "HTTP 429 answers from the venue", budget.rate_limited_total
        )
        if self._sources.data_budget is not None:
            data = self._sources.data_budget()
            yield GaugeMetricFamily(
                "execd_data_budget_remaining",
                "Market-data REST requests (latest-quote reads) still grantable now",
                data.remaining,
            )
            yield CounterMetricFamily(
                "execd_data_rate_limited",
                "HTTP 429 answers from the market-data API",
                data.rate_limited_total,
            )
        if self._sources.orphans is not None:
            yield from _orphan_counters(self._sources.orphans())
        lag = self._sources.loop_lag()
        if lag is not None:
            yield GaugeMetricFamily(
                "execd_event_loop_lag_seconds",
                "How late the event loop ran a timer, last sample (0.5 s period)",
                lag,
            )


def _orphan_counters(stats: OrphanStatistics) -> Iterator[Metric]:
    """The orphan sweeper: live execd orders no leg owned, and what became of them."""
    yield CounterMetricFamily(
        "execd_orphan_orders_found",
        "Live execd orders no running leg owned, found by the orphan sweeper",
        stats.found,
    )
    yield CounterMetricFamily(
        "execd_orphan_orders_canceled", "Orphan orders the sweeper cancelled", stats.canceled
    )
    yield CounterMetricFamily(
        "execd_orphan_orders_cancel_failed",
        "Orphan orders still live after every cancel attempt (left to the next start)",
        stats.failed,
    )


class Metrics:
    """The daemon's metrics; see the module docstring."""

    def __init__(self, sources: LiveSources | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.plans = Counter("execd_plans", "Plans finished, by outcome", ["outcome"], registry=r)
        self.legs = Counter("execd_legs", "Legs finished, by outcome", ["outcome"], registry=r)
        self.fills = Counter(
            "execd_fills", "Fill and partial-fill events on trade_updates", registry=r
        )
        self.repegs = Counter("execd_repegs", "Working limits re-priced (re-pegs)", registry=r)
        self.fallbacks = Counter(
            "execd_fallbacks", "Legs whose ladder reached its fallback (step 4)", registry=r
        )
        self.slippage = Histogram(
            "execd_slippage_bps",
            "Finished legs' average fill vs arrival mid, bps (+ = cost), by urgency",
            ["urgency"],
            buckets=SLIPPAGE_BUCKETS,
            registry=r,
        )
        self.journal_commit = Histogram(
            "execd_journal_commit_seconds",
            "Journal write latency: one batch transaction, commit (fsync) included",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.journal_failures = Counter(
            "execd_journal_failures", "Journal transactions that failed", registry=r
        )
        self.notifications = Counter(
            "execd_notifications", "Webhook deliveries, by outcome", ["outcome"], registry=r
        )
        if sources is not None:
            r.register(_LiveCollector(sources))

    def on_event(self, event: DaemonEvent) -> None:
        """Count a hub event (subscribed to `EventHub`)."""
        watch = event.watch
        if event.name == "plan_finished" and watch is not None:
            self.plans.labels(watch.plan_state).inc()
        elif event.name == "leg_repegged":
            self.repegs.inc()
        elif event.name == "leg_finished" and watch is not None and watch.leg is not None:
            leg = watch.leg
            self.legs.labels(leg.state).inc()
            if leg.fallback_fired:
                self.fallbacks.inc()
            if leg.slippage_bps is not None:
                self.slippage.labels(leg.urgency.value).observe(float(leg.slippage_bps))

    def on_trade_update(self, event: str) -> None:
        """Count an execution reported on the trade_updates stream."""
        if event in ("fill", "partial_fill"):
            self.fills.inc()

    def on_commit(self, seconds: float, ok: bool) -> None:
        """One journal transaction (called on the journal's thread; the client is thread-safe)."""
        self.journal_commit.observe(seconds)
        if not ok:
            self.journal_failures.inc()

    def exposition(self) -> bytes:
        """The text exposition format, as served at ``/metrics``."""
        return generate_latest(self.registry)


async def serve_metrics(
    metrics: Metrics, host: str, port: int, ready: asyncio.Event | None = None
) -> None:
    """Serve ``GET /metrics`` on host:port until cancelled."""
    # Imported here: aiohttp's server side costs start-up time and memory, and the
    # endpoint is off by default.
    from aiohttp import web

    async def handle(_: web.Request) -> web.Response:
        return web.Response(
            body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()  # until cancelled
    finally:
        await runner.cleanup()
