"""Crash recovery's pure helpers: which resumed order may go on working untouched, how it
is watched, and which attempt number a resumed leg continues with (ALPACA.md §1.9, §0.5).
"""

from __future__ import annotations

from datetime import datetime

from execd.domain.ids import client_order_id
from execd.domain.ladder_basics import (
    arm,
    repeg_timeout,
    secs,
)
from execd.domain.ladder_replace import replace
from execd.domain.ladder_types import (
    Action,
    AdoptedOrder,
    LadderParams,
    LegPhase,
    LegState,
    Note,
    OrderType,
    Resume,
    Timer,
)
from execd.domain.order_state import OrderStatus
from execd.domain.prices import apply_cap

_Acts = list[Action]


# Statuses in which a resumed order is simply watched on: the venue has it and
# nothing execd asked of it is in flight (ALPACA.md §1.9). Pending cancel or
# replace, pending_submit (the venue may not know it) and the venue's own
# holds (done_for_day, stopped, …) are cancelled and re-priced instead.
ADOPTABLE = frozenset(
    {
        OrderStatus.NEW,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.ACCEPTED,
        OrderStatus.PENDING_NEW,
        OrderStatus.HELD,
        OrderStatus.ACCEPTED_FOR_BIDDING,
    }
)


def free_attempt(s: LegState, ev: Resume) -> int:
    """`next_attempt`, moved past any id already among the orders: Alpaca refuses a
    reused client order id for ever (ALPACA.md §0.5), which would fail the leg."""
    used = {o.client_order_id for o in ev.orders}
    attempt = ev.next_attempt
    while client_order_id(s.spec.plan_id, s.spec.leg_index, attempt) in used:
        attempt += 1
    return attempt


def adoptable(
    s: LegState, ev: Resume, now: datetime, p: LadderParams
) -> tuple[AdoptedOrder | None, str]:
    """The one live order that can go on working untouched, or why there is none."""
    live = s.live_orders
    if len(live) != 1:
        return None, "several_live_orders"  # e.g. a replace was in flight
    order = live[0]
    adopted = next(o for o in ev.orders if o.client_order_id == order.client_order_id)
    session = s.spec.session
    if session is not None and now < session.open:
        return None, "before_open"  # the ladder never works an order before the open
    if order.status not in ADOPTABLE:
        return None, f"status_{order.status}"
    if order.qty - order.executed_qty > s.remaining:
        return None, "oversized"
    if adopted.order_type is OrderType.LIMIT:
        if adopted.limit_price is None:
            return None, "limit_without_price"
        cap = s.spec.limit_price
        if cap is not None and apply_cap(s.spec.side, adopted.limit_price, cap) != (
            adopted.limit_price
        ):
            return None, "limit_beyond_cap"  # never price through the plan's limit
    return adopted, ""


def adopt_order(
    s: LegState, a: AdoptedOrder, now: datetime, p: LadderParams, acts: _Acts
) -> LegState:
    """Watch a resumed order as the working order: a market (or fallback) order on the
    fallback timer, a ladder limit on the re-peg timer with its passive patience counted
    from now."""
    fallback = a.fallback or a.order_type is OrderType.MARKET or not p.enable_smart_execution
    order = s.order(a.client_order_id)
    assert order is not None
    acts.append(
        Note(
            "leg_order_adopted",
            {
                "client_order_id": a.client_order_id,
                "status": str(order.status),
                "order_type": str(a.order_type),
                "qty": str(order.qty),
                "open_qty": str(order.qty - order.executed_qty),
                "limit_price": None if a.limit_price is None else str(a.limit_price),
                "fallback": fallback,
                "remaining": str(s.remaining),
            },
        )
    )
    s = replace(
        s,
        working_id=a.client_order_id,
        limit_price=a.limit_price,
        priced_mid=None,
        phase=LegPhase.WORKING,
        in_fallback=fallback,
        # The passive patience starts again here: the first placement's time was lost
        # with the restart, and without a start the patience never runs out, so a still
        # market's free re-checks would hold the leg until the close. Counted from the
        # restart, the leg waits at most one more patience, like a re-placed resumed leg.
        first_placed_at=now,
        first_placed_id=a.client_order_id,
    )
    if fallback:
        return arm(s, Timer.FALLBACK, now + secs(p.fallback_timeout_seconds))
    return arm(s, Timer.REPEG, now + repeg_timeout(now, s, p))
