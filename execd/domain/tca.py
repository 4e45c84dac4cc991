"""Transaction-cost analysis: how good were the fills, in numbers.

Step 5 of the ladder (seed 003, "post-fill logging vs NBBO/VWAP") measures
every leg against four benchmarks: the arrival mid, the NBBO at each fill, the
interval VWAP and — the number execd exists to improve — what a plain market
order sent at arrival would have paid.

Sign convention, everywhere: **positive bps = cost to us**. A buy above its
benchmark and a sell below it are positive. The market-order comparison is
reported the other way round, as a *saving*: positive = execd beat the market
order.

All arithmetic is `Decimal`; results are exact up to the context precision
(28 significant digits) and rounded only for display (`round_bps`, `round_usd`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from execd.domain.quotes import Quote
from execd.domain.types import Side

BPS = Decimal(10_000)
_ZERO = Decimal(0)


def slippage_bps(side: Side, price: Decimal, benchmark: Decimal) -> Decimal:
    """Cost of trading at `price` against `benchmark`, in basis points of the benchmark.

    buy: (price − benchmark) / benchmark × 10⁴; sell: (benchmark − price) / benchmark × 10⁴.
    """
    if benchmark <= 0:
        raise ValueError(f"benchmark must be > 0, got {benchmark}")
    return side.sign * (price - benchmark) * BPS / benchmark


def far_touch(side: Side, quote: Quote) -> Decimal:
    """The side of the book a marketable order takes: the ask for a buy, the bid for a sell."""
    return quote.ask if side is Side.BUY else quote.bid


def _usable_mid(quote: Quote | None) -> Decimal | None:
    """The quote's mid, or None when a side is empty (a zero bid has no meaningful mid)."""
    if quote is None or quote.bid <= 0 or quote.ask <= 0:
        return None
    return quote.mid


def _usable_touch(side: Side, quote: Quote | None) -> Decimal | None:
    """The far touch, or None when that side of the book is empty."""
    if quote is None:
        return None
    touch = far_touch(side, quote)
    return touch if touch > 0 else None


def round_bps(value: Decimal, places: int = 2) -> Decimal:
    """Basis points rounded for display (banker's rounding, so totals do not drift)."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def round_usd(value: Decimal) -> Decimal:
    """Dollars rounded to the cent for display."""
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution: taken from the fill event, never from `filled_avg_price` (LESSONS.md).

    `quote` is the NBBO the cache held when the fill arrived, when known.
    """

    qty: Decimal
    price: Decimal
    time: datetime
    quote: Quote | None = None
    execution_id: str | None = None

    def __post_init__(self) -> None:
        if self.qty <= 0:
            raise ValueError(f"fill qty must be > 0, got {self.qty}")
        if self.price <= 0:
            raise ValueError(f"fill price must be > 0, got {self.price}")
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError("fill time must be timezone-aware")

    @property
    def notional(self) -> Decimal:
        """Dollars exchanged by this fill."""
        return self.qty * self.price


def average_price(fills: Iterable[Fill]) -> Decimal | None:
    """The quantity-weighted average fill price, or None without fills."""
    qty = _ZERO
    notional = _ZERO
    for fill in fills:
        qty += fill.qty
        notional += fill.notional
    return notional / qty if qty else None


def _weighted_fill_slippage(
    side: Side, fills: Sequence[Fill], benchmark_of: Callable[[Fill], Decimal | None]
) -> Decimal | None:
    """Quantity-weighted slippage of each fill against its own benchmark.

    Fills without a usable benchmark are left out (and so is their weight).
    """
    weighted = _ZERO
    weight = _ZERO
    for fill in fills:
        benchmark = benchmark_of(fill)
        if benchmark is None:
            continue
        weighted += fill.qty * slippage_bps(side, fill.price, benchmark)
        weight += fill.qty
    return weighted / weight if weight else None


@dataclass(frozen=True, slots=True)
class LegReport:
    """The post-fill report of one leg (step 5), as logged and journaled.

    Slippages are positive when they cost us. `vs_fill_touch_bps` is negative
    when the fills beat the far touch (bought below the ask / sold above the
    bid). `market_order_price` is what a plain market order sent at arrival
    would have paid: the arrival far touch, for the whole quantity — the most
    favourable assumption for the market order (it ignores walking the book),
    so the saving is a lower bound. `saving_vs_market_*` is positive when
    execd beat it. A benchmark that cannot be computed (no fills, no quote, an
    empty side, no VWAP) is None, never zero.
    """

    symbol: str
    side: Side
    requested_qty: Decimal | None
    filled_qty: Decimal
    fill_count: int
    avg_price: Decimal | None
    notional: Decimal
    arrival_mid: Decimal | None
    interval_vwap: Decimal | None
    vs_arrival_mid_bps: Decimal | None
    vs_fill_mid_bps: Decimal | None
    vs_fill_touch_bps: Decimal | None
    vs_vwap_bps: Decimal | None
    market_order_price: Decimal | None
    saving_vs_market_bps: Decimal | None
    saving_vs_market_usd: Decimal | None

    @property
    def fill_ratio(self) -> Decimal | None:
        """Filled share of the requested quantity (None for notional legs)."""
        if not self.requested_qty:
            return None
        return self.filled_qty / self.requested_qty

    @property
    def beat_market_order(self) -> bool | None:
        """True when the fills cost less than a market order at arrival would have."""
        if self.saving_vs_market_bps is None:
            return None
        return self.saving_vs_market_bps > 0


def leg_report(
    symbol: str,
    side: Side,
    arrival: Quote | None,
    fills: Sequence[Fill],
    interval_vwap: Decimal | None = None,
    requested_qty: Decimal | None = None,
) -> LegReport:
    """Measure a leg's fills against arrival mid, NBBO at fill, interval VWAP and a market order."""
    filled_qty = sum((f.qty for f in fills), _ZERO)
    notional = sum((f.notional for f in fills), _ZERO)
    avg = notional / filled_qty if filled_qty else None
    arrival_mid = _usable_mid(arrival)
    market_price = _usable_touch(side, arrival)
    vwap = interval_vwap if interval_vwap is not None and interval_vwap > 0 else None

    def vs(benchmark: Decimal | None) -> Decimal | None:
        if avg is None or benchmark is None:
            return None
        return slippage_bps(side, avg, benchmark)

    saving_bps = None
    saving_usd = None
    if avg is not None and market_price is not None:
        saving_bps = -slippage_bps(side, avg, market_price)
        saving_usd = side.sign * (market_price - avg) * filled_qty
    return LegReport(
        symbol=symbol,
        side=side,
        requested_qty=requested_qty,
        filled_qty=filled_qty,
        fill_count=len(fills),
        avg_price=avg,
        notional=notional,
        arrival_mid=arrival_mid,
        interval_vwap=vwap,
        vs_arrival_mid_bps=vs(arrival_mid),
        vs_fill_mid_bps=_weighted_fill_slippage(side, fills, lambda f: _usable_mid(f.quote)),
        vs_fill_touch_bps=_weighted_fill_slippage(
            side, fills, lambda f: _usable_touch(side, f.quote)
        ),
        vs_vwap_bps=vs(vwap),
        market_order_price=market_price,
        saving_vs_market_bps=saving_bps,
        saving_vs_market_usd=saving_usd,
    )


@dataclass(frozen=True, slots=True)
class PlanSavings:
    """A plan's fills against plain market orders, summed over its legs.

    `saving_bps` is weighted by each leg's market-order notional (dollars
    saved / dollars a market order would have moved).
    """

    legs_measured: int
    market_order_notional: Decimal
    saving_usd: Decimal
    saving_bps: Decimal | None


def plan_savings(reports: Iterable[LegReport]) -> PlanSavings:
    """Sum the legs that have a market-order benchmark (legs without one are not counted)."""
    measured = 0
    benchmark_notional = _ZERO
    saving = _ZERO
    for report in reports:
        if report.market_order_price is None or report.saving_vs_market_usd is None:
            continue
        measured += 1
        benchmark_notional += report.market_order_price * report.filled_qty
        saving += report.saving_vs_market_usd
    bps = saving * BPS / benchmark_notional if benchmark_notional else None
    return PlanSavings(measured, benchmark_notional, saving, bps)


@dataclass(frozen=True, slots=True)
class VwapMark:
    """A snapshot of an accumulator's running totals (for interval VWAPs)."""

    price_volume: Decimal
    volume: Decimal


class VwapAccumulator:
    """Running trade VWAP for one symbol, fed by the quote stream.

    Pure (no I/O, no clock) but deliberately mutable: one per symbol, updated
    on every trade print. A leg takes a `mark()` at arrival and another when it
    finishes; `vwap_between` gives the VWAP of the trades in between.
    """

    __slots__ = ("_price_volume", "_volume")

    def __init__(self) -> None:
        self._price_volume = _ZERO
        self._volume = _ZERO

    def add(self, price: Decimal, size: Decimal) -> None:
        """Record one trade print; a non-positive or non-finite price or size is a broken
        print. Finiteness first: one ±inf would make every later VWAP Infinity or NaN, and
        comparing a NaN with 0 raises `InvalidOperation` instead of this ValueError."""
        if not (price.is_finite() and size.is_finite()):
            raise ValueError(f"trade price and size must be finite, got {price} x {size}")
        if price <= 0:
            raise ValueError(f"trade price must be > 0, got {price}")
        if size <= 0:
            raise ValueError(f"trade size must be > 0, got {size}")
        self._price_volume += price * size
        self._volume += size

    @property
    def volume(self) -> Decimal:
        """Shares traded since the accumulator started."""
        return self._volume

    @property
    def vwap(self) -> Decimal | None:
        """Volume-weighted average trade price so far, or None before the first trade."""
        return self._price_volume / self._volume if self._volume else None

    def mark(self) -> VwapMark:
        """The running totals now, to measure an interval from."""
        return VwapMark(self._price_volume, self._volume)


def vwap_between(start: VwapMark, end: VwapMark) -> Decimal | None:
    """VWAP of the trades between two marks of one accumulator, or None if none traded."""
    volume = end.volume - start.volume
    if volume < 0:
        raise ValueError("end mark precedes start mark")
    return (end.price_volume - start.price_volume) / volume if volume else None
