"""Post-trade analysis of finished legs, plans and date ranges (issue 13 item 2).

`tca.leg_report` measures one leg's fills against its benchmarks; this module adds
what a trader compares across legs and plans, and aggregates:

- slippage vs the arrival mid at plan acceptance as well as at leg start;
- **spread capture**: the fraction of the arrival half-spread saved against crossing
  it (1 = filled at the mid, 0 = at the far touch, negative = worse than the touch);
- the **market-order counterfactual walking displayed size**: the full quantity taking
  the arrival far touch for the size displayed there. execd sees only the top of book,
  so shares beyond it are priced at the touch too (a lower bound for the market order's
  cost, so the saving is a lower bound) and counted in `beyond_displayed_qty`;
- time to first fill and to completion; the step at which the leg completed;
  the time-of-day bucket it started in (seed 003's open windows);
- notional-weighted aggregates (`summarise`) for a plan or any group of legs.

Sign convention as in `tca`: positive bps = cost; savings positive = execd did better.
Pure: every time is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from enum import StrEnum

from execd.domain.calendar import EASTERN
from execd.domain.quotes import Quote
from execd.domain.tca import BPS, Fill, LegReport, far_touch, leg_report, slippage_bps
from execd.domain.types import Side

_ZERO = Decimal(0)


class Bucket(StrEnum):
    """When in the session a leg started (US/Eastern), after seed 003's open windows."""

    PRE_OPEN = "pre-open"
    WAIT_FOR_SPREADS = "09:30-09:32"
    NORMAL = "09:32-09:35"
    REGULAR = "regular"
    LAST_30 = "last 30 min"
    AFTER_CLOSE = "after close"


def time_bucket(start: datetime, close: time = time(16, 0)) -> Bucket:
    """The bucket of a leg that started at `start` (any zone; judged in US/Eastern).

    `close` is the session's close (13:00 on a half day); "last 30 min" is measured from it.
    """
    t = start.astimezone(EASTERN).time()
    last_30 = (
        time(close.hour - 1, close.minute + 30)
        if close.minute < 30
        else time(close.hour, close.minute - 30)
    )
    if t < time(9, 30):
        return Bucket.PRE_OPEN
    if t < time(9, 32):
        return Bucket.WAIT_FOR_SPREADS
    if t < time(9, 35):
        return Bucket.NORMAL
    if t >= close:
        return Bucket.AFTER_CLOSE
    if t >= last_30:
        return Bucket.LAST_30
    return Bucket.REGULAR


@dataclass(frozen=True, slots=True)
class MarketCounterfactual:
    """A plain market order for the whole quantity at arrival, walking displayed size."""

    price: Decimal
    """Average price it would have paid (the far touch; see the module docstring)."""
    displayed_qty: Decimal
    """Size displayed at the arrival far touch."""
    beyond_displayed_qty: Decimal
    """Shares beyond the displayed size, priced at the touch: a lower bound on their cost."""


def market_counterfactual(
    side: Side, qty: Decimal, arrival: Quote | None
) -> MarketCounterfactual | None:
    """What a market order for `qty` would have paid against the arrival NBBO, or None."""
    if arrival is None or qty <= 0:
        return None
    touch = far_touch(side, arrival)
    if touch <= 0:
        return None
    displayed = arrival.ask_size if side is Side.BUY else arrival.bid_size
    displayed = max(displayed, _ZERO)
    return MarketCounterfactual(touch, displayed, max(qty - displayed, _ZERO))


@dataclass(frozen=True, slots=True)
class LegInput:
    """What the journal knows of one finished (or running) leg, as plain values."""

    plan_id: str
    leg_index: int
    symbol: str
    side: Side
    urgency: str
    style: str | None
    """``marketable``, ``passive`` or ``legacy`` (plain market orders); None if it never ran."""
    requested_qty: Decimal | None
    state: str
    started_at: datetime | None
    finished_at: datetime | None
    repegs: int
    fallback_fired: bool
    fills: tuple[Fill, ...]
    arrival: Quote | None
    """The NBBO when the leg started working (the ladder's arrival)."""
    plan_arrival: Quote | None = None
    """The NBBO when the plan was accepted (None when the symbol was not streamed yet)."""
    interval_vwap: Decimal | None = None
    reason: str | None = None
    feed: str | None = None


class CompletedAt(StrEnum):
    """The ladder step at which a leg finished filling."""

    LIMIT = "step 2 limit"
    REPEG = "step 3 re-peg"
    FALLBACK = "step 4 fallback"
    LEGACY = "market (legacy)"
    UNFILLED = "not filled"


@dataclass(frozen=True, slots=True)
class LegAnalysis:
    """One leg measured every way the report shows it."""

    leg: LegInput
    tca: LegReport
    plan_arrival_mid: Decimal | None
    vs_plan_arrival_mid_bps: Decimal | None
    spread_capture: Decimal | None
    market_order: MarketCounterfactual | None
    saving_vs_market_usd: Decimal | None
    saving_vs_market_bps: Decimal | None
    time_to_first_fill_seconds: Decimal | None
    time_to_complete_seconds: Decimal | None
    completed_at: CompletedAt
    bucket: Bucket | None

    @property
    def completed(self) -> bool:
        """Filled in full."""
        return self.leg.state == "filled"

    @property
    def notional(self) -> Decimal:
        """Dollars filled."""
        return self.tca.notional


def _seconds(start: datetime | None, end: datetime | None) -> Decimal | None:
    if start is None or end is None:
        return None
    return Decimal(str(round(max((end - start).total_seconds(), 0.0), 3)))


def _completed_at(leg: LegInput) -> CompletedAt:
    if leg.state != "filled":
        return CompletedAt.UNFILLED
    if leg.style == "legacy":
        return CompletedAt.LEGACY
    if leg.fallback_fired:
        return CompletedAt.FALLBACK
    if leg.repegs > 0:
        return CompletedAt.REPEG
    return CompletedAt.LIMIT


def analyse_leg(leg: LegInput, close: time = time(16, 0)) -> LegAnalysis:
    """Measure one leg (see the module docstring for each figure)."""
    report = leg_report(
        leg.symbol,
        leg.side,
        leg.arrival,
        leg.fills,
        interval_vwap=leg.interval_vwap,
        requested_qty=leg.requested_qty,
    )
    avg = report.avg_price
    plan_mid = None
    if leg.plan_arrival is not None and leg.plan_arrival.bid > 0 and leg.plan_arrival.ask > 0:
        plan_mid = leg.plan_arrival.mid
    vs_plan = None if avg is None or plan_mid is None else slippage_bps(leg.side, avg, plan_mid)
    capture = None
    arrival = leg.arrival
    if avg is not None and arrival is not None and arrival.bid > 0 and arrival.spread > 0:
        half = arrival.spread / 2
        capture = leg.side.sign * (far_touch(leg.side, arrival) - avg) / half
    market = market_counterfactual(leg.side, report.filled_qty, arrival)
    saving_usd = saving_bps = None
    if market is not None and avg is not None:
        saving_usd = leg.side.sign * (market.price - avg) * report.filled_qty
        saving_bps = -slippage_bps(leg.side, avg, market.price)
    first_fill = min((f.time for f in leg.fills), default=None)
    last_fill = max((f.time for f in leg.fills), default=None)
    return LegAnalysis(
        leg=leg,
        tca=report,
        plan_arrival_mid=plan_mid,
        vs_plan_arrival_mid_bps=vs_plan,
        spread_capture=capture,
        market_order=market,
        saving_vs_market_usd=saving_usd,
        saving_vs_market_bps=saving_bps,
        time_to_first_fill_seconds=_seconds(leg.started_at, first_fill),
        time_to_complete_seconds=(
            _seconds(leg.started_at, last_fill) if leg.state == "filled" else None
        ),
        completed_at=_completed_at(leg),
        bucket=None if leg.started_at is None else time_bucket(leg.started_at, close),
    )


@dataclass(frozen=True, slots=True)
class Summary:
    """Aggregates over a set of legs (a plan, or a group of a date range).

    Every bps figure is weighted by the dollars filled of the legs that have it;
    `saving_vs_market_bps` by the dollars the market order would have moved. Rates are
    fractions of `legs`. A figure no leg has is None (a group of unfilled legs saved
    nothing measurable, which is not "saved $0").
    """

    legs: int
    completed: int
    fallbacks: int
    filled_notional: Decimal
    vs_arrival_mid_bps: Decimal | None
    vs_fill_mid_bps: Decimal | None
    vs_fill_touch_bps: Decimal | None
    vs_vwap_bps: Decimal | None
    spread_capture: Decimal | None
    saving_vs_market_usd: Decimal | None
    saving_vs_market_bps: Decimal | None
    market_order_notional: Decimal

    @property
    def completion_rate(self) -> Decimal | None:
        return Decimal(self.completed) / self.legs if self.legs else None

    @property
    def fallback_rate(self) -> Decimal | None:
        return Decimal(self.fallbacks) / self.legs if self.legs else None


def _weighted(
    legs: Sequence[LegAnalysis], value: Callable[[LegAnalysis], Decimal | None]
) -> Decimal | None:
    total = weight = _ZERO
    for leg in legs:
        v = value(leg)
        if v is None or leg.notional <= 0:
            continue
        total += v * leg.notional
        weight += leg.notional
    return total / weight if weight else None


def summarise(legs: Iterable[LegAnalysis]) -> Summary:
    """Notional-weighted aggregates of `legs` (see `Summary`)."""
    items = list(legs)
    saving = market_notional = _ZERO
    measured = 0
    for leg in items:
        if leg.market_order is not None and leg.saving_vs_market_usd is not None:
            measured += 1
            saving += leg.saving_vs_market_usd
            market_notional += leg.market_order.price * leg.tca.filled_qty
    return Summary(
        legs=len(items),
        completed=sum(1 for leg in items if leg.completed),
        fallbacks=sum(1 for leg in items if leg.leg.fallback_fired),
        filled_notional=sum((leg.notional for leg in items), _ZERO),
        vs_arrival_mid_bps=_weighted(items, lambda a: a.tca.vs_arrival_mid_bps),
        vs_fill_mid_bps=_weighted(items, lambda a: a.tca.vs_fill_mid_bps),
        vs_fill_touch_bps=_weighted(items, lambda a: a.tca.vs_fill_touch_bps),
        vs_vwap_bps=_weighted(items, lambda a: a.tca.vs_vwap_bps),
        spread_capture=_weighted(items, lambda a: a.spread_capture),
        saving_vs_market_usd=saving if measured else None,
        saving_vs_market_bps=saving * BPS / market_notional if market_notional else None,
        market_order_notional=market_notional,
    )


#: The groupings of `execd report --since`, by name: how each leg is keyed.
GROUPINGS: dict[str, Callable[[LegAnalysis], str]] = {
    "urgency": lambda a: a.leg.urgency,
    "style": lambda a: a.leg.style or "not started",
    "symbol": lambda a: a.leg.symbol,
    "time_of_day": lambda a: "unknown" if a.bucket is None else a.bucket.value,
    "completed_at": lambda a: a.completed_at.value,
}


def group(legs: Iterable[LegAnalysis], key: Callable[[LegAnalysis], str]) -> dict[str, Summary]:
    """`summarise` per value of `key`, keys sorted."""
    groups: dict[str, list[LegAnalysis]] = {}
    for leg in legs:
        groups.setdefault(key(leg), []).append(leg)
    return {name: summarise(groups[name]) for name in sorted(groups)}
