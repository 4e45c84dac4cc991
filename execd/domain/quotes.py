"""The NBBO snapshot every pricing decision is made from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Quote:
    """A top-of-book quote as the quote cache hands it to a decision.

    `venue_time` is the exchange timestamp of the quote itself (for reports).
    `as_of` is the latest venue-clock time at which this NBBO was known to be
    current: the stream stamps it on receipt and keeps it moving while the
    connection that delivered it stays up, because an unchanged quote is not
    resent. Freshness gates measure `now - as_of`, so a quote from a dropped
    stream ages even though the market did not move.
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
