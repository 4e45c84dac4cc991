"""The simulated account: cash and long positions, changed only by fills.

The venue models a cash account (multiplier 1, shorting disabled): buying power is cash minus what
open buys hold, and a sell can never exceed the position less what open sells already hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from execd.domain.types import Side


@dataclass(slots=True)
class Holding:
    """A long position: shares and what they cost."""

    qty: Decimal
    cost_basis: Decimal

    @property
    def avg_entry_price(self) -> Decimal:
        return self.cost_basis / self.qty if self.qty else Decimal(0)


class Account:
    """Cash and positions of the one account the venue serves."""

    def __init__(self, cash: Decimal, positions: Mapping[str, tuple[Decimal, Decimal]]) -> None:
        """`positions` maps symbol → (qty, entry price)."""
        self.cash = cash
        self.start_cash = cash
        self.holdings: dict[str, Holding] = {
            sym: Holding(qty, qty * price) for sym, (qty, price) in positions.items() if qty > 0
        }

    def qty(self, symbol: str) -> Decimal:
        """Shares held (0 when flat)."""
        holding = self.holdings.get(symbol)
        return holding.qty if holding else Decimal(0)

    def apply_fill(self, symbol: str, side: Side, qty: Decimal, price: Decimal) -> Decimal:
        """Book one execution; returns the position quantity after it."""
        value = qty * price
        holding = self.holdings.get(symbol)
        if side is Side.BUY:
            self.cash -= value
            if holding is None:
                holding = self.holdings[symbol] = Holding(Decimal(0), Decimal(0))
            holding.qty += qty
            holding.cost_basis += value
            return holding.qty
        self.cash += value
        if holding is None:  # the rules make this unreachable (no shorting)
            raise RuntimeError(f"sell fill for {symbol} without a position")
        holding.cost_basis -= holding.cost_basis * qty / holding.qty
        holding.qty -= qty
        if holding.qty <= 0:
            del self.holdings[symbol]
            return Decimal(0)
        return holding.qty
