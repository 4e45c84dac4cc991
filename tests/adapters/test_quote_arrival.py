"""`MarketStream.quote_arrival`: the one future per symbol a leg waits on (issue 14 item 2).

A leg used to wait for a quote through a task around `wait_quote` (an `asyncio.Event`): the
quote woke that task, the task's end woke `asyncio.wait`, which woke the leg — three loop
turns, each one a chance to queue behind other work. The shared future wakes `asyncio.wait`
directly: two. It is shared by every waiter of the symbol, so a waiter that gives up (a
`wait_for` timeout) must never cancel it for the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from .conftest import DEADLINE
from .fake_streams import FakeDataStream, running
from .test_market_stream import T0, ManualClock, make_stream, quote, started


@pytest.fixture
async def fake() -> AsyncIterator[FakeDataStream]:
    async with running(FakeDataStream(), "/v2/iex") as served:
        yield served


async def test_arrival_is_shared_and_resolved_by_the_next_quote(fake: FakeDataStream) -> None:
    """Pending while the cache holds nothing newer; one future for every caller of the
    symbol; resolved by the symbol's next quote; done at once when the cache is newer."""
    clock = ManualClock()
    stream = make_stream(fake, clock)
    stream.subscribe(["SPY", "QQQ"])
    async with started(stream):
        await fake.wait_for("subscription", lambda: fake.subscribed == {"SPY", "QQQ"})
        first = stream.quote_arrival("SPY")
        assert not first.done()
        assert stream.quote_arrival("SPY") is first
        other = stream.quote_arrival("QQQ")
        await fake.send([quote("SPY", 521.30, 521.32)])
        await asyncio.wait_for(asyncio.wait({first}), DEADLINE)
        assert first.result() is None
        assert not other.done(), "a quote of another symbol resolved QQQ's arrival"
        cached = stream.quote("SPY")
        assert cached is not None
        assert stream.quote_arrival("SPY").done()  # the cache holds one: nothing to wait for
        newer = stream.quote_arrival("SPY", cached.as_of)
        assert not newer.done()
        clock.advance(1)
        await fake.send([quote("SPY", 521.31, 521.33)])
        await asyncio.wait_for(asyncio.wait({newer}), DEADLINE)


async def test_a_waiter_that_gives_up_leaves_the_others_waiting(fake: FakeDataStream) -> None:
    """A `wait_quote` cancelled by its timeout does not cancel the shared future: a leg
    waiting on it (through `asyncio.wait`, as `LegRunner` does) still wakes on the quote."""
    clock = ManualClock()
    stream = make_stream(fake, clock)
    stream.subscribe(["SPY"])
    async with started(stream):
        await fake.wait_for("subscription", lambda: fake.subscribed == {"SPY"})
        arrival = stream.quote_arrival("SPY")
        leg = asyncio.ensure_future(asyncio.wait({arrival}))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(stream.wait_quote("SPY"), 0.05)
        assert not arrival.cancelled()
        await fake.send([quote("SPY", 521.30, 521.32)])
        done, _ = await asyncio.wait_for(leg, DEADLINE)
        assert done == {arrival}
        got = await asyncio.wait_for(stream.wait_quote("SPY"), DEADLINE)
    assert str(got.bid) == "521.3"


async def test_a_halt_resolves_the_arrival(fake: FakeDataStream) -> None:
    """A status message (a halt) resolves its symbol's arrival: a leg waiting for a quote
    wakes to see the halt instead of waiting for a quote a halted symbol may never send."""
    clock = ManualClock()
    stream = make_stream(fake, clock)
    stream.subscribe(["TQQQ"])
    async with started(stream):
        await fake.wait_for("subscription", lambda: fake.subscribed == {"TQQQ"})
        arrival = stream.quote_arrival("TQQQ")
        status = {"T": "s", "S": "TQQQ", "sc": "H", "sm": "Trading Halt", "rc": "T12",
                  "rm": "", "t": T0, "z": "C"}  # fmt: skip
        await fake.send([status])
        await asyncio.wait_for(asyncio.wait({arrival}), DEADLINE)
        assert stream.halted("TQQQ") is not None
