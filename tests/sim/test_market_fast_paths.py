"""The venue's fast paths (issue 14, 2,000 symbols) answer exactly what the plain code did.

Each shortcut is checked against the straightforward computation it replaced, on random
inputs: the same market for a seed is the venue's promise (never tune it to the ladder).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from execd.domain.calendar import EASTERN, session_on
from execd.domain.types import Side
from execd.sim import wire
from execd.sim.book import SymbolBook
from execd.sim.config import SymbolSpec
from execd.sim.market import BookSnapshot, Instrument, Level, session_at, synthetic_depth
from execd.sim.orders import OpenOrders, OrderRequest, SimOrder

T0 = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
CENT = Instrument.of(SymbolSpec("C", Decimal("100.00")))
SUB = Instrument.of(SymbolSpec("S", Decimal("0.50")))


@given(st.integers(min_value=0, max_value=10**9), st.booleans())
def test_number_from_ticks_is_the_wire_number_of_the_price(ticks: int, sub: bool) -> None:
    """Same type (int when whole) and the same float as `wire.number(price(ticks))`."""
    inst = SUB if sub else CENT
    fast, plain = inst.number(ticks), wire.number(inst.price(ticks))
    assert type(fast) is type(plain)
    assert fast == plain


def _plain_depth(
    rng: random.Random, best: int, direction: int, count: int, lot: int, gap_prob: float
) -> tuple[Level, ...]:
    """The depth as it was written before it was inlined."""
    levels: list[Level] = []
    price = best
    for k in range(count):
        if k > 0:
            price += direction * (rng.randint(2, 5) if rng.random() < gap_prob else 1)
        if price <= 0:
            break
        shares = lot * rng.uniform(0.3, 2.0) * (1 + 0.25 * k)
        levels.append(Level(price, max(1, round(shares / 100)) * 100))
    return tuple(levels)


@given(
    st.integers(min_value=0, max_value=2**32),
    st.integers(min_value=1, max_value=20_000),
    st.sampled_from((-1, 1)),
    st.integers(min_value=0, max_value=12),
    st.integers(min_value=1, max_value=50_000),
    st.floats(min_value=0, max_value=1),
)
def test_inlined_depth_draws_the_same_levels(
    seed: int, best: int, direction: int, count: int, lot: int, gap_prob: float
) -> None:
    """Same levels and the random stream left in the same state (the next draws agree)."""
    fast_rng, plain_rng = random.Random(seed), random.Random(seed)
    fast = synthetic_depth(fast_rng, best, direction, count, lot, gap_prob)
    assert fast == _plain_depth(plain_rng, best, direction, count, lot, gap_prob)
    assert all(type(level) is Level for level in fast)
    assert fast_rng.random() == plain_rng.random()


@settings(max_examples=60)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 7), st.integers(1, 3000)), max_size=6))
def test_top_of_book_is_the_first_displayed_level(takes: list[tuple[bool, int, int]]) -> None:
    """After any of our consumption, at any later time: `top` is `levels(...)[0]`."""
    book = SymbolBook(CENT, refill_half_life_s=2.0)
    bids = tuple(Level(9999 - k, 100 * (k + 1)) for k in range(8))
    asks = tuple(Level(10001 + k, 100 * (k + 1)) for k in range(8))
    book.on_snapshot(BookSnapshot("C", T0, bids, asks))
    for is_buy, limit_offset, qty in takes:
        limit = 10001 + limit_offset if is_buy else 9999 - limit_offset
        book.take(Side.BUY if is_buy else Side.SELL, Decimal(qty), limit, T0)
    for later in (0.0, 0.5, 3.0, 60.0):
        now = T0 + timedelta(seconds=later)
        bid, ask = book.top(now)
        bid_levels, ask_levels = book.levels(False, now), book.levels(True, now)
        assert bid == (bid_levels[0] if bid_levels else None)
        assert ask == (ask_levels[0] if ask_levels else None)


@given(st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31)))
def test_the_cached_session_is_the_session_of_the_eastern_day(naive: datetime) -> None:
    """Across days, midnights and DST changes, in any order of asking."""
    t = naive.replace(tzinfo=UTC)
    assert session_at(t) == session_on(t.astimezone(EASTERN).date())
    again = t + timedelta(hours=5)
    assert session_at(again) == session_on(again.astimezone(EASTERN).date())


def _order(n: int) -> SimOrder:
    req = OrderRequest(
        symbol="C", side=Side.BUY, type="market", time_in_force="day", qty=Decimal(1),
        notional=None, limit_price=None, stop_price=None, extended_hours=False,
        client_order_id=f"c{n}",
    )  # fmt: skip
    return SimOrder(f"o{n}", req, "asset", T0, updated_at=T0)


def test_open_orders_drop_terminal_ones_and_keep_their_order() -> None:
    """Made in order; a filled and a canceled one leave; the rest stay in order."""
    index = OpenOrders()
    orders = [_order(n) for n in range(5)]
    for order in orders:
        index.add(order)
    orders[1].transition("filled", T0)
    orders[3].transition("canceled", T0)
    assert index() == [orders[0], orders[2], orders[4]]
    orders[0].transition("replaced", T0)
    assert index() == [orders[2], orders[4]]
