"""Spread measurement, classification and the quote gates, pure.

Seed 003 (spread assessment, step 0 and step 1): a spread is *tight* at ≤ 3¢,
*normal* at ≤ 5¢, *wide* above; before the open the class sets the slippage
budget (5 / 10 / 15 bps) and the recommended wait after the open (0 / 1 / 2
minutes); a limit is validated against the mid with `max_slippage_bps`
(default 20).

Seed 000 (spread and volume validation): quotes older than
`quote_freshness_seconds` (5) are stale; a spread above `max_spread_percent`
(0.25 %) or a size at bid or ask below `min_bid_ask_size` (100) rejects the
quote. The seed's prose says "$100 at bid/ask levels" but the parameter is
named a *size* and compared with the quote's sizes, so execd reads it as
**shares** at the bid and at the ask.

LESSONS.md: never price from a stale, crossed or one-sided quote, and say why.
Every rejection here carries a machine-readable `GateReason` and words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from execd.domain.prices import round_for_side
from execd.domain.quotes import Quote
from execd.domain.types import Side

_CENTS = Decimal(100)
_BPS = Decimal(10_000)
_PERCENT = Decimal(100)


class SpreadClass(StrEnum):
    """Seed 003 spread quality: tight (≤ 3¢), normal (≤ 5¢), wide (> 5¢)."""

    TIGHT = "tight"
    NORMAL = "normal"
    WIDE = "wide"


class GateReason(StrEnum):
    """Why a quote may not be priced from (stable, machine-readable)."""

    STALE = "quote_stale"
    EMPTY_SIDE = "quote_empty_side"
    CROSSED = "quote_crossed"
    LOCKED = "quote_locked"
    SPREAD_TOO_WIDE = "spread_too_wide"
    SIZE_TOO_SMALL = "size_too_small"
    SLIPPAGE_BUDGET = "slippage_budget_exceeded"


@dataclass(frozen=True, slots=True)
class GateRejection:
    """A refused quote or price: `reason` for machines, `message` for people."""

    reason: GateReason
    message: str


@dataclass(frozen=True, slots=True)
class SpreadRules:
    """Seed 003's spread classes and what each class implies before the open."""

    tight_max_cents: Decimal = Decimal(3)
    normal_max_cents: Decimal = Decimal(5)
    tight_slippage_bps: Decimal = Decimal(5)
    normal_slippage_bps: Decimal = Decimal(10)
    wide_slippage_bps: Decimal = Decimal(15)
    tight_wait: timedelta = timedelta(0)
    normal_wait: timedelta = timedelta(minutes=1)
    wide_wait: timedelta = timedelta(minutes=2)

    def __post_init__(self) -> None:
        if not Decimal(0) <= self.tight_max_cents <= self.normal_max_cents:
            raise ValueError("need 0 <= tight_max_cents <= normal_max_cents")


@dataclass(frozen=True, slots=True)
class PremarketAssessment:
    """Seed 003 step 0: what the pre-open spread says about the day's execution."""

    spread_cents: Decimal
    spread_class: SpreadClass
    max_slippage_bps: Decimal
    recommended_wait: timedelta


def spread_cents(quote: Quote) -> Decimal:
    """Ask minus bid in cents (negative when crossed)."""
    return quote.spread * _CENTS


def spread_bps(quote: Quote) -> Decimal:
    """The spread relative to the mid, in basis points (0 when the mid is not positive)."""
    mid = quote.mid
    return quote.spread / mid * _BPS if mid > 0 else Decimal(0)


def spread_percent(quote: Quote) -> Decimal:
    """The spread relative to the mid, in percent (seed 000's `max_spread_percent` unit)."""
    return spread_bps(quote) / _BPS * _PERCENT


def classify_spread(cents: Decimal, rules: SpreadRules) -> SpreadClass:
    """Seed 003 `_classify_spread`: ≤ tight bound, ≤ normal bound, else wide."""
    if cents <= rules.tight_max_cents:
        return SpreadClass.TIGHT
    if cents <= rules.normal_max_cents:
        return SpreadClass.NORMAL
    return SpreadClass.WIDE


def assess_premarket(quote: Quote, rules: SpreadRules) -> PremarketAssessment | None:
    """Seed 003 step 0: classify the pre-open spread, set the budget and the wait.

    None when either side is empty or the quote is crossed: the seed returns
    nothing for `bid <= 0 or ask <= 0`, and a crossed pre-open book says
    nothing about the session's spread either.
    """
    if quote.bid <= 0 or quote.ask <= 0 or quote.ask < quote.bid:
        return None
    cents = spread_cents(quote)
    cls = classify_spread(cents, rules)
    match cls:
        case SpreadClass.TIGHT:
            budget, wait = rules.tight_slippage_bps, rules.tight_wait
        case SpreadClass.NORMAL:
            budget, wait = rules.normal_slippage_bps, rules.normal_wait
        case SpreadClass.WIDE:
            budget, wait = rules.wide_slippage_bps, rules.wide_wait
    return PremarketAssessment(cents, cls, budget, wait)


def check_priceable(quote: Quote, now: datetime, freshness_seconds: float) -> GateRejection | None:
    """The hard gates: a quote that fails these must never price an order.

    Stale (older than `quote_freshness_seconds`, seed 000), an empty or
    non-positive side, crossed (bid > ask) or locked (bid == ask). LESSONS.md:
    negative limits and crossed limits came from exactly these quotes.
    """
    age = quote.age_seconds(now)
    if age > freshness_seconds:
        return GateRejection(
            GateReason.STALE,
            f"quote is {age:.3f}s old, limit is {freshness_seconds}s",
        )
    if quote.bid <= 0 or quote.ask <= 0:
        return GateRejection(
            GateReason.EMPTY_SIDE, f"quote has an empty side: bid {quote.bid}, ask {quote.ask}"
        )
    if quote.bid > quote.ask:
        return GateRejection(
            GateReason.CROSSED, f"quote is crossed: bid {quote.bid} > ask {quote.ask}"
        )
    if quote.bid == quote.ask:
        return GateRejection(GateReason.LOCKED, f"quote is locked at {quote.bid}")
    return None


def check_quality(
    quote: Quote, max_spread_percent: Decimal, min_bid_ask_size: Decimal
) -> GateRejection | None:
    """Seed 000's market-quality gates: spread % and the size at each touch (in shares)."""
    pct = spread_percent(quote)
    if pct > max_spread_percent:
        return GateRejection(
            GateReason.SPREAD_TOO_WIDE,
            f"spread {pct:.4f}% exceeds max_spread_percent {max_spread_percent}%",
        )
    smallest = min(quote.bid_size, quote.ask_size)
    if smallest < min_bid_ask_size:
        return GateRejection(
            GateReason.SIZE_TOO_SMALL,
            f"size at bid {quote.bid_size} / ask {quote.ask_size} below "
            f"min_bid_ask_size {min_bid_ask_size} shares",
        )
    return None


def check_quote(
    quote: Quote,
    now: datetime,
    *,
    quote_freshness_seconds: float,
    max_spread_percent: Decimal,
    min_bid_ask_size: Decimal,
) -> GateRejection | None:
    """All seed-000 gates in order: the hard gates first, then spread and size."""
    return check_priceable(quote, now, quote_freshness_seconds) or check_quality(
        quote, max_spread_percent, min_bid_ask_size
    )


def slippage_bps(side: Side, price: Decimal, reference: Decimal) -> Decimal:
    """The cost of a limit at `price` against `reference` (the mid), in bps, signed.

    Positive means paying up (a buy above the mid, a sell below it). Seed 003's
    `validate_aggressive_limit` uses the absolute distance; for the marketable
    limits it validates the two agree, and the signed form does not reject a
    limit that is *better* than the mid.
    """
    if reference <= 0:
        raise ValueError(f"slippage reference must be positive: {reference}")
    return side.sign * (price - reference) / reference * _BPS


def check_slippage(
    side: Side, price: Decimal, quote: Quote, max_slippage_bps: Decimal
) -> GateRejection | None:
    """Seed 003 `validate_aggressive_limit`: refuse a limit costing more than the budget."""
    cost = slippage_bps(side, price, quote.mid)
    if cost > max_slippage_bps:
        return GateRejection(
            GateReason.SLIPPAGE_BUDGET,
            f"limit {price} costs {cost:.2f} bps vs mid {quote.mid}, budget {max_slippage_bps} bps",
        )
    return None


def clamp_to_budget(side: Side, price: Decimal, quote: Quote, max_slippage_bps: Decimal) -> Decimal:
    """DESIGN.md "A refused limit is clamped, not escalated": the limit, pulled back to the
    most aggressive grid price whose cost vs the mid is within `max_slippage_bps`.

    A price already within the budget is returned unchanged (the budget is inclusive, as
    in `check_slippage`). The bound is rounded never more aggressive (a buy down, a sell
    up), so the clamped limit never costs more than the budget.
    """
    bound = round_for_side(side, quote.mid * (1 + side.sign * max_slippage_bps / _BPS))
    return min(price, bound) if side is Side.BUY else max(price, bound)
