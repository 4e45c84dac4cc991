"""What a leg saw of the market while it worked: the raw material of post-trade analysis.

Step 5 of the seed ladder (seed 003, "post-fill logging vs NBBO/VWAP") can only be
as good as the benchmarks captured *live*: a quote is gone the moment the next one
arrives. A leg's `LegBenchmarks` keeps

- the arrival NBBO twice — when the plan was accepted and when the leg started (a
  leg released after the sells fill can start minutes after its plan);
- every decision that moved money or looked at a quote — each quote the ladder was
  fed, each place / replace / cancel — with the NBBO, its spread and its age at that
  moment (LESSONS.md: on the IEX feed the 3¢ / 5¢ rules measure IEX's own quote, so
  the `feed` is kept too);
- the interval VWAP of the trade prints over the leg's working life.

The NBBO at each fill is stored with the fill itself (journal `fills` columns).
These are plain values (msgspec structs, JSON in the journal); the engine's
`BenchmarkCollector` fills them in, the report reads them back. Pure: no clock, no I/O.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

import msgspec

from execd.domain.quotes import Quote

DecisionKind = Literal["quote", "place", "replace", "cancel"]

#: Most decisions kept per leg. A leg that works all day on a busy symbol is fed
#: thousands of quotes; the chart needs the shape, not every print. Orders are
#: always kept; quote samples are thinned (every other one dropped) past this.
MAX_DECISIONS = 1500


class QuoteMark(msgspec.Struct, frozen=True, kw_only=True):
    """The NBBO as a leg saw it at `at` (venue clock); `age_seconds` = at − quote's as_of."""

    at: datetime
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    quote_time: datetime
    age_seconds: float

    @classmethod
    def of(cls, quote: Quote, at: datetime) -> QuoteMark:
        """Snapshot `quote` as seen at `at`."""
        return cls(
            at=at,
            bid=quote.bid,
            ask=quote.ask,
            bid_size=quote.bid_size,
            ask_size=quote.ask_size,
            quote_time=quote.venue_time,
            age_seconds=round(max(0.0, (at - quote.as_of).total_seconds()), 3),
        )

    @property
    def spread(self) -> Decimal:
        """Ask − bid, dollars."""
        return self.ask - self.bid

    @property
    def mid(self) -> Decimal | None:
        """The midpoint, or None when a side is empty."""
        if self.bid <= 0 or self.ask <= 0:
            return None
        return (self.bid + self.ask) / 2

    def to_quote(self, symbol: str) -> Quote:
        """Back to a `Quote` for the TCA functions (as_of = the quote's own time)."""
        return Quote(
            symbol=symbol,
            bid=self.bid,
            ask=self.ask,
            bid_size=self.bid_size,
            ask_size=self.ask_size,
            venue_time=self.quote_time,
            as_of=self.quote_time,
        )


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """One moment the ladder acted or looked: the quote it had and the price it set."""

    at: datetime
    kind: DecisionKind
    quote: QuoteMark | None = None
    limit_price: Decimal | None = None
    """The order's limit (place/replace); None for a market order, a quote or a cancel."""
    qty: Decimal | None = None
    order_type: str | None = None


class LegBenchmarks(msgspec.Struct, frozen=True, kw_only=True):
    """Everything captured live for one leg, as journaled in `leg_benchmarks`."""

    feed: str
    plan_arrival: QuoteMark | None = None
    leg_arrival: QuoteMark | None = None
    interval_vwap: Decimal | None = None
    fallback_fired: bool = False
    decisions: tuple[Decision, ...] = ()


def thin(decisions: list[Decision], limit: int = MAX_DECISIONS) -> list[Decision]:
    """Keep every order decision and every other quote sample once over `limit`.

    Repeated while still over (a leg made only of orders is never cut: its orders are
    bounded by the ladder's re-peg limits). Order of decisions is preserved.
    """
    while len(decisions) > limit:
        kept: list[Decision] = []
        drop = False
        for decision in decisions:
            if decision.kind == "quote":
                drop = not drop
                if not drop:
                    continue
            kept.append(decision)
        if len(kept) == len(decisions):
            break
        decisions = kept
    return decisions
