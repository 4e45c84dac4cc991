"""Issue 10, price protection: clamped limits, the capped fallback, legacy at every urgency,
sub-dollar anchoring, stale-quote holds and gate waits, each at its stated edge."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

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


def _note(acts: Sequence[object], event: str) -> Note:
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
    assert fields["limit_price"] == "7.02"
    assert fields["clamped_to"] == "7.01"


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
    at_budget = leg(max_slippage_bps=cost)
    at = started(at_budget)
    assert at.limit_price == D("10.02")
    assert "budget_clamped" not in notes(at_budget.log)
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
    lg = leg(
        symbol="XYZ", min_bid_ask_size=D(1), max_spread_percent=D(50), market_open_delay_minutes=0
    )
    place = started(lg, "0.5000", "0.5010")
    assert place.limit_price == D("0.5001")


# ------------------------------------------------------------------ item 9: log honesty


def test_replace_confirmed_is_logged_as_step_3() -> None:
    """A confirmed re-peg (replace) is logged with step 3, not the first limit's 2."""
    from execd.domain.ladder_types import OrderReplaced
    from execd.domain.order_state import OrderEventKind as K
    from tests.domain.test_ladder import cid

    lg = leg(repeg_threshold_percent=D(100), repeg_method="replace")
    started(lg)
    lg.update(0, K.NEW)
    lg.quote("10.01", "10.02")
    lg.wake()
    acts = lg.send(OrderReplaced(cid(0), cid(1)))
    assert _note(acts, "leg_replace_confirmed").fields["step"] == 3


# ------------------------------------------------------------------ item 1: fresh quotes


def test_a_working_order_is_not_repegged_from_a_stale_quote_and_the_hold_is_bounded() -> None:
    """The re-peg timeout with only a stale quote: no replace, no fallback; the order keeps
    working; after `stale_quote_max_wait_seconds` the leg cancels it and ends
    `quote_stale`. A quote exactly `quote_freshness_seconds` old still counts as fresh."""
    from execd.domain.ladder_types import CancelOrder, ReplaceOrder
    from execd.domain.order_state import OrderEventKind as K

    lg = leg(
        repeg_threshold_percent=D(100), stale_quote_max_wait_seconds=30.0, urgency=Urgency.HIGH
    )
    started(lg)
    lg.update(0, K.NEW)
    lg.wake()  # re-peg timeout: the 3 s old quote is still fresh → same price, skipped
    assert not of(lg.log, ReplaceOrder)
    acts = lg.wake()  # 6 s: the quote is stale now
    assert not of(acts, ReplaceOrder)
    assert not of(acts, PlaceOrder)
    lg.wake()
    assert "leg_holding_stale_quote" in notes(lg.log)
    while not of(lg.log, CancelOrder):
        acts = lg.wake()
        assert not of(acts, ReplaceOrder)
        assert not of(acts, PlaceOrder)
    done = finish(lg.update(0, K.CANCELED))
    assert (done.outcome, done.reason) == (Outcome.ENDED, "quote_stale")


def test_quote_freshness_edge_is_inclusive() -> None:
    """Exactly `quote_freshness_seconds` (5 s) old prices; 1 ms older does not."""
    lg = leg()
    lg.quote("10.00", "10.01", age=5.0)
    assert of(lg.send(Start()), PlaceOrder)
    lg2 = leg()
    lg2.quote("10.00", "10.01", age=5.001)
    acts = lg2.send(Start())
    assert not of(acts, PlaceOrder)


def test_a_late_old_quote_does_not_end_the_hold() -> None:
    """A quote that arrives late but carries an old timestamp is not fresh: still held."""
    lg = leg()
    lg.quote("10.00", "10.01", age=30)
    lg.send(Start())
    acts = lg.quote("10.00", "10.01", age=6)
    assert not of(acts, PlaceOrder)
    assert of(lg.quote("10.00", "10.01", age=1), PlaceOrder)


# ------------------------------------------------------------------ item 7: gate waits


def test_normal_urgency_waits_for_the_size_gate_then_works_the_ladder() -> None:
    """50 shares displayed for a 100-share leg (size_too_small) at normal urgency: no order
    within a second — the leg re-checks each new quote for `gate_wait_seconds`, and works
    the ladder as soon as the gate passes."""
    lg = leg()
    lg.quote("10.00", "10.01", size=50)
    acts = lg.send(Start())
    assert not of(acts, PlaceOrder)
    for step in range(10):
        acts = lg.quote("10.00", "10.01", size=50, age=-(step + 1) * 0.5)
        assert not of(acts, PlaceOrder)
    lg.now += timedelta(seconds=6)
    (place,) = of(lg.quote("10.00", "10.01", size=500), PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert (place.order_type, place.step) == (OrderType.LIMIT, 2)


def test_gate_wait_is_bounded_then_the_capped_fallback() -> None:
    """After `gate_wait_seconds` with the gate still failing, normal urgency takes the
    fallback — the collared limit by default, never a market order."""
    lg = leg(fallback_order="collared", gate_wait_seconds=10.0)
    lg.quote("10.00", "10.01", size=50)
    lg.send(Start())
    while not of(lg.log, PlaceOrder):
        lg.now += timedelta(seconds=1)
        lg.quote("10.00", "10.01", size=50)
    (place,) = of(lg.log, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert (place.order_type, place.step) == (OrderType.LIMIT, 4)


def test_high_urgency_gate_failure_goes_to_the_capped_fallback_at_once() -> None:
    """High urgency does not wait: the fallback at once, collared by default."""
    lg = leg(fallback_order="collared", urgency=Urgency.HIGH)
    lg.quote("10.00", "10.01", size=50)
    (place,) = of(lg.send(Start()), PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert (place.order_type, place.step) == (OrderType.LIMIT, 4)


# ------------------------------------------------------------------ leg deadline


def test_leg_deadline_cancels_the_working_order_and_ends() -> None:
    """At the leg's deadline the working order is cancelled and the leg ends
    `deadline_reached`; no timer is ever set beyond it."""
    from dataclasses import replace as dc_replace

    from execd.domain.ladder_types import CancelOrder, WaitUntil
    from execd.domain.order_state import OrderEventKind as K

    lg = leg(repeg_threshold_percent=D(100))
    lg.state = dc_replace(
        lg.state, spec=dc_replace(lg.state.spec, deadline=lg.now + timedelta(seconds=4))
    )
    started(lg)
    lg.update(0, K.NEW)
    lg.quote("10.00", "10.01")
    lg.wake()  # 3 s re-peg (same price)
    waits = [a.deadline for a in lg.log if isinstance(a, WaitUntil)]
    assert max(waits) <= lg.state.spec.deadline  # type: ignore[operator]
    acts = lg.wake()
    assert "leg_deadline_reached" in notes(acts)
    assert of(acts, CancelOrder)
    done = finish(lg.update(0, K.CANCELED))
    assert (done.outcome, done.reason) == (Outcome.ENDED, "deadline_reached")


# ------------------------------------------------------------------ halts


def test_a_halted_symbol_holds_like_a_stale_quote_and_resumes() -> None:
    """A halt (statuses channel) before the first order: fresh quotes price nothing; the
    resumption prices from the fresh quote in hand."""
    from execd.domain.ladder_types import TradingStatus

    lg = leg()
    acts = lg.send(TradingStatus(halted=True, code="H", reason="T12"))
    assert "leg_symbol_halted" in notes(acts)
    lg.quote("10.00", "10.01")
    assert not of(lg.send(Start()), PlaceOrder)
    for _ in range(3):
        assert not of(lg.quote("10.00", "10.01", age=-0.5), PlaceOrder)
    lg.wake()
    assert not of(lg.log, PlaceOrder)
    assert "leg_holding_stale_quote" in notes(lg.log)
    acts = lg.send(TradingStatus(halted=False, code="T"))
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert place.step == 2


def test_a_halt_is_bounded_and_never_falls_back_to_market() -> None:
    """High urgency, plain market fallback chosen, symbol halted: still no order; after
    `stale_quote_max_wait_seconds` the leg ends `symbol_halted`."""
    from execd.domain.ladder_types import Finish, TradingStatus

    lg = leg(urgency=Urgency.HIGH, fallback_order="market", stale_quote_max_wait_seconds=20.0)
    lg.send(TradingStatus(halted=True, code="H"))
    lg.quote("10.00", "10.01", size=1)
    lg.send(Start())
    while not of(lg.log, Finish):
        lg.quote("10.00", "10.01", size=1)
        lg.wake()
    assert not of(lg.log, PlaceOrder)
    assert finish(lg.log).reason == "symbol_halted"


# ------------------------------------------------------------------ item 10: exact edges


def _working_passive(bid: str, ask: str) -> Any:
    """A passive AAPL buy working its first limit, priced from bid/ask."""
    from execd.domain.order_state import OrderEventKind as K

    lg = leg(symbol="AAPL", market_open_delay_minutes=0)
    started(lg, bid, ask)
    lg.update(0, K.NEW)
    return lg


def test_repeg_move_edge_is_strictly_more_than_the_threshold() -> None:
    """Seed 000 "re-peg if market moves >0.1%": a mid move of exactly 0.10 % (100.00 →
    100.10) does not re-peg; 0.11 % does."""
    lg = _working_passive("99.99", "100.01")
    assert "leg_market_moved" not in notes(lg.quote("100.09", "100.11"))
    assert "leg_market_moved" in notes(lg.quote("100.10", "100.12"))


def test_spread_gate_edge_is_inclusive() -> None:
    """max_spread_percent 0.25: a spread of exactly 0.25 % of the mid (39.95/40.05) is
    priced; one tick wider (39.95/40.06, 0.275 %) is refused as spread_too_wide."""
    ok = leg(gate_wait_seconds=0.0, urgency=Urgency.LOW)
    assert of(ok.quote("39.95", "40.05") + ok.send(Start()), PlaceOrder)
    wide = leg(gate_wait_seconds=0.0, urgency=Urgency.LOW)
    wide.quote("39.95", "40.06")
    acts = wide.send(Start())
    assert not of(acts, PlaceOrder)
    assert _note(acts, "leg_validation_failed").fields["reason"] == "spread_too_wide"


def test_size_gate_edge_is_inclusive() -> None:
    """min_bid_ask_size 100 (shares): exactly 100 at bid and ask is priced; 99 is not."""
    ok = leg(gate_wait_seconds=0.0, urgency=Urgency.LOW)
    assert of(ok.quote("10.00", "10.01", size=100) + ok.send(Start()), PlaceOrder)
    thin = leg(gate_wait_seconds=0.0, urgency=Urgency.LOW)
    thin.quote("10.00", "10.01", size=99)
    acts = thin.send(Start())
    assert not of(acts, PlaceOrder)
    assert _note(acts, "leg_validation_failed").fields["reason"] == "size_too_small"


def test_tca_ignores_a_non_positive_interval_vwap() -> None:
    """A zero interval VWAP (no trades) is no benchmark: None, never a division."""
    from execd.domain.order_state import Execution  # noqa: F401  (documents the input type)
    from execd.domain.quotes import Quote
    from execd.domain.tca import Fill, leg_report

    t = leg().now
    q = Quote("AAPL", D("10.00"), D("10.01"), D(100), D(100), t, t)
    fills = [Fill(qty=D(5), price=D("10.01"), time=t, quote=q, execution_id="e1")]
    assert leg_report("AAPL", Side.BUY, q, fills, interval_vwap=D(0)).vs_vwap_bps is None
    assert leg_report("AAPL", Side.BUY, q, fills, interval_vwap=D(-1)).vs_vwap_bps is None
    assert leg_report("AAPL", Side.BUY, q, fills, interval_vwap=D("10.005")).vs_vwap_bps is not None
