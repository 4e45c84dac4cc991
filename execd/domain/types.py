"""Closed sets shared across the core: order side and urgency."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    """Order side, spelled as Alpaca spells it on the wire."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for buys, -1 for sells: the direction a cost moves the price."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class Urgency(StrEnum):
    """How much price the trader will give up for certainty (seed 000).

    low: limit orders only, never a market order; a leg that cannot be priced
    or runs out of re-pegs ends cleanly with its reason.
    normal: the ladder, then the market fallback after the last re-peg.
    high: skips the open wait; failed quote validation goes straight to the fallback.
    """

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
