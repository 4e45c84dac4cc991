"""Step 4 of the ladder, pure: the fallback per urgency (DESIGN.md "The ladder").

Low urgency never sends a market order: it ends cleanly. Normal and high send the fallback
for the confirmed remainder — by default a collared limit `fallback_collar_bps` beyond the
far side of a fresh quote (then capped by the plan), re-priced a bounded number of times by
the FALLBACK timer (`ladder`); the seeds' plain market order (a limit at the plan's cap when
it has one) only when `fallback_order = "market"`. Legacy mode's one market order is placed
here too. Nothing is sent into a halted book, and a collar is priced only from a usable
quote.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from execd.domain.ladder_basics import (
    arm,
    cancel_live,
    collar_price,
    finish,
    next_cid,
    quote_fields,
    secs,
)
from execd.domain.ladder_quotes import request_quote
from execd.domain.ladder_replace import replace
from execd.domain.ladder_types import (
    Action,
    AfterCancel,
    LadderParams,
    LegPhase,
    LegState,
    Note,
    OrderType,
    Outcome,
    PlaceOrder,
    QuotePurpose,
    Timer,
)
from execd.domain.order_state import OrderState
from execd.domain.prices import apply_cap, cap_on_grid
from execd.domain.quotes import Quote
from execd.domain.spread import GateReason, GateRejection, check_priceable
from execd.domain.types import Side, Urgency

__all__ = ["escalate", "fallback", "fallback_from_quote", "place_fallback"]

_Acts = list[Action]


def escalate(s: LegState, now: datetime, p: LadderParams, acts: _Acts, reason: str) -> LegState:
    """Go to the fallback; the working order is cancelled and confirmed first."""
    if s.live_orders:
        return cancel_live(s, now, p, acts, AfterCancel.FALLBACK, reason=reason)
    return fallback(s, now, p, acts, reason)


def fallback(s: LegState, now: datetime, p: LadderParams, acts: _Acts, reason: str) -> LegState:
    """Step 4 per urgency. Low: end cleanly, never a market order (seed 000). Legacy mode
    has no urgency rules: its one market order is placed at every urgency."""
    if s.remaining <= 0:
        return finish(s, Outcome.FILLED, "filled", acts)
    if s.halted is not None:
        # Not even a market order into a halted book (it would trade at the reopening).
        return request_quote(
            replace(s, end_reason=reason),
            QuotePurpose.FALLBACK,
            now,
            p,
            acts,
            then=fallback_from_quote,
        )
    if s.spec.urgency is Urgency.LOW and p.enable_smart_execution:
        acts.append(
            Note(
                "leg_fallback_skipped",
                {"reason": reason, "urgency": "low", "remaining": str(s.remaining)},
            )
        )
        return finish(s, Outcome.ENDED, reason, acts)
    return place_fallback(s, now, p, acts, reason)


def place_fallback(
    s: LegState, now: datetime, p: LadderParams, acts: _Acts, reason: str
) -> LegState:
    """For the confirmed remainder: a market order, or a limit at the plan's cap; in
    smart mode with `fallback_collar_bps`, a collared marketable limit instead."""
    if s.live_orders:
        acts.append(Note("leg_place_blocked_by_live_order", {}, "error"))
        return cancel_live(s, now, p, acts, AfterCancel.FALLBACK, reason=reason)
    if p.enable_smart_execution and p.fallback_order == "collared":
        return _place_collared(s, now, p, acts, reason, p.fallback_collar_bps)
    s, cid = next_cid(s)
    qty = s.remaining
    cap = s.spec.limit_price
    if cap is None:
        action = PlaceOrder(cid, s.spec.symbol, OrderType.MARKET, s.spec.side, qty, None, 4)
        event = "leg_fallback_market"
    else:
        price = cap_on_grid(s.spec.side, cap)
        action = PlaceOrder(cid, s.spec.symbol, OrderType.LIMIT, s.spec.side, qty, price, 4)
        event = "leg_fallback_capped_limit"
    acts.append(action)
    acts.append(
        Note(
            event,
            {
                **quote_fields(s.last_quote, now),
                "reason": reason,
                "client_order_id": cid,
                "qty": str(qty),
                "limit_price": None if cap is None else str(action.limit_price),
                "urgency": str(s.spec.urgency),
                "step": 4,
            },
        )
    )
    return _fallback_placed(s, action, now, p, reason)


def _fallback_placed(
    s: LegState, action: PlaceOrder, now: datetime, p: LadderParams, reason: str
) -> LegState:
    """The fallback order is sent: work it under the FALLBACK timer, never re-peg it."""
    s = replace(
        s,
        orders=(*s.orders, OrderState(action.client_order_id, action.qty)),
        working_id=action.client_order_id,
        limit_price=action.limit_price,
        priced_mid=None,
        phase=LegPhase.WORKING,
        in_fallback=True,
        end_reason=reason,
        arrival_quote=s.arrival_quote or s.last_quote,
    )
    return arm(s, Timer.FALLBACK, now + secs(p.fallback_timeout_seconds))


def _place_collared(
    s: LegState, now: datetime, p: LadderParams, acts: _Acts, reason: str, bps: Decimal
) -> LegState:
    """Issue 5 "risk limits": the fallback as a marketable limit a few bps beyond the far
    side, so a gapped or empty book cannot fill it at any price. It is priced only from
    a usable quote: without one, ask for a fresh one; none in time ends the leg."""
    q = s.last_quote
    rejection = (
        GateRejection(GateReason.STALE, "no quote")
        if q is None
        else check_priceable(q, now, p.quote_freshness_seconds)
    )
    if q is None or rejection is not None:
        acts.append(
            Note(
                "leg_fallback_awaiting_quote",
                {
                    **quote_fields(q, now),
                    "reason": reason,
                    "quote_problem": None if rejection is None else str(rejection.reason),
                    "quote_wait_s": p.quote_wait_seconds,
                    "step": 4,
                },
            )
        )
        # A fresh but unusable quote (crossed, locked, empty side) will not heal
        # by itself: only a newer one can price the collar.
        fresh = q is not None and q.age_seconds(now) <= p.quote_freshness_seconds
        s = replace(s, end_reason=reason)
        return request_quote(
            s, QuotePurpose.FALLBACK, now, p, acts, then=fallback_from_quote, force_new=fresh
        )
    side = s.spec.side
    collared = collar_price(side, q, bps)
    price = apply_cap(side, collared, s.spec.limit_price)
    s, cid = next_cid(s)
    qty = s.remaining
    until = q.as_of + secs(p.quote_freshness_seconds)
    action = PlaceOrder(cid, s.spec.symbol, OrderType.LIMIT, side, qty, price, 4, until)
    acts.append(action)
    acts.append(
        Note(
            "leg_fallback_collared",
            {
                **quote_fields(q, now),
                "reason": reason,
                "client_order_id": cid,
                "qty": str(qty),
                "limit_price": str(price),
                "far_side": str(q.ask if side is Side.BUY else q.bid),
                "collar_bps": str(bps),
                "collar_price": str(collared),
                "capped": price != collared,
                "urgency": str(s.spec.urgency),
                "step": 4,
            },
        )
    )
    return _fallback_placed(s, action, now, p, reason)


def fallback_from_quote(
    s: LegState, q: Quote, now: datetime, p: LadderParams, acts: _Acts
) -> LegState:
    """The `Step` for a fallback that waited for a fresh quote (a halt or an unusable one)."""
    return fallback(s, now, p, acts, s.end_reason or "fallback")
