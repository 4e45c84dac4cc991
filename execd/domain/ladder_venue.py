"""The ladder's bookkeeping of venue events: one leg's orders through the transition table.

Split from `ladder.py` so the decisions stay readable. Everything here only
records what the venue said (ALPACA.md §3.4, §1.7–§1.8) into `LegState`
through `order_state.apply_event`, notes races and impossible events loudly,
and never decides what to do next: `ladder._advance` does that.
"""

from __future__ import annotations

from typing import assert_never

from execd.domain.ladder_replace import replace
from execd.domain.ladder_types import (
    Action,
    CancelFailed,
    CancelOrder,
    LadderEvent,
    LegPhase,
    LegState,
    Note,
    OrderFill,
    OrderReplaced,
    OrderUpdate,
    PlaceFailed,
    ReplaceFailed,
)
from execd.domain.order_state import (
    Execution,
    OrderEvent,
    OrderEventKind,
    OrderStateError,
    OrderStatus,
    Race,
    apply_event,
)

__all__ = ["after_done", "apply_order_event", "on_venue"]

_Acts = list[Action]


def apply_order_event(s: LegState, cid: str, event: OrderEvent, acts: _Acts) -> LegState:
    """Apply one event to one of the leg's orders through the transition table (or note why not)."""
    order = s.order(cid)
    if order is None:
        return _stray(s, cid, event, acts)
    if order.status is OrderStatus.REJECTED and event.kind in _LANDED:
        # Never at the venue as far as the leg knew (its place taken as refused after
        # 404 look-ups), yet here it is: a lost copy landed late. Its shares are real and
        # counted; it is cancelled at once (lane ghost: it used to be ignored, live).
        return _stray(s, cid, event, acts, note="leg_order_landed_after_refusal")
    try:
        t = apply_event(order, event)
    except OrderStateError as exc:
        acts.append(
            Note(
                "order_event_rejected",
                {
                    "client_order_id": cid,
                    "event": str(event.kind),
                    "status": str(order.status),
                    "error": str(exc),
                    "kind": type(exc).__name__,
                },
                "error",
            )
        )
        return s
    if t.race is not None and t.race is not Race.LATE_STATUS:
        acts.append(Note("order_race", {"client_order_id": cid, "race": str(t.race)}, "warning"))
    if not t.changed:
        return s
    orders = tuple(t.after if o.client_order_id == cid else o for o in s.orders)
    if t.after.status is not order.status:
        acts.append(
            Note(
                "order_status",
                {"client_order_id": cid, "from": str(order.status), "to": str(t.after.status)},
                "debug",
            )
        )
    return replace(s, orders=orders)


_LIVE_EVENTS = (
    OrderEventKind.NEW,
    OrderEventKind.ACCEPTED,
    OrderEventKind.PENDING_NEW,
    OrderEventKind.PARTIAL_FILL,
)
"""Events after which the order is (still) working: something to cancel."""
_LANDED = (*_LIVE_EVENTS, OrderEventKind.FILL)
"""Events only an order the venue holds can have (a refused one never gets them)."""


def _stray(
    s: LegState, cid: str, event: OrderEvent, acts: _Acts, note: str = "leg_unknown_order_event"
) -> LegState:
    """An event for an order this leg does not hold as live (never sent, or taken as
    refused): count its shares, cancel it if live."""
    acts.append(Note(note, {"client_order_id": cid, "event": str(event.kind)}, "error"))
    e = event.execution
    if e is not None and all(x.execution_id != e.execution_id for x in s.stray_fills):
        s = replace(s, stray_fills=(*s.stray_fills, e))
    if event.kind in _LIVE_EVENTS:
        acts.append(CancelOrder(cid))
    return s


def _mark_refused(s: LegState, cid: str | None, acts: _Acts) -> LegState:
    """An order the venue will never create (its place or replace was refused)."""
    if cid is None:
        return s
    order = s.order(cid)
    if order is None or order.status is not OrderStatus.PENDING_SUBMIT:
        return s
    return apply_order_event(s, cid, OrderEvent(OrderEventKind.PLACE_REFUSED), acts)


def on_venue(
    s: LegState,
    event: OrderUpdate | OrderFill | OrderReplaced | PlaceFailed | ReplaceFailed | CancelFailed,
    acts: _Acts,
) -> LegState:
    match event:
        case OrderFill():
            kind = OrderEventKind.FILL if event.final else OrderEventKind.PARTIAL_FILL
            ex = Execution(event.execution_id, event.qty, event.price, event.timestamp)
            if s.phase is LegPhase.REPLACING and event.client_order_id == s.working_id:
                acts.append(
                    Note(
                        "leg_replace_race_fill",
                        {"client_order_id": event.client_order_id, "qty": str(event.qty)},
                        "warning",
                    )
                )
            acts.append(
                Note(
                    "order_filled" if event.final else "order_partially_filled",
                    {
                        "client_order_id": event.client_order_id,
                        "execution_id": event.execution_id,
                        "qty": str(event.qty),
                        "price": str(event.price),
                    },
                )
            )
            return apply_order_event(s, event.client_order_id, OrderEvent(kind, ex), acts)
        case OrderUpdate():
            if event.kind.is_fill or event.kind is OrderEventKind.REPLACED:
                acts.append(Note("leg_malformed_event", {"kind": str(event.kind)}, "error"))
                return s
            if event.kind is OrderEventKind.REJECTED:
                s = replace(s, end_reason=event.reason or "rejected")
            s = apply_order_event(s, event.client_order_id, OrderEvent(event.kind), acts)
            if (
                event.kind is OrderEventKind.ORDER_REPLACE_REJECTED
                and event.client_order_id == s.working_id
            ):
                acts.append(Note("leg_replace_rejected", {"reason": event.reason}, "warning"))
                s = _mark_refused(s, s.replace_to, acts)
            return s
        case OrderReplaced():
            new = event.new_client_order_id
            if new is not None and s.order(new) is None:
                acts.append(Note("leg_unknown_successor", {"new_client_order_id": new}, "error"))
            return apply_order_event(
                s, event.client_order_id, OrderEvent(OrderEventKind.REPLACED), acts
            )
        case PlaceFailed():
            definitive = 400 <= event.status < 500
            acts.append(
                Note(
                    "order_place_failed",
                    {
                        "client_order_id": event.client_order_id,
                        "status": event.status,
                        "message": event.message,
                        "definitive": definitive,
                    },
                    "warning",
                )
            )
            if not definitive:
                return s  # fate unknown: the CONFIRM/REPEG timer resolves it by cancel
            s = replace(s, end_reason=event.message or "place_refused")
            return _mark_refused(s, event.client_order_id, acts)
        case ReplaceFailed():
            definitive = 400 <= event.status < 500
            acts.append(
                Note(
                    "order_replace_failed",
                    {
                        "client_order_id": event.client_order_id,
                        "new_client_order_id": event.new_client_order_id,
                        "status": event.status,
                        "message": event.message,
                        "definitive": definitive,
                    },
                    "warning",
                )
            )
            return _mark_refused(s, event.new_client_order_id, acts) if definitive else s
        case CancelFailed():
            # 422 "already filled" means a fill is on its way; the stream decides.
            acts.append(
                Note(
                    "order_cancel_failed",
                    {
                        "client_order_id": event.client_order_id,
                        "status": event.status,
                        "message": event.message,
                    },
                    "warning",
                )
            )
            return s
        case _:
            assert_never(event)


def after_done(s: LegState, event: LadderEvent, acts: _Acts) -> LegState:
    """Late events after Finish: keep the books right, act no more, say so."""
    match event:
        case OrderFill() | OrderUpdate() | OrderReplaced():
            s2 = on_venue(s, event, acts)
            fill = isinstance(event, OrderFill)
            acts.append(
                Note(
                    "leg_event_after_finish",
                    {"event": type(event).__name__},
                    "error" if fill else "warning",
                )
            )
            return s2
        case _:
            return s
