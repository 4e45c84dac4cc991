"""The asset cache against the simulated venue (review 7 fix): a symbol missing from the
day's list, or whole-share there, is asked of the venue before a refusal, within bounds;
the next day's list replaces the old one (a delisted symbol is forgotten by `get`, kept in
`facts` for the running legs that index it).

A fake monotonic clock drives the re-ask window; the venue is real (loopback).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import date, time

import pytest

from execd.adapters.budget import RequestBudget
from execd.adapters.rest import RestGateway
from execd.engine import intake
from execd.engine.runner import AssetFacts
from execd.sim.config import SimConfig
from execd.sim.venue import SimVenue
from tests.engine.conftest import sim_rest_config

DAY = date(2026, 3, 4)


@pytest.fixture
async def venue() -> AsyncIterator[SimVenue]:
    config = SimConfig(
        scenario="calm", seed=3, start=time(10, 0), start_date=DAY, symbols=("SPY", "AAPL")
    )
    async with SimVenue(config) as running:
        yield running


@pytest.fixture
async def rest(venue: SimVenue) -> AsyncIterator[RestGateway]:
    config = sim_rest_config(venue)
    async with RestGateway(config, RequestBudget(1000), rand=random.Random(1).random) as gw:
        yield gw


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_an_unknown_symbol_retried_in_a_loop_costs_two_reads_a_minute(
    rest: RestGateway,
) -> None:
    clock = FakeClock()
    cache = intake.AssetCache(rest, {}, clock)
    await cache.load(DAY)
    for _ in range(50):
        await cache.recheck(["NOPE"])
        assert cache.get("NOPE") is None
    assert cache.symbol_reads == intake.RECHECKS_PER_SYMBOL
    clock.now = intake.RECHECK_SECONDS + 0.1  # the window passed: asked again
    await cache.recheck(["NOPE"])
    assert cache.symbol_reads == intake.RECHECKS_PER_SYMBOL + 1


async def test_ever_new_symbols_are_bounded_per_submit_and_per_minute(
    rest: RestGateway,
) -> None:
    clock = FakeClock()
    cache = intake.AssetCache(rest, {}, clock)
    await cache.load(DAY)
    await cache.recheck([f"X{n}" for n in range(500)])
    assert cache.symbol_reads == intake.RECHECKS_PER_SUBMIT
    for n in range(100):
        await cache.recheck([f"Y{n}", f"Z{n}"])
    assert cache.symbol_reads == intake.RECHECKS_PER_MINUTE


async def test_a_symbol_listed_during_the_day_is_learnt(venue: SimVenue, rest: RestGateway) -> None:
    specs = venue.exchange._specs
    listed = specs.pop("AAPL")
    cache = intake.AssetCache(rest, {}, FakeClock())
    await cache.load(DAY)
    assert cache.get("AAPL") is None
    specs["AAPL"] = listed
    assert await cache.recheck(["AAPL"]) is True
    facts = cache.get("AAPL")
    assert facts is not None
    assert facts.tradable


async def test_the_next_days_list_forgets_a_delisted_symbol_but_keeps_its_facts(
    venue: SimVenue, rest: RestGateway
) -> None:
    facts: dict[str, AssetFacts] = {}
    cache = intake.AssetCache(rest, facts, FakeClock())
    await cache.load(DAY)
    assert cache.get("AAPL") is not None
    del venue.exchange._specs["AAPL"]  # delisted overnight
    await cache.load(date(2026, 3, 5))
    assert cache.reads == 2
    assert cache.get("AAPL") is None  # a new plan naming it is refused
    assert "AAPL" in facts  # a running plan's leg still finds its facts
    assert cache.get("SPY") is not None
