"""Steps 1–2 of the ladder, pure: place the leg's limit from a fresh quote.

The first limit is priced in the leg's style (`choose_style`) and clamped to the slippage
budget, after seed 000's gates (priceable, spread and size) and seed 003's wide-spread wait
in the open window; a failed gate follows the urgency (`_validation_failed`: high goes to the
fallback now, normal/low wait `gate_wait_seconds` for a quote that passes). The same code
re-places the remainder after a confirmed cancel (step 3's cancel-and-place). Never a second
live order (LESSONS.md).
"""

from __future__ import annotations

from datetime import datetime

from execd.domain.ladder_basics import (
    arm,
    cancel_live,
    clamped,
    finish,
    next_cid,
    quote_fields,
    repeg_timeout,
    secs,
    style_price,
)
from execd.domain.ladder_fallback import fallback
from execd.domain.ladder_quotes import Step, request_quote
from execd.domain.ladder_repeg import out_of_patience
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
from execd.domain.market_time import MarketPhase, market_phase
from execd.domain.order_state import OrderState
from execd.domain.quotes import Quote
from execd.domain.spread import (
    GateReason,
    GateRejection,
    check_priceable,
    check_quality,
    classify_spread,
    spread_cents,
)
from execd.domain.types import Urgency

__all__ = ["place_again", "place_first", "placer", "price_and_place"]

_Acts = list[Action]


def price_and_place(
    s: LegState, q: Quote, now: datetime, p: LadderParams, acts: _Acts, *, first: bool
) -> LegState:
    """Steps 1–2 (first placement) and the step-3 re-placement after a confirmed cancel."""
    purpose = QuotePurpose.ASSESS if first else QuotePurpose.REPRICE
    if s.live_orders:  # never a second live order (LESSONS.md)
        acts.append(Note("leg_place_blocked_by_live_order", {}, "error"))
        return cancel_live(s, now, p, acts, AfterCancel.REPRICE)
    if s.remaining <= 0:
        return finish(s, Outcome.FILLED, "filled", acts)
    if not first and out_of_patience(s, now, p, acts):
        # A re-placement after the patience ran out (its cancel confirmed late) would only
        # be cancelled at its first wake: cross now.
        return fallback(s, now, p, acts, "passive_patience_exhausted")
    rejection = check_priceable(q, now, p.quote_freshness_seconds)
    if rejection is not None:
        return _validation_failed(s, rejection, purpose, q, now, p, acts)
    session = s.spec.session
    phase = market_phase(now, session, p.phase_windows)
    if not phase.is_regular:
        return finish(s, Outcome.ENDED, f"session_not_open:{phase}", acts)
    cls = classify_spread(spread_cents(q), p.spread_rules)
    fields = {**quote_fields(q, now), "spread_class": str(cls), "market_phase": str(phase)}
    if (
        first
        and phase is MarketPhase.WAIT_FOR_SPREADS
        and cls.value == "wide"
        and s.spec.urgency is not Urgency.HIGH
        and s.spread_waits == 0
    ):
        # Seed 003: a wide spread in 9:30–9:32 waits (90 s) and re-checks.
        acts.append(
            Note(
                "leg_waiting_for_spreads",
                {**fields, "wait_s": p.wide_spread_wait_seconds, "step": 1},
            )
        )
        s = replace(s, phase=LegPhase.OPEN_WAIT, spread_waits=s.spread_waits + 1)
        return arm(s, Timer.HOLD, now + secs(p.wide_spread_wait_seconds))
    if first:
        rejection = check_quality(q, p.max_spread_percent, p.min_bid_ask_size)
        if rejection is not None:
            return _validation_failed(s, rejection, purpose, q, now, p, acts)
    budget = s.budget_bps if s.budget_bps is not None else p.max_slippage_bps
    price = clamped(s, style_price(s, q, p), q, budget, now, acts)
    s, cid = next_cid(s)
    qty = s.remaining
    step = 2 if first else 3
    until = q.as_of + secs(p.quote_freshness_seconds)
    acts.append(
        PlaceOrder(cid, s.spec.symbol, OrderType.LIMIT, s.spec.side, qty, price, step, until)
    )
    acts.append(
        Note(
            "leg_order_placed",
            {
                **fields,
                "client_order_id": cid,
                "limit_price": str(price),
                "qty": str(qty),
                "style": str(s.style),
                "slippage_budget_bps": str(budget),
                "step": step,
            },
        )
    )
    s = replace(
        s,
        orders=(*s.orders, OrderState(cid, qty)),
        working_id=cid,
        limit_price=price,
        priced_mid=q.mid,
        arrival_quote=s.arrival_quote or q,
        phase=LegPhase.WORKING,
        in_fallback=False,
        gate_since=None,
        first_placed_at=s.first_placed_at or now,
        first_placed_id=s.first_placed_id or cid,
    )
    return arm(s, Timer.REPEG, now + repeg_timeout(now, s, p))


def _validation_failed(
    s: LegState,
    rejection: GateRejection,
    purpose: QuotePurpose,
    q: Quote | None,
    now: datetime,
    p: LadderParams,
    acts: _Acts,
) -> LegState:
    """Seed 000 urgency, with issue 10 item 7's patience: high → the (capped) fallback
    now; normal/low → wait up to `gate_wait_seconds` (and at least `validation_rechecks`
    fresh quotes) for a quote that passes, then normal → fallback, low → end cleanly
    (never a market order). A stale quote is not a failed gate: the leg holds for it."""
    if rejection.reason is GateReason.STALE:
        return request_quote(s, purpose, now, p, acts, then=placer(purpose))
    acts.append(
        Note(
            "leg_validation_failed",
            {
                **quote_fields(q, now),
                "reason": str(rejection.reason),
                "message": rejection.message,
                "urgency": str(s.spec.urgency),
                "purpose": str(purpose),
            },
            "warning",
        )
    )
    if s.spec.urgency is not Urgency.HIGH:
        since = s.gate_since or now
        until = since + secs(p.gate_wait_seconds)
        if now < until or s.rechecks < p.validation_rechecks:
            s = replace(s, rechecks=s.rechecks + 1, gate_since=since)
            acts.append(
                Note(
                    "leg_quote_recheck",
                    {
                        "reason": str(rejection.reason),
                        "gate_wait_until": until,
                        "gate_wait_seconds": p.gate_wait_seconds,
                    },
                )
            )
            return request_quote(s, purpose, now, p, acts, then=placer(purpose), force_new=True)
    return fallback(s, now, p, acts, str(rejection.reason))


def place_first(s: LegState, q: Quote, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    """The `Step` for the first placement (steps 1–2, `QuotePurpose.ASSESS`)."""
    return price_and_place(s, q, now, p, acts, first=True)


def place_again(s: LegState, q: Quote, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    """The `Step` for a re-placement after a confirmed cancel (step 3, `REPRICE`)."""
    return price_and_place(s, q, now, p, acts, first=False)


def placer(purpose: QuotePurpose) -> Step:
    """The placing step for an ASSESS or REPRICE quote."""
    return place_first if purpose is QuotePurpose.ASSESS else place_again
