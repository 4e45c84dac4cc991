"""Review 11: the market stream's facts about a symbol that leaves the stream and comes back
(a plan ends, its symbol is unsubscribed, a later plan asks for it again), against the real
simulated venue over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time

import pytest

from execd.adapters.market_stream import MarketStream
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


async def _quoted_then_halted(stream: MarketStream, venue: SimVenue) -> None:
    """AAA is quoted on the stream, then halted at the venue and known halted."""
    async with asyncio.timeout(DEADLINE):
        await stream.wait_quote("AAA")
    await venue.halt("AAA")
    await wait_until(lambda: stream.halted("AAA") is not None)


async def _unsubscribed(stream: MarketStream) -> None:
    """AAA unsubscribed, and the venue has answered: its subscription no longer holds AAA."""
    stream.unsubscribe(["AAA"])
    await wait_until(lambda: "AAA" not in stream._slots._confirmed)


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
        await _quoted_then_halted(stream, venue)
        await _unsubscribed(stream)
        await venue.resume("AAA")
        resumed = stream.quote("AAA")
        assert resumed is not None
        asked = datetime.now(UTC)  # the stream's clock (`stream_on`: the wall clock)
        stream.subscribe(["AAA"])
        async with asyncio.timeout(DEADLINE):
            fresh = await stream.wait_quote("AAA", newer_than=asked)
        assert fresh.as_of > resumed.as_of  # quoting again: it trades
        assert stream.halted("AAA") is None


async def test_symbols_wanted_but_none_streamed_is_no_silence() -> None:
    """Review 11's follow-on: a feed that streams no symbol at all (the venue refuses even a
    one-symbol subscribe: a limit of 0) leaves every wanted symbol waiting, priced from REST.
    The silence watchdog judged *wanted* symbols, so it took the quiet for a dead socket and
    reconnected every `silence_timeout` (each time probing, being refused and logging it)
    for as long as the plan ran. Silence with nothing streamed is no fault."""
    config = SimConfig(
        scenario="calm", seed=5, start=time(10, 0), start_date=date(2026, 3, 4), symbols=SYMBOLS
    )
    timeout = 0.3
    async with SimVenue(config, options=ServerOptions(data_symbol_limit=0)) as venue:
        stream = stream_on(venue, None, silence_timeout=timeout)
        stream.subscribe(["AAA"])
        async with supervised(stream.run(), "market-stream"):
            await wait_until(lambda: stream.statistics().refused_by_limit == 1)
            assert stream.symbol_limit == 0
            assert stream.unstreamed == {"AAA"}
            changes = stream.link_changes
            # an observation window of four silence timeouts, not a synchronisation: the
            # old watchdog reconnected (a link change each) within every one of them
            await asyncio.sleep(4 * timeout)
            assert stream.link_changes == changes
            assert stream.connected


async def test_a_halt_is_kept_through_an_outage_and_forgotten_on_reconnection(
    venue: SimVenue,
) -> None:
    """The same stale fact across a reconnection: AAA is halted, the connection drops, AAA
    resumes while it is down (the resumption is never sent again). While down and after the
    reconnection the halt stands (it may still be true, and the new subscription cannot
    tell); the first quote newer than the outage shows AAA trades again and ends it."""
    stream = stream_on(venue, 30)
    stream.subscribe(["AAA", "BBB"])
    async with supervised(stream.run(), "market-stream"):
        await _quoted_then_halted(stream, venue)
        await venue.refuse_streams("data", 1.5)  # the reconnection waits for it
        await venue.drop_streams("data")
        await wait_until(lambda: not stream.connected)
        await venue.resume("AAA")
        assert stream.halted("AAA") is not None
        before = stream.quote("AAA")
        assert before is not None
        await wait_until(lambda: stream.connected)
        assert stream.halted("AAA") is not None

        def quoted_again() -> bool:
            quote = stream.quote("AAA")
            return quote is not None and quote.as_of > before.as_of

        await wait_until(quoted_again)
        assert stream.halted("AAA") is None


async def test_a_halt_after_a_gap_holds_while_the_symbol_is_not_quoted(venue: SimVenue) -> None:
    """The other error, the unsafe one: AAA is halted, its statuses have a gap (unsubscribed
    and wanted again, as a buy's sizing and its leg do), and it is *still* halted. No quote
    newer than the gap comes (a halted book is not quoted), so the halt stands; the
    resumption, sent on the new subscription, ends it."""
    stream = stream_on(venue, 30)
    stream.subscribe(["AAA", "BBB"])
    async with supervised(stream.run(), "market-stream"):
        await _quoted_then_halted(stream, venue)
        await _unsubscribed(stream)
        stream.subscribe(["AAA"])
        await wait_until(lambda: "AAA" in stream._slots._confirmed)
        bbb = stream.quote("BBB")
        assert bbb is not None
        async with asyncio.timeout(DEADLINE):  # the market moves on: BBB quotes again
            await stream.wait_quote("BBB", newer_than=bbb.as_of)
        assert stream.halted("AAA") is not None
        await venue.resume("AAA")
        await wait_until(lambda: stream.halted("AAA") is None)
