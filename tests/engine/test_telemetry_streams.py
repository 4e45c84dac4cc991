"""A stream down longer than `notify.stream_down_seconds` becomes one `stream_down` event."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path

from execd.adapters.budget import BudgetStatistics
from execd.adapters.journal import Journal
from execd.adapters.market_stream import MarketStreamStatistics
from execd.config import load_settings
from execd.engine.events import DaemonEvent, EventHub
from execd.engine.telemetry import Telemetry

AT = datetime(2026, 5, 11, 14, 0, tzinfo=UTC)


async def test_stream_down_is_told_once_per_outage(tmp_path: Path) -> None:
    """Down past the limit: one event (with the stream's name); still down: no repeat."""
    settings = load_settings(None, notify={"stream_down_seconds": 0.2})
    hub = EventHub()
    seen: list[DaemonEvent] = []
    got_one = asyncio.Event()

    def collect(event: DaemonEvent) -> None:
        seen.append(event)
        got_one.set()

    hub.subscribe(collect)
    market = MarketStreamStatistics(
        connected=False, connections=1, reconnects=3, subscribed=(), silence=None, message_age={}
    )
    budget = BudgetStatistics(
        limit=190,
        remaining=190,
        in_flight=0,
        waiting={},
        venue_remaining=None,
        blocked_until=None,
    )
    async with await Journal.open(tmp_path / "j.db") as journal:
        telemetry = Telemetry(
            settings,
            hub,
            journal,
            market_stream=lambda: market,
            order_stream=lambda: None,
            budget=lambda: budget,
            now=lambda: AT,
            check_period=0.02,
        )
        task = asyncio.create_task(telemetry.run())
        try:
            await asyncio.wait_for(got_one.wait(), 10)
            got_one.clear()
            # twenty more checks while still down: no second event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(got_one.wait(), 0.4)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert [(e.name, e.fields["stream"]) for e in seen] == [("stream_down", "market_data")]
