"""Adversarial review: a leg held by a market-data outage ends within
`stale_quote_max_wait_seconds` (DESIGN.md "Fresh quote", "Every leg has a deadline"),
even when the data stream stays down and nothing else happens."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from tests.engine.conftest import Harness, StartDaemon
from tests.engine.test_daemon_streams import STREAMS, crossing_tape, wait_resting

pytestmark = pytest.mark.slow

_WORKING = {"new", "accepted", "partially_filled", "pending_new", "pending_cancel"}


async def assert_nothing_works(d: Harness, plan_id: str) -> None:
    """The ended leg left no order working at the venue."""
    orders = await d.orders(plan_id, 0)
    assert orders
    assert not [o for o in orders if o["order"]["status"] in _WORKING]


async def test_a_leg_held_by_a_dead_data_stream_ends_in_time(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    ladder = {**STREAMS["ladder"], "stale_quote_max_wait_seconds": 2.0}
    d = await start_daemon(sim=crossing_tape(tmp_path, 999.0, 0), **{**STREAMS, "ladder": ladder})
    status = await d.submit(
        {"plan_id": "dead-feed", "legs": [{"symbol": "ACME", "side": "buy", "qty": "300"}]}
    )
    await wait_resting(d, status.plan_id)
    await d.venue.refuse_streams("data", 120.0)
    await d.venue.drop_streams("data", abort=True)
    await d.venue.wait_streams(data=0)
    # 2 s of hold, a quote wait and a cancel: well within 12 s.
    final = await asyncio.wait_for(d.finish(status.plan_id), 12.0)
    assert final.legs[0].reason is not None
    await assert_nothing_works(d, status.plan_id)


async def test_a_leg_held_by_a_dead_data_stream_ends_at_its_deadline(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    d = await start_daemon(sim=crossing_tape(tmp_path, 999.0, 0), **STREAMS)
    deadline = d.venue.clock.now() + timedelta(seconds=5)
    status = await d.submit(
        {
            "plan_id": "dead-feed-deadline",
            "deadline": deadline.isoformat(),
            "legs": [{"symbol": "ACME", "side": "buy", "qty": "300"}],
        }
    )
    await wait_resting(d, status.plan_id)
    await d.venue.refuse_streams("data", 120.0)
    await d.venue.drop_streams("data", abort=True)
    await d.venue.wait_streams(data=0)
    final = await asyncio.wait_for(d.finish(status.plan_id), 12.0)  # deadline in 5 s
    assert final.legs[0].reason == "deadline_reached"
    await assert_nothing_works(d, status.plan_id)


async def test_a_leg_with_no_quote_anywhere_ends_quote_stale_and_cancels(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """Stream and data REST both down: nothing can price the next step, so after
    `stale_quote_max_wait_seconds` the leg cancels its resting order and ends quote_stale
    (the last streamed quote is stale by then: freshness 1 s)."""
    ladder = {**STREAMS["ladder"], "stale_quote_max_wait_seconds": 2.0}
    execution = {**STREAMS["execution"], "quote_freshness_seconds": 1.0}
    config = {**STREAMS, "ladder": ladder, "execution": execution}
    d = await start_daemon(sim=crossing_tape(tmp_path, 999.0, 0), **config)
    status = await d.submit(
        {"plan_id": "no-quotes", "legs": [{"symbol": "ACME", "side": "buy", "qty": "300"}]}
    )
    await wait_resting(d, status.plan_id)
    await d.venue.fail_next_requests(10_000, status=503, path="/v2/stocks/")
    await d.venue.refuse_streams("data", 120.0)
    await d.venue.drop_streams("data", abort=True)
    await d.venue.wait_streams(data=0)
    final = await asyncio.wait_for(d.finish(status.plan_id), 12.0)
    assert final.legs[0].reason == "quote_stale"
    assert final.legs[0].filled_qty == 0
    await assert_nothing_works(d, status.plan_id)
