"""The free IEX feed's symbol limit (ALPACA.md §0.4, §4.4: 30 symbols; beyond it the stream
answers 405 ``symbol limit exceeded`` and leaves the subscriptions unchanged), against the
real simulated venue over loopback (its limit is set small here so the test is quick).

The defect (issue 14, sixth round, edges lane): a subscribe that would pass the limit was
sent whole, so the venue's 405 refused *every* symbol in it — the first 30 included — and
the stream believed them subscribed, so they were never asked for again: every leg of a
40-leg plan was priced from REST re-reads.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import date, time

import pytest

from execd.adapters.backoff import BackoffPolicy
from execd.adapters.market_stream import MarketStream, MarketStreamConfig
from execd.sim.config import SimConfig
from execd.sim.server import ServerOptions
from execd.sim.venue import SimVenue

from .conftest import DEADLINE, wait_until
from .test_sim_integration import supervised

SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF")
LIMIT = 4


@pytest.fixture
async def venue() -> AsyncIterator[SimVenue]:
    """A calm open market over six symbols whose data stream takes at most four."""
    config = SimConfig(
        scenario="calm", seed=5, start=time(10, 0), start_date=date(2026, 3, 4), symbols=SYMBOLS
    )
    async with SimVenue(config, options=ServerOptions(data_symbol_limit=LIMIT)) as running:
        yield running


def stream_on(
    venue: SimVenue, symbol_limit: int | None, *, silence_timeout: float = 30.0
) -> MarketStream:
    """A market stream on the venue's data stream with the given symbol limit."""
    return MarketStream(
        MarketStreamConfig(
            url=venue.data_stream_url,
            key_id=venue.key_id,
            secret_key=venue.secret_key,
            backoff=BackoffPolicy(initial=0.05, maximum=0.05, jitter=0),
            symbol_limit=symbol_limit,
            silence_timeout=silence_timeout,
        ),
        rand=random.Random(3).random,
    )


async def quoted(stream: MarketStream, symbols: tuple[str, ...]) -> None:
    """Every one of `symbols` has a streamed quote (bounded by DEADLINE)."""
    async with asyncio.timeout(DEADLINE):
        for symbol in symbols:
            await stream.wait_quote(symbol)


async def test_over_the_limit_streams_the_first_symbols_and_queues_the_rest(
    venue: SimVenue,
) -> None:
    """Six symbols asked of a four-symbol feed: the four asked first stream, the other two
    wait (the venue never answers 405), and get the slots of symbols given up."""
    stream = stream_on(venue, LIMIT)
    stream.subscribe(SYMBOLS)
    async with supervised(stream.run(), "market-stream"):
        await quoted(stream, SYMBOLS[:LIMIT])
        assert stream.streamed == frozenset(SYMBOLS[:LIMIT])
        assert stream.unstreamed == frozenset(SYMBOLS[LIMIT:])
        assert stream.quote("EEE") is None
        stream.unsubscribe(["AAA", "BBB"])
        await quoted(stream, ("EEE", "FFF"))
        assert stream.streamed == frozenset({"CCC", "DDD", "EEE", "FFF"})
        assert stream.unstreamed == frozenset()
        assert stream.statistics().refused_by_limit == 0


async def test_a_refused_subscribe_keeps_the_symbols_already_streamed(venue: SimVenue) -> None:
    """The feed's limit set too high (the venue allows four, execd is told ten): the
    venue's 405 refuses the subscribe that passes four. The symbols already streaming keep
    their quotes, the refused ones are known not to stream (so their legs read REST), and
    the stream learns the venue's limit instead of believing the refused symbols are in."""
    stream = stream_on(venue, 10)
    stream.subscribe(SYMBOLS[:3])
    async with supervised(stream.run(), "market-stream"):
        await quoted(stream, SYMBOLS[:3])
        stream.subscribe(SYMBOLS[3:])  # three more: six > four
        await wait_until(lambda: stream.statistics().refused_by_limit >= 1)
        await wait_until(lambda: len(stream.streamed) == LIMIT)
        assert stream.streamed >= frozenset(SYMBOLS[:3])
        assert stream.symbol_limit == LIMIT
        # the first three keep streaming after the refusal
        seen = {s: stream.quote(s) for s in SYMBOLS[:3]}
        for symbol, before in seen.items():
            assert before is not None
            async with asyncio.timeout(DEADLINE):
                await stream.wait_quote(symbol, newer_than=before.as_of)
        assert stream.connected


async def test_unlimited_feed_streams_everything() -> None:
    """No limit configured (a paid plan) and a venue without one either: all stream."""
    config = SimConfig(
        scenario="calm", seed=5, start=time(10, 0), start_date=date(2026, 3, 4), symbols=SYMBOLS
    )
    async with SimVenue(config, options=ServerOptions(data_symbol_limit=None)) as venue:
        stream = stream_on(venue, None)
        stream.subscribe(SYMBOLS)
        async with supervised(stream.run(), "market-stream"):
            await quoted(stream, SYMBOLS)
            assert stream.unstreamed == frozenset()
            assert stream.statistics().refused_by_limit == 0


async def test_one_subscribe_over_an_unknown_limit_keeps_the_first_symbols(
    venue: SimVenue,
) -> None:
    """The reproduction: execd not told of the limit subscribes six symbols in one message
    and the venue's 405 refuses all six. Before the fix no symbol ever streamed (the stream
    took all six as subscribed); now it learns the limit one symbol at a time and the four
    asked first stream."""
    stream = stream_on(venue, None)
    stream.subscribe(SYMBOLS)
    async with supervised(stream.run(), "market-stream"):
        await quoted(stream, SYMBOLS[:LIMIT])
        await wait_until(lambda: stream.symbol_limit == LIMIT)
        assert stream.streamed == frozenset(SYMBOLS[:LIMIT])
        assert stream.unstreamed == frozenset(SYMBOLS[LIMIT:])


async def test_a_reconnection_resubscribes_within_the_limit(venue: SimVenue) -> None:
    """After the connection drops, the new one carries the same four symbols (never all six
    in one refused subscribe), and they quote again."""
    stream = stream_on(venue, LIMIT)
    stream.subscribe(SYMBOLS)
    async with supervised(stream.run(), "market-stream"):
        await quoted(stream, SYMBOLS[:LIMIT])
        before = {s: stream.quote(s) for s in SYMBOLS[:LIMIT]}
        await venue.drop_streams("data", abort=True)
        await wait_until(lambda: not stream.connected)
        async with asyncio.timeout(DEADLINE):
            await stream.wait_connected()
            for symbol, quote in before.items():
                assert quote is not None
                await stream.wait_quote(symbol, newer_than=quote.as_of)
        assert stream.streamed == frozenset(SYMBOLS[:LIMIT])
        assert stream.statistics().refused_by_limit == 0
