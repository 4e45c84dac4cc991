"""Spread classes, pre-market assessment and the quote gates (seeds 000 and 003)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from execd.domain.quotes import Quote
from execd.domain.spread import (
    GateReason,
    SpreadClass,
    SpreadRules,
    assess_premarket,
    check_priceable,
    check_quote,
    check_slippage,
    classify_spread,
    slippage_bps,
    spread_bps,
    spread_cents,
    spread_percent,
)
from execd.domain.types import Side

T0 = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
D = Decimal
RULES = SpreadRules()


def quote(
    bid: str, ask: str, *, size: int = 500, age: float = 0.0, ask_size: int | None = None
) -> Quote:
    """A quote last known current `age` seconds before T0."""
    as_of = T0 - timedelta(seconds=age)
    return Quote("X", D(bid), D(ask), D(size), D(ask_size or size), as_of, as_of)


def check(q: Quote) -> GateReason | None:
    """Seed-000 defaults: 5 s, 0.25 %, 100 shares."""
    r = check_quote(
        q, T0, quote_freshness_seconds=5, max_spread_percent=D("0.25"), min_bid_ask_size=D(100)
    )
    return None if r is None else r.reason


def test_measures() -> None:
    """Cents, bps and percent of a 2¢ spread at $10."""
    q = quote("9.99", "10.01")
    assert spread_cents(q) == D(2)
    assert spread_bps(q) == D(20)
    assert spread_percent(q) == D("0.2")


def test_classes_at_the_bounds() -> None:
    """3¢ is tight, 5¢ normal, 5.01¢ wide (seed 003 `_classify_spread`)."""
    assert classify_spread(D(3), RULES) is SpreadClass.TIGHT
    assert classify_spread(D("3.01"), RULES) is SpreadClass.NORMAL
    assert classify_spread(D(5), RULES) is SpreadClass.NORMAL
    assert classify_spread(D("5.01"), RULES) is SpreadClass.WIDE


def test_premarket_budgets_and_waits() -> None:
    """Seed 003 step 0: tight 5 bps / 0 min, normal 10 / 1, wide 15 / 2."""
    tight = assess_premarket(quote("10.00", "10.02"), RULES)
    normal = assess_premarket(quote("10.00", "10.04"), RULES)
    wide = assess_premarket(quote("10.00", "10.10"), RULES)
    assert tight is not None
    assert normal is not None
    assert wide is not None
    assert (tight.max_slippage_bps, tight.recommended_wait) == (D(5), timedelta(0))
    assert (normal.max_slippage_bps, normal.recommended_wait) == (D(10), timedelta(minutes=1))
    assert (wide.max_slippage_bps, wide.recommended_wait) == (D(15), timedelta(minutes=2))
    assert wide.spread_class is SpreadClass.WIDE


def test_premarket_refuses_empty_or_crossed() -> None:
    """No assessment from a zero side or a crossed book."""
    assert assess_premarket(quote("0", "10.00"), RULES) is None
    assert assess_premarket(quote("10.05", "10.00"), RULES) is None


def test_gates_each_reason() -> None:
    """Each seed-000 gate rejects with its own machine-readable reason."""
    assert check(quote("9.99", "10.01")) is None
    assert check(quote("9.99", "10.01", age=5.001)) is GateReason.STALE
    assert check(quote("9.99", "10.01", age=5.0)) is None
    assert check(quote("0", "10.01")) is GateReason.EMPTY_SIDE
    assert check(quote("10.02", "10.01")) is GateReason.CROSSED
    assert check(quote("10.01", "10.01")) is GateReason.LOCKED
    assert check(quote("9.98", "10.02")) is GateReason.SPREAD_TOO_WIDE
    assert check(quote("9.99", "10.01", size=99)) is GateReason.SIZE_TOO_SMALL
    assert check(quote("9.99", "10.01", size=500, ask_size=50)) is GateReason.SIZE_TOO_SMALL


def test_rejection_has_words() -> None:
    """A rejection explains itself for the decision log."""
    r = check_priceable(quote("9.99", "10.01", age=9), T0, 5)
    assert r is not None
    assert "9.000s old" in r.message


def test_slippage_validation() -> None:
    """Seed 003: a limit more than `max_slippage_bps` from the mid is refused."""
    q = quote("99.99", "100.01")
    assert slippage_bps(Side.BUY, D("100.02"), q.mid) == D(2)
    assert check_slippage(Side.BUY, D("100.02"), q, D(20)) is None
    rejected = check_slippage(Side.BUY, D("100.30"), q, D(20))
    assert rejected is not None
    assert rejected.reason is GateReason.SLIPPAGE_BUDGET
    assert check_slippage(Side.SELL, D("99.70"), q, D(20)) is not None
    # A price better than the mid is no cost (the seed's abs() would refuse it).
    assert check_slippage(Side.BUY, D("99.00"), q, D(20)) is None


@given(
    st.integers(1, 100_000).map(lambda n: D(n) / 100),
    st.integers(0, 200).map(lambda n: D(n) / 100),
)
def test_priceable_never_passes_a_broken_quote(bid: Decimal, spread: Decimal) -> None:
    """The hard gates pass exactly the positive, uncrossed, unlocked quotes."""
    q = Quote("X", bid, bid + spread, D(1), D(1), T0, T0)
    assert (check_priceable(q, T0, 5) is None) == (spread > 0)
