"""What execd has started but the venue's figures may not show yet, shared by every plan.

Each plan's runner sizes its buys against the account's cash and re-checks its sells
against the position when they start; both figures are read from the venue. A leg that
has started but has no live order at the venue is invisible in them, so two plans sized
from the same read would both spend the same cash (review: two plans together drove a
cash account to −$4,405.70) or sell the same shares (review: 600 TQQQ sold from 300).
One `Commitments` per engine, in `RunnerContext`, records those legs for every plan:

- a **buy** reserves its unfilled quantity at its reservation price while it has no live
  order (once its order is live the venue holds the cash itself; when the leg ends the
  reservation goes);
- a **sell** commits its unfilled quantity for its whole life (`sizing.sellable_qty`
  counts a live order's shares once).

A reader wraps its venue read in `cash_around` / `sells_around`: what the ledger held
before the read, what it holds after, and what started while the read was in flight (at
its full size: its order may have gone live, or filled, after the venue answered) are
each counted, the largest figure per leg. A leg may be counted twice (a buy then waits a
wave, a sell is capped a little low), never not at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import TypeVar

from execd.domain.types import Side
from execd.engine.records import LegRecord

Key = tuple[str, int]
"""A leg: (plan id, leg index)."""

T = TypeVar("T")


class Commitments:
    """Buys and sells started by any plan, until their leg ends."""

    def __init__(self) -> None:
        self._buys: dict[Key, tuple[LegRecord, Decimal]] = {}
        self._sells: dict[Key, LegRecord] = {}
        # Readers in flight, by identity: two readers' records are equal while both are
        # empty, so a list's `remove` (by equality) could take the other reader's.
        self._watchers: dict[int, dict[Key, tuple[LegRecord, Decimal]]] = {}

    def reserve_buy(self, key: Key, leg: LegRecord, price: Decimal) -> None:
        """A buy released at up to `price` a share (its reservation price)."""
        self._buys[key] = (leg, price)
        for seen in self._watchers.values():
            seen[key] = (leg, _unfilled(leg) * price)

    def commit_sell(self, key: Key, leg: LegRecord) -> None:
        """A sell started with its (capped) quantity."""
        assert leg.leg.side is Side.SELL
        self._sells[key] = leg
        for seen in self._watchers.values():
            seen[key] = (leg, _unfilled(leg))

    def release(self, key: Key) -> None:
        """The leg ended: what it left unfilled is free again."""
        self._buys.pop(key, None)
        self._sells.pop(key, None)

    def release_when_done(self, key: Key, task: asyncio.Task[None]) -> None:
        """Release `key` when its leg's task ends, however it ends: a task cancelled before
        its first step runs none of its body, not even a `finally` (a reserved buy would
        stay reserved, its cash lost to every plan's sizing, until the daemon stops)."""
        task.add_done_callback(lambda _task: self.release(key))

    def cash(self) -> dict[Key, Decimal]:
        """USD reserved by buys the venue's cash figure does not show yet."""
        return {
            key: _unfilled(leg) * price
            for key, (leg, price) in self._buys.items()
            if not leg.finished and leg.limit_price is None
        }

    def all_buys(self) -> dict[Key, Decimal]:
        """USD every unfinished started buy may still spend, live order or not."""
        return {
            key: _unfilled(leg) * price
            for key, (leg, price) in self._buys.items()
            if not leg.finished
        }

    def sells(self, symbol: str) -> dict[Key, Decimal]:
        """Shares of `symbol` that started sells have yet to sell."""
        return {
            key: _unfilled(leg)
            for key, leg in self._sells.items()
            if leg.leg.symbol == symbol and not leg.finished
        }

    async def cash_around(self, read: Callable[[], Awaitable[T]]) -> tuple[T, Decimal, Decimal]:
        """`read()` (the account), the USD the ledger reserves that the account's buying
        power cannot show, and the USD every started buy may still spend (to check against
        the account's cash itself: a re-peg's cancel frees the venue's hold before the leg
        hears of it, so "live" is not proof that the venue holds the cash)."""
        before, before_all = self.cash(), self.all_buys()
        seen: dict[Key, tuple[LegRecord, Decimal]] = {}
        self._watchers[id(seen)] = seen
        try:
            answer = await read()
        finally:
            del self._watchers[id(seen)]
        started = {k: v for k, (leg, v) in seen.items() if leg.leg.side is Side.BUY}
        invisible = merged(before, self.cash(), started)
        return answer, invisible, merged(before_all, self.all_buys(), started)

    async def sells_around(
        self, symbol: str, read: Callable[[], Awaitable[T]]
    ) -> tuple[T, Decimal]:
        """`read()` (the position) and the shares of `symbol` started sells have yet to sell."""
        before = self.sells(symbol)
        seen: dict[Key, tuple[LegRecord, Decimal]] = {}
        self._watchers[id(seen)] = seen
        try:
            answer = await read()
        finally:
            del self._watchers[id(seen)]
        started = {
            k: v
            for k, (leg, v) in seen.items()
            if leg.leg.side is Side.SELL and leg.leg.symbol == symbol
        }
        return answer, merged(before, self.sells(symbol), started)


def merged(
    before: Mapping[Key, Decimal],
    after: Mapping[Key, Decimal],
    started: Mapping[Key, Decimal] | None = None,
) -> Decimal:
    """The total of the snapshots around a venue read, each leg counted once: its figure
    before the read if it had one (it can only have shrunk since, or become visible to the
    venue), else the larger of its figure after and its size when it started meanwhile."""
    later = started or {}
    total = sum(before.values(), Decimal(0))
    for key in (after.keys() | later.keys()) - before.keys():
        total += max(after.get(key, Decimal(0)), later.get(key, Decimal(0)))
    return total


def _unfilled(leg: LegRecord) -> Decimal:
    return max((leg.qty or Decimal(0)) - leg.filled_qty, Decimal(0))
