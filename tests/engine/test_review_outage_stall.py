"""Adversarial review: a leg held by a market-data outage ends within
`stale_quote_max_wait_seconds` (DESIGN.md "Fresh quote", "Every leg has a deadline"),
even when the data stream stays down and nothing else happens."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from tests.engine.conftest import StartDaemon
from tests.engine.test_daemon_streams import STREAMS, crossing_tape, wait_resting

pytestmark = pytest.mark.slow


@pytest.mark.xfail(
    strict=True,
    reason="leg._timeout: while QuoteHold holds a quote-driven timer and the outage is"
    " 'disconnected' (no recheck_at), no timeout is armed; QuoteHold.check's max_hold is only"
    " evaluated when something wakes the leg, so a data stream that stays down leaves the leg"
    " (and its resting order) waiting past stale_quote_max_wait_seconds",
)
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


@pytest.mark.xfail(
    strict=True,
    reason="leg.py _next_events/_timeout: the leg's deadline Wake is withheld while QuoteHold"
    " holds a quote-driven timer, and nothing re-checks the hold while the data stream stays"
    " down: the leg runs past the plan's deadline with its order resting",
)
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
    assert final.legs[0].reason is not None
