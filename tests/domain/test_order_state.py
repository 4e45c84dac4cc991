"""The order transition table: races are legal, the impossible is loud (ALPACA.md §1.7–§3.4)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from execd.domain.order_state import (
    TERMINAL_STATUSES,
    Execution,
    InvalidTransition,
    OrderEvent,
    OrderEventKind,
    OrderState,
    OrderStatus,
    OverfillError,
    Race,
    apply_event,
    is_legal,
)

T0 = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
D = Decimal
K = OrderEventKind
S = OrderStatus


def ev(kind: OrderEventKind, exec_id: str = "", qty: str = "0") -> OrderEvent:
    """An event; fill kinds get an execution."""
    if kind.is_fill:
        return OrderEvent(kind, Execution(exec_id, D(qty), D("10.00"), T0))
    return OrderEvent(kind)


def run(order: OrderState, *events: OrderEvent) -> OrderState:
    """Apply events in order."""
    for e in events:
        order = apply_event(order, e).after
    return order


def order(status: OrderStatus = S.PENDING_SUBMIT, qty: str = "10") -> OrderState:
    """An order of `qty` shares in `status`."""
    return OrderState("xd-1", D(qty), status)


def test_happy_path() -> None:
    """accepted → new → partial → fill, with the fills summed."""
    o = run(order(), ev(K.ACCEPTED), ev(K.NEW), ev(K.PARTIAL_FILL, "e1", "4"))
    assert o.status is S.PARTIALLY_FILLED
    o = run(o, ev(K.FILL, "e2", "6"))
    assert o.status is S.FILLED
    assert o.filled_qty == D(10)


def test_duplicate_fill_is_dropped() -> None:
    """A redelivered execution id is counted once (trade-id dedup, STYLE.md)."""
    o = run(order(S.NEW), ev(K.PARTIAL_FILL, "e1", "4"))
    t = apply_event(o, ev(K.PARTIAL_FILL, "e1", "4"))
    assert t.duplicate
    assert t.after.filled_qty == D(4)


def test_overfill_is_an_error_not_clipped() -> None:
    """A fill beyond qty raises and leaves the order unchanged."""
    o = run(order(S.NEW), ev(K.PARTIAL_FILL, "e1", "8"))
    with pytest.raises(OverfillError):
        apply_event(o, ev(K.PARTIAL_FILL, "e2", "3"))
    assert o.filled_qty == D(8)


def test_fill_after_cancel_request_is_a_named_race() -> None:
    """pending_cancel + fill: the shares count and the race is named (ALPACA.md §1.8)."""
    o = run(order(S.NEW), ev(K.PENDING_CANCEL))
    t = apply_event(o, ev(K.PARTIAL_FILL, "e1", "3"))
    assert t.race is Race.FILL_AFTER_CANCEL_REQUEST
    assert t.after.status is S.PENDING_CANCEL
    assert run(t.after, ev(K.CANCELED)).filled_qty == D(3)


def test_partial_fill_during_pending_replace() -> None:
    """pending_replace + partial fill stays pending_replace with the fill counted."""
    o = run(order(S.NEW), ev(K.PENDING_REPLACE))
    t = apply_event(o, ev(K.PARTIAL_FILL, "e1", "3"))
    assert t.race is Race.FILL_DURING_PENDING_REPLACE
    assert t.after.status is S.PENDING_REPLACE
    assert t.after.filled_qty == D(3)


def test_replace_rejected_because_original_filled() -> None:
    """filled + order_replace_rejected is legal, named, and stays filled (ALPACA.md §1.7)."""
    o = run(order(S.NEW), ev(K.PENDING_REPLACE), ev(K.FILL, "e1", "10"))
    t = apply_event(o, ev(K.ORDER_REPLACE_REJECTED))
    assert t.race is Race.REPLACE_REJECTED_AFTER_FILL
    assert t.after.status is S.FILLED


def test_refused_replace_goes_back_to_working() -> None:
    """A rejected replace returns the order to new / partially_filled by its fills."""
    o = run(order(S.NEW), ev(K.PENDING_REPLACE), ev(K.ORDER_REPLACE_REJECTED))
    assert o.status is S.NEW
    o = run(
        order(S.NEW),
        ev(K.PENDING_CANCEL),
        ev(K.PARTIAL_FILL, "e", "2"),
        ev(K.ORDER_CANCEL_REJECTED),
    )
    assert o.status is S.PARTIALLY_FILLED


def test_replaced_from_any_open_status() -> None:
    """`replaced` may come before or after anything else on the old order."""
    for s in (S.PENDING_SUBMIT, S.NEW, S.PARTIALLY_FILLED, S.PENDING_REPLACE):
        assert run(order(s), ev(K.REPLACED)).status is S.REPLACED


def test_late_status_never_moves_back() -> None:
    """`new` after a partial fill is absorbed as a late status."""
    o = run(order(S.NEW), ev(K.PARTIAL_FILL, "e1", "2"))
    t = apply_event(o, ev(K.NEW))
    assert t.race is Race.LATE_STATUS
    assert t.after.status is S.PARTIALLY_FILLED


def test_partial_fills_completing_the_qty_mean_filled() -> None:
    """Partial fills summing to qty make the order filled, even during a pending cancel."""
    o = run(order(S.NEW), ev(K.PENDING_CANCEL), ev(K.PARTIAL_FILL, "a", "10"))
    assert o.status is S.FILLED


def test_fill_event_counts_the_whole_order() -> None:
    """After `fill`, the order's executed qty is its qty even if a partial was lost."""
    o = run(order(S.NEW), ev(K.FILL, "e2", "6"))
    assert o.filled_qty == D(6)
    assert o.executed_qty == D(10)


def test_impossible_transitions_raise() -> None:
    """Fills on rejected orders, replace during cancel, late place refusals, busts."""
    with pytest.raises(InvalidTransition):
        apply_event(order(S.REJECTED), ev(K.FILL, "e", "1"))
    with pytest.raises(InvalidTransition):
        apply_event(order(S.PENDING_CANCEL), ev(K.PENDING_REPLACE))
    with pytest.raises(InvalidTransition):
        apply_event(order(S.NEW), ev(K.PLACE_REFUSED))
    with pytest.raises(InvalidTransition):
        apply_event(order(S.NEW), ev(K.TRADE_BUST))
    with pytest.raises(InvalidTransition, match="positive execution"):
        apply_event(order(S.NEW), ev(K.FILL, "e", "0"))


def test_place_refused_rejects_a_pending_submit() -> None:
    """A REST 4xx before any venue event makes the order rejected (terminal)."""
    assert run(order(), ev(K.PLACE_REFUSED)).status is S.REJECTED


def test_table_covers_every_open_status_and_event() -> None:
    """Every open status has an entry for every trade_updates event except the listed gaps."""
    gaps = {K.TRADE_BUST, K.TRADE_CORRECT, K.PLACE_REFUSED}
    for s in S:
        for k in K:
            if k in gaps or (s is S.PENDING_CANCEL and k is K.PENDING_REPLACE):
                continue
            if s is S.REJECTED and k.is_fill:
                assert not is_legal(s, k)
                continue
            assert is_legal(s, k), (s, k)


QTY = D(10)
kinds = st.sampled_from([k for k in K if not k.is_fill])


class OrderMachine(RuleBasedStateMachine):
    """Random, duplicated and reordered venue events against one order."""

    def __init__(self) -> None:
        super().__init__()
        self.order = OrderState("xd-m", QTY)
        self.seen: list[OrderEvent] = []
        self.prev_filled = D(0)
        self.prev_terminal: OrderStatus | None = None

    @initialize()
    def start(self) -> None:
        """The machine starts with an order nobody has heard of yet."""
        assert self.order.status is S.PENDING_SUBMIT

    def _apply(self, event: OrderEvent) -> None:
        before = self.order
        legal = is_legal(before.status, event.kind)
        try:
            self.order = apply_event(before, event).after
        except OverfillError:
            assert event.execution is not None
            assert before.filled_qty + event.execution.qty > QTY
            assert self.order is before
        except InvalidTransition:
            assert not legal or (event.execution is not None and event.execution.qty <= 0)
            assert self.order is before
        else:
            assert legal
            self.seen.append(event)

    @rule(kind=kinds)
    def status_event(self, kind: OrderEventKind) -> None:
        """Any status event at any time."""
        self._apply(OrderEvent(kind))

    @rule(
        exec_id=st.sampled_from(["e1", "e2", "e3", "e4", "e5"]),
        qty=st.integers(1, 6),
        final=st.booleans(),
    )
    def fill(self, exec_id: str, qty: int, final: bool) -> None:
        """A fill or partial fill; execution ids repeat so duplicates happen."""
        kind = K.FILL if final else K.PARTIAL_FILL
        self._apply(OrderEvent(kind, Execution(exec_id, D(qty), D("10"), T0)))

    @precondition(lambda self: bool(self.seen))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        """Redeliver an earlier event (duplicate / reordered delivery)."""
        self._apply(data.draw(st.sampled_from(self.seen)))

    @invariant()
    def filled_is_monotonic_and_bounded(self) -> None:
        """Filled qty never decreases and never exceeds the order qty."""
        assert self.prev_filled <= self.order.filled_qty <= QTY
        self.prev_filled = self.order.filled_qty
        ids = [e.execution_id for e in self.order.executions]
        assert len(ids) == len(set(ids))

    @invariant()
    def terminal_absorbs(self) -> None:
        """Once terminal, the status never changes."""
        if self.prev_terminal is not None:
            assert self.order.status is self.prev_terminal
        if self.order.status in TERMINAL_STATUSES:
            self.prev_terminal = self.order.status


TestOrderMachine = OrderMachine.TestCase
