"""One order's lifecycle as an explicit transition table, pure.

Alpaca reports an order's life as `trade_updates` events (ALPACA.md §3.4)
and its state as an order status (§1.9). execd keeps one `OrderState` per
order it placed and changes it in exactly one function, `apply_event`, which
looks the pair `(status, event)` up in `TRANSITIONS`. A pair that is not in
the table is impossible and raises `InvalidTransition` — loudly, never
silently ignored. The venue races that *do* happen are legal transitions,
each named (`Race`) and commented where the table is built:

- a fill after a cancel request (`pending_cancel` + fill, §1.8);
- a replace rejected because the original filled (`filled` +
  `order_replace_rejected`, §1.7);
- a partial fill while a replace is pending (`pending_replace` + fill, §1.7);
- a fill delivered after the order already went terminal (reordering);
- a late status event after a later one (e.g. `new` after `partial_fill`);
- `replaced` on the old order arriving after the new order's `new` (§1.7,
  GH alpaca-trade-api-csharp#149): legal here because `replaced` is accepted
  from every open status; the leg (ladder.py) names the cross-order race.

Fills are deduplicated by `execution_id` (the stream may redeliver), and an
order can never hold more filled quantity than its quantity: a fill that
would exceed it raises `OverfillError` instead of being clipped, because a
clipped fill hides real shares. Terminal states absorb: once filled,
canceled, expired, replaced or rejected, the status never changes again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class OrderStatus(StrEnum):
    """Alpaca order statuses (ALPACA.md §1.9) plus execd's local `pending_submit`.

    `pending_submit`: execd asked the REST gateway to place (or a replace to
    create) the order and has heard nothing from the venue yet.
    """

    PENDING_SUBMIT = "pending_submit"
    ACCEPTED = "accepted"
    PENDING_NEW = "pending_new"
    ACCEPTED_FOR_BIDDING = "accepted_for_bidding"
    HELD = "held"
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    DONE_FOR_DAY = "done_for_day"
    STOPPED = "stopped"
    SUSPENDED = "suspended"
    CALCULATED = "calculated"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REPLACED = "replaced"
    REJECTED = "rejected"

    @property
    def is_terminal(self) -> bool:
        """Filled, canceled, expired, replaced or rejected: no further change (§1.9)."""
        return self in TERMINAL_STATUSES

    @property
    def is_acknowledged(self) -> bool:
        """At the exchange and replaceable: Alpaca refuses PATCH before this (§1.7)."""
        return self in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


TERMINAL_STATUSES = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.EXPIRED,
        OrderStatus.REPLACED,
        OrderStatus.REJECTED,
    }
)
_TERMINAL_VALUES = frozenset(s.value for s in TERMINAL_STATUSES)


def is_live_status(status: str) -> bool:
    """Whether an order Alpaca reports in `status` (the wire value) may still trade.

    Every status that is not terminal is live: the rare ones of §1.9 (`done_for_day`,
    `accepted_for_bidding`, `stopped`, `calculated`, ...), `pending_replace` and
    `pending_cancel` (either may end with the order still working), and any status Alpaca
    adds later. An allow-list of open statuses left those working through `execd halt`."""
    return status not in _TERMINAL_VALUES


class OrderEventKind(StrEnum):
    """`trade_updates` event names (ALPACA.md §3.4) plus the REST refusal of a place."""

    ACCEPTED = "accepted"
    PENDING_NEW = "pending_new"
    HELD = "held"
    NEW = "new"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    DONE_FOR_DAY = "done_for_day"
    STOPPED = "stopped"
    SUSPENDED = "suspended"
    CALCULATED = "calculated"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REPLACED = "replaced"
    REJECTED = "rejected"
    ORDER_REPLACE_REJECTED = "order_replace_rejected"
    ORDER_CANCEL_REJECTED = "order_cancel_rejected"
    RESTATED = "restated"
    TRADE_BUST = "trade_bust"
    TRADE_CORRECT = "trade_correct"
    # Local: POST /v2/orders answered 4xx, the order never existed (ALPACA.md §0.5).
    PLACE_REFUSED = "place_refused"

    @property
    def is_fill(self) -> bool:
        """Fill and partial fill carry an execution (ALPACA.md §3.3)."""
        return self in (OrderEventKind.FILL, OrderEventKind.PARTIAL_FILL)


class Race(StrEnum):
    """Venue races that are legal transitions, named for the decision log."""

    FILL_AFTER_CANCEL_REQUEST = "fill_after_cancel_request"
    FILL_DURING_PENDING_REPLACE = "fill_during_pending_replace"
    REPLACE_REJECTED_AFTER_FILL = "replace_rejected_after_fill"
    CANCEL_REJECTED_AFTER_FILL = "cancel_rejected_after_fill"
    FILL_AFTER_TERMINAL = "fill_after_terminal"
    LATE_STATUS = "late_status"
    REPLACED_AFTER_SUCCESSOR_NEW = "replaced_after_successor_new"


class OrderStateError(Exception):
    """Base of the order state machine's errors."""


class InvalidTransition(OrderStateError):
    """An event that cannot happen to an order in its current status."""


class OverfillError(OrderStateError):
    """A fill that would take an order's filled quantity beyond its quantity."""


_ZERO = Decimal(0)  # immutable: shared as the start of every sum


@dataclass(frozen=True, slots=True)
class Execution:
    """One fill as `trade_updates` reports it: per-execution qty and price (§3.3)."""

    execution_id: str
    qty: Decimal
    price: Decimal
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One event for one order; `execution` is required for fill kinds."""

    kind: OrderEventKind
    execution: Execution | None = None


@dataclass(frozen=True, slots=True)
class OrderState:
    """What execd knows about one order: its status and its deduplicated fills."""

    client_order_id: str
    qty: Decimal
    status: OrderStatus = OrderStatus.PENDING_SUBMIT
    executions: tuple[Execution, ...] = ()

    def __post_init__(self) -> None:
        if self.qty <= 0:
            raise ValueError(f"order qty must be positive: {self.qty}")

    @property
    def filled_qty(self) -> Decimal:
        """The sum of the executions seen (each execution id counted once)."""
        if not self.executions:
            return _ZERO  # the common case on the ladder's hot path: no generator, no Decimal
        return sum((e.qty for e in self.executions), _ZERO)

    @property
    def executed_qty(self) -> Decimal:
        """What is certainly spent of this order: all of it once the venue says filled.

        A `fill` event means "completely filled" even if an earlier partial fill
        was lost on the stream; sizing the next order from `filled_qty` then
        would buy those shares twice. So a filled order counts as its full qty.
        """
        return self.qty if self.status is OrderStatus.FILLED else self.filled_qty

    @property
    def is_terminal(self) -> bool:
        """No further status change is possible."""
        return self.status.is_terminal

    def has_execution(self, execution_id: str) -> bool:
        """True when this execution was already counted."""
        return any(e.execution_id == execution_id for e in self.executions)


@dataclass(frozen=True, slots=True)
class Transition:
    """The result of one event: the new state, whether it changed nothing, and any race."""

    before: OrderState
    after: OrderState
    duplicate: bool = False
    race: Race | None = None

    @property
    def changed(self) -> bool:
        """True when the event changed the status or added an execution."""
        return self.after != self.before


# Rank of the open statuses on the normal path, so that a late status event
# never moves an order backwards (ALPACA.md §9: events can arrive late).
_RANK: Mapping[OrderStatus, int] = {
    OrderStatus.PENDING_SUBMIT: 0,
    OrderStatus.ACCEPTED: 1,
    OrderStatus.PENDING_NEW: 2,
    OrderStatus.ACCEPTED_FOR_BIDDING: 2,
    OrderStatus.HELD: 2,
    OrderStatus.NEW: 3,
    OrderStatus.PARTIALLY_FILLED: 4,
    OrderStatus.DONE_FOR_DAY: 4,
    OrderStatus.STOPPED: 4,
    OrderStatus.SUSPENDED: 4,
    OrderStatus.CALCULATED: 4,
    OrderStatus.PENDING_CANCEL: 5,
    OrderStatus.PENDING_REPLACE: 5,
}
_OPEN = tuple(_RANK)
_PENDING_OPS = (OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE)

_STATUS_EVENTS: Mapping[OrderEventKind, OrderStatus] = {
    OrderEventKind.ACCEPTED: OrderStatus.ACCEPTED,
    OrderEventKind.PENDING_NEW: OrderStatus.PENDING_NEW,
    OrderEventKind.HELD: OrderStatus.HELD,
    OrderEventKind.NEW: OrderStatus.NEW,
    OrderEventKind.DONE_FOR_DAY: OrderStatus.DONE_FOR_DAY,
    OrderEventKind.STOPPED: OrderStatus.STOPPED,
    OrderEventKind.SUSPENDED: OrderStatus.SUSPENDED,
    OrderEventKind.CALCULATED: OrderStatus.CALCULATED,
}
_TERMINAL_EVENTS: Mapping[OrderEventKind, OrderStatus] = {
    OrderEventKind.CANCELED: OrderStatus.CANCELED,
    OrderEventKind.EXPIRED: OrderStatus.EXPIRED,
    OrderEventKind.REPLACED: OrderStatus.REPLACED,
    OrderEventKind.REJECTED: OrderStatus.REJECTED,
}

# Target of a transition. `None` as a target means "depends on the fills":
# partially_filled when something filled, else new (used when a pending
# cancel/replace is refused and the order simply goes on working).
Target = OrderStatus | None
Entry = tuple[Target, Race | None]


def _build_table() -> dict[tuple[OrderStatus, OrderEventKind], Entry]:
    """Every legal (status, event) pair; anything absent is impossible."""
    t: dict[tuple[OrderStatus, OrderEventKind], Entry] = {}
    for s in _OPEN:
        in_op = s in _PENDING_OPS
        # Status events move forward, never back: a late `new` after a
        # partial fill, or during a pending cancel/replace, is absorbed.
        for kind, target in _STATUS_EVENTS.items():
            if in_op or _RANK[target] < _RANK[s] or (target is s):
                t[s, kind] = (s, None if target is s else Race.LATE_STATUS)
            else:
                t[s, kind] = (target, None)
        if s is OrderStatus.PENDING_CANCEL:
            # Race: fills land between the cancel request and its confirmation
            # (ALPACA.md §1.8, LESSONS.md "fills land during a cancel").
            t[s, OrderEventKind.PARTIAL_FILL] = (s, Race.FILL_AFTER_CANCEL_REQUEST)
            t[s, OrderEventKind.FILL] = (OrderStatus.FILLED, Race.FILL_AFTER_CANCEL_REQUEST)
        elif s is OrderStatus.PENDING_REPLACE:
            # Race: a partial fill while the replace is in flight; the order
            # stays pending_replace. A complete fill ends it, and the replace
            # will then be rejected (ALPACA.md §1.7).
            t[s, OrderEventKind.PARTIAL_FILL] = (s, Race.FILL_DURING_PENDING_REPLACE)
            t[s, OrderEventKind.FILL] = (OrderStatus.FILLED, Race.FILL_DURING_PENDING_REPLACE)
        else:
            # A fill before `new` was seen is a late `new`, not an error.
            t[s, OrderEventKind.PARTIAL_FILL] = (OrderStatus.PARTIALLY_FILLED, None)
            t[s, OrderEventKind.FILL] = (OrderStatus.FILLED, None)
        for kind, target in _TERMINAL_EVENTS.items():
            t[s, kind] = (target, None)
        # `replaced` is legal from every open status: the old order's
        # `replaced` may arrive after the new order's `new` and after the old
        # order's own status events, in any order (ALPACA.md §1.7, §9).
        t[s, OrderEventKind.PENDING_CANCEL] = (OrderStatus.PENDING_CANCEL, None)
        if s is not OrderStatus.PENDING_CANCEL:
            t[s, OrderEventKind.PENDING_REPLACE] = (OrderStatus.PENDING_REPLACE, None)
        # A refused replace or cancel leaves the order working as it was.
        t[s, OrderEventKind.ORDER_REPLACE_REJECTED] = (
            None if s is OrderStatus.PENDING_REPLACE else s,
            None,
        )
        t[s, OrderEventKind.ORDER_CANCEL_REJECTED] = (
            None if s is OrderStatus.PENDING_CANCEL else s,
            None,
        )
        t[s, OrderEventKind.RESTATED] = (s, None)
    # The REST gateway's refusal only means something before the venue spoke.
    t[OrderStatus.PENDING_SUBMIT, OrderEventKind.PLACE_REFUSED] = (OrderStatus.REJECTED, None)

    for s in TERMINAL_STATUSES:
        # Terminal states absorb every status event (duplicates, late ones).
        for kind in (*_STATUS_EVENTS, *_TERMINAL_EVENTS, OrderEventKind.RESTATED):
            t[s, kind] = (s, None if kind in _TERMINAL_EVENTS else Race.LATE_STATUS)
        t[s, OrderEventKind.PENDING_CANCEL] = (s, Race.LATE_STATUS)
        t[s, OrderEventKind.PENDING_REPLACE] = (s, Race.LATE_STATUS)
        if s is not OrderStatus.REJECTED:
            # Race: an execution delivered after the terminal event (reordered
            # stream, or a partial fill redelivered after the final fill). The
            # shares are real, so they are counted; the status stays.
            t[s, OrderEventKind.PARTIAL_FILL] = (s, Race.FILL_AFTER_TERMINAL)
            t[s, OrderEventKind.FILL] = (s, Race.FILL_AFTER_TERMINAL)
        t[s, OrderEventKind.ORDER_CANCEL_REJECTED] = (
            s,
            Race.CANCEL_REJECTED_AFTER_FILL if s is OrderStatus.FILLED else None,
        )
        t[s, OrderEventKind.ORDER_REPLACE_REJECTED] = (
            s,
            # Race: PATCH answered 200, then the original filled first, so the
            # replacement is rejected (ALPACA.md §1.7).
            Race.REPLACE_REJECTED_AFTER_FILL if s is OrderStatus.FILLED else None,
        )
    # Impossible, hence absent: a fill on a rejected order (it never traded);
    # a replace requested on an order being canceled (execd never does both);
    # place_refused after the venue acknowledged the order; trade busts and
    # corrections (broker-API only, ALPACA.md §3.4: reconcile over REST).
    return t


TRANSITIONS: Mapping[tuple[OrderStatus, OrderEventKind], Entry] = _build_table()


def is_legal(status: OrderStatus, kind: OrderEventKind) -> bool:
    """True when `kind` can happen to an order in `status`."""
    return (status, kind) in TRANSITIONS


def apply_event(order: OrderState, event: OrderEvent) -> Transition:
    """The one place an order's state changes.

    Raises `InvalidTransition` for an impossible pair or a malformed fill and
    `OverfillError` for a fill beyond the order's qty; the order is unchanged
    in both cases. A fill whose execution id was already counted is a
    duplicate: nothing changes.
    """
    entry = TRANSITIONS.get((order.status, event.kind))
    if entry is None:
        raise InvalidTransition(
            f"order {order.client_order_id}: {event.kind} is impossible in status {order.status}"
        )
    target, race = entry
    executions = order.executions
    if event.kind.is_fill:
        execution = event.execution
        if execution is None or execution.qty <= 0:
            raise InvalidTransition(
                f"order {order.client_order_id}: {event.kind} without a positive execution"
            )
        if order.has_execution(execution.execution_id):
            return Transition(order, order, duplicate=True)
        if order.filled_qty + execution.qty > order.qty:
            raise OverfillError(
                f"order {order.client_order_id}: execution {execution.execution_id} of "
                f"{execution.qty} would fill {order.filled_qty + execution.qty} of {order.qty}"
            )
        executions = (*executions, execution)
    filled = sum((e.qty for e in executions), Decimal(0))
    if target is None:
        target = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW
    if not target.is_terminal and filled >= order.qty:
        # Every share executed (also during a pending cancel or replace): the
        # order is done whatever is still in flight, and the `fill` event may
        # still be on its way.
        target = OrderStatus.FILLED
    after = replace(order, status=target, executions=executions)
    return Transition(order, after, duplicate=after == order, race=race)


def unseen_fill_price(
    venue_avg: Decimal, venue_filled: Decimal, known: tuple[Execution, ...]
) -> Decimal:
    """Average price of the shares the venue reports filled that no event told us about.

    A reconciliation over REST sees only the order's `filled_qty` and `filled_avg_price`;
    the executions already counted are taken out of that average, so the shares added
    carry the price they really traded at (on average) and the leg's VWAP stays exact.
    """
    known_qty = sum((e.qty for e in known), Decimal(0))
    known_notional = sum((e.qty * e.price for e in known), Decimal(0))
    missing = venue_filled - known_qty
    if missing <= 0:
        return venue_avg
    return (venue_avg * venue_filled - known_notional) / missing
