"""The ladder's steps, styles, urgencies and venue races, scenario by scenario (DESIGN.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from execd.domain.calendar import TradingSession, session_on
from execd.domain.ids import client_order_id
from execd.domain.ladder import choose_style, decide
from execd.domain.ladder_types import (
    Action,
    CancelFailed,
    CancelOrder,
    Finish,
    LadderEvent,
    LadderParams,
    LegPhase,
    LegSpec,
    LegState,
    NeedQuote,
    Note,
    OrderFill,
    OrderReplaced,
    OrderType,
    OrderUpdate,
    Outcome,
    PlaceFailed,
    PlaceOrder,
    PricingStyle,
    QuoteUpdate,
    ReplaceFailed,
    ReplaceOrder,
    Start,
    Stop,
    WaitUntil,
    Wake,
)
from execd.domain.order_state import OrderEventKind as K
from execd.domain.quotes import Quote
from execd.domain.types import Side, Urgency

D = Decimal


def _session(day: date) -> TradingSession:
    """The NYSE session of a trading day."""
    found = session_on(day)
    assert found is not None
    return found


SESSION = _session(date(2024, 3, 5))
OPEN = SESSION.open
MIDDAY = OPEN + timedelta(hours=1)
# Re-peg on the timeout only, so a test can move the quote before waking the leg.
TIMEOUT_ONLY: dict[str, Any] = {"repeg_threshold_percent": D(100)}


def cid(attempt: int) -> str:
    """The client order id of attempt n of the test leg."""
    return client_order_id("plan-1", 0, attempt)


@dataclass
class Leg:
    """A leg driven through decide with a fake venue clock."""

    state: LegState
    now: datetime
    params: LadderParams = field(default_factory=LadderParams)
    log: list[Action] = field(default_factory=list)

    def send(self, event: LadderEvent, after: float = 0.0) -> list[Action]:
        """Advance the clock by `after` seconds, then feed one event."""
        self.now += timedelta(seconds=after)
        self.state, acts = decide(self.state, event, self.now, self.params)
        self.log.extend(acts)
        return acts

    def quote(self, bid: str, ask: str, *, size: int = 1000, age: float = 0.0) -> list[Action]:
        """Deliver a quote last known current `age` seconds ago."""
        as_of = self.now - timedelta(seconds=age)
        q = Quote(self.state.spec.symbol, D(bid), D(ask), D(size), D(size), as_of, as_of)
        return self.send(QuoteUpdate(q))

    def wake(self) -> list[Action]:
        """Jump to the current deadline and wake the leg."""
        assert self.state.deadline is not None
        self.now = max(self.now, self.state.deadline)
        return self.send(Wake())

    def fill(self, n: int, qty: str, exec_id: str, *, final: bool = False) -> list[Action]:
        """A fill of `qty` on attempt n."""
        return self.send(OrderFill(cid(n), exec_id, D(qty), D("10"), self.now, final))

    def update(self, n: int, kind: K, reason: str = "") -> list[Action]:
        """A non-fill venue event on attempt n."""
        return self.send(OrderUpdate(cid(n), kind, reason))


def leg(
    *,
    symbol: str = "TQQQ",
    side: Side = Side.BUY,
    qty: str = "100",
    urgency: Urgency = Urgency.NORMAL,
    cap: str | None = None,
    at: datetime = MIDDAY,
    session: TradingSession | None = SESSION,
    **params: Any,
) -> Leg:
    """A fresh leg of the test plan.

    These scenarios follow the seeds' ladder, whose step 4 is a plain market order: they
    choose `fallback_order = "market"` unless a test says otherwise. The default (capped)
    fallback is covered by test_ladder_collar.py and test_ladder_protection.py. They re-peg by
    PATCH (`repeg_method = "replace"`, the seeds' wording and the path with venue races to
    pin); the default cancel-and-place re-peg has its own tests.
    """
    params.setdefault("fallback_order", "market")
    params.setdefault("repeg_method", "replace")
    spec = LegSpec(
        "plan-1", 0, symbol, side, D(qty), urgency, None if cap is None else D(cap), session
    )
    return Leg(LegState.new(spec), at, LadderParams(**params))


def of(acts: Sequence[Action], kind: type) -> list[object]:
    """The actions of one type."""
    return [a for a in acts if isinstance(a, kind)]


def notes(acts: Sequence[Action]) -> list[str]:
    """The decision-log event names."""
    return [a.event for a in acts if isinstance(a, Note)]


def finish(acts: Sequence[Action]) -> Finish:
    """The Finish action, which must be there."""
    found = [a for a in acts if isinstance(a, Finish)]
    assert len(found) == 1, acts
    return found[0]


def started(lg: Leg, bid: str = "10.00", ask: str = "10.01") -> PlaceOrder:
    """Give the leg a fresh quote, start it, and return its first order."""
    lg.quote(bid, ask)
    acts = lg.send(Start())
    places = of(acts, PlaceOrder)
    assert len(places) == 1, acts
    place = places[0]
    assert isinstance(place, PlaceOrder)
    return place


def test_choose_style() -> None:
    """Leveraged ETFs are marketable; others follow apply_to; the reason is given."""
    p = LadderParams()
    assert choose_style("SOXL", p) == (PricingStyle.MARKETABLE, "leveraged_etf_symbol")
    assert choose_style("AAPL", p)[0] is PricingStyle.PASSIVE
    assert choose_style("AAPL", LadderParams(apply_to="all"))[0] is PricingStyle.MARKETABLE
    assert choose_style("TQQQ", LadderParams(better_orders_enabled=False))[0] is (
        PricingStyle.PASSIVE
    )


def test_marketable_first_limit_and_fill() -> None:
    """Step 2: buy at ask + 1 tick with a 3 s timeout; a full fill finishes FILLED."""
    lg = leg()
    place = started(lg)
    assert (place.order_type, place.limit_price, place.qty, place.step) == (
        OrderType.LIMIT,
        D("10.02"),
        D(100),
        2,
    )
    assert place.client_order_id == cid(0)
    assert lg.state.deadline == lg.now + timedelta(seconds=3)
    lg.update(0, K.NEW)
    done = finish(lg.fill(0, "100", "e1", final=True))
    assert done.outcome is Outcome.FILLED
    assert done.filled_qty == D(100)
    assert done.arrival_quote is not None
    assert done.style is PricingStyle.MARKETABLE


def test_sell_marketable_is_bid_minus_tick() -> None:
    """A sell prices at bid − 1 tick."""
    place = started(leg(side=Side.SELL))
    assert place.limit_price == D("9.99")


def test_open_window_timeout_and_override() -> None:
    """2 s in WAIT_FOR_SPREADS, 3 s later; aggressive_timeout_seconds overrides both."""
    lg = leg(at=OPEN + timedelta(seconds=30))
    started(lg)
    assert lg.state.deadline == lg.now + timedelta(seconds=2)
    lg2 = leg(aggressive_timeout_seconds=2.5)
    started(lg2)
    assert lg2.state.deadline == lg2.now + timedelta(seconds=2.5)


def test_repeg_replaces_the_remainder_after_partial_fill() -> None:
    """Step 3: the timeout re-pegs by PATCH, sized from the unfilled remainder."""
    lg = leg(**TIMEOUT_ONLY)
    started(lg)
    lg.update(0, K.NEW)
    lg.fill(0, "30", "e1")
    lg.quote("10.05", "10.06", age=0)
    acts = lg.wake()
    (rep,) = of(acts, ReplaceOrder)
    assert isinstance(rep, ReplaceOrder)
    assert (rep.client_order_id, rep.new_client_order_id) == (cid(0), cid(1))
    assert (rep.qty, rep.limit_price) == (D(70), D("10.07"))
    assert "leg_repegged" in notes(acts)
    assert lg.state.phase is LegPhase.REPLACING


def test_replaced_after_new_order_new_is_a_race_not_a_stall() -> None:
    """The new order's `new` before the old order's `replaced` confirms the replace."""
    lg = leg(**TIMEOUT_ONLY)
    started(lg)
    lg.update(0, K.NEW)
    lg.quote("10.05", "10.06")
    lg.wake()
    acts = lg.update(1, K.NEW)
    assert "leg_replace_confirmed" in notes(acts)
    assert lg.state.working_id == cid(1)
    assert lg.state.phase is LegPhase.WORKING
    lg.send(OrderReplaced(cid(0), cid(1)))
    assert lg.state.live_orders == (lg.state.order(cid(1)),)


def test_repeg_must_move_the_price() -> None:
    """An unchanged NBBO gives the same price: no replace, the round is still spent."""
    lg = leg()
    started(lg)
    lg.update(0, K.NEW)
    lg.quote("10.00", "10.01")
    acts = lg.wake()
    assert not of(acts, ReplaceOrder)
    assert not of(acts, CancelOrder)
    assert "leg_repeg_skipped" in notes(acts)
    assert lg.state.repeg_rounds == 1
    assert lg.state.repegs == 0


def test_exhausted_repegs_fall_back_to_market_for_confirmed_remainder() -> None:
    """Normal urgency: after max_repegs, cancel, count fills landing during the cancel,
    then a market order for what is really left."""
    lg = leg()
    started(lg)
    lg.update(0, K.NEW)
    for _ in range(2):  # two rounds with an unchanged quote
        lg.quote("10.00", "10.01")
        lg.wake()
    acts = lg.wake()
    assert of(acts, CancelOrder) == [CancelOrder(cid(0))]
    assert not of(acts, PlaceOrder)
    lg.fill(0, "40", "e1")  # lands between the cancel request and its confirmation
    acts = lg.update(0, K.CANCELED)
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert (place.order_type, place.qty, place.limit_price, place.step) == (
        OrderType.MARKET,
        D(60),
        None,
        4,
    )
    assert "leg_fallback_market" in notes(acts)


def test_low_urgency_never_sends_a_market_order() -> None:
    """Low: exhausted re-pegs end cleanly with the reason."""
    lg = leg(urgency=Urgency.LOW)
    started(lg)
    lg.update(0, K.NEW)
    for _ in range(3):
        lg.quote("10.00", "10.01")
        lg.wake()
    acts = lg.update(0, K.CANCELED)
    done = finish(acts)
    assert done.outcome is Outcome.ENDED
    assert done.reason == "max_repegs_reached"
    assert not [a for a in lg.log if isinstance(a, PlaceOrder) and a.order_type == "market"]


def test_capped_fallback_is_a_limit_at_the_cap() -> None:
    """With a plan limit the fallback is a limit at the cap, never a market order."""
    lg = leg(cap="10.015", urgency=Urgency.HIGH)
    lg.quote("10.02", "10.01")  # crossed: high urgency goes straight to the fallback
    acts = lg.send(Start())
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert (place.order_type, place.limit_price) == (OrderType.LIMIT, D("10.01"))


def test_cap_limits_the_marketable_price() -> None:
    """ask + 1 tick above the cap is priced at the cap."""
    place = started(leg(cap="10.01"), "10.00", "10.01")
    assert place.limit_price == D("10.01")


def test_high_urgency_failed_validation_goes_straight_to_market() -> None:
    """High: a crossed quote skips the re-check and sends the fallback at once."""
    lg = leg(urgency=Urgency.HIGH)
    lg.quote("10.02", "10.01")
    acts = lg.send(Start())
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert place.order_type is OrderType.MARKET
    assert "leg_validation_failed" in notes(acts)
    assert "leg_quote_recheck" not in notes(acts)


def test_stale_quote_is_never_priced() -> None:
    """A stale quote in hand makes the leg ask for a fresh one; none in time is a hold, not
    a failed validation — even at high urgency nothing is sent (DESIGN.md "Fresh quote") —
    and after `stale_quote_max_wait_seconds` the leg ends `quote_stale`."""
    lg = leg(urgency=Urgency.HIGH, stale_quote_max_wait_seconds=20.0)
    lg.quote("10.00", "10.01", age=30)
    acts = lg.send(Start())
    assert not of(acts, PlaceOrder)
    assert of(acts, NeedQuote) == [NeedQuote(lg.now - timedelta(seconds=5))]
    acts = lg.wake()
    assert not of(acts, PlaceOrder)
    fields = next(a.fields for a in acts if isinstance(a, Note) and a.event.endswith("quote"))
    assert fields["reason"] == "quote_stale"
    while not of(lg.log, Finish):
        assert not of(lg.wake(), PlaceOrder)
    done = finish(lg.log)
    assert (done.outcome, done.reason) == (Outcome.ENDED, "quote_stale")


def test_normal_urgency_rechecks_before_falling_back() -> None:
    """Normal: a failed validation asks for a newer quote once, and prices from it."""
    lg = leg()
    lg.quote("10.02", "10.01")
    acts = lg.send(Start())
    assert not of(acts, PlaceOrder)
    assert of(acts, NeedQuote) == [NeedQuote(lg.now)]
    acts = lg.quote("10.00", "10.01", age=0)
    assert not of(acts, PlaceOrder)  # as_of == newer_than is not newer
    acts = lg.quote("10.00", "10.01", age=-0.1)
    assert len(of(acts, PlaceOrder)) == 1


def test_normal_urgency_second_failure_is_market() -> None:
    """Normal: a second failed validation sends the market fallback."""
    lg = leg(gate_wait_seconds=0.0)
    lg.quote("10.02", "10.01")
    lg.send(Start())
    acts = lg.quote("10.02", "10.01", age=-0.1)
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert place.order_type is OrderType.MARKET


def test_crossed_quote_never_priced_low_urgency_ends() -> None:
    """A crossed quote is refused with a reason; low urgency ends after the re-check."""
    lg = leg(gate_wait_seconds=0.0, urgency=Urgency.LOW)
    lg.quote("10.02", "10.01")
    acts = lg.send(Start())
    assert not of(acts, PlaceOrder)
    acts = lg.quote("10.02", "10.01", age=-1)
    assert finish(acts).reason == "quote_crossed"
    assert not of(lg.log, PlaceOrder)


def test_seed000_gates_spread_and_size() -> None:
    """Spread above 0.25 % or size under 100 shares fails validation (then re-check)."""
    lg = leg(gate_wait_seconds=0.0, urgency=Urgency.LOW)
    lg.quote("10.00", "10.05")  # 0.5 %
    acts = lg.send(Start())
    assert not of(acts, PlaceOrder)
    lg.quote("10.00", "10.01", size=50, age=-1)
    assert finish(lg.log).reason == "size_too_small"


def test_slippage_budget_from_premarket() -> None:
    """A tight pre-open spread sets a 5 bps budget; ask + 1 tick at $10 costs 15 bps."""
    lg = leg(at=OPEN - timedelta(minutes=30), urgency=Urgency.LOW)
    lg.send(Start())
    acts = lg.quote("10.00", "10.01")
    assert "leg_premarket_assessed" in notes(acts)
    assert lg.state.budget_bps == D(5)
    lg.wake()
    acts = lg.quote("10.00", "10.01")
    # Issue 10 item 3: the 10.02 limit (15 bps) is clamped to the 5 bps budget, not refused.
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert (place.order_type, place.limit_price) == (OrderType.LIMIT, D("10.01"))
    assert "budget_clamped" in notes(acts)


def test_premarket_hold_and_recommended_wait() -> None:
    """Step 0: hold until open + the class's recommended wait (normal spread: 1 min)."""
    lg = leg(at=OPEN - timedelta(minutes=30))
    acts = lg.send(Start())
    assert of(acts, WaitUntil) == [WaitUntil(OPEN)]
    acts = lg.quote("10.00", "10.04")
    assert of(acts, WaitUntil) == [WaitUntil(OPEN + timedelta(minutes=1))]
    lg.wake()
    assert lg.now == OPEN + timedelta(minutes=1)


def test_wide_spread_waits_for_spreads_once() -> None:
    """Step 1: a wide spread at 9:30 waits 90 s, then re-checks with a fresh quote."""
    lg = leg(at=OPEN + timedelta(seconds=5), max_spread_percent=D(5), max_slippage_bps=D(100))
    lg.quote("10.00", "10.10")
    acts = lg.send(Start())
    assert "leg_waiting_for_spreads" in notes(acts)
    assert of(acts, WaitUntil) == [WaitUntil(lg.now + timedelta(seconds=90))]
    acts = lg.wake()
    assert of(acts, NeedQuote) == [NeedQuote(lg.now - timedelta(seconds=5))]  # any fresh one
    acts = lg.quote("10.00", "10.10", age=-0.5)
    assert len(of(acts, PlaceOrder)) == 1  # waits once, then trades


def test_high_urgency_skips_the_open_wait() -> None:
    """High urgency does not wait for spreads."""
    lg = leg(at=OPEN + timedelta(seconds=5), urgency=Urgency.HIGH, max_spread_percent=D(5))
    lg.quote("10.00", "10.10")
    acts = lg.send(Start())
    assert "leg_waiting_for_spreads" not in notes(acts)
    assert len(of(acts, PlaceOrder)) == 1


def test_passive_open_delay_anchor_and_threshold_repeg() -> None:
    """Passive: wait 5 min after the open, bid + 1¢, re-peg when the mid moves > 0.10 %."""
    lg = leg(symbol="AAPL", at=OPEN)
    lg.quote("100.00", "100.05")
    acts = lg.send(Start())
    assert of(acts, WaitUntil) == [WaitUntil(OPEN + timedelta(minutes=5))]
    lg.wake()
    lg.quote("100.00", "100.05")
    (place,) = of(lg.log, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert place.limit_price == D("100.01")
    lg.update(0, K.NEW)
    assert not of(lg.quote("100.05", "100.10"), ReplaceOrder)  # 0.05 % move
    acts = lg.quote("100.20", "100.25")  # 0.2 % move
    (rep,) = of(acts, ReplaceOrder)
    assert isinstance(rep, ReplaceOrder)
    assert rep.limit_price == D("100.21")
    assert lg.state.repeg_trigger == "market_moved"


def test_passive_waits_like_a_passive_order() -> None:
    """Issue 10 item 6: in a still market the passive limit re-checks every
    `passive_timeout_seconds` without spending a re-peg round (its price does not move);
    it crosses only when its patience for the urgency (normal: 120 s) has run out."""
    lg = leg(symbol="AAPL")
    started(lg, "100.00", "100.05")
    assert lg.state.style is PricingStyle.PASSIVE
    assert lg.state.deadline == lg.now + timedelta(seconds=10)
    placed_at = lg.now
    lg.update(0, K.NEW)
    for _ in range(11):
        lg.quote("100.00", "100.05")
        assert not of(lg.wake(), CancelOrder)
    # (at most the round in flight: the test's quote is 10 s old at each wake)
    assert lg.state.repeg_rounds <= 1
    assert lg.state.repegs == 0
    lg.quote("100.00", "100.05")
    acts = lg.wake()
    while not of(acts, CancelOrder):
        lg.quote("100.00", "100.05")
        acts = lg.wake()
    assert lg.now - placed_at >= timedelta(seconds=120)
    assert of(acts, CancelOrder) == [CancelOrder(cid(0))]
    assert "leg_passive_patience_exhausted" in notes(acts)


def test_legacy_mode_is_one_market_order() -> None:
    """enable_smart_execution = False: a plain market order for the whole qty."""
    lg = leg(enable_smart_execution=False)
    acts = lg.send(Start())
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert (place.order_type, place.qty) == (OrderType.MARKET, D(100))
    assert "leg_legacy_market" in notes(acts)


def test_replace_refused_while_accepted_cancels_then_places() -> None:
    """An unacknowledged order is not PATCHed: cancel, wait for `canceled`, place the rest."""
    lg = leg(**TIMEOUT_ONLY)
    started(lg)
    lg.update(0, K.ACCEPTED)
    lg.quote("10.05", "10.06")
    acts = lg.wake()
    assert of(acts, CancelOrder) == [CancelOrder(cid(0))]
    assert not of(acts, ReplaceOrder)
    lg.fill(0, "10", "e1")
    acts = lg.update(0, K.CANCELED)
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert (place.qty, place.limit_price, place.step) == (D(90), D("10.07"), 3)


def test_rest_replace_failure_cancels_then_places() -> None:
    """A PATCH refused over REST: the replacement never exists; cancel and re-place."""
    lg = leg(**TIMEOUT_ONLY)
    started(lg)
    lg.update(0, K.NEW)
    lg.quote("10.05", "10.06")
    lg.wake()
    acts = lg.send(ReplaceFailed(cid(0), cid(1), 422, "order isn't sent to exchange yet"))
    assert of(acts, CancelOrder) == [CancelOrder(cid(0))]
    acts = lg.update(0, K.CANCELED)
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert place.client_order_id == cid(2)
    assert len(lg.state.live_orders) == 1


def test_replace_rejected_because_original_filled() -> None:
    """PATCH 200, then the original fills and the replace is rejected: the leg is FILLED."""
    lg = leg(**TIMEOUT_ONLY)
    started(lg)
    lg.update(0, K.NEW)
    lg.quote("10.05", "10.06")
    lg.wake()
    lg.fill(0, "100", "e1", final=True)
    acts = lg.update(0, K.ORDER_REPLACE_REJECTED)
    acts += lg.update(1, K.REJECTED)
    done = finish(lg.log)
    assert done.outcome is Outcome.FILLED
    assert done.filled_qty == D(100)
    assert not of(acts, PlaceOrder)


def test_fill_during_replace_cancels_the_oversized_replacement() -> None:
    """A partial fill on the old order during the replace makes the new one too big:
    it is cancelled at once and only the true remainder is placed."""
    lg = leg(**TIMEOUT_ONLY)
    started(lg)
    lg.update(0, K.NEW)
    lg.quote("10.05", "10.06")
    lg.wake()
    acts = lg.fill(0, "30", "e1")
    assert "leg_replace_race_fill" in notes(acts)
    acts = lg.send(OrderReplaced(cid(0), cid(1)))
    assert "leg_order_oversized" in notes(acts)
    assert of(acts, CancelOrder) == [CancelOrder(cid(1))]
    lg.update(1, K.CANCELED)
    lg.quote("10.05", "10.06")
    (place,) = [a for a in of(lg.log, PlaceOrder) if isinstance(a, PlaceOrder) and a.step == 3]
    assert isinstance(place, PlaceOrder)
    assert place.qty == D(70)


def test_unexpected_cancel_is_not_left_without_a_next_step() -> None:
    """A limit cancelled by the venue re-prices the remainder (LESSONS.md)."""
    lg = leg()
    started(lg)
    lg.update(0, K.NEW)
    acts = lg.update(0, K.EXPIRED)
    assert len(of(acts, PlaceOrder)) == 1


def test_venue_rejection_fails_the_leg_with_reason() -> None:
    """A rejected order ends the leg FAILED with the venue's words."""
    lg = leg()
    started(lg)
    acts = lg.update(0, K.REJECTED, "potential wash trade detected")
    done = finish(acts)
    assert (done.outcome, done.reason) == (Outcome.FAILED, "potential wash trade detected")


def test_place_refused_and_unknown_fate() -> None:
    """A 4xx place refusal fails the leg; a transport error waits for the timer."""
    lg = leg()
    started(lg)
    acts = lg.send(PlaceFailed(cid(0), 0, "timeout"))
    assert not of(acts, Finish)
    acts = lg.send(PlaceFailed(cid(0), 403, "insufficient buying power"))
    assert finish(acts).outcome is Outcome.FAILED


def test_stop_cancels_and_finishes_when_confirmed() -> None:
    """Stop: cancel the working order and finish only when the cancel is confirmed."""
    lg = leg()
    started(lg)
    lg.update(0, K.NEW)
    acts = lg.send(Stop("plan_cancelled"))
    assert of(acts, CancelOrder) == [CancelOrder(cid(0))]
    assert not of(acts, Finish)
    lg.fill(0, "5", "e1")
    done = finish(lg.update(0, K.CANCELED))
    assert (done.outcome, done.filled_qty) == (Outcome.STOPPED, D(5))


def test_unconfirmed_cancel_ends_unresolved_loudly() -> None:
    """A venue that never confirms: cancels are re-sent, then UNRESOLVED, never a stall."""
    lg = leg()
    started(lg)
    lg.update(0, K.NEW)
    lg.send(Stop("halt"))
    sent = 0
    for _ in range(10):
        acts = lg.wake()
        sent += len(of(acts, CancelOrder))
        if of(acts, Finish):
            break
    assert finish(lg.log).outcome is Outcome.UNRESOLVED
    assert sent == 3
    assert any(isinstance(a, Note) and a.level == "error" for a in lg.log)


def test_cancel_refused_as_filled_waits_for_the_fill() -> None:
    """422 'already filled' on cancel is a fill on its way, not a failure."""
    lg = leg()
    started(lg)
    lg.update(0, K.NEW)
    lg.send(Stop("halt"))
    acts = lg.send(CancelFailed(cid(0), 422, 'order is already in "filled" state'))
    assert not of(acts, Finish)
    done = finish(lg.fill(0, "100", "e1", final=True))
    assert done.outcome is Outcome.FILLED


def test_session_closed_and_no_session() -> None:
    """No trading day or after the close: end at once with the reason."""
    assert finish(leg(session=None).send(Start())).reason == "no_trading_session"
    late = leg(at=SESSION.close + timedelta(minutes=1))
    assert finish(late.send(Start())).reason == "session_closed"


def test_decide_is_deterministic() -> None:
    """The same state, event, clock and params give the same answer."""
    lg = leg()
    started(lg)
    event = Wake()
    later = lg.now + timedelta(seconds=5)
    assert decide(lg.state, event, later, lg.params) == decide(lg.state, event, later, lg.params)


def test_events_after_finish_are_recorded_not_acted_on() -> None:
    """A late fill after Finish is counted and reported, and nothing is sent."""
    lg = leg()
    started(lg)
    lg.send(Stop("halt"))
    lg.update(0, K.CANCELED)
    acts = lg.fill(0, "10", "late")
    assert "leg_event_after_finish" in notes(acts)
    assert not [a for a in acts if isinstance(a, PlaceOrder | CancelOrder | Finish)]


def test_an_order_not_sent_for_a_stale_quote_is_priced_again_from_a_newer_one() -> None:
    """A place that expired unsent (its quote went stale during a 429 storm) does not end
    the leg nor cost a re-peg round: the leg waits for a newer quote and places again."""
    lg = leg()
    first = started(lg)
    assert first.priced_until == lg.now + timedelta(seconds=lg.params.quote_freshness_seconds)
    acts = lg.send(PlaceFailed(cid(0), 429, "not sent", not_sent=True), after=6.0)
    assert not of(acts, Finish)
    assert not of(acts, PlaceOrder)
    assert not of(acts, CancelOrder)
    assert "order_not_sent_quote_stale" in notes(acts)
    [need] = of(acts, NeedQuote)
    assert isinstance(need, NeedQuote)
    assert need.newer_than >= lg.now - timedelta(seconds=5)
    acts = lg.quote("10.02", "10.03")
    [again] = of(acts, PlaceOrder)
    assert isinstance(again, PlaceOrder)
    assert again.client_order_id == cid(1)
    assert again.qty == first.qty
    assert first.limit_price is not None
    assert again.limit_price is not None
    assert again.limit_price > first.limit_price
    assert lg.state.repegs == 0


def test_a_not_sent_event_for_an_unknown_or_live_order_changes_nothing() -> None:
    """Only a still-unsent order can expire: a late or duplicated event is only noted."""
    lg = leg()
    started(lg)
    lg.update(0, K.NEW)
    before = lg.state
    acts = lg.send(PlaceFailed(cid(0), 429, "not sent", not_sent=True))
    assert lg.state.live_orders == before.live_orders
    assert not of(acts, PlaceOrder)
    acts = lg.send(PlaceFailed("xd-nope", 429, "not sent", not_sent=True))
    assert not of(acts, PlaceOrder)
    assert not of(acts, Finish)
