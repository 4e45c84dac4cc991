"""The ladder's holds and its deadline, pure: a leg without a fresh quote (or in a halted
symbol) places and re-pegs nothing and ends after `stale_quote_max_wait_seconds`
(DESIGN.md "Fresh quote"); at the leg's deadline it cancels what works and ends
(DESIGN.md "Every leg has a deadline").
"""

from __future__ import annotations

from datetime import datetime

from execd.domain.ladder_basics import (
    STALE,
    arm,
    cancel_live,
    finish,
    quote_fields,
    secs,
)
from execd.domain.ladder_replace import replace
from execd.domain.ladder_types import (
    Action,
    AfterCancel,
    LadderParams,
    LegPhase,
    LegState,
    NeedQuote,
    Note,
    Outcome,
    QuotePurpose,
    Timer,
)
from execd.domain.quotes import Quote
from execd.domain.spread import check_priceable

_Acts = list[Action]


def deadline_reached(s: LegState, now: datetime, *, p: LadderParams, acts: _Acts) -> LegState:
    """DESIGN.md "Every leg has a deadline": cancel what works, end with what filled."""
    acts.append(
        Note(
            "leg_deadline_reached",
            {
                "deadline": s.spec.deadline,
                "phase": str(s.phase),
                "remaining": str(s.remaining),
                "live_orders": len(s.live_orders),
            },
            "warning",
        )
    )
    reason = "deadline_reached"
    if s.phase is LegPhase.CANCELING:
        return replace(
            s, after_cancel=AfterCancel.FINISH, end_outcome=Outcome.ENDED, end_reason=reason
        )
    if s.live_orders:
        return cancel_live(
            s, now, p, acts, AfterCancel.FINISH, outcome=Outcome.ENDED, reason=reason
        )
    if s.remaining <= 0:
        return finish(s, Outcome.FILLED, "filled", acts)
    return finish(s, Outcome.ENDED, reason, acts)


def hold_stale(
    s: LegState, purpose: QuotePurpose, q: Quote | None, now: datetime, p: LadderParams, acts: _Acts
) -> LegState:
    """DESIGN.md "Fresh quote": with no fresh (usable) quote the leg places nothing and
    re-pegs nothing — a working order keeps working as it was priced — says why, and
    after `stale_quote_max_wait_seconds` (within the leg's deadline) ends `quote_stale`."""
    since = s.stale_since or now - secs(p.quote_wait_seconds)
    until = since + secs(p.stale_quote_max_wait_seconds)
    if s.halted is not None:
        problem = "symbol_halted"
    elif q is None:
        problem = "no_quote"
    else:
        problem = str((check_priceable(q, now, p.quote_freshness_seconds) or STALE).reason)

    if now >= until:
        acts.append(
            Note(
                "leg_stale_quote_timeout",
                {
                    **quote_fields(q, now),
                    "reason": problem,
                    "purpose": str(purpose),
                    "held_s": (now - since).total_seconds(),
                    "stale_quote_max_wait_seconds": p.stale_quote_max_wait_seconds,
                    "remaining": str(s.remaining),
                },
                "warning",
            )
        )
        s = replace(s, awaiting=None, quote_after=None)
        reason = "symbol_halted" if s.halted else "quote_stale"
        if s.live_orders:
            return cancel_live(
                s, now, p, acts, AfterCancel.FINISH, outcome=Outcome.ENDED, reason=reason
            )
        return finish(s, Outcome.ENDED, reason, acts)
    if s.stale_since is None:
        acts.append(
            Note(
                "leg_holding_stale_quote",
                {
                    **quote_fields(q, now),
                    "reason": problem,
                    "purpose": str(purpose),
                    "until": until,
                    "quote_freshness_seconds": p.quote_freshness_seconds,
                    "working_order": s.working_id,
                },
                "warning",
            )
        )
    newer = now - secs(p.quote_freshness_seconds)
    if q is not None and purpose is QuotePurpose.FALLBACK:
        newer = max(newer, q.as_of)  # a fresh but unusable quote heals only by a newer one
    acts.append(NeedQuote(newer))
    s = replace(s, stale_since=since, awaiting=purpose, quote_after=newer)
    return arm(s, Timer.QUOTE, min(now + secs(p.quote_wait_seconds), until))
