"""Issue 10, price protection: clamped limits, the capped fallback, legacy at every urgency,
sub-dollar anchoring, stale-quote holds and gate waits, each at its stated edge."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from execd.domain.ladder_types import (
    LadderParams,
    Note,
    OrderType,
    Outcome,
    PlaceOrder,
    PricingStyle,
    Start,
)
from execd.domain.types import Side, Urgency
from tests.domain.test_ladder import finish, leg, notes, of, started

D = Decimal


def _note(acts: list[object], event: str) -> Note:
    found = [a for a in acts if isinstance(a, Note) and a.event == event]
    assert len(found) == 1, [getattr(a, "event", a) for a in acts]
    return found[0]


# ------------------------------------------------------------------ item 3: clamp


def test_labd_limit_beyond_budget_is_clamped_not_escalated() -> None:
    """LABD 7.00/7.01: ask + 1 tick = 7.02 costs 21.4 bps > 20 → clamped to 7.01 (still
    marketable), logged `budget_clamped`, a LIMIT order at step 2 — never a market order."""
    lg = leg(symbol="LABD", fallback_order="market")
    lg.quote("7.00", "7.01")
    acts = lg.send(Start())
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert (place.order_type, place.limit_price, place.step) == (OrderType.LIMIT, D("7.01"), 2)
    fields = _note(acts, "budget_clamped").fields
    assert fields["limit_price"] == "7.02" and fields["clamped_to"] == "7.01"


def test_sell_beyond_budget_is_clamped_up() -> None:
    """A sell at bid − 1 tick beyond the budget is clamped up to the budget's price."""
    lg = leg(symbol="LABD", side=Side.SELL, fallback_order="market")
    lg.quote("7.00", "7.01")
    acts = lg.send(Start())
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert (place.order_type, place.limit_price) == (OrderType.LIMIT, D("7.00"))
    assert "budget_clamped" in notes(acts)


def test_limit_exactly_at_budget_is_not_clamped() -> None:
    """Exactly at the budget is within it: 10.00/10.01 → 10.02 is 14.99 bps; with a budget
    of exactly that cost the limit stands, one bp less clamps it."""
    # mid 10.005, limit 10.02: cost = 0.015 / 10.005 × 10⁴ bps.
    cost = (D("10.02") - D("10.005")) / D("10.005") * 10_000
    at = started(leg(max_slippage_bps=cost))
    assert at.limit_price == D("10.02")
    lg = leg(max_slippage_bps=cost - D("0.0001"))
    lg.quote("10.00", "10.01")
    acts = lg.send(Start())
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert place.limit_price == D("10.01")
    assert "budget_clamped" in notes(acts)


# ------------------------------------------------------------------ item 4: capped fallback


def test_default_fallback_is_collared_not_market() -> None:
    """With the shipped defaults the step-4 fallback after the last re-peg is a LIMIT
    `fallback_collar_bps` (50) beyond the ask — never a market order."""
    lg = leg(fallback_order=LadderParams().fallback_order, repeg_threshold_percent=D(100))
    started(lg, "10.00", "10.01")
    from execd.domain.order_state import OrderEventKind as K

    lg.update(0, K.NEW)
    for _ in range(2):
        lg.quote("10.00", "10.01")
        lg.wake()
    lg.wake()
    lg.quote("10.00", "10.01")
    acts = lg.update(0, K.CANCELED)
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    # 10.01 × 1.005 = 10.06005 → rounded down to 10.06.
    assert (place.order_type, place.limit_price, place.step) == (OrderType.LIMIT, D("10.06"), 4)
    assert not [a for a in lg.log if isinstance(a, PlaceOrder) and a.order_type is OrderType.MARKET]


# ------------------------------------------------------------------ item 5: legacy


def test_legacy_low_urgency_trades_with_a_market_order_and_says_legacy() -> None:
    """Legacy mode (`enable_smart_execution = false`) is one plain market order for every
    leg at every urgency, and its log says `style: legacy`."""
    for urgency in Urgency:
        lg = leg(urgency=urgency, enable_smart_execution=False, fallback_order="collared")
        acts = lg.send(Start())
        (place,) = of(acts, PlaceOrder)
        assert isinstance(place, PlaceOrder)
        assert (place.order_type, place.qty, place.limit_price) == (OrderType.MARKET, D(100), None)
        assert _note(acts, "leg_style_chosen").fields["style"] == "legacy"
        assert lg.state.style is PricingStyle.LEGACY
        done = finish(lg.fill(0, "100", "e1", final=True))
        assert (done.outcome, done.style) == (Outcome.FILLED, PricingStyle.LEGACY)


# ------------------------------------------------------------------ item 8: sub-dollar anchoring


def test_sub_dollar_passive_anchor_steps_one_tick_inside() -> None:
    """0.5000/0.5100 (a penny wide, 100 sub-penny ticks): a passive buy anchors at bid +
    one tick (0.5001), a sell at ask − one tick (0.5099) — not 1¢, which would lock."""
    from execd.domain.prices import passive_anchor
    from execd.domain.quotes import Quote

    t = leg().now
    q = Quote("XYZ", D("0.5000"), D("0.5010"), D(1000), D(1000), t, t)
    assert passive_anchor(Side.BUY, q, D("0.01")) == D("0.5001")
    assert passive_anchor(Side.SELL, q, D("0.01")) == D("0.5009")
    # At and above $1 the offset is the configured cent.
    q1 = Quote("XYZ", D("1.00"), D("1.03"), D(1000), D(1000), t, t)
    assert passive_anchor(Side.BUY, q1, D("0.01")) == D("1.01")
    lg = leg(symbol="XYZ", min_bid_ask_size=D(1), max_spread_percent=D(50), market_open_delay_minutes=0)
    place = started(lg, "0.5000", "0.5010")
    assert place.limit_price == D("0.5001")


# ------------------------------------------------------------------ item 9: log honesty


def test_replace_confirmed_is_logged_as_step_3() -> None:
    """A confirmed re-peg (replace) is logged with step 3, not the first limit's 2."""
    from execd.domain.ladder_types import OrderReplaced
    from execd.domain.order_state import OrderEventKind as K
    from tests.domain.test_ladder import cid

    lg = leg(repeg_threshold_percent=D(100))
    started(lg)
    lg.update(0, K.NEW)
    lg.quote("10.01", "10.02")
    lg.wake()
    acts = lg.send(OrderReplaced(cid(0), cid(1)))
    assert _note(acts, "leg_replace_confirmed").fields["step"] == 3
