"""Closing the venue ends its engine, whatever the engine was doing at that instant.

The CI hang of `test_a_restart_never_adopts_a_replacement_larger_than_what_is_left` (120 s
in the selector, no await named): `SimVenue.__aexit__` cancels the exchange's run loop and
awaits it. The loop waited for its wake-up with `asyncio.wait_for`, which on Python 3.11
*swallows* a cancellation that arrives once the awaited event is set (the wait completed;
the cancel is lost: CPython gh-86296, fixed only by 3.12's rewrite of `wait_for`). Anything
that schedules a venue event sets it: an order, or a tape quote that a REST read catches up
on. A venue closed a few loop turns after one kept running, and its owner waited forever.
"""

from __future__ import annotations

import asyncio

import pytest

from execd.sim.venue import SimVenue
from tests.sim.conftest import DEADLINE, venue_config

pytestmark = pytest.mark.timeout(60)

ORDER = {
    "symbol": "SPY",
    "qty": "1",
    "side": "buy",
    "type": "limit",
    "limit_price": "1.00",  # far below the market: it rests, nothing else happens
    "time_in_force": "day",
}


async def test_the_venue_closes_right_after_an_order_arrived() -> None:
    """The order's acknowledgement is scheduled (which wakes the engine) and the venue is
    closed at once: the close returns and the engine is gone."""
    venue = SimVenue(venue_config())

    async def order_then_close() -> None:
        async with venue:
            venue.exchange.submit_order(ORDER)

    closing = asyncio.create_task(order_then_close())
    done, _ = await asyncio.wait({closing}, timeout=DEADLINE)
    if not done:
        closing.cancel()
    assert done, "the venue's engine ignored its cancellation and kept running"
    await closing


async def test_a_cancel_while_the_venue_waits_for_its_engine_is_not_absorbed() -> None:
    """Closing cancels the engine and waits for it. A cancel of the closing task that lands
    in that wait (here: requested just before it) ends the close cancelled; it used to be
    swallowed with the engine's own `CancelledError` (STYLE: always re-raised)."""
    venue = SimVenue(venue_config())
    await venue.__aenter__()
    try:
        engine = venue._engine_task
        assert engine is not None

        async def stop_with_a_cancel_pending() -> None:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await venue._stop_engine()

        stopping = asyncio.create_task(stop_with_a_cancel_pending())
        await asyncio.wait({stopping}, timeout=DEADLINE)
        assert stopping.done()
        assert stopping.cancelled(), "the cancel was absorbed: the close returned normally"
        await asyncio.wait({engine}, timeout=DEADLINE)
        assert engine.cancelled()
    finally:
        await venue.__aexit__(None, None, None)
