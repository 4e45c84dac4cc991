"""Review 11: the market stream's facts about a symbol that leaves the stream and comes back
(a plan ends, its symbol is unsubscribed, a later plan asks for it again), against the real
simulated venue over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time

import pytest

from execd.sim.config import SimConfig
from execd.sim.server import ServerOptions
from execd.sim.venue import SimVenue

from .conftest import DEADLINE, wait_until
from .test_market_stream_symbol_limit import stream_on
from .test_sim_integration import supervised

SYMBOLS = ("AAA", "BBB")


@pytest.fixture
async def venue() -> AsyncIterator[SimVenue]:
    config = SimConfig(
        scenario="calm", seed=5, start=time(10, 0), start_date=date(2026, 3, 4), symbols=SYMBOLS
    )
    async with SimVenue(config, options=ServerOptions(data_symbol_limit=30)) as running:
        yield running


@pytest.mark.xfail(
    strict=True,
    reason="review11: a halt seen before an unsubscribe outlives the resumption it cannot see",
)
async def test_a_halt_is_not_kept_past_the_symbol_s_unsubscribe(venue: SimVenue) -> None:
    """AAA is halted while streamed (the stream says so), its plan ends (unsubscribed), it
    resumes while nobody listens (the `statuses` channel sends changes only, never the current
    state on subscribe: ALPACA.md §4.3), and a new plan asks for it again. Fresh quotes flow
    (a halted symbol has none), yet `halted("AAA")` still answers the old halt: the new plan's
    leg holds as halted until its deadline and ends unfilled in a symbol that trades (a
    stall with a false reason). The stream keeps a fact it stopped being able to keep current;
    the same happens to a halt that ends while the connection is down."""
    stream = stream_on(venue, 30)
    stream.subscribe(["AAA", "BBB"])
    async with supervised(stream.run(), "market-stream"):
        async with asyncio.timeout(DEADLINE):
            await stream.wait_quote("AAA")
        await venue.halt("AAA")
        await wait_until(lambda: stream.halted("AAA") is not None)
        stream.unsubscribe(["AAA"])
        # the venue has answered the unsubscribe: its subscription no longer holds AAA
        await wait_until(lambda: "AAA" not in stream._slots._confirmed)
        await venue.resume("AAA")
        resumed = stream.quote("AAA")
        assert resumed is not None
        asked = datetime.now(UTC)  # the stream's clock (`stream_on`: the wall clock)
        stream.subscribe(["AAA"])
        async with asyncio.timeout(DEADLINE):
            fresh = await stream.wait_quote("AAA", newer_than=asked)
        assert fresh.as_of > resumed.as_of  # quoting again: it trades
        assert stream.halted("AAA") is None
