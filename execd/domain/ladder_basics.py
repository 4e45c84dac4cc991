"""The ladder's shared mechanics: its one timer, quote facts for the log, the style's
price (clamped to the slippage budget), client order ids, cancelling and finishing.

Split out of `ladder.py` so that the step function's module holds the steps; everything
here is pure, like the rest of the core (no I/O, `now` passed in).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from execd.domain.ids import client_order_id
from execd.domain.ladder_replace import replace
from execd.domain.ladder_types import (
    Action,
    AfterCancel,
    CancelOrder,
    Finish,
    LadderParams,
    LegPhase,
    LegState,
    Note,
    Outcome,
    PricingStyle,
    Timer,
)
from execd.domain.market_time import MarketPhase, market_phase
from execd.domain.prices import apply_cap, marketable_limit, passive_anchor, round_for_side
from execd.domain.quotes import Quote
from execd.domain.spread import (
    GateReason,
    GateRejection,
    check_slippage,
    clamp_to_budget,
    spread_bps,
    spread_cents,
)
from execd.domain.types import Side

_Acts = list[Action]
_BPS = Decimal(10_000)


def arm(s: LegState, timer: Timer, deadline: datetime) -> LegState:
    """Set the leg's one timer, never past the leg's deadline (a cancel's confirmation
    timer excepted: it bounds a cancel the deadline itself may have sent)."""
    limit = s.spec.deadline
    if limit is not None and timer is not Timer.CONFIRM and deadline > limit:
        deadline = limit
    return replace(s, timer=timer, deadline=deadline)


def past_deadline(s: LegState, now: datetime) -> bool:
    """The leg's deadline has passed and the leg has not yet been told to end for it."""
    limit = s.spec.deadline
    if limit is None or now < limit or s.phase in (LegPhase.DONE, LegPhase.PENDING):
        return False
    return not (s.phase is LegPhase.CANCELING and s.after_cancel is AfterCancel.FINISH)


def secs(value: float) -> timedelta:
    return timedelta(seconds=value)


def quote_fields(q: Quote | None, now: datetime) -> dict[str, object]:
    """Spread, class-free measures and age of a quote for the decision log."""
    if q is None:
        return {"quote": None}
    return {
        "bid": str(q.bid),
        "ask": str(q.ask),
        "bid_size": str(q.bid_size),
        "ask_size": str(q.ask_size),
        "spread_cents": str(spread_cents(q)),
        "spread_bps": f"{spread_bps(q):.2f}",
        "quote_age_s": round(q.age_seconds(now), 3),
    }


def max_rounds(s: LegState, p: LadderParams) -> int:
    return p.max_repegs if s.style is PricingStyle.MARKETABLE else p.max_repegs_per_order


def repeg_timeout(now: datetime, s: LegState, p: LadderParams) -> timedelta:
    """Seed 003: 2.0 s in the open window (WAIT_FOR_SPREADS), 3.0 s otherwise,
    unless `aggressive_timeout_seconds` overrides both. The passive style (seed 000) has
    its own, longer `passive_timeout_seconds` (issue 10 item 6), cut to the patience left
    so that the leg crosses when its patience ends, not at the first re-check after it
    (a 5 s patience would otherwise be 10 s, a 25 s one 30 s)."""
    if s.style is PricingStyle.PASSIVE:
        recheck = secs(p.passive_timeout_seconds)
        left = patience_left(s, now, p)
        return recheck if left is None else max(min(recheck, left), timedelta(0))
    if p.aggressive_timeout_seconds is not None:
        return secs(p.aggressive_timeout_seconds)
    phase = market_phase(now, s.spec.session, p.phase_windows)
    if phase is MarketPhase.WAIT_FOR_SPREADS:
        return secs(p.open_timeout_seconds)
    return secs(p.normal_timeout_seconds)


def patience_left(s: LegState, now: datetime, p: LadderParams) -> timedelta | None:
    """The passive style's patience left at `now` (negative once spent), counted from the
    leg's first working limit (for a resumed leg, the one it adopted or placed after the
    restart); None for the marketable style and before any limit works."""
    if s.style is not PricingStyle.PASSIVE or s.first_placed_at is None:
        return None
    return s.first_placed_at + p.passive_patience(s.spec.urgency) - now


def style_price(s: LegState, q: Quote, p: LadderParams) -> Decimal:
    """The style's price from `q`, then the plan cap."""
    side = s.spec.side
    match s.style:
        case PricingStyle.MARKETABLE:
            price = marketable_limit(side, q, p.tick_aggression)
        case PricingStyle.PASSIVE | PricingStyle.LEGACY | None:
            offset = p.bid_anchor_offset_cents if side.sign > 0 else p.ask_anchor_offset_cents
            price = passive_anchor(side, q, offset)
    return apply_cap(side, price, s.spec.limit_price)


def next_cid(s: LegState) -> tuple[LegState, str]:
    cid = client_order_id(s.spec.plan_id, s.spec.leg_index, s.attempt)
    return replace(s, attempt=s.attempt + 1), cid


def finish(s: LegState, outcome: Outcome, reason: str, acts: _Acts) -> LegState:
    result = Finish(
        outcome=outcome,
        reason=reason,
        filled_qty=s.executed_qty,
        fills=s.fills,
        arrival_quote=s.arrival_quote,
        style=s.style,
        style_reason=s.style_reason,
        repegs=s.repegs,
    )
    acts.append(
        Note(
            "leg_finished",
            {
                "outcome": str(outcome),
                "reason": reason,
                "qty": str(s.spec.qty),
                "filled_qty": str(s.executed_qty),
                "fills": len(s.fills),
                "repegs": s.repegs,
                "style": None if s.style is None else str(s.style),
                "urgency": str(s.spec.urgency),
            },
            "error" if outcome is Outcome.UNRESOLVED else "info",
        )
    )
    acts.append(result)
    return replace(s, phase=LegPhase.DONE, result=result, deadline=None, timer=None, awaiting=None)


def cancel_live(
    s: LegState,
    now: datetime,
    p: LadderParams,
    acts: _Acts,
    after: AfterCancel,
    *,
    outcome: Outcome | None = None,
    reason: str = "",
) -> LegState:
    """Cancel every live order, then wait for the venue's confirmation (ALPACA.md §1.8)."""
    for o in s.live_orders:
        acts.append(CancelOrder(o.client_order_id))
    s = replace(
        s,
        phase=LegPhase.CANCELING,
        after_cancel=after,
        end_outcome=outcome if outcome is not None else s.end_outcome,
        end_reason=reason or s.end_reason,
        awaiting=None,
        confirm_retries=0,
    )
    return arm(s, Timer.CONFIRM, now + secs(p.confirm_timeout_seconds))


def clamped(
    s: LegState, price: Decimal, q: Quote, budget: Decimal, now: datetime, acts: _Acts
) -> Decimal:
    """DESIGN.md "A refused limit is clamped, not escalated": a limit beyond the slippage
    budget (seed 003 `validate_aggressive_limit`) is pulled back to the budget and worked
    as usual; only the ladder's last step decides the fallback."""
    if check_slippage(s.spec.side, price, q, budget) is None:
        return price
    clamped = clamp_to_budget(s.spec.side, price, q, budget)
    acts.append(
        Note(
            "budget_clamped",
            {
                **quote_fields(q, now),
                "limit_price": str(price),
                "clamped_to": str(clamped),
                "slippage_budget_bps": str(budget),
                "style": str(s.style),
            },
        )
    )
    return clamped


def collar_price(side: Side, q: Quote, bps: Decimal) -> Decimal:
    """At most `bps` through the far side: buy at ask × (1 + bps/10⁴) rounded down,
    sell at bid × (1 − bps/10⁴) rounded up, so the collar is never exceeded."""
    if side is Side.BUY:
        return round_for_side(side, q.ask * (1 + bps / _BPS))
    return round_for_side(side, q.bid * (1 - bps / _BPS))


STALE = GateRejection(GateReason.STALE, "quote is stale")
