"""`Resume`: a leg that ran before a restart takes over its orders without breaking the
ladder's invariants (never two live orders, never more than the remainder, every wait
with a deadline), case by case, and against the random venue of the ladder machine."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant

from execd.domain.ids import client_order_id
from execd.domain.ladder import decide
from execd.domain.ladder_types import (
    Action,
    AdoptedOrder,
    CancelOrder,
    LadderParams,
    LegPhase,
    LegSpec,
    LegState,
    NeedQuote,
    Note,
    OrderType,
    Outcome,
    PlaceOrder,
    PricingStyle,
    ReplaceOrder,
    Resume,
    Start,
    Stop,
    Timer,
    WaitUntil,
)
from execd.domain.order_state import Execution, OrderStatus
from execd.domain.order_state import OrderEventKind as K
from execd.domain.types import Side, Urgency
from tests.domain.test_ladder import (
    MIDDAY,
    OPEN,
    SESSION,
    TIMEOUT_ONLY,
    Leg,
    cid,
    finish,
    leg,
    notes,
    of,
)
from tests.domain.test_ladder_machine import QTY, LadderMachine, Method, VOrder

D = Decimal
S = OrderStatus
ADOPTABLE = [
    S.NEW,
    S.PARTIALLY_FILLED,
    S.ACCEPTED,
    S.PENDING_NEW,
    S.HELD,
    S.ACCEPTED_FOR_BIDDING,
]
NOT_ADOPTABLE = [
    S.PENDING_SUBMIT,
    S.PENDING_REPLACE,
    S.PENDING_CANCEL,
    S.DONE_FOR_DAY,
    S.STOPPED,
    S.SUSPENDED,
    S.CALCULATED,
]


def execs(*qtys: str, tag: str = "old") -> tuple[Execution, ...]:
    """Executions of the given sizes at $10, before the restart."""
    at = MIDDAY - timedelta(minutes=5)
    return tuple(Execution(f"{tag}{i}", D(q), D("10"), at) for i, q in enumerate(qtys))


def order(
    n: int,
    status: OrderStatus,
    qty: str = "100",
    *,
    limit: str | None = "10.02",
    fills: tuple[Execution, ...] = (),
    fallback: bool = False,
) -> AdoptedOrder:
    """Attempt n of the test leg as the venue reports it after the restart."""
    kind = OrderType.MARKET if limit is None else OrderType.LIMIT
    return AdoptedOrder(
        cid(n), D(qty), status, kind, None if limit is None else D(limit), fills, fallback
    )


def resumed(lg: Leg, *orders: AdoptedOrder, next_attempt: int | None = None) -> list[Action]:
    """Resume the leg with these orders; next attempt defaults to one past the last."""
    nxt = len(orders) if next_attempt is None else next_attempt
    return lg.send(Resume(tuple(orders), nxt))


def note_fields(acts: Sequence[Action], event: str) -> dict[str, object]:
    """The fields of the one note with this event name."""
    (found,) = [a for a in acts if isinstance(a, Note) and a.event == event]
    assert isinstance(found, Note)
    return dict(found.fields)


# ------------------------------------------------------------------ nothing left to do


def test_everything_already_filled_finishes_filled_at_once() -> None:
    """The venue filled the leg while execd was down: FILLED, with the old executions."""
    lg = leg()
    acts = resumed(lg, order(0, S.FILLED, fills=execs("60", "40")))
    done = finish(acts)
    assert (done.outcome, done.filled_qty) == (Outcome.FILLED, D(100))
    assert [e.execution_id for e in done.fills] == ["old0", "old1"]
    fields = note_fields(acts, "leg_resumed")
    assert fields["executed_qty"] == "100"
    assert fields["remaining"] == "0"
    assert not of(acts, PlaceOrder)


def test_filled_leg_with_a_live_order_cancels_it_then_finishes_filled() -> None:
    """Nothing left but an order still open: cancel it, FILLED once confirmed."""
    lg = leg()
    acts = resumed(lg, order(0, S.FILLED, fills=execs("100")), order(1, S.NEW, "50"))
    assert of(acts, CancelOrder) == [CancelOrder(cid(1))]
    assert lg.state.phase is LegPhase.CANCELING
    assert lg.state.deadline is not None
    done = finish(lg.update(1, K.CANCELED))
    assert (done.outcome, done.filled_qty) == (Outcome.FILLED, D(100))


def test_filled_before_its_executions_are_known_counts_whole() -> None:
    """LESSONS.md "filled before the fill price existed": an order the venue reports filled
    with none (or part) of its executions known is spent whole; the leg places only what the
    other orders leave, never those shares again."""
    lg = leg()
    lg.quote("10.00", "10.01")
    acts = resumed(lg, order(0, S.FILLED, "60"), order(1, S.FILLED, "30", fills=execs("10")))
    assert note_fields(acts, "leg_resumed")["executed_qty"] == "90"
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert place.qty == D(10)
    lg2 = leg()
    done = finish(resumed(lg2, order(0, S.FILLED, "100")))
    assert (done.outcome, done.filled_qty) == (Outcome.FILLED, D(100))


# ------------------------------------------------------------------ outside the session


def test_session_closed_cancels_live_orders_and_ends() -> None:
    """After the close a live order is cancelled, then the leg ends `session_closed`."""
    lg = leg(at=SESSION.close + timedelta(minutes=1))
    acts = resumed(lg, order(0, S.PARTIALLY_FILLED, fills=execs("30")))
    assert of(acts, CancelOrder) == [CancelOrder(cid(0))]
    done = finish(lg.update(0, K.CANCELED))
    assert (done.outcome, done.reason, done.filled_qty) == (
        Outcome.ENDED,
        "session_closed",
        D(30),
    )


def test_session_closed_without_live_orders_ends_at_once() -> None:
    """Nothing live after the close: end at once."""
    lg = leg(at=SESSION.close)
    done = finish(resumed(lg, order(0, S.CANCELED, fills=execs("30"))))
    assert (done.outcome, done.reason, done.filled_qty) == (Outcome.ENDED, "session_closed", D(30))


def test_no_session_ends_like_start_does() -> None:
    """No trading day: live orders are cancelled; the reason is Start's."""
    lg = leg(session=None)
    acts = resumed(lg, order(0, S.NEW))
    assert of(acts, CancelOrder) == [CancelOrder(cid(0))]
    assert finish(lg.update(0, K.CANCELED)).reason == "no_trading_session"
    lg2 = leg(session=None)
    assert finish(resumed(lg2)).reason == "no_trading_session"


# --------------------------------------------------------------------------- adoption


@pytest.mark.parametrize("status", ADOPTABLE)
def test_one_sound_limit_order_is_adopted_untouched(status: OrderStatus) -> None:
    """One live limit within the remainder goes on working: nothing sent, REPEG timer."""
    lg = leg()
    fills = execs("30") if status is S.PARTIALLY_FILLED else ()
    acts = resumed(
        lg,
        order(0, S.CANCELED, "20", fills=execs("20", tag="a")),
        order(1, status, "80", fills=fills),
    )
    assert not [a for a in acts if isinstance(a, PlaceOrder | ReplaceOrder | CancelOrder)]
    s = lg.state
    assert (s.phase, s.working_id, s.limit_price, s.in_fallback) == (
        LegPhase.WORKING,
        cid(1),
        D("10.02"),
        False,
    )
    assert (s.timer, s.deadline) == (Timer.REPEG, lg.now + timedelta(seconds=3))
    assert of(acts, WaitUntil) == [WaitUntil(lg.now + timedelta(seconds=3))]
    assert s.attempt == 2
    fields = note_fields(acts, "leg_order_adopted")
    assert fields["client_order_id"] == cid(1)
    assert "leg_resumed" in notes(acts)


def test_adopted_limit_repegs_from_a_fresh_quote_for_the_remainder() -> None:
    """Nothing priced survives the restart: the first re-peg asks for a quote, then
    PATCHes exactly the remainder with the next attempt's id."""
    lg = leg(**TIMEOUT_ONLY)
    resumed(lg, order(0, S.PARTIALLY_FILLED, fills=execs("30")))
    assert lg.state.priced_mid is None
    assert lg.state.last_quote is None
    acts = lg.wake()
    assert of(acts, NeedQuote) == [NeedQuote(lg.now - timedelta(seconds=5))]
    assert not of(acts, ReplaceOrder)
    acts = lg.quote("10.05", "10.06")
    (rep,) = of(acts, ReplaceOrder)
    until = lg.now + timedelta(seconds=5)  # the quote that priced it stays fresh 5 s
    assert rep == ReplaceOrder(cid(0), cid(1), D(70), D("10.07"), until)
    assert lg.state.phase is LegPhase.REPLACING
    fields = note_fields(acts, "leg_repegged")
    assert fields["old_limit"] == "10.02"


def test_adopted_limit_repeg_by_cancel_and_place() -> None:
    """With cancel_and_place the adopted order is cancelled, and only the remainder placed."""
    lg = leg(repeg_method="cancel_and_place", **TIMEOUT_ONLY)
    resumed(lg, order(0, S.NEW, fills=()))
    lg.wake()
    acts = lg.quote("10.05", "10.06")
    assert of(acts, CancelOrder) == [CancelOrder(cid(0))]
    lg.fill(0, "25", "new1")  # lands during the cancel
    acts = lg.update(0, K.CANCELED)
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert (place.client_order_id, place.qty, place.limit_price, place.step) == (
        cid(1),
        D(75),
        D("10.07"),
        3,
    )


def test_adopted_accepted_order_is_not_patched() -> None:
    """An adopted order the venue has not acknowledged is cancelled, not replaced (§1.7)."""
    lg = leg(**TIMEOUT_ONLY)
    resumed(lg, order(0, S.ACCEPTED))
    lg.quote("10.05", "10.06")
    acts = lg.wake()
    assert of(acts, CancelOrder) == [CancelOrder(cid(0))]
    assert not of(acts, ReplaceOrder)


def test_adopted_partial_fill_then_final_fill_finishes_with_every_execution() -> None:
    """Old executions and new ones together make the leg FILLED, all of them reported."""
    lg = leg()
    resumed(lg, order(0, S.PARTIALLY_FILLED, fills=execs("30", "10")))
    lg.fill(0, "20", "new1")
    acts = lg.fill(0, "40", "new2", final=True)
    done = finish(acts)
    assert (done.outcome, done.filled_qty) == (Outcome.FILLED, D(100))
    assert [e.execution_id for e in done.fills] == ["old0", "old1", "new1", "new2"]
    assert done.arrival_quote is None  # lost with the restart, never invented


def test_redelivered_old_execution_is_not_counted_twice() -> None:
    """An execution the venue replays after the restart is already known."""
    lg = leg()
    resumed(lg, order(0, S.PARTIALLY_FILLED, fills=execs("30")))
    lg.fill(0, "30", "old0")
    assert lg.state.remaining == D(70)


def test_stop_after_adopt_cancels_the_adopted_order() -> None:
    """A plan cancel after the restart cancels the adopted order and finishes STOPPED."""
    lg = leg()
    resumed(lg, order(0, S.PARTIALLY_FILLED, fills=execs("30")))
    acts = lg.send(Stop("plan_cancelled"))
    assert of(acts, CancelOrder) == [CancelOrder(cid(0))]
    done = finish(lg.update(0, K.CANCELED))
    assert (done.outcome, done.filled_qty) == (Outcome.STOPPED, D(30))


def test_adopted_market_order_runs_on_the_fallback_timer() -> None:
    """A market order is the fallback: watched for fallback_timeout_seconds, then cancelled."""
    lg = leg()
    acts = resumed(
        lg, order(0, S.CANCELED, "40", fills=execs("10")), order(1, S.NEW, "90", limit=None)
    )
    s = lg.state
    assert (s.phase, s.in_fallback, s.timer) == (LegPhase.WORKING, True, Timer.FALLBACK)
    assert s.deadline == lg.now + timedelta(seconds=30)
    assert note_fields(acts, "leg_order_adopted")["fallback"] is True
    acts2 = lg.wake()
    assert of(acts2, CancelOrder) == [CancelOrder(cid(1))]
    done = finish(lg.update(1, K.CANCELED))
    assert (done.outcome, done.reason) == (Outcome.ENDED, "fallback_unfilled")


def test_adopted_market_order_fill_finishes_filled() -> None:
    """The adopted market order fills: FILLED."""
    lg = leg()
    resumed(lg, order(0, S.NEW, limit=None))
    assert finish(lg.fill(0, "100", "m1", final=True)).outcome is Outcome.FILLED


def test_adopted_fallback_limit_is_not_repegged() -> None:
    """A collared (or capped) fallback limit flagged `fallback` stays on the fallback timer."""
    lg = leg()
    resumed(lg, order(0, S.NEW, limit="10.06", fallback=True))
    s = lg.state
    assert (s.in_fallback, s.timer, s.limit_price) == (True, Timer.FALLBACK, D("10.06"))
    lg.quote("10.30", "10.31")  # a market move never re-pegs a fallback
    assert not of(lg.wake(), ReplaceOrder)


def test_legacy_mode_adopts_a_limit_as_its_fallback() -> None:
    """Legacy mode never prices a ladder limit: its capped order is watched, not re-pegged."""
    lg = leg(enable_smart_execution=False, cap="10.05")
    resumed(lg, order(0, S.NEW, limit="10.05"))
    assert (lg.state.in_fallback, lg.state.timer) == (True, Timer.FALLBACK)


# ------------------------------------------------------- passive patience after a restart


@pytest.mark.parametrize(
    ("urgency", "patience"), [(Urgency.LOW, 300), (Urgency.NORMAL, 120), (Urgency.HIGH, 7)]
)
def test_adopted_passive_limit_crosses_when_its_patience_runs_out(
    urgency: Urgency, patience: int
) -> None:
    """An adopted passive limit in a still market re-checks for free, as before the restart,
    but only for its urgency's patience counted from the restart: then it escalates (low ends
    cleanly, normal/high take the fallback) instead of re-checking until the close."""
    lg = leg(symbol="AAPL", urgency=urgency, **TIMEOUT_ONLY)
    resumed_at = lg.now
    resumed(lg, order(0, S.NEW, "40", limit="10.01"))
    assert lg.state.style is PricingStyle.PASSIVE
    acts: list[Action] = []
    for _ in range(100):  # 300 s of 10 s re-checks is 30 wakes
        lg.quote("10.00", "10.02")  # bid + 1¢ = 10.01: the adopted price, never moved
        acts = lg.wake()
        if of(acts, CancelOrder):
            break
    assert of(acts, CancelOrder) == [CancelOrder(cid(0))], "re-checked past its patience"
    assert lg.now - resumed_at == timedelta(seconds=patience)
    assert note_fields(acts, "leg_passive_patience_exhausted")["urgency"] == str(urgency)
    assert not of(lg.log, ReplaceOrder)  # the price never moved: no churn
    acts = lg.update(0, K.CANCELED)
    if urgency is Urgency.LOW:
        done = finish(acts)
        assert (done.outcome, done.reason) == (Outcome.ENDED, "passive_patience_exhausted")
    else:
        assert lg.state.in_fallback or of(acts, NeedQuote)


def test_machine_example_adopted_passive_limit_in_a_still_market_finishes() -> None:
    """The random venue's shrunk counter-example (seed 2287…6457): two filled orders and
    one resting passive limit of 10 at 9.90; the leg re-pegged to 10.00 once, then
    re-checked a still market at the same price every 10 s without end ("stalled in
    working"). It must reach Finish, on its low urgency's patience."""
    m = ResumeMachine()
    m.start(
        urgency=Urgency.LOW,
        method="replace",
        symbol="AAPL",
        side=Side.BUY,
        start=10,
        cap=None,
        smart=True,
        collar=None,
        prior=[
            (S.FILLED, D(10), D(0), OrderType.LIMIT, "9.90"),
            (S.FILLED, D(10), D(0), OrderType.LIMIT, "9.90"),
            (S.NEW, D(10), D(0), OrderType.LIMIT, "9.90"),
        ],
    )
    m.clock(seconds=0.5)
    m.teardown()
    assert m.finished is not None
    assert (m.finished.outcome, m.finished.reason) == (
        Outcome.ENDED,
        "passive_patience_exhausted",
    )
    assert m.venue.filled_total() == D(20)  # the two earlier fills, never more


# ----------------------------------------------------------------- cancel, then re-price


def test_replace_in_flight_cancels_both_then_places_the_remainder() -> None:
    """Two live orders (a replace was in flight): cancel both, wait for both, then place
    exactly the remainder with a fresh id."""
    lg = leg()
    acts = resumed(
        lg,
        order(0, S.PENDING_REPLACE, fills=execs("20")),
        order(1, S.PENDING_SUBMIT, "80", limit="10.05"),
    )
    assert of(acts, CancelOrder) == [CancelOrder(cid(0)), CancelOrder(cid(1))]
    assert not of(acts, PlaceOrder)
    assert note_fields(acts, "leg_resume_canceling")["reason"] == "several_live_orders"
    lg.quote("10.00", "10.01")
    assert not of(lg.update(0, K.CANCELED), PlaceOrder)
    lg.fill(1, "5", "late")  # the replacement existed after all and traded a little
    acts3 = lg.update(1, K.CANCELED)
    (place,) = of(acts3, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert (place.client_order_id, place.qty, place.step) == (cid(2), D(75), 3)
    assert len(lg.state.live_orders) == 1


def test_oversized_live_order_is_cancelled_not_adopted() -> None:
    """A live order bigger than the remainder could over-fill the leg: cancel, re-place."""
    lg = leg()
    acts = resumed(lg, order(0, S.CANCELED, fills=execs("60")), order(1, S.NEW, "100"))
    assert of(acts, CancelOrder) == [CancelOrder(cid(1))]
    assert note_fields(acts, "leg_resume_canceling")["reason"] == "oversized"
    lg.quote("10.00", "10.01")
    (place,) = of(lg.update(1, K.CANCELED), PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert place.qty == D(40)


@pytest.mark.parametrize("status", NOT_ADOPTABLE)
def test_in_flight_or_held_statuses_are_cancelled(status: OrderStatus) -> None:
    """Pending submit/cancel/replace and the venue's own holds are not adopted."""
    lg = leg()
    acts = resumed(lg, order(0, status))
    assert of(acts, CancelOrder) == [CancelOrder(cid(0))]
    assert lg.state.phase is LegPhase.CANCELING
    assert lg.state.deadline is not None


def test_limit_beyond_the_plan_cap_is_cancelled() -> None:
    """Never price through the plan's limit, not even by adoption."""
    lg = leg(cap="10.00")
    acts = resumed(lg, order(0, S.NEW, limit="10.02"))
    assert note_fields(acts, "leg_resume_canceling")["reason"] == "limit_beyond_cap"


def test_live_order_before_the_open_is_cancelled_then_the_leg_holds() -> None:
    """The ladder never works an order before the open: cancel, then hold like Start."""
    lg = leg(at=OPEN - timedelta(minutes=30))
    acts = resumed(lg, order(0, S.NEW))
    assert note_fields(acts, "leg_resume_canceling")["reason"] == "before_open"
    acts = lg.update(0, K.CANCELED)
    assert lg.state.phase is LegPhase.PRE_OPEN
    assert of(acts, WaitUntil) == [WaitUntil(OPEN)]
    assert not of(acts, PlaceOrder)


def test_legacy_mode_replaces_cancelled_orders_with_a_market_order() -> None:
    """Legacy mode re-places the remainder as its one plain market order, never a limit."""
    lg = leg(enable_smart_execution=False)
    resumed(lg, order(0, S.PENDING_CANCEL, fills=execs("30")))
    (place,) = of(lg.update(0, K.CANCELED), PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert (place.order_type, place.qty) == (OrderType.MARKET, D(70))


# ----------------------------------------------------------------- nothing live: as Start


def test_no_live_orders_continues_like_start_for_the_remainder() -> None:
    """Only terminal orders: assess and place the first limit for what is left."""
    lg = leg()
    lg.quote("10.00", "10.01")
    acts = resumed(
        lg, order(0, S.CANCELED, fills=execs("35")), order(1, S.REJECTED), next_attempt=2
    )
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert (place.client_order_id, place.qty, place.limit_price, place.step) == (
        cid(2),
        D(65),
        D("10.02"),
        2,
    )
    assert "leg_style_chosen" in notes(acts)


def test_no_live_orders_before_the_open_holds() -> None:
    """Before the open: the pre-market assessment and the hold, as Start."""
    lg = leg(at=OPEN - timedelta(minutes=30))
    acts = resumed(lg, order(0, S.EXPIRED, fills=execs("10")))
    assert lg.state.phase is LegPhase.PRE_OPEN
    assert of(acts, WaitUntil) == [WaitUntil(OPEN)]
    assert len(of(acts, NeedQuote)) == 1


def test_no_live_orders_passive_open_delay() -> None:
    """A passive leg resumed at the open still waits out the open delay."""
    lg = leg(symbol="AAPL", at=OPEN + timedelta(minutes=1))
    resumed(lg, order(0, S.CANCELED))
    assert (lg.state.phase, lg.state.deadline) == (LegPhase.OPEN_WAIT, OPEN + timedelta(minutes=5))


def test_no_live_orders_legacy_is_a_market_order_for_the_remainder() -> None:
    """Legacy mode: one market order for what is left."""
    lg = leg(enable_smart_execution=False)
    acts = resumed(lg, order(0, S.CANCELED, limit=None, fills=execs("45")))
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert (place.order_type, place.qty) == (OrderType.MARKET, D(55))


def test_no_orders_at_all_is_a_start() -> None:
    """A resume with no orders behaves as Start (with the given attempt)."""
    lg = leg()
    lg.quote("10.00", "10.01")
    (place,) = of(resumed(lg, next_attempt=7), PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert (place.client_order_id, place.qty) == (cid(7), D(100))


# ------------------------------------------------------------------------ edges


def test_resume_only_from_pending() -> None:
    """A second Resume (or one after Start) is a warning and changes nothing."""
    lg = leg()
    lg.quote("10.00", "10.01")
    lg.send(Start())
    before = lg.state
    acts = resumed(lg, order(0, S.NEW))
    assert lg.state == before
    assert [a.level for a in acts if isinstance(a, Note)] == ["warning"]
    assert notes(acts) == ["leg_duplicate_resume"]


def test_next_attempt_never_reuses_a_known_id() -> None:
    """Alpaca refuses a reused client order id: a stale next_attempt is moved past it."""
    lg = leg()
    lg.quote("10.00", "10.01")
    acts = resumed(lg, order(0, S.CANCELED), order(1, S.CANCELED), next_attempt=0)
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert place.client_order_id == cid(2)


def test_adopted_order_values_are_checked() -> None:
    """Impossible orders are refused when built, not clipped later."""
    with pytest.raises(ValueError, match="positive"):
        order(0, S.NEW, "0")
    with pytest.raises(ValueError, match="non-positive"):
        order(0, S.NEW, "10", fills=execs("0"))
    with pytest.raises(ValueError, match="distinct"):
        Resume((order(0, S.NEW), order(0, S.NEW)), 1)
    with pytest.raises(ValueError, match="negative"):
        Resume((), -1)


def test_duplicate_executions_count_once() -> None:
    """The same execution id reported twice (journal and venue) is one execution."""
    lg = leg()
    resumed(lg, order(0, S.PARTIALLY_FILLED, fills=execs("30") + execs("30")))
    assert lg.state.remaining == D(70)


def test_impossible_books_are_counted_and_said_loudly() -> None:
    """Executions beyond an order's qty: counted (the leg can only trade less), noted as
    an error, and nothing beyond the remainder is ever placed."""
    lg = leg()
    lg.quote("10.00", "10.01")
    acts = resumed(lg, order(0, S.CANCELED, "50", fills=execs("30", "30")))
    fields = note_fields(acts, "leg_resume_order_overfilled")
    assert (fields["qty"], fields["filled_qty"]) == ("50", "60")
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert place.qty == D(40)


def test_resume_is_deterministic() -> None:
    """The same state, Resume, clock and params give the same answer."""
    spec = LegSpec("plan-1", 0, "TQQQ", Side.BUY, D(100), Urgency.NORMAL, None, SESSION)
    ev = Resume((order(0, S.PENDING_REPLACE), order(1, S.NEW, "80")), 2)
    p = LadderParams()
    assert decide(LegState.new(spec), ev, MIDDAY, p) == decide(LegState.new(spec), ev, MIDDAY, p)


# ------------------------------------------------------------- against a random venue

_PRIOR_STATUSES = [
    S.FILLED,
    S.CANCELED,
    S.EXPIRED,
    S.REPLACED,
    S.REJECTED,
    S.NEW,
    S.PARTIALLY_FILLED,
    S.ACCEPTED,
    S.PENDING_NEW,
    S.PENDING_SUBMIT,
    S.PENDING_CANCEL,
    S.PENDING_REPLACE,
]
_PRIOR = st.tuples(
    st.sampled_from(_PRIOR_STATUSES),
    st.sampled_from([D(10), D(50), D(100)]),
    st.sampled_from([D(0), D(5), D(20), D(100)]),
    st.sampled_from(list(OrderType)),
    st.sampled_from(["9.90", "10.00", "10.10"]),
)


class ResumeMachine(LadderMachine):
    """The ladder machine, but each leg starts from `Resume` with random prior orders
    that the venue also holds (at most two live, as after an interrupted replace)."""

    def __init__(self) -> None:
        super().__init__()
        self.prior: set[str] = set()
        self.prior_excess = D(0)

    @initialize(
        urgency=st.sampled_from(list(Urgency)),
        method=st.sampled_from(["replace", "cancel_and_place"]),
        symbol=st.sampled_from(["TQQQ", "AAPL"]),
        side=st.sampled_from(list(Side)),
        start=st.sampled_from([-600, 10, 3600, 8 * 3600]),
        cap=st.sampled_from([None, "10.50", "9.50"]),
        smart=st.booleans() | st.just(True),
        collar=st.sampled_from([None, D(50)]),
        prior=st.lists(_PRIOR, max_size=3),
    )
    def start(
        self,
        urgency: Urgency,
        method: Method,
        symbol: str,
        side: Side,
        start: int,
        cap: str | None,
        smart: bool,
        collar: Decimal | None,
        prior: list[tuple[OrderStatus, Decimal, Decimal, OrderType, str]],
    ) -> None:
        """A leg of 100 shares resumed before, during or after the session."""
        self.set_up(urgency, method, symbol, side, start, cap, smart, collar)
        self.feed(Resume(self.prior_orders(prior, self.now), len(prior)))

    def prior_orders(
        self,
        prior: list[tuple[OrderStatus, Decimal, Decimal, OrderType, str]],
        now: datetime,
    ) -> tuple[AdoptedOrder, ...]:
        """Build consistent prior orders (never more filled than the leg) at the venue.

        A `filled` order keeps only the drawn part of its executions: the venue may say
        filled before execd knows every fill (LESSONS.md "filled before the fill price
        existed"; a fill event lost with the crash), and the leg must still count it whole.
        """
        budget = QTY
        live = 0
        orders: list[AdoptedOrder] = []
        for n, (status, qty, drawn, kind, limit) in enumerate(prior):
            said_filled = status is S.FILLED
            filled = drawn
            if status is S.REJECTED:
                filled = D(0)
            elif status is S.FILLED:
                filled = qty
            filled = min(filled, qty)
            if filled > budget:
                filled = D(0)
                status = S.CANCELED if status is S.FILLED else status
            if filled == qty:
                status = S.FILLED
            if not status.is_terminal:
                live += 1
                status = status if live <= 2 else S.CANCELED
            budget -= filled
            known = min(drawn, filled) if said_filled and status is S.FILLED else filled
            ex = (Execution(f"p{n}", known, D("10"), now),) if known > 0 else ()
            c = client_order_id("plan-m", 0, n)
            price = None if kind is OrderType.MARKET else D(limit)
            orders.append(AdoptedOrder(c, qty, status, kind, price, ex))
            v = VOrder(c, qty, kind, filled=filled)
            if status.is_terminal:
                v.status = "terminal"
            elif status in (S.ACCEPTED, S.PENDING_NEW, S.PENDING_SUBMIT):
                v.status = "accepted"
            else:
                v.status = "new"
                v.cancel_pending = status is S.PENDING_CANCEL
            self.venue.orders[c] = v
            self.prior.add(c)
        # Live orders that could together fill beyond the leg (e.g. an oversized one):
        # the ladder cancels them at once, but the venue may fill them first.
        at_risk = sum((o.qty - o.filled for o in self.venue.live()), D(0))
        self.prior_excess = max(D(0), at_risk - budget)
        return tuple(orders)

    @invariant()
    def never_beyond_qty(self) -> None:
        """Beyond the qty only by what the prior live orders put at risk (or a replace race)."""
        if self.venue.filled_total() > QTY + self.prior_excess:
            assert self.params.repeg_method == "replace"
            assert self.venue.race_fill
        assert self.state.executed_qty <= self.venue.filled_total()

    @invariant()
    def one_live_order(self) -> None:
        """Prior orders aside, never two live orders; and never a new one beside a prior."""
        live = self.venue.live()
        new = [o for o in live if o.cid not in self.prior]
        assert len(new) <= 1
        if new:
            assert all(o.cid not in self.prior for o in live)


ResumeMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=30)
TestResumeMachine = ResumeMachine.TestCase
