"""The collared fallback (`fallback_collar_bps`): step 4 as a marketable limit a few bps
beyond the far side, priced only from a usable quote, never an unpriced order."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from execd.domain.ladder_types import (
    Action,
    CancelOrder,
    Finish,
    LadderParams,
    LegPhase,
    NeedQuote,
    Note,
    OrderType,
    Outcome,
    PlaceOrder,
    QuotePurpose,
    Start,
    Timer,
)
from execd.domain.order_state import OrderEventKind as K
from execd.domain.types import Side, Urgency
from tests.domain.test_ladder import Leg, cid, finish, leg, notes, of, started

D = Decimal


def collared(**kw: Any) -> Leg:
    """A leg whose fallback is collared at 33 bps (so the rounding shows)."""
    kw.setdefault("fallback_collar_bps", D(33))
    kw.setdefault("fallback_order", "collared")
    return leg(**kw)


def exhaust(lg: Leg, bid: str, ask: str) -> list[Action]:
    """Work the first limit through its re-pegs unchanged, then confirm the cancel with
    a fresh quote in hand: the actions of the step-4 fallback."""
    started(lg, bid, ask)
    lg.update(0, K.NEW)
    for _ in range(2):
        lg.quote(bid, ask)
        lg.wake()
    assert of(lg.wake(), CancelOrder) == [CancelOrder(cid(0))]
    lg.quote(bid, ask)
    return lg.update(0, K.CANCELED)


def fallback_place(acts: list[Action]) -> PlaceOrder:
    """The one step-4 order among the actions."""
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert place.step == 4
    return place


def collar_note(acts: list[Action]) -> dict[str, object]:
    """The fields of the `leg_fallback_collared` note."""
    (note,) = [a for a in acts if isinstance(a, Note) and a.event == "leg_fallback_collared"]
    assert isinstance(note, Note)
    return dict(note.fields)


def test_buy_collar_is_ask_plus_bps_rounded_down() -> None:
    """Buy: 10.01 × 1.0033 = 10.043033 → 10.04, a limit for the confirmed remainder."""
    lg = collared()
    started(lg)
    lg.update(0, K.NEW)
    lg.fill(0, "40", "e1")
    for _ in range(2):
        lg.quote("10.00", "10.01")
        lg.wake()
    lg.wake()
    lg.quote("10.00", "10.01")
    acts = lg.update(0, K.CANCELED)
    place = fallback_place(acts)
    assert (place.order_type, place.limit_price, place.qty) == (OrderType.LIMIT, D("10.04"), D(60))
    fields = collar_note(acts)
    assert (fields["far_side"], fields["collar_bps"], fields["limit_price"]) == (
        "10.01",
        "33",
        "10.04",
    )
    assert fields["reason"] == "max_repegs_reached"
    assert "leg_fallback_market" not in notes(acts)
    assert (lg.state.in_fallback, lg.state.timer) == (True, Timer.FALLBACK)
    assert lg.state.deadline == lg.now + timedelta(seconds=30)


def test_sell_collar_is_bid_minus_bps_rounded_up() -> None:
    """Sell: 10.00 × 0.9967 = 9.967 → 9.97."""
    place = fallback_place(exhaust(collared(side=Side.SELL), "10.00", "10.01"))
    assert (place.order_type, place.limit_price) == (OrderType.LIMIT, D("9.97"))


def test_sub_dollar_collar_rounds_on_the_sub_penny_grid() -> None:
    """Below $1 the grid is $0.0001: 0.5012 × 1.0033 = 0.50285396 → 0.5028."""
    lg = collared(max_spread_percent=D(5), max_slippage_bps=D(500))
    place = fallback_place(exhaust(lg, "0.5000", "0.5012"))
    assert place.limit_price == D("0.5028")


@pytest.mark.parametrize(
    ("side", "cap", "expected"),
    [(Side.BUY, "10.03", "10.03"), (Side.SELL, "9.98", "9.98"), (Side.BUY, "10.50", "10.04")],
)
def test_plan_cap_applies_after_the_collar(side: Side, cap: str, expected: str) -> None:
    """The plan's limit still wins: a buy never above it, a sell never below it."""
    acts = exhaust(collared(side=side, cap=cap), "10.00", "10.01")
    place = fallback_place(acts)
    assert place.limit_price == D(expected)
    assert collar_note(acts)["capped"] is (expected != "10.04")


def test_legacy_mode_stays_a_plain_market_order() -> None:
    """enable_smart_execution = False ignores the collar: one market order, no quote."""
    lg = collared(enable_smart_execution=False)
    place = fallback_place(lg.send(Start()))
    assert (place.order_type, place.limit_price) == (OrderType.MARKET, None)


def test_without_collar_the_fallback_is_still_market() -> None:
    """The default (None) keeps the seed's market order."""
    place = fallback_place(exhaust(leg(), "10.00", "10.01"))
    assert place.order_type is OrderType.MARKET


def test_low_urgency_never_reaches_the_collared_fallback() -> None:
    """Low urgency ends at step 4 with or without a collar."""
    lg = collared(urgency=Urgency.LOW)
    done = finish(exhaust(lg, "10.00", "10.01"))
    assert (done.outcome, done.reason) == (Outcome.ENDED, "max_repegs_reached")
    assert not [a for a in lg.log if isinstance(a, PlaceOrder) and a.step == 4]


def test_unusable_quote_asks_for_a_fresh_one_then_prices_from_it() -> None:
    """High urgency on a crossed quote goes to step 4; the crossed quote cannot price the
    collar, so a newer quote is requested and the collar priced from it."""
    lg = collared(urgency=Urgency.HIGH)
    lg.quote("10.02", "10.01")
    acts = lg.send(Start())
    assert not of(acts, PlaceOrder)
    assert of(acts, NeedQuote) == [NeedQuote(lg.now)]
    assert (lg.state.phase, lg.state.awaiting) == (LegPhase.AWAIT_QUOTE, QuotePurpose.FALLBACK)
    assert "leg_fallback_awaiting_quote" in notes(acts)
    acts = lg.quote("10.00", "10.01", age=-0.5)
    place = fallback_place(acts)
    assert (place.order_type, place.limit_price, place.client_order_id) == (
        OrderType.LIMIT,
        D("10.04"),
        cid(0),
    )
    assert collar_note(acts)["reason"] == "quote_crossed"


def test_stale_quote_asks_for_a_fresh_one() -> None:
    """A stale quote in hand: NeedQuote newer than the freshness window; none in time is a
    hold (not the fallback, even at high urgency); a fresh one prices the first limit."""
    lg = collared(urgency=Urgency.HIGH)
    lg.quote("10.00", "10.01", age=30)
    acts = lg.send(Start())
    assert of(acts, NeedQuote) == [NeedQuote(lg.now - timedelta(seconds=5))]
    acts = lg.wake()
    assert "leg_holding_stale_quote" in notes(acts)
    assert lg.state.awaiting is QuotePurpose.ASSESS
    assert not of(lg.log, PlaceOrder)
    (place,) = of(lg.quote("10.10", "10.11"), PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert (place.step, place.limit_price) == (2, D("10.12"))


def test_no_quote_in_time_ends_the_leg_without_an_order() -> None:
    """No usable quote for the collar within `stale_quote_max_wait_seconds`: ENDED
    `quote_stale`, never an unpriced order. An unusable quote meanwhile does not extend
    the wait."""
    lg = collared(urgency=Urgency.HIGH, stale_quote_max_wait_seconds=5.0)
    lg.quote("10.02", "10.01")
    lg.send(Start())
    deadline = lg.state.deadline
    assert deadline == lg.now + timedelta(seconds=5)
    acts = lg.quote("10.03", "10.01", age=-1)  # newer, still crossed
    assert "leg_fallback_quote_unusable" in notes(acts)
    assert lg.state.deadline == deadline
    assert lg.state.awaiting is QuotePurpose.FALLBACK
    done = finish(lg.wake())
    assert (done.outcome, done.reason) == (Outcome.ENDED, "quote_stale")
    assert not of(lg.log, PlaceOrder)
    assert "leg_stale_quote_timeout" in notes(lg.log)


def test_collared_fallback_is_repriced_a_bounded_number_of_times() -> None:
    """Unfilled by the FALLBACK deadline: cancel, confirm, re-price the collar from the
    fresh quote for the remainder; after `fallback_reprices` re-prices, end
    `fallback_unfilled` (DESIGN.md "The fallback is capped by default")."""
    lg = collared(fallback_reprices=1)
    first = fallback_place(exhaust(lg, "10.00", "10.01"))
    lg.update(1, K.NEW)
    lg.fill(1, "10", "f1")
    acts = lg.wake()
    assert of(acts, CancelOrder) == [CancelOrder(first.client_order_id)]
    assert "leg_fallback_repricing" in notes(acts)
    lg.quote("10.10", "10.11")
    second = fallback_place(lg.update(1, K.CANCELED))
    assert (second.qty, second.order_type) == (D(90), OrderType.LIMIT)
    assert second.limit_price is not None
    assert first.limit_price is not None
    assert second.limit_price > first.limit_price
    lg.update(2, K.NEW)
    acts = lg.wake()
    assert of(acts, CancelOrder) == [CancelOrder(second.client_order_id)]
    assert "leg_fallback_unfilled" in notes(acts)
    done = finish(lg.update(2, K.CANCELED))
    assert (done.outcome, done.reason) == (Outcome.ENDED, "fallback_unfilled")
    assert not any(isinstance(a, PlaceOrder) and a.order_type is OrderType.MARKET for a in lg.log)


def test_collared_fallback_timeout_cancels_and_ends() -> None:
    """Unfilled by the FALLBACK deadline: cancel it, and end once the cancel is confirmed."""
    lg = collared(fallback_reprices=0)
    place = fallback_place(exhaust(lg, "10.00", "10.01"))
    lg.update(1, K.NEW)
    lg.fill(1, "10", "f1")
    acts = lg.wake()
    assert of(acts, CancelOrder) == [CancelOrder(place.client_order_id)]
    assert "leg_fallback_unfilled" in notes(acts)
    done = finish(lg.update(1, K.CANCELED))
    assert (done.outcome, done.reason, done.filled_qty) == (
        Outcome.ENDED,
        "fallback_unfilled",
        D(10),
    )


def test_collared_fallback_fill_finishes_filled() -> None:
    """The collared order fills: the leg is FILLED."""
    lg = collared()
    fallback_place(exhaust(lg, "10.00", "10.01"))
    lg.update(1, K.NEW)
    done = finish(lg.fill(1, "100", "f1", final=True))
    assert done.outcome is Outcome.FILLED
    assert len(of(lg.log, Finish)) == 1


def test_collar_must_be_positive() -> None:
    """A zero or negative collar is a configuration error."""
    with pytest.raises(ValueError, match="fallback_collar_bps"):
        LadderParams(fallback_collar_bps=D(0))
