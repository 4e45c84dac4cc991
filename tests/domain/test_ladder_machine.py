"""A simulated venue plays against the ladder: random quotes, fills, refusals, duplicated
and reordered events, clock jumps; the LESSONS.md invariants are checked after every step.

The venue keeps each order's own events in order (Alpaca's stream is ordered per
order) but reorders events *across* orders (e.g. the new order's `new` before the
old order's `replaced`) and redelivers any event at any time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from execd.domain.calendar import TradingSession, session_on
from execd.domain.ladder import decide
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
    Wake,
)
from execd.domain.order_state import OrderEventKind as K
from execd.domain.prices import is_on_grid
from execd.domain.quotes import Quote
from execd.domain.types import Side, Urgency

D = Decimal


def _session() -> TradingSession:
    found = session_on(date(2024, 3, 5))
    assert found is not None
    return found


SESSION = _session()
QTY = D(100)
Method = Literal["replace", "cancel_and_place"]
METHODS: tuple[Method, ...] = ("replace", "cancel_and_place")
VenueMsg = OrderUpdate | OrderFill | OrderReplaced | PlaceFailed | ReplaceFailed | CancelFailed


@dataclass
class VOrder:
    """The venue's truth about one order."""

    cid: str
    qty: Decimal
    order_type: OrderType
    status: str = "accepted"  # accepted | new | terminal
    filled: Decimal = field(default_factory=Decimal)
    cancel_pending: bool = False
    replace_to: tuple[str, Decimal] | None = None
    fills_during_replace: Decimal = field(default_factory=Decimal)

    @property
    def live(self) -> bool:
        """Not yet terminal at the venue."""
        return self.status != "terminal"


@dataclass
class Venue:
    """A small Alpaca-like venue: orders, pending requests and an outbox per order."""

    orders: dict[str, VOrder] = field(default_factory=dict)
    outbox: list[tuple[str, VenueMsg]] = field(default_factory=list)
    delivered: list[VenueMsg] = field(default_factory=list)
    exec_seq: int = 0
    refuse_next: bool = False
    race_fill: bool = False

    def emit(self, cid: str, msg: VenueMsg) -> None:
        """Queue an event for one order."""
        self.outbox.append((cid, msg))

    def filled_total(self) -> Decimal:
        """Everything the venue executed for the leg."""
        return sum((o.filled for o in self.orders.values()), D(0))

    def live(self) -> list[VOrder]:
        """Orders still live at the venue."""
        return [o for o in self.orders.values() if o.live]

    def fill(self, o: VOrder, qty: Decimal, now: datetime) -> None:
        """Execute `qty` of `o`."""
        qty = min(qty, o.qty - o.filled)
        if qty <= 0 or not o.live:
            return
        self.exec_seq += 1
        o.filled += qty
        if o.replace_to is not None:
            o.fills_during_replace += qty
            self.race_fill = True
        final = o.filled == o.qty
        self.emit(o.cid, OrderFill(o.cid, f"x{self.exec_seq}", qty, D("10"), now, final))
        if final:
            o.status = "terminal"

    def take(self, index: int) -> VenueMsg | None:
        """Pop the first pending event of the order owning outbox[index] (per-order FIFO)."""
        if not self.outbox:
            return None
        cid = self.outbox[index % len(self.outbox)][0]
        first = next(i for i, (c, _) in enumerate(self.outbox) if c == cid)
        _, msg = self.outbox.pop(first)
        self.delivered.append(msg)
        return msg


class LadderMachine(RuleBasedStateMachine):
    """The ladder against a random, racy venue."""

    def __init__(self) -> None:
        super().__init__()
        self.venue = Venue()
        self.state: LegState
        self.params: LadderParams
        self.now = SESSION.open
        self.finished: Finish | None = None
        self.notes: list[str] = []
        self.mid = D("10.00")

    @initialize(
        urgency=st.sampled_from(list(Urgency)),
        method=st.sampled_from(METHODS),
        symbol=st.sampled_from(["TQQQ", "AAPL"]),
        side=st.sampled_from(list(Side)),
        start=st.sampled_from([-600, 10, 3600]),
        cap=st.sampled_from([None, "10.50", "9.50"]),
        smart=st.booleans() | st.just(True),
        collar=st.sampled_from([None, D(50)]),
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
    ) -> None:
        """A leg of 100 shares starting before, at or after the open."""
        self.set_up(urgency, method, symbol, side, start, cap, smart, collar)
        self.feed(Start())

    def set_up(
        self,
        urgency: Urgency,
        method: Method,
        symbol: str,
        side: Side,
        start: int,
        cap: str | None,
        smart: bool,
        collar: Decimal | None,
    ) -> None:
        """Parameters, clock, a pending leg and a first quote (before its first event)."""
        self.params = LadderParams(
            repeg_method=method,
            enable_smart_execution=smart,
            max_slippage_bps=D(500),
            max_spread_percent=D(5),
            min_bid_ask_size=D(1),
            fallback_order="market" if collar is None else "collared",
            fallback_collar_bps=collar or D(50),
        )
        self.now = SESSION.open + timedelta(seconds=start)
        spec = LegSpec(
            "plan-m", 0, symbol, side, QTY, urgency, None if cap is None else D(cap), SESSION
        )
        self.state = LegState.new(spec)
        self.quote(0, 1)

    # ------------------------------------------------------------------ plumbing

    def feed(self, event: LadderEvent) -> None:
        """Call decide (twice, to check determinism) and let the venue act."""
        before = self.state
        after, acts = decide(before, event, self.now, self.params)
        again = decide(before, event, self.now, self.params)
        assert again == (after, acts), "decide is not deterministic"
        self.check_actions(before, after, acts)
        self.state = after
        for a in acts:
            self.perform(a)

    def check_actions(self, before: LegState, after: LegState, acts: list[Action]) -> None:
        """Invariants on what the ladder asks for, against the venue's truth."""
        for a in acts:
            if isinstance(a, PlaceOrder):
                assert not self.venue.live(), "a second live order"
                # Placed only once every earlier order is confirmed terminal.
                others = [o for o in after.orders if o.client_order_id != a.client_order_id]
                assert all(o.is_terminal for o in others), "placed before a confirmed cancel"
                assert a.qty <= QTY - self.venue.filled_total(), "placed beyond the remainder"
                if before.spec.urgency is Urgency.LOW and self.params.enable_smart_execution:
                    assert a.order_type is OrderType.LIMIT, "market order on low urgency"
                if before.spec.limit_price is not None:
                    assert a.order_type is OrderType.LIMIT
                if self.params.fallback_order == "collared" and self.params.enable_smart_execution:
                    assert a.order_type is OrderType.LIMIT, "market order despite the collar"
                if not self.params.enable_smart_execution:
                    assert a.step == 4, "legacy mode priced a ladder limit"
                if a.limit_price is not None:
                    assert is_on_grid(a.limit_price)
                    cap = before.spec.limit_price
                    if cap is not None:
                        if a.side is Side.BUY:
                            assert a.limit_price <= cap
                        else:
                            assert a.limit_price >= cap
            if isinstance(a, ReplaceOrder):
                assert is_on_grid(a.limit_price)
                assert a.qty <= before.remaining

    def perform(self, a: Action) -> None:
        """The venue's answer to one action."""
        v = self.venue
        match a:
            case PlaceOrder():
                if v.refuse_next:
                    v.refuse_next = False
                    v.emit(a.client_order_id, PlaceFailed(a.client_order_id, 403, "refused"))
                    return
                v.orders[a.client_order_id] = VOrder(a.client_order_id, a.qty, a.order_type)
                v.emit(a.client_order_id, OrderUpdate(a.client_order_id, K.ACCEPTED))
            case ReplaceOrder():
                o = v.orders.get(a.client_order_id)
                if o is None or not o.live or o.status != "new" or o.cancel_pending:
                    v.emit(
                        a.client_order_id,
                        ReplaceFailed(a.client_order_id, a.new_client_order_id, 422, "no"),
                    )
                    return
                o.replace_to = (a.new_client_order_id, a.qty)
            case CancelOrder():
                o = v.orders.get(a.client_order_id)
                if o is None:
                    v.emit(a.client_order_id, CancelFailed(a.client_order_id, 404, "not found"))
                elif not o.live:
                    v.emit(a.client_order_id, CancelFailed(a.client_order_id, 422, "filled"))
                else:
                    o.cancel_pending = True
            case Note():
                self.notes.append(a.event)
            case Finish():
                assert self.finished is None, "finished twice"
                self.finished = a
            case _:
                pass

    def quote(self, move: int, spread_ticks: int, *, age: float = 0.0) -> None:
        """Deliver a quote around the moving mid."""
        self.mid = max(D("1.00"), self.mid + D(move) / 100)
        bid = self.mid
        ask = bid + D(spread_ticks) / 100
        as_of = self.now - timedelta(seconds=age)
        if hasattr(self, "state"):
            q = Quote(self.state.spec.symbol, bid, ask, D(500), D(500), as_of, as_of)
            self.feed(QuoteUpdate(q))

    # -------------------------------------------------------------------- rules

    @rule(
        move=st.integers(-3, 3),
        spread=st.integers(-1, 8),
        age=st.sampled_from([0.0, 0.0, 10.0]),
    )
    def market_quote(self, move: int, spread: int, age: float) -> None:
        """A new NBBO: moved, maybe wide, crossed, locked or stale."""
        self.quote(move, spread, age=age)

    @rule(seconds=st.sampled_from([0.5, 2.0, 3.0, 6.0, 11.0, 31.0, 95.0, 400.0]))
    def clock(self, seconds: float) -> None:
        """Time passes; the leg is woken if its deadline is due."""
        self.now += timedelta(seconds=seconds)
        if self.state.deadline is not None and self.now >= self.state.deadline:
            self.feed(Wake())

    @precondition(lambda self: bool(self.venue.outbox))
    @rule(index=st.integers(0, 20))
    def deliver(self, index: int) -> None:
        """Deliver one pending venue event (reordered across orders)."""
        msg = self.venue.take(index)
        if msg is not None:
            self.feed(msg)

    @precondition(lambda self: bool(self.venue.delivered))
    @rule(index=st.integers(0, 50))
    def redeliver(self, index: int) -> None:
        """Deliver an already delivered event again."""
        self.feed(self.venue.delivered[index % len(self.venue.delivered)])

    @precondition(lambda self: bool(self.venue.live()))
    @rule(part=st.sampled_from([D(1), D(10), D(30), D(1000)]))
    def venue_fill(self, part: Decimal) -> None:
        """The venue executes part of the live order."""
        o = self.venue.live()[0]
        if o.status == "accepted":
            o.status = "new"
            self.venue.emit(o.cid, OrderUpdate(o.cid, K.NEW))
        self.venue.fill(o, part, self.now)

    @precondition(lambda self: any(o.status == "accepted" for o in self.venue.live()))
    @rule()
    def venue_ack(self) -> None:
        """The venue acknowledges an order."""
        for o in self.venue.live():
            if o.status == "accepted":
                o.status = "new"
                self.venue.emit(o.cid, OrderUpdate(o.cid, K.NEW))

    @precondition(lambda self: any(o.cancel_pending for o in self.venue.live()))
    @rule()
    def venue_cancel(self) -> None:
        """The venue processes a cancel request."""
        for o in self.venue.live():
            if o.cancel_pending:
                o.status = "terminal"
                self.venue.emit(o.cid, OrderUpdate(o.cid, K.CANCELED))

    @precondition(lambda self: any(o.replace_to for o in self.venue.orders.values()))
    @rule()
    def venue_replace(self) -> None:
        """The venue processes a replace: old → replaced, new order created (or rejected)."""
        self.process_replaces()

    def process_replaces(self) -> None:
        """Apply every pending replace (ALPACA.md §1.7)."""
        v = self.venue
        for o in list(v.orders.values()):
            if o.replace_to is None:
                continue
            new_cid, qty = o.replace_to
            o.replace_to = None
            if not o.live or o.cancel_pending:
                v.emit(o.cid, OrderUpdate(o.cid, K.ORDER_REPLACE_REJECTED))
                v.emit(new_cid, OrderUpdate(new_cid, K.REJECTED, "original filled"))
                continue
            o.status = "terminal"
            v.orders[new_cid] = VOrder(new_cid, qty, OrderType.LIMIT, status="new")
            v.emit(new_cid, OrderUpdate(new_cid, K.NEW))
            v.emit(o.cid, OrderReplaced(o.cid, new_cid))

    @precondition(lambda self: bool(self.venue.live()))
    @rule()
    def venue_expire(self) -> None:
        """The venue cancels the order on its own (e.g. TIF)."""
        o = self.venue.live()[0]
        o.status = "terminal"
        self.venue.emit(o.cid, OrderUpdate(o.cid, K.EXPIRED))

    @rule(dice=st.integers(0, 3))
    def refuse_next_place(self, dice: int) -> None:
        """Sometimes, the next POST /v2/orders will be refused."""
        self.venue.refuse_next = dice == 0

    @precondition(lambda self: self.finished is None)
    @rule(dice=st.integers(0, 5))
    def stop(self, dice: int) -> None:
        """Rarely, the plan is cancelled."""
        if dice == 0:
            self.feed(Stop("plan_cancelled"))

    # --------------------------------------------------------------- invariants

    @invariant()
    def one_live_order(self) -> None:
        """Never two live orders for the leg at the venue."""
        assert len(self.venue.live()) <= 1

    @invariant()
    def never_beyond_qty(self) -> None:
        """The leg never fills beyond its qty (a replace race excepted, and then noted)."""
        if self.venue.filled_total() > QTY:
            assert self.params.repeg_method == "replace"
            assert self.venue.race_fill
        assert self.state.executed_qty <= self.venue.filled_total()

    @invariant()
    def bounded_repegs(self) -> None:
        """Never more re-pegs than the style allows."""
        style = self.state.style
        limit = (
            self.params.max_repegs
            if style is PricingStyle.MARKETABLE
            else self.params.max_repegs_per_order
        )
        assert self.state.repegs <= self.state.repeg_rounds <= limit

    @invariant()
    def every_wait_has_a_deadline(self) -> None:
        """No silent stall: a leg that is not done always has a deadline."""
        if self.state.phase is not LegPhase.DONE:
            assert self.state.deadline is not None
        else:
            assert self.finished is not None

    def teardown(self) -> None:
        """A cooperative venue and a running clock always bring the leg to Finish."""
        if not hasattr(self, "state"):
            return
        for _ in range(400):
            if self.finished is not None:
                break
            v = self.venue
            self.process_replaces()
            for o in v.live():
                if o.cancel_pending:
                    o.status = "terminal"
                    v.emit(o.cid, OrderUpdate(o.cid, K.CANCELED))
                elif o.status == "accepted":
                    o.status = "new"
                    v.emit(o.cid, OrderUpdate(o.cid, K.NEW))
                elif o.order_type is OrderType.MARKET:
                    v.fill(o, o.qty, self.now)
            while v.outbox and self.finished is None:
                msg = v.take(0)
                assert msg is not None
                self.feed(msg)
            if self.finished is None:
                deadline = self.state.deadline
                self.now = max(self.now + timedelta(seconds=1), deadline or self.now)
                self.quote(0, 1)
                if self.state.deadline is not None and self.now >= self.state.deadline:
                    self.feed(Wake())
        assert self.finished is not None, f"leg stalled in {self.state.phase}"
        if self.finished.outcome is not Outcome.UNRESOLVED:
            assert not self.venue.live(), "finished with a live order"
        if self.finished.outcome is Outcome.FILLED:
            assert self.venue.filled_total() >= QTY


LadderMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=30)
TestLadderMachine = LadderMachine.TestCase
