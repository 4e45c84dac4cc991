"""Review (issue 14, third pass): the leg's wait on the stream's shared quote-arrival future
(`MarketStream.quote_arrival`, `QuoteFeed.arrival`) while the leg holds on a data outage.

`QuoteFeed.arrival` asks for a quote received after the leg's last look (`_seen_at`, moved
only by `QuoteFeed.offer`). While the leg holds (`QuoteHold.holding`), `_ready_inputs`
returns before `offer`, so the last look never moves. If a quote arrived after that look
and the data stream dropped before the leg looked again, the arrival is *already done* on
every wait: `asyncio.wait` returns at once, `_ready_inputs` finds nothing (still holding),
and the leg spins — a busy loop that arms and cancels four waiter tasks per loop turn for
the whole outage (up to `stale_quote_max_wait_seconds`), taking the event loop from every
other leg, cancel and halt.

The window is one quote wide; the test makes the drop land in it with a timing hook on the
leg's sleep (as tests/engine/test_review2_leg_waiters.py does; the reap it first hooked
is gone with the doorbell, round three): venue, daemon, stream and
leg are real. The hook counts the leg's waits while it holds: a held leg with nothing to
do waits a handful of times (its recheck timeouts), a spinning one thousands.

Fixed in round three (legwait): the holding path marks the quote looked at
(`QuoteFeed.looked`), and a doorbell sleep on a source already done yields a loop turn
instead of returning at once (with the doorbell, the spin froze the loop outright: the
2,000-leg bench hung on it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from execd.engine.leg import LegRunner
from tests.engine.conftest import StartDaemon
from tests.engine.test_daemon_streams import STREAMS, crossing_tape, wait_resting

pytestmark = pytest.mark.slow


async def test_review3_a_held_leg_does_not_spin_on_a_quote_it_never_looked_at(
    start_daemon: StartDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ladder = {
        **STREAMS["ladder"],
        "stale_quote_max_wait_seconds": 30.0,
        "passive_patience_normal_seconds": 60.0,
    }
    d = await start_daemon(sim=crossing_tape(tmp_path, 999.0, 0), **{**STREAMS, "ladder": ladder})
    status = await d.submit(
        {"plan_id": "arrival-spin", "legs": [{"symbol": "ACME", "side": "buy", "qty": "300"}]}
    )
    await wait_resting(d, status.plan_id)

    original: Callable[[LegRunner, float | None], Awaitable[None]] = LegRunner._sleep
    armed = asyncio.Event()
    dropped = asyncio.Event()
    waits_while_holding = 0

    async def sleep(self: LegRunner, seconds: float | None) -> None:
        nonlocal waits_while_holding
        if armed.is_set():
            armed.clear()
            quotes = self._ports.quotes
            # A quote after the leg's last look, then the stream drops before it looks again.
            await quotes.wait_quote("ACME", self._feed._seen_at)
            changes = quotes.link_changes
            await d.venue.refuse_streams("data", 5.0)
            await d.venue.drop_streams("data", abort=True)
            await quotes.wait_link_change(changes)
            dropped.set()
        elif dropped.is_set() and self._hold.holding:
            waits_while_holding += 1
        await original(self, seconds)

    monkeypatch.setattr(LegRunner, "_sleep", sleep)
    armed.set()
    await asyncio.wait_for(dropped.wait(), 10.0)

    async def holding() -> bool:
        return bool((await d.daemon.engine.health()).legs_holding)

    try:
        await d.wait_until(holding, "the leg holding")
        start = waits_while_holding
        await asyncio.sleep(1.0)  # a window to count waits in, not a synchronisation
        waits = waits_while_holding - start
    finally:
        await d.daemon.engine.cancel(status.plan_id)
    assert waits < 20, f"{waits} waits in 1 s while holding: the leg busy-loops"
