"""The simulated account: cash and positions (long, or short with a negative quantity), changed
only by fills. The money rules (buying power, shorting) live in :mod:`execd.sim.ledger`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from execd.domain.types import Side


@dataclass(slots=True)
class Holding:
    """A position: signed shares (negative: short) and their signed cost (qty × entry price)."""

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
        """Book one execution; returns the (signed) position quantity after it.

        The ledger's rules never let one fill flip a position (§1.10); a fill that would is a
        bug in the engine, and raises.
        """
        value = qty * price
        signed = qty if side is Side.BUY else -qty
        self.cash -= value if side is Side.BUY else -value
        holding = self.holdings.get(symbol)
        if holding is None:
            holding = self.holdings[symbol] = Holding(Decimal(0), Decimal(0))
        if holding.qty == 0 or (holding.qty > 0) == (signed > 0):
            holding.qty += signed  # opening or adding: cost grows at this price
            holding.cost_basis += signed * price
        else:
            if abs(signed) > abs(holding.qty):
                raise RuntimeError(f"{side.value} fill of {qty} would flip {symbol}")
            holding.cost_basis -= holding.cost_basis * (abs(signed) / abs(holding.qty))
            holding.qty += signed
        if holding.qty == 0:
            del self.holdings[symbol]
            return Decimal(0)
        return holding.qty
