"""The ladder after venue events, pure: move a leg on once what it waits for is confirmed.

Order handling follows LESSONS.md and ALPACA.md §1.7–§1.8: a new order is placed only when
every earlier order of the leg is confirmed terminal (`_after_cancel`); a replace is
confirmed by the old order's `replaced` or the new order's first event, in either order
(`_advance_replace`); fills that land during a cancel or replace count, and a replacement the
race made larger than the remainder is cancelled at once (`_advance_working`). A venue that
never confirms ends the leg `UNRESOLVED` after `max_confirm_retries` re-sent cancels
(`confirm_expired`) — loudly, never a silent stall. The bookkeeping of each event is
`ladder_venue`'s; this module decides the next step.
"""

from __future__ import annotations

from datetime import datetime
from typing import assert_never

from execd.domain.ladder_basics import arm, cancel_live, finish, max_rounds, repeg_timeout
from execd.domain.ladder_dispatch import step_for
from execd.domain.ladder_fallback import escalate, fallback
from execd.domain.ladder_place import place_again
from execd.domain.ladder_quotes import request_quote
from execd.domain.ladder_repeg import out_of_patience
from execd.domain.ladder_replace import replace
from execd.domain.ladder_start import begin
from execd.domain.ladder_types import (
    Action,
    AfterCancel,
    LadderParams,
    LegPhase,
    LegState,
    Note,
    Outcome,
    PlaceFailed,
    QuotePurpose,
    Timer,
)
from execd.domain.ladder_venue import apply_order_event
from execd.domain.order_state import OrderEvent, OrderEventKind, OrderStatus, Race

__all__ = ["advance", "confirm_expired", "not_sent", "on_stop"]

_Acts = list[Action]


def not_sent(
    s: LegState, event: PlaceFailed, now: datetime, p: LadderParams, acts: _Acts
) -> LegState:
    """The order never left: its pricing quote went stale while the write waited for the
    rate limit (429), or the leg was stopped while it waited (409, withdrawn). It does not
    exist, so nothing needs cancelling; the same step is priced again from a fresh quote
    (DESIGN.md "Fresh quote"), costing no re-peg round — unless the stop ends the leg first."""
    cid = event.client_order_id
    order = s.order(cid)
    # Info, not warning: under a request backlog a write whose quote goes stale in line is
    # routine (the FULL budget run: ~17 a second), and the 429s or the backlog behind it
    # are reported where they happen (`rate_limited`, `health`'s budget).
    acts.append(
        Note(
            "order_not_sent_quote_stale" if event.status == 429 else "order_not_sent_withdrawn",
            {"client_order_id": cid, "message": event.message},
            "info",
        )
    )
    if order is None or order.status is not OrderStatus.PENDING_SUBMIT:
        return s
    s = apply_order_event(s, cid, OrderEvent(OrderEventKind.CANCELED), acts)
    if cid == s.first_placed_id:
        # The venue never saw the limit that started the passive patience: it never
        # rested, so the patience starts with the limit placed in its stead.
        s = replace(s, first_placed_at=None, first_placed_id=None)
    if cid != s.working_id:
        return s
    s = replace(s, working_id=None)
    if s.in_fallback:
        purpose = QuotePurpose.FALLBACK
    elif len(s.orders) == 1:
        purpose = QuotePurpose.ASSESS
    else:
        purpose = QuotePurpose.REPRICE
    # A newer quote than the one that went stale, never the same one again.
    return request_quote(s, purpose, now, p, acts, then=step_for(purpose), force_new=True)


def confirm_expired(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    """The venue has not confirmed: re-send the cancels; give up loudly after the retries."""
    live = s.live_orders
    if s.confirm_retries >= p.max_confirm_retries:
        acts.append(
            Note(
                "leg_venue_unconfirmed",
                {"live_orders": [o.client_order_id for o in live], "retries": s.confirm_retries},
                "error",
            )
        )
        return finish(s, Outcome.UNRESOLVED, "venue_did_not_confirm", acts)
    acts.append(
        Note(
            "leg_confirm_timeout",
            {
                "phase": str(s.phase),
                "live_orders": [o.client_order_id for o in live],
                "retry": s.confirm_retries + 1,
            },
            "warning",
        )
    )
    after = s.after_cancel if s.phase is LegPhase.CANCELING else AfterCancel.REPRICE
    retries = s.confirm_retries + 1
    s = cancel_live(s, now, p, acts, after or AfterCancel.REPRICE)
    s = replace(s, confirm_retries=retries)
    if not live:
        return advance(s, now, p, acts)
    return s


def on_stop(s: LegState, reason: str, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    acts.append(Note("leg_stop_requested", {"reason": reason, "phase": str(s.phase)}))
    if not s.live_orders:
        return finish(s, Outcome.STOPPED, reason, acts)
    if s.phase is LegPhase.CANCELING:
        return replace(
            s, after_cancel=AfterCancel.FINISH, end_outcome=Outcome.STOPPED, end_reason=reason
        )
    return cancel_live(s, now, p, acts, AfterCancel.FINISH, outcome=Outcome.STOPPED, reason=reason)


def advance(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    """After a venue event: move on when what the leg waits for is confirmed."""
    if s.phase is LegPhase.DONE:
        return s
    live = s.live_orders
    if s.remaining <= 0:
        if not live:
            return finish(s, Outcome.FILLED, "filled", acts)
        if s.phase is not LegPhase.CANCELING:
            # The leg is done but an order is open (e.g. a replacement in
            # flight): cancel it so nothing more can fill.
            return cancel_live(
                s, now, p, acts, AfterCancel.FINISH, outcome=Outcome.FILLED, reason="filled"
            )
        return s
    match s.phase:
        case LegPhase.CANCELING:
            if not live:
                return _after_cancel(s, now, p, acts)
            return s
        case LegPhase.REPLACING:
            return _advance_replace(s, now, p, acts)
        case LegPhase.WORKING:
            return _advance_working(s, now, p, acts)
        case (
            LegPhase.PENDING
            | LegPhase.PRE_OPEN
            | LegPhase.OPEN_WAIT
            | LegPhase.AWAIT_QUOTE
            | LegPhase.DONE
        ):
            return s
        case _:
            assert_never(s.phase)


def _after_cancel(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    """Every order is confirmed terminal: the remainder is final, take the next step."""
    after = s.after_cancel or AfterCancel.REPRICE
    s = replace(s, after_cancel=None, working_id=None, replace_to=None)
    acts.append(Note("leg_cancel_confirmed", {"remaining": str(s.remaining), "next": str(after)}))
    if s.remaining <= 0:
        return finish(s, Outcome.FILLED, "filled", acts)
    match after:
        case AfterCancel.FINISH:
            return finish(s, s.end_outcome or Outcome.ENDED, s.end_reason or "ended", acts)
        case AfterCancel.FALLBACK:
            return fallback(s, now, p, acts, s.end_reason or "fallback")
        case AfterCancel.REPRICE:
            session = s.spec.session
            if not p.enable_smart_execution or (session is not None and now < session.open):
                # Only a resumed leg gets here (`resume`): a legacy leg's orders
                # are market orders, and nothing is priced before the open.
                return begin(s, now, p, acts)
            return request_quote(s, QuotePurpose.REPRICE, now, p, acts, then=place_again)
        case _:
            assert_never(after)


def _advance_working(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    working = s.order(s.working_id) if s.working_id else None
    if working is None:
        return s
    if not working.is_terminal:
        open_qty = working.qty - working.executed_qty
        if open_qty > s.remaining:
            # A fill landed elsewhere (e.g. on the replaced order during the
            # replace): this order could over-fill the leg. Cancel it now.
            acts.append(
                Note(
                    "leg_order_oversized",
                    {
                        "client_order_id": working.client_order_id,
                        "open_qty": str(open_qty),
                        "remaining": str(s.remaining),
                    },
                    "error",
                )
            )
            return cancel_live(s, now, p, acts, AfterCancel.REPRICE)
        return s
    if s.live_orders:
        return cancel_live(s, now, p, acts, AfterCancel.REPRICE)
    match working.status:
        case OrderStatus.REJECTED:
            return finish(s, Outcome.FAILED, s.end_reason or "rejected", acts)
        case _ if s.in_fallback:
            return finish(s, Outcome.ENDED, f"fallback_{working.status}", acts)
        case _:
            # LESSONS.md: a cancelled or expired limit is never left without a
            # next step; it costs a re-peg round like a timeout.
            acts.append(
                Note(
                    "leg_order_ended",
                    {"client_order_id": working.client_order_id, "status": str(working.status)},
                    "warning",
                )
            )
            s = replace(s, working_id=None)
            if s.repeg_rounds >= max_rounds(s, p):
                return fallback(s, now, p, acts, "max_repegs_reached")
            s = replace(s, repeg_rounds=s.repeg_rounds + 1, repegs=s.repegs + 1)
            return request_quote(s, QuotePurpose.REPRICE, now, p, acts, then=place_again)


def _advance_replace(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    """A replace in flight: confirmed by the old order's `replaced` or the new order's
    first event, in either order (ALPACA.md §1.7); failed when the new one is rejected."""
    old = s.order(s.working_id) if s.working_id else None
    new = s.order(s.replace_to) if s.replace_to else None
    if old is None or new is None:
        return s
    created = new.status not in (OrderStatus.PENDING_SUBMIT, OrderStatus.REJECTED)
    if created or old.status is OrderStatus.REPLACED:
        if not old.is_terminal:
            # Race: the new order's `new` arrived before the old order's
            # `replaced`. The venue only creates it by replacing the old one.
            acts.append(
                Note(
                    "order_race",
                    {
                        "client_order_id": old.client_order_id,
                        "race": str(Race.REPLACED_AFTER_SUCCESSOR_NEW),
                    },
                    "warning",
                )
            )
            s = apply_order_event(s, old.client_order_id, OrderEvent(OrderEventKind.REPLACED), acts)
        acts.append(
            Note(
                "leg_replace_confirmed",
                {
                    "client_order_id": new.client_order_id,
                    "limit_price": str(s.pending_limit),
                    "step": 3,  # a replace is always a step-3 re-peg
                },
            )
        )
        s = replace(
            s,
            working_id=new.client_order_id,
            replace_to=None,
            limit_price=s.pending_limit,
            priced_mid=s.pending_mid,
            phase=LegPhase.WORKING,
        )
        if out_of_patience(s, now, p, acts):
            # Confirmed after the patience ran out: cross rather than re-check at once.
            return escalate(s, now, p, acts, "passive_patience_exhausted")
        s = arm(s, Timer.REPEG, now + repeg_timeout(now, s, p))
        return _advance_working(s, now, p, acts)
    if new.is_terminal:
        # The replacement will not exist: cancel the old order (if still
        # working), wait for the confirmation, then place the remainder.
        if s.live_orders:
            return cancel_live(s, now, p, acts, AfterCancel.REPRICE)
        s = replace(s, phase=LegPhase.CANCELING, after_cancel=AfterCancel.REPRICE)
        return _after_cancel(s, now, p, acts)
    return s  # still waiting; the CONFIRM timer bounds it
