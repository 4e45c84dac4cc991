"""The ladder's fresh-quote seam, pure: every step prices only from a fresh quote (DESIGN.md
"Fresh quote"; LESSONS.md: re-read before each step).

A step that needs a quote calls `request_quote` with the step to run once it has one
(`then`): the quote in hand when it is fresh, else a `NeedQuote` and the QUOTE timer, and the
same step runs from `on_fresh_quote` when a newer quote arrives. Passing the continuation
keeps this module below the steps (`ladder_place`, `ladder_repeg`, `ladder_fallback`), so
the steps can ask for quotes without an import cycle; `ladder_dispatch` maps a waiting
leg's `QuotePurpose` back to its step.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from execd.domain.ladder_basics import arm, quote_fields, secs
from execd.domain.ladder_replace import replace
from execd.domain.ladder_types import (
    Action,
    LadderParams,
    LegPhase,
    LegState,
    NeedQuote,
    Note,
    QuotePurpose,
    Timer,
)
from execd.domain.quotes import Quote
from execd.domain.spread import check_priceable

__all__ = ["Step", "on_fresh_quote", "request_quote"]

_Acts = list[Action]

Step = Callable[[LegState, Quote, datetime, LadderParams, _Acts], LegState]
"""A step priced from a fresh quote: `(state, quote, now, params, actions) -> state`."""


def request_quote(
    s: LegState,
    purpose: QuotePurpose,
    now: datetime,
    p: LadderParams,
    acts: _Acts,
    *,
    then: Step,
    force_new: bool = False,
) -> LegState:
    """Price from a fresh quote: the one in hand if fresh, else ask for one (LESSONS.md:
    re-read before each step). `then` is the step the quote is for; it runs now, or from
    `on_fresh_quote` when the requested quote arrives."""
    q = s.last_quote
    usable = q is not None and q.age_seconds(now) <= p.quote_freshness_seconds
    if not force_new and q is not None and usable and s.halted is None:
        return on_fresh_quote(s, purpose, q, now, p, acts, then)
    # A forced re-check wants a quote newer than the one in hand (quotes carry the venue's
    # own timestamps, which a little latency puts before `now`); otherwise any fresh one.
    oldest = now - secs(p.quote_freshness_seconds)
    newer = max(q.as_of, oldest) if force_new and q is not None else oldest
    acts.append(NeedQuote(newer))
    has_order = s.phase is LegPhase.WORKING and purpose is QuotePurpose.REPEG
    s = replace(
        s,
        awaiting=purpose,
        quote_after=newer,
        phase=s.phase if has_order else LegPhase.AWAIT_QUOTE,
    )
    return arm(s, Timer.QUOTE, now + secs(p.quote_wait_seconds))


def on_fresh_quote(
    s: LegState,
    purpose: QuotePurpose,
    q: Quote,
    now: datetime,
    p: LadderParams,
    acts: _Acts,
    then: Step,
) -> LegState:
    """The fresh quote a leg waited for: clear the wait and run the step it is for. The
    fallback needs a priceable one (its collar is priced from the far side)."""
    if purpose is QuotePurpose.FALLBACK:
        rejection = check_priceable(q, now, p.quote_freshness_seconds)
        if rejection is not None:
            # Keep waiting: the QUOTE deadline set by the request still bounds it.
            acts.append(
                Note(
                    "leg_fallback_quote_unusable",
                    {**quote_fields(q, now), "reason": str(rejection.reason)},
                    "warning",
                )
            )
            return s
    if s.stale_since is not None:
        acts.append(
            Note(
                "leg_quotes_fresh_again",
                {**quote_fields(q, now), "held_s": (now - s.stale_since).total_seconds()},
            )
        )
    s = replace(s, awaiting=None, quote_after=None, stale_since=None)
    return then(s, q, now, p, acts)
