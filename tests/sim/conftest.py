"""Shared fixtures for the venue's server tests: a running SimVenue on a loopback port.

alpaca-py 0.44 imports ``websockets.legacy``, which warns on import under websockets ≥ 14; the
suite turns warnings into errors, so the SDK modules are imported here once with that one warning
silenced (the SDK, not our code, is the one using the deprecated API).
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, time
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    import alpaca.data.live.stock
    import alpaca.trading.stream  # noqa: F401

from execd.sim import wire
from execd.sim.config import SimConfig
from execd.sim.server import ServerOptions
from execd.sim.venue import SimVenue

# Every wait in these tests is bounded by this (scale it, never sprinkle sleeps).
DEADLINE = 10.0

# A plain Wednesday, mid-morning Eastern: the market is open and nothing is special.
TRADING_DAY = date(2026, 3, 4)


def venue_config(**overrides: Any) -> SimConfig:
    """The default venue for server tests: calm market, open session, fixed seed."""
    fields: dict[str, Any] = {
        "scenario": "calm",
        "seed": 7,
        "start": time(10, 0),
        "start_date": TRADING_DAY,
        "symbols": ("TQQQ", "SPY", "MULN"),
    }
    fields.update(overrides)
    return SimConfig(**fields)


@pytest.fixture
async def venue() -> AsyncIterator[SimVenue]:
    """A running venue with default options."""
    async with SimVenue(venue_config()) as running:
        yield running


@pytest.fixture
def make_venue() -> Callable[..., SimVenue]:
    """Build a (not yet entered) venue with config/server overrides."""

    def build(options: ServerOptions | None = None, **config: Any) -> SimVenue:
        return SimVenue(venue_config(**config), options=options)

    return build


async def wait_until(predicate: Callable[[], bool], what: str, limit: float = DEADLINE) -> None:
    """Poll ``predicate`` (cheaply, yielding to the loop) until true or fail after ``limit`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def within(awaitable: Awaitable[Any], limit: float = DEADLINE) -> Any:
    """Await with the suite's deadline."""
    return await asyncio.wait_for(awaitable, limit)


async def first_quote(venue: SimVenue, symbol: str) -> dict[str, Any]:
    """The venue's latest quote for ``symbol``, waiting for the live market's first one (the
    quote a symbol has before the first tick is history, not the book orders meet)."""
    started = wire.ts(venue.exchange.started_at) or ""

    def live() -> bool:
        quote = venue.exchange.latest_quotes([symbol]).get(symbol)
        return quote is not None and str(quote["t"]) > started

    await wait_until(live, f"a live {symbol} quote")
    return venue.exchange.latest_quotes([symbol])[symbol]
