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

A reader takes a snapshot before its venue read and another after (`merged`): a leg that
started, got its order live or ended while the read was in flight is counted, possibly
twice (a buy then waits a wave, a sell is capped a little low), never not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from execd.domain.types import Side
from execd.engine.records import LegRecord

Key = tuple[str, int]
"""A leg: (plan id, leg index)."""


class Commitments:
    """Buys and sells started by any plan, until their leg ends."""

    def __init__(self) -> None:
        self._buys: dict[Key, tuple[LegRecord, Decimal]] = {}
        self._sells: dict[Key, LegRecord] = {}

    def reserve_buy(self, key: Key, leg: LegRecord, price: Decimal) -> None:
        """A buy released at up to `price` a share (its reservation price)."""
        self._buys[key] = (leg, price)

    def commit_sell(self, key: Key, leg: LegRecord) -> None:
        """A sell started with its (capped) quantity."""
        assert leg.leg.side is Side.SELL
        self._sells[key] = leg

    def release(self, key: Key) -> None:
        """The leg ended: what it left unfilled is free again."""
        self._buys.pop(key, None)
        self._sells.pop(key, None)

    def cash(self) -> dict[Key, Decimal]:
        """USD reserved by buys the venue's cash figure does not show yet."""
        return {
            key: _unfilled(leg) * price
            for key, (leg, price) in self._buys.items()
            if not leg.finished and leg.limit_price is None
        }

    def sells(self, symbol: str) -> dict[Key, Decimal]:
        """Shares of `symbol` that started sells have yet to sell."""
        return {
            key: _unfilled(leg)
            for key, leg in self._sells.items()
            if leg.leg.symbol == symbol and not leg.finished
        }


def merged(before: Mapping[Key, Decimal], after: Mapping[Key, Decimal]) -> Decimal:
    """The total of two snapshots around a venue read, each leg counted once (its earlier
    figure when it is in both: it can only have shrunk since)."""
    return sum(before.values(), Decimal(0)) + sum(
        (value for key, value in after.items() if key not in before), Decimal(0)
    )


def _unfilled(leg: LegRecord) -> Decimal:
    return max((leg.qty or Decimal(0)) - leg.filled_qty, Decimal(0))
