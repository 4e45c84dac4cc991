"""The NBBO snapshot every pricing decision is made from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Quote:
    """A top-of-book quote as the quote cache hands it to a decision.

    `venue_time` is the exchange timestamp of the quote itself (for reports).
    `as_of` is the venue-clock time the freshness gates measure from: the quote's
    own timestamp, capped at its receipt time (DESIGN.md "Fresh quote": a quote is
    fresh when its own timestamp is at most `quote_freshness_seconds` old). A
    silent symbol, a stalled socket and a dropped stream all leave it ageing.
    """

    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    venue_time: datetime
    as_of: datetime

    @property
    def mid(self) -> Decimal:
        """The midpoint, exact (may carry more decimals than a tick)."""
        return (self.bid + self.ask) / 2

    @property
    def spread(self) -> Decimal:
        """Ask minus bid in dollars (negative when crossed)."""
        return self.ask - self.bid

    def age_seconds(self, now: datetime) -> float:
        """How long ago this NBBO was last known current."""
        return (now - self.as_of).total_seconds()
