"""Step 3 of the ladder, pure: re-peg the working limit (DESIGN.md "The ladder").

On the REPEG timer or a market move beyond `repeg_threshold_percent`, the unfilled remainder
is re-priced from a fresh NBBO, only when the price moves: a PATCH of an acknowledged order
(ALPACA.md §1.7, always with an explicit qty), else cancel, confirm and place the remainder.
The marketable style has `max_repegs` rounds; the passive style's unchanged re-checks are
free and its patience per urgency bounds the wait. Out of rounds or patience, the leg
escalates to step 4 (`ladder_fallback`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from execd.domain.ladder_basics import (
    arm,
    cancel_live,
    clamped,
    max_rounds,
    next_cid,
    patience_left,
    quote_fields,
    repeg_timeout,
    secs,
    style_price,
)
from execd.domain.ladder_fallback import escalate
from execd.domain.ladder_quotes import request_quote
from execd.domain.ladder_replace import replace
from execd.domain.ladder_types import (
    Action,
    AfterCancel,
    LadderParams,
    LegPhase,
    LegState,
    Note,
    PricingStyle,
    QuotePurpose,
    ReplaceOrder,
    Timer,
)
from execd.domain.order_state import OrderState
from execd.domain.quotes import Quote
from execd.domain.spread import GateReason, check_priceable
from execd.domain.types import Urgency

__all__ = ["out_of_patience", "repeg", "repeg_due"]

_Acts = list[Action]


def out_of_patience(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> bool:
    """Whether a passive leg's patience for its urgency has run out (noted when it has):
    from then on it crosses (step 4) instead of re-pegging or re-placing its limit."""
    left = patience_left(s, now, p)
    if left is None or left > timedelta(0):
        return False
    patience = p.passive_patience(s.spec.urgency)
    acts.append(
        Note(
            "leg_passive_patience_exhausted",
            {
                "patience_s": patience.total_seconds(),
                "working_s": (patience - left).total_seconds(),
                "repegs": s.repegs,
                "urgency": str(s.spec.urgency),
            },
        )
    )
    return True


def repeg_due(s: LegState, now: datetime, p: LadderParams, acts: _Acts, trigger: str) -> LegState:
    """The working limit timed out or the market moved: re-peg, or escalate when out of
    rounds (or, for the passive style, out of patience)."""
    if out_of_patience(s, now, p, acts):
        return escalate(s, now, p, acts, "passive_patience_exhausted")
    if s.repeg_rounds >= max_rounds(s, p):
        acts.append(
            Note(
                "leg_repegs_exhausted",
                {"rounds": s.repeg_rounds, "repegs": s.repegs, "max": max_rounds(s, p)},
            )
        )
        return escalate(s, now, p, acts, "max_repegs_reached")
    s = replace(s, repeg_rounds=s.repeg_rounds + 1, repeg_trigger=trigger)
    return request_quote(s, QuotePurpose.REPEG, now, p, acts, then=repeg)


def repeg(s: LegState, q: Quote, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    """Step 3: re-price the unfilled remainder from the fresh NBBO, only if the price moves."""
    working = s.order(s.working_id) if s.working_id else None
    if working is None or working.is_terminal or s.phase is not LegPhase.WORKING:
        return s
    if out_of_patience(s, now, p, acts):
        # The quote came after the patience ran out (it was waited for): cross, never
        # re-arm a passive re-check that has no time left.
        return escalate(s, now, p, acts, "passive_patience_exhausted")
    rejection = check_priceable(q, now, p.quote_freshness_seconds)
    price: Decimal | None = None
    if rejection is None:
        budget = s.budget_bps if s.budget_bps is not None else p.max_slippage_bps
        price = clamped(s, style_price(s, q, p), q, budget, now, acts)
    if rejection is not None and rejection.reason is GateReason.STALE:
        # never re-peg from it
        return request_quote(s, QuotePurpose.REPEG, now, p, acts, then=repeg)
    if rejection is not None:
        acts.append(
            Note(
                "leg_repeg_skipped",
                {
                    **quote_fields(q, now),
                    "reason": str(rejection.reason),
                    "message": rejection.message,
                },
                "warning",
            )
        )
        if s.spec.urgency is Urgency.HIGH:
            return escalate(s, now, p, acts, str(rejection.reason))
        return arm(s, Timer.REPEG, now + repeg_timeout(now, s, p))
    assert price is not None
    if price == s.limit_price:
        acts.append(
            Note(
                "leg_repeg_skipped",
                {**quote_fields(q, now), "reason": "same_price", "limit_price": str(price)},
            )
        )
        s = replace(s, priced_mid=q.mid)
        if s.style is PricingStyle.PASSIVE and patience_left(s, now, p) is not None:
            # A re-check that leaves the passive price where it is keeps its queue place
            # and spends no round (issue 10 item 6); the patience bound ends the wait.
            # Only a running patience makes it free: without one (never expected, but a
            # resumed leg once had none) the rounds are the only bound, and nothing may
            # re-check until the close.
            s = replace(s, repeg_rounds=max(s.repeg_rounds - 1, 0))
        return arm(s, Timer.REPEG, now + repeg_timeout(now, s, p))
    remaining = s.remaining
    fields = {
        **quote_fields(q, now),
        "trigger": s.repeg_trigger,
        "old_limit": None if s.limit_price is None else str(s.limit_price),
        "new_limit": str(price),
        "qty": str(remaining),
        "repeg": s.repegs + 1,
        "step": 3,
    }
    # PATCH only an acknowledged order with a whole-share remainder (ALPACA.md
    # §1.7: not while accepted/pending_new; fractional qty cannot change).
    if (
        p.repeg_method == "replace"
        and working.status.is_acknowledged
        and remaining == remaining.to_integral_value()
    ):
        s, new_cid = next_cid(s)
        until = q.as_of + secs(p.quote_freshness_seconds)
        acts.append(ReplaceOrder(working.client_order_id, new_cid, remaining, price, until))
        acts.append(Note("leg_repegged", {**fields, "method": "replace", "new_id": new_cid}))
        s = replace(
            s,
            orders=(*s.orders, OrderState(new_cid, remaining)),
            replace_to=new_cid,
            pending_limit=price,
            pending_mid=q.mid,
            repegs=s.repegs + 1,
            phase=LegPhase.REPLACING,
            confirm_retries=0,
        )
        return arm(s, Timer.CONFIRM, now + secs(p.confirm_timeout_seconds))
    acts.append(
        Note(
            "leg_repegged",
            {**fields, "method": "cancel_and_place", "status": str(working.status)},
        )
    )
    s = replace(s, repegs=s.repegs + 1)
    return cancel_live(s, now, p, acts, AfterCancel.REPRICE)
