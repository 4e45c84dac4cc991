"""`MarketStream.outage`: when a symbol's quote is stale because of the connection."""

from __future__ import annotations

import asyncio

from .conftest import DEADLINE, wait_until
from .fake_streams import FakeDataStream, running
from .test_market_stream import ManualClock, make_stream, quote, started


async def test_outage_follows_the_connection_not_a_quiet_symbol() -> None:
    """Connected and quoted: no outage, however quiet the symbol. Dropped: `disconnected`,
    with the frozen quote's age, and `wait_link_change` wakes. Back: `reconnected` until a
    quote arrives on the new connection (or the grace ends), then none."""
    async with running(FakeDataStream(), "/v2/iex") as fake:
        clock = ManualClock()
        stream = make_stream(fake, clock)
        assert stream.outage("TQQQ", 5.0) is not None  # not connected yet
        stream.subscribe(["TQQQ"])
        async with started(stream):
            await fake.wait_for("subscribed", lambda: fake.subscribed == {"TQQQ"})
            assert stream.outage("TQQQ", 5.0) is None  # connected, nothing quoted yet
            await fake.send([quote("TQQQ", 62.41, 62.43)])
            await asyncio.wait_for(stream.wait_quote("TQQQ"), DEADLINE)
            clock.advance(20)  # quiet, but the connection vouches for the quote
            assert stream.outage("TQQQ", 5.0) is None

            change = asyncio.ensure_future(stream.wait_link_change())
            await fake.drop()
            await asyncio.wait_for(change, DEADLINE)
            assert not stream.connected
            clock.advance(2)
            down = stream.outage("TQQQ", 5.0)
            assert down is not None
            assert down.reason == "disconnected"
            assert down.quote_age is not None
            assert down.quote_age >= 2

            await fake.wait_for("resubscribed", lambda: fake.live and fake.subscribed)
            await wait_until(lambda: stream.connected)
            back = stream.outage("TQQQ", 5.0)
            assert back is not None
            assert back.reason == "reconnected"
            assert back.recheck_at is not None
            assert stream.outage("TQQQ", 0.0) is None  # no grace: the feed is up, that is all
            before = clock.now
            clock.advance(1)
            await fake.send([quote("TQQQ", 62.45, 62.47)])
            await asyncio.wait_for(stream.wait_quote("TQQQ", newer_than=before), DEADLINE)
            assert stream.outage("TQQQ", 5.0) is None


async def test_silent_connection_is_an_outage() -> None:
    """Nothing at all for `silence_timeout` while connected: `silent`, before the watchdog
    has even reconnected."""
    async with running(FakeDataStream(), "/v2/iex") as fake:
        clock = ManualClock()
        stream = make_stream(fake, clock, silence_timeout=30.0)
        stream.subscribe(["SPY"])
        async with started(stream):
            await fake.wait_for("subscribed", lambda: fake.subscribed == {"SPY"})
            await fake.send([quote("SPY", 521.30, 521.32)])
            await asyncio.wait_for(stream.wait_quote("SPY"), DEADLINE)
            clock.advance(31)
            silent = stream.outage("SPY", 5.0)
            assert silent is not None
            assert silent.reason == "silent"
