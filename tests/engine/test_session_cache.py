"""The calendar a submit checks its schedule against is read once per venue day (review 6:
every submit, refused ones too, paid a calendar read at VALIDATE priority)."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from execd.adapters.errors import AdapterError
from execd.domain.calendar import TradingSession
from execd.engine.intake import SessionCache

DAY = date(2026, 3, 2)


class _Calendar:
    """A calendar source that counts reads and can fail once."""

    def __init__(self) -> None:
        self.days: list[date] = []
        self.fail = False
        self.gate = asyncio.Event()
        self.gate.set()

    async def read(self, today: date) -> list[TradingSession]:
        await self.gate.wait()
        self.days.append(today)
        if self.fail:
            self.fail = False
            raise AdapterError("calendar unavailable")
        return []


async def test_one_read_per_venue_day_shared_by_submits_in_flight() -> None:
    calendar = _Calendar()
    cache = SessionCache(calendar.read)
    calendar.gate.clear()
    together = [asyncio.create_task(cache.on(DAY)) for _ in range(5)]
    calendar.gate.set()
    await asyncio.gather(*together)
    await cache.on(DAY)
    assert calendar.days == [DAY]
    await cache.on(date(2026, 3, 3))  # the next venue day reads again
    assert calendar.days == [DAY, date(2026, 3, 3)]


async def test_a_failed_read_is_not_cached() -> None:
    calendar = _Calendar()
    cache = SessionCache(calendar.read)
    calendar.fail = True
    with pytest.raises(AdapterError):
        await cache.on(DAY)
    await cache.on(DAY)
    assert calendar.days == [DAY, DAY]
    assert cache.reads == 1
