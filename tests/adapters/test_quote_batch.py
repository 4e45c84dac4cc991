"""`LatestQuoteBatcher`: single-symbol asks coalesced into one read per wave, and the hostile
cases — a waiter that gives up, a read that fails, the same symbol asked twice, a read
cancelled at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from execd.adapters.errors import VenueUnavailable
from execd.adapters.quote_batch import LatestQuoteBatcher
from execd.domain.quotes import Quote

NOW = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)


def quote(symbol: str) -> Quote:
    return Quote(symbol, Decimal("9.99"), Decimal("10.01"), Decimal(1), Decimal(1), NOW, NOW)


class Venue:
    """A read function that records each batch and answers when `release` is set."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail = fail

    async def read(self, symbols: Collection[str]) -> dict[str, Quote]:
        self.batches.append(sorted(symbols))
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return {s: quote(s) for s in symbols if s != "NONE"}


async def test_a_wave_of_asks_is_one_read_and_later_asks_the_next() -> None:
    venue = Venue()
    batcher = LatestQuoteBatcher(venue.read)
    first = [asyncio.create_task(batcher.get(s)) for s in ("A", "B", "A", "NONE")]
    await asyncio.sleep(0.01)
    late = asyncio.create_task(batcher.get("C"))  # while the first read is in flight
    await asyncio.sleep(0.01)
    assert venue.batches == [["A", "B", "NONE"]]
    venue.release.set()
    a, b, a2, none = await asyncio.gather(*first)
    assert (a, b, a2) == (quote("A"), quote("B"), quote("A"))
    assert none is None  # absent from the answer: no quote, never a zero one
    assert await late == quote("C")
    assert venue.batches == [["A", "B", "NONE"], ["C"]]
    assert batcher.reads == 2


async def test_a_waiter_that_gives_up_cancels_neither_the_read_nor_its_siblings() -> None:
    venue = Venue()
    batcher = LatestQuoteBatcher(venue.read)
    impatient = asyncio.create_task(batcher.get("A"))
    patient = asyncio.create_task(batcher.get("A"))
    await asyncio.sleep(0.01)
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    venue.release.set()
    assert await patient == quote("A")
    assert await batcher.get("A") == quote("A")  # the batcher goes on afterwards


async def test_a_failed_read_reaches_every_waiter_and_the_next_ask_reads_again() -> None:
    venue = Venue(fail=VenueUnavailable("429"))
    batcher = LatestQuoteBatcher(venue.read)
    asks = [asyncio.create_task(batcher.get(s)) for s in ("A", "B")]
    venue.release.set()
    for ask in asks:
        with pytest.raises(VenueUnavailable):
            await ask
    venue.fail = None
    assert await batcher.get("A") == quote("A")
    assert len(venue.batches) == 2


async def test_cancelling_the_read_at_shutdown_leaves_no_waiter_hanging() -> None:
    venue = Venue()
    batcher = LatestQuoteBatcher(venue.read)
    ask = asyncio.create_task(batcher.get("A"))
    await asyncio.sleep(0.01)
    reader = batcher._reader
    assert reader is not None
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await ask
    assert batcher._reader is None


async def test_a_bug_in_the_read_reaches_the_waiters_and_the_batcher_recovers() -> None:
    venue = Venue(fail=ZeroDivisionError("bug"))
    batcher = LatestQuoteBatcher(venue.read)
    ask = asyncio.create_task(batcher.get("A"))
    venue.release.set()
    with pytest.raises(ZeroDivisionError):
        await ask
    venue.fail = None
    assert await batcher.get("B") == quote("B")
