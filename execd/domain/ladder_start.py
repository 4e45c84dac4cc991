"""Steps 0–1 of the ladder, pure: start a leg and bring it to its first placement.

The leg's pricing style (`choose_style`, DESIGN.md "Two pricing styles") and slippage budget
are chosen once. Outside the session it ends; before the open it holds, and with
`enable_premarket_assessment` seed 003's step 0 assesses the pre-open spread from a fresh
quote (`premarket`) to set the budget and the recommended wait. At the open it waits out the
applicable delays (high urgency none; the passive style `market_open_delay_minutes`) and asks
for the quote that step 2 (`ladder_place`) prices from. Legacy mode
(`enable_smart_execution = False`) places one plain market order at every urgency.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from execd.domain.ladder_basics import arm, finish, quote_fields, secs
from execd.domain.ladder_fallback import place_fallback
from execd.domain.ladder_place import place_first
from execd.domain.ladder_quotes import request_quote
from execd.domain.ladder_replace import replace
from execd.domain.ladder_types import (
    Action,
    LadderParams,
    LegPhase,
    LegState,
    NeedQuote,
    Note,
    Outcome,
    PricingStyle,
    QuotePurpose,
    Timer,
)
from execd.domain.market_time import open_delay_until
from execd.domain.quotes import Quote
from execd.domain.spread import assess_premarket
from execd.domain.types import Urgency

__all__ = ["at_open", "begin", "choose", "choose_style", "premarket", "start_leg"]

_Acts = list[Action]


def choose_style(symbol: str, params: LadderParams) -> tuple[PricingStyle, str]:
    """DESIGN.md "Two pricing styles": which style a symbol uses, and why.

    Leveraged ETFs always trade marketable (seed 003 was tuned for them);
    other symbols follow `apply_to` (`listed` → passive, `all` → marketable).
    With `better_orders_enabled` off, seed 003 is off: everything is passive.
    """
    if not params.enable_smart_execution:
        return PricingStyle.LEGACY, "enable_smart_execution_false"
    if not params.better_orders_enabled:
        return PricingStyle.PASSIVE, "better_orders_disabled"
    if symbol in params.leveraged_etf_symbols:
        return PricingStyle.MARKETABLE, "leveraged_etf_symbol"
    if params.apply_to == "all":
        return PricingStyle.MARKETABLE, "better_orders_apply_to_all"
    return PricingStyle.PASSIVE, "not_listed_for_better_orders"


def choose(s: LegState, p: LadderParams, acts: _Acts) -> LegState:
    """The leg's pricing style and slippage budget, noted for the decision log."""
    style, why = choose_style(s.spec.symbol, p)
    s = replace(s, style=style, style_reason=why, budget_bps=p.max_slippage_bps)
    acts.append(
        Note(
            "leg_style_chosen",
            {
                "symbol": s.spec.symbol,
                "side": str(s.spec.side),
                "qty": str(s.spec.qty),
                "style": str(style),
                "reason": why,
                "urgency": str(s.spec.urgency),
                "smart_execution": p.enable_smart_execution,
            },
        )
    )
    return s


def start_leg(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    if s.phase is not LegPhase.PENDING:
        acts.append(Note("leg_duplicate_start", {"phase": str(s.phase)}, "warning"))
        return s
    return begin(choose(s, p, acts), now, p, acts)


def begin(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    """From a leg with no live order: end outside the session, hold before the open
    (step 0), else wait out the open delays and assess (step 1). Sized from
    `remaining`, so a resumed leg only ever places what is left."""
    session = s.spec.session
    if session is None:
        return finish(s, Outcome.ENDED, "no_trading_session", acts)
    if now >= session.close:
        return finish(s, Outcome.ENDED, "session_closed", acts)
    if s.spec.deadline is not None and now >= s.spec.deadline:
        return finish(s, Outcome.ENDED, "deadline_reached", acts)
    if now < session.open:
        if p.enable_premarket_assessment and p.enable_smart_execution:
            acts.append(NeedQuote(now - secs(p.quote_freshness_seconds)))
        s = replace(s, phase=LegPhase.PRE_OPEN)
        s = arm(s, Timer.HOLD, _hold_until(s, p))
        acts.append(Note("leg_holding_until_open", {"until": s.deadline, "step": 0}))
        return s
    return at_open(s, now, p, acts)


def _hold_until(s: LegState, p: LadderParams) -> datetime:
    """When the leg may first price: the open, plus the applicable waits.

    High urgency skips every open wait (seed 000). Otherwise the pre-market
    recommended wait (seed 003 step 0) and, for the passive style, the
    market-open delay (seed 000) push the first placement later.
    """
    session = s.spec.session
    assert session is not None
    until = session.open
    if s.spec.urgency is Urgency.HIGH or not p.enable_smart_execution:
        return until
    if s.premarket is not None:
        until = max(until, min(session.open + s.premarket.recommended_wait, session.close))
    if s.style is PricingStyle.PASSIVE:
        delay = timedelta(minutes=p.market_open_delay_minutes)
        until = max(until, open_delay_until(session, delay))
    return until


def at_open(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    """The session is open (or about to be priced): wait out delays, then assess."""
    if not p.enable_smart_execution:
        return _legacy(s, now, p, acts)
    hold = _hold_until(s, p)
    if now < hold:
        acts.append(
            Note(
                "leg_open_delay",
                {
                    "until": hold,
                    "style": str(s.style),
                    "recommended_wait_s": None
                    if s.premarket is None
                    else s.premarket.recommended_wait.total_seconds(),
                    "market_open_delay_minutes": p.market_open_delay_minutes,
                    "step": 1,
                },
            )
        )
        return arm(replace(s, phase=LegPhase.OPEN_WAIT), Timer.HOLD, hold)
    return request_quote(s, QuotePurpose.ASSESS, now, p, acts, then=place_first)


def _legacy(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    """`enable_smart_execution = False`: one plain market order for every leg at every
    urgency (seed 000 legacy mode; DESIGN.md: the urgency rules belong to the ladder)."""
    acts.append(Note("leg_legacy_market", {"reason": "enable_smart_execution is false"}))
    if s.remaining <= 0:
        return finish(s, Outcome.FILLED, "filled", acts)
    return place_fallback(s, now, p, acts, "legacy_market_order")


def premarket(s: LegState, q: Quote, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    """Seed 003 step 0: assess the pre-open spread once, from a fresh quote, set budget
    and wait. A stale pre-open quote (last night's book, a frozen feed) is not assessed
    (DESIGN.md "Fresh quote"): the leg waits for a fresh one, and without one by the open
    it skips step 0 (`leg_premarket_skipped`) and prices with the configured budget."""
    if s.premarket is not None or not p.enable_premarket_assessment:
        return s
    if q.age_seconds(now) > p.quote_freshness_seconds:
        acts.append(
            Note(
                "leg_premarket_quote_stale",
                {**quote_fields(q, now), "freshness_s": p.quote_freshness_seconds, "step": 0},
            )
        )
        return s
    assessment = assess_premarket(q, p.spread_rules)
    if assessment is None:
        acts.append(
            Note("leg_premarket_unassessable", {**quote_fields(q, now), "step": 0}, "warning")
        )
        return s
    s = replace(s, premarket=assessment, budget_bps=assessment.max_slippage_bps)
    acts.append(
        Note(
            "leg_premarket_assessed",
            {
                **quote_fields(q, now),
                "spread_class": str(assessment.spread_class),
                "max_slippage_bps": str(assessment.max_slippage_bps),
                "recommended_wait_s": assessment.recommended_wait.total_seconds(),
                "step": 0,
            },
        )
    )
    return arm(s, Timer.HOLD, _hold_until(s, p))
