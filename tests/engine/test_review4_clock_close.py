"""Review 4: the venue clock at the close, with an asymmetric `/v2/clock` round trip.

The clock fix pairs the venue's stamp with the *receipt* of its answer, so the daemon's
clock is never ahead of the venue's — and up to the whole round trip behind. At the open
that is the safe side. At the close it is the unsafe one: the daemon may think the session
still runs when the venue's close has passed, and a day order sent then is queued by Alpaca
for the next trading day (ALPACA.md "Non-extended orders submitted after 4:00pm ET are
queued for the next trading day"). Here the venue stamps `/v2/clock` at once and holds the
answer 1.5 s (a slow path back), so the daemon starts 1.5 s behind; a plan is submitted
just after the venue's 16:00. The venue's order log judges whether an order reached it
after its close.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, time
from typing import Any

import pytest

from execd.domain.market_time import to_eastern
from execd.sim.venue import SimVenue
from tests.engine.conftest import Harness, StartDaemon
from tests.engine.test_daemon_restart import outside_venue

pytestmark = pytest.mark.slow

SYMBOL = "CLSE"
HELD = 1.5


async def test_no_order_reaches_the_venue_after_its_close(start_daemon: StartDaemon) -> None:
    async with outside_venue(symbols=[SYMBOL], positions={}, start="15:59:54") as venue:
        await venue.fail_next_requests(1, delay=HELD, method="GET", path="/v2/clock", when="after")
        # The gate would hold the leg on a wide closing spread: price from any spread.
        d = await start_daemon(venue=venue, execution={"max_spread_percent": 5})
        try:
            await _submit_after_the_close(d, venue)
        finally:
            await d.stop()  # before the venue it trades on goes away


async def _submit_after_the_close(d: Harness, venue: SimVenue) -> None:
    """Wait for the venue's 16:00 (the daemon still before it), submit, judge."""
    daemon_clock = d.daemon.engine._ports.clock
    behind = (venue.clock.now() - daemon_clock.now()).total_seconds()
    assert behind > 1.0, f"the daemon's clock is only {behind:.3f} s behind the venue"
    close = to_eastern(venue.clock.now()).replace(hour=16, minute=0, second=0, microsecond=0)
    loop = asyncio.get_running_loop()
    end = loop.time() + 15.0
    while to_eastern(venue.clock.now()) < close.replace(microsecond=100_000):
        assert loop.time() < end, "the venue never reached its close"
        await asyncio.sleep(0.01)
    assert to_eastern(daemon_clock.now()).time() < time(16, 0), "daemon not behind"
    plan: dict[str, Any] = {
        "plan_id": "at-the-close",
        "legs": [{"symbol": SYMBOL, "side": "buy", "qty": "1"}],
    }
    try:
        await d.submit(plan)
    except Exception:
        return
    await asyncio.sleep(HELD + 1.0)  # the daemon's clock passes 16:00 too
    late = [
        (o["order"]["client_order_id"], o["order"]["status"], o["order"]["created_at"])
        for o in await d.orders("at-the-close")
        if to_eastern(datetime.fromisoformat(o["order"]["created_at"])) >= close
    ]
    assert late == [], f"orders the venue received after its 16:00 close: {late}"
