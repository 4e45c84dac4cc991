"""Tick grid, rounding direction and the ladder's limit prices (ALPACA.md §1.2, seeds 000/003)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.domain.prices import (
    MIN_PRICE,
    apply_cap,
    is_on_grid,
    marketable_limit,
    passive_anchor,
    round_for_side,
    step_ticks,
    tick_down,
    tick_size,
    tick_up,
)
from execd.domain.quotes import Quote
from execd.domain.types import Side

T0 = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
D = Decimal


def quote(bid: str | Decimal, ask: str | Decimal) -> Quote:
    """A fresh quote with ample size."""
    return Quote("X", D(bid), D(ask), D(500), D(500), T0, T0)


def grid_prices() -> st.SearchStrategy[Decimal]:
    """On-grid prices on both sides of $1."""
    subs = st.integers(1, 9_999).map(lambda n: D(n) * D("0.0001"))
    pennies = st.integers(100, 200_000).map(lambda n: D(n) * D("0.01"))
    return st.one_of(subs, pennies)


any_prices = st.decimals(
    min_value=D("0.00001"), max_value=D("5000"), places=6, allow_nan=False, allow_infinity=False
)


@st.composite
def grid_quotes(draw: st.DrawFn) -> Quote:
    """Uncrossed, unlocked on-grid quotes."""
    bid = draw(grid_prices())
    widen = draw(st.integers(1, 30))
    ask = bid
    for _ in range(widen):
        ask = tick_up(ask)
    return quote(bid, ask)


def test_tick_sizes() -> None:
    """≥ $1 trades in pennies, below in hundredths of a cent (ALPACA.md §1.2)."""
    assert tick_size(D("1.00")) == D("0.01")
    assert tick_size(D("250.5")) == D("0.01")
    assert tick_size(D("0.9999")) == D("0.0001")


def test_ticks_across_one_dollar() -> None:
    """One tick below $1.00 is $0.9999; one tick above $0.9999 is $1.00."""
    assert tick_down(D("1.00")) == D("0.9999")
    assert tick_up(D("0.9999")) == D("1.0000")
    assert tick_down(D("1.01")) == D("1.00")
    assert tick_down(MIN_PRICE) == MIN_PRICE


def test_rounding_is_never_more_aggressive() -> None:
    """A buy rounds down and a sell rounds up, onto the grid."""
    assert round_for_side(Side.BUY, D("10.019")) == D("10.01")
    assert round_for_side(Side.SELL, D("10.011")) == D("10.02")
    assert round_for_side(Side.BUY, D("0.12345")) == D("0.1234")
    assert round_for_side(Side.SELL, D("0.12341")) == D("0.1235")
    assert round_for_side(Side.SELL, D("0.99995")) == D("1.0000")


@given(any_prices, st.sampled_from(list(Side)))
def test_rounding_property(price: Decimal, side: Side) -> None:
    """Rounded prices are on the grid, positive, and on the safe side of the input."""
    rounded = round_for_side(side, price)
    assert is_on_grid(rounded)
    if price >= MIN_PRICE:
        assert rounded <= price if side is Side.BUY else rounded >= price


def test_marketable_limit_examples() -> None:
    """Seed 003: buy ask + 1 tick, sell bid − 1 tick; floored at one tick."""
    q = quote("10.00", "10.02")
    assert marketable_limit(Side.BUY, q, 1) == D("10.03")
    assert marketable_limit(Side.SELL, q, 1) == D("9.99")
    assert marketable_limit(Side.SELL, quote("1.00", "1.01"), 1) == D("0.9999")
    assert marketable_limit(Side.SELL, quote("0.0001", "0.0003"), 1) == MIN_PRICE


@given(grid_quotes(), st.integers(0, 5))
def test_marketable_buy_bounds(q: Quote, n: int) -> None:
    """A buy limit is never below the ask and never more than n ticks above it."""
    price = marketable_limit(Side.BUY, q, n)
    assert is_on_grid(price)
    assert q.ask <= price <= step_ticks(q.ask, n, Side.BUY)


@given(grid_quotes(), st.integers(0, 5))
def test_marketable_sell_bounds(q: Quote, n: int) -> None:
    """A sell limit is never above the bid, never more than n ticks below it, never ≤ 0."""
    price = marketable_limit(Side.SELL, q, n)
    assert is_on_grid(price)
    assert price > 0
    assert step_ticks(q.bid, n, Side.SELL) <= price <= q.bid


@given(any_prices, any_prices, st.sampled_from(list(Side)))
def test_marketable_off_grid_quote_still_reaches(a: Decimal, b: Decimal, side: Side) -> None:
    """Even an off-grid touch gives an on-grid limit at or through the touch."""
    bid, ask = min(a, b), max(a, b)
    q = quote(bid, ask)
    price = marketable_limit(side, q, 1)
    assert is_on_grid(price)
    if side is Side.BUY:
        assert price >= ask
    elif bid >= MIN_PRICE:
        assert price <= bid


def test_marketable_refuses_empty_touch() -> None:
    """A zero bid can never price a sell (LESSONS.md: a zero bid priced orders)."""
    with pytest.raises(ValueError, match="non-positive"):
        marketable_limit(Side.SELL, quote("0", "1.00"), 1)


def test_passive_anchor_examples() -> None:
    """Seed 000: buy bid + 1¢, sell ask − 1¢; a one-tick spread falls back to the touch."""
    q = quote("10.00", "10.05")
    assert passive_anchor(Side.BUY, q, D("0.01")) == D("10.01")
    assert passive_anchor(Side.SELL, q, D("0.01")) == D("10.04")
    one_tick = quote("10.00", "10.01")
    assert passive_anchor(Side.BUY, one_tick, D("0.01")) == D("10.00")
    assert passive_anchor(Side.SELL, one_tick, D("0.01")) == D("10.01")


@given(grid_quotes(), st.sampled_from([D("0.01"), D("0.02"), D("0.0001"), D("0.05")]))
def test_passive_anchor_never_locks_or_crosses(q: Quote, offset: Decimal) -> None:
    """A passive price stays strictly inside the far touch and at or beyond the near one."""
    buy = passive_anchor(Side.BUY, q, offset)
    sell = passive_anchor(Side.SELL, q, offset)
    assert is_on_grid(buy)
    assert is_on_grid(sell)
    assert q.bid <= buy < q.ask
    assert q.bid < sell <= q.ask


def test_cap() -> None:
    """A plan limit caps a buy from above and a sell from below, rounded safely."""
    assert apply_cap(Side.BUY, D("10.03"), D("10.015")) == D("10.01")
    assert apply_cap(Side.SELL, D("9.99"), D("10.005")) == D("10.01")
    assert apply_cap(Side.BUY, D("10.03"), None) == D("10.03")
    assert apply_cap(Side.BUY, D("10.00"), D("11")) == D("10.00")


@given(grid_quotes(), any_prices, st.sampled_from(list(Side)))
def test_cap_property(q: Quote, cap: Decimal, side: Side) -> None:
    """Every capped price respects the cap and stays on the grid."""
    price = apply_cap(side, marketable_limit(side, q, 1), cap)
    assert is_on_grid(price)
    if cap >= MIN_PRICE:
        assert price <= cap if side is Side.BUY else price >= cap
