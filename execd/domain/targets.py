"""Target weights to legs: what a swing trader's strategy produces, turned into orders.

A targets plan (``{"targets": {"SPY": "0.30", ...}, "cash": "0.05"}``) gives each symbol a
weight of account equity. At submit the daemon reads the account, the positions and a quote
per symbol once, and `compute_legs` — pure — returns the legs that move the account there:

- a symbol's current value is its position at the quote's mid; its target value is
  weight × equity; the difference is what to trade;
- sells are sized at the mid and capped at the position (a weight of 0 sells all of it,
  to the last fractional share); buys at the ask, so the buys never cost more than the
  targets say at the prices seen;
- whole shares unless the asset is fractionable (then `FRACTION_PLACES` decimals), always
  rounded towards trading less;
- a trade worth less than `min_trade_notional` is not made (no 3-share rebalancing noise);
- a symbol held but not listed is left alone, unless ``liquidate_unlisted`` (then sold);
- sells come first, then buys, each group in symbol order, so the result is deterministic.

Short positions are refused: a target weight of a short book is not what this computes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from execd.domain.types import Side

FRACTION_PLACES = 4
"""Decimals of a fractional-share leg (Alpaca takes up to 9; 4 keeps legs readable)."""


@dataclass(frozen=True, slots=True)
class TargetQuote:
    """The prices a target leg is sized from (both sides, positive, not crossed)."""

    bid: Decimal
    ask: Decimal

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class TargetLeg:
    """One computed leg, with the numbers that produced it (shown by ``--dry-run``)."""

    symbol: str
    side: Side
    qty: Decimal
    current_value: Decimal
    target_value: Decimal

    def to_wire(self) -> dict[str, str]:
        return {"symbol": self.symbol, "side": self.side.value, "qty": f"{self.qty:f}"}


class TargetError(ValueError):
    """The targets cannot be computed on this account; `errors` names each symbol's problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(errors))


def _round_down(qty: Decimal, fractionable: bool) -> Decimal:
    places = Decimal(1).scaleb(-FRACTION_PLACES) if fractionable else Decimal(1)
    rounded = qty.quantize(places, rounding=ROUND_DOWN)
    return rounded.normalize() if rounded else Decimal(0)


def compute_legs(
    targets: Mapping[str, Decimal],
    *,
    equity: Decimal,
    positions: Mapping[str, Decimal],
    quotes: Mapping[str, TargetQuote],
    fractionable: Mapping[str, bool],
    min_trade_notional: Decimal,
    liquidate_unlisted: bool = False,
) -> list[TargetLeg]:
    """The legs that move `positions` to `targets` (see the module docstring).

    `quotes` and `fractionable` must cover every target symbol and every held symbol that
    is sold; a missing one is a `TargetError` naming it, never a guess.
    """
    if equity <= 0:
        raise TargetError([f"account equity is {equity:f}: nothing to allocate"])
    errors: list[str] = []
    sells: list[TargetLeg] = []
    buys: list[TargetLeg] = []
    symbols = set(targets)
    if liquidate_unlisted:
        symbols |= {s for s, q in positions.items() if q != 0}
    for symbol in sorted(symbols):
        held = positions.get(symbol, Decimal(0))
        if held < 0:
            errors.append(f"targets.{symbol}: the account is short {-held:f} {symbol}")
            continue
        weight = targets.get(symbol, Decimal(0))
        if weight == 0 and held == 0:
            continue
        quote = quotes.get(symbol)
        if quote is None or quote.bid <= 0 or quote.ask <= 0 or quote.ask < quote.bid:
            errors.append(f"targets.{symbol}: no usable quote to size it")
            continue
        current = held * quote.mid
        target = weight * equity
        whole = not fractionable.get(symbol, False)
        if target < current:
            qty = held if weight == 0 else _round_down((current - target) / quote.mid, not whole)
            qty = min(qty, held)
            if qty > 0 and qty * quote.mid >= min_trade_notional:
                sells.append(TargetLeg(symbol, Side.SELL, qty, current, target))
        elif target > current:
            qty = _round_down((target - current) / quote.ask, not whole)
            if qty > 0 and qty * quote.ask >= min_trade_notional:
                buys.append(TargetLeg(symbol, Side.BUY, qty, current, target))
    if errors:
        raise TargetError(errors)
    return sells + buys
