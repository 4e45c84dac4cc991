"""The per-leg execution ladder as one pure step function, `decide`.

`decide(state, event, now, params) -> (state, actions)` implements DESIGN.md
"The ladder" for one leg, deterministically and without I/O:

0. pre-check (before the open, `enable_premarket_assessment`): classify the
   spread, set the slippage budget and the recommended wait, hold until open;
1. open assessment: WAIT_FOR_SPREADS with a wide spread waits
   `wide_spread_wait_seconds` once and re-checks a fresh quote; the passive
   style waits `market_open_delay_minutes`; seed 000's gates;
2. the first limit in the leg's pricing style (`choose_style`), clamped to
   the slippage budget (`budget_clamped`), never escalated;
3. re-pegs from the fresh NBBO on the timeout or a market move beyond
   `repeg_threshold_percent`, sized from the confirmed remainder, only when
   the price moves, at most `max_repegs` (marketable) / `max_repegs_per_order`
   (passive, whose unchanged re-checks are free, bounded by its patience) rounds;
   nothing is priced from a stale quote or in a halted symbol (a hold);
4. the fallback per urgency: low never sends a market order; normal and high
   send the fallback for the remainder — by default a collared limit
   `fallback_collar_bps` beyond the far side of a fresh quote (then capped by
   the plan), re-priced a bounded number of times; the seeds' plain market
   order (a limit at the plan's cap when it has one) only when chosen; high
   also goes straight here when a gate fails;
5. `Finish` carries what the report needs.

Legacy mode (`enable_smart_execution = False`): one plain market order at every urgency.

The steps live here; their shared mechanics in `ladder_basics`, the stale-quote/halt holds
and the leg deadline in `ladder_holds`, crash-recovery helpers in `ladder_resume`, the
venue-event bookkeeping in `ladder_venue`.

`Resume` starts a leg that ran before a restart from its orders so far: one
sound working order is adopted, anything else live is cancelled first, and
only the remainder after the loaded executions is ever placed.

Order handling follows LESSONS.md and ALPACA.md §1.7–§1.8: a new order is
placed only when every earlier order of the leg is confirmed terminal; a
re-peg replaces (PATCH, always with an explicit qty) only an order the venue
has acknowledged, else it cancels, waits for `canceled`, and places the
remainder; fills that land during a cancel or replace count; a replacement
that the race made larger than the remainder is cancelled at once. Every
waiting phase has a deadline, and a venue that never confirms ends the leg
`UNRESOLVED` after `max_confirm_retries` re-sent cancels — loudly, never a
silent stall.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import assert_never

from execd.domain.ladder_basics import (
    arm,
    cancel_live,
    clamped,
    collar_price,
    finish,
    max_rounds,
    next_cid,
    past_deadline,
    quote_fields,
    repeg_timeout,
    secs,
    style_price,
)
from execd.domain.ladder_holds import deadline_reached, hold_stale
from execd.domain.ladder_resume import adopt_order, adoptable, free_attempt
from execd.domain.ladder_types import (
    Action,
    AfterCancel,
    CancelFailed,
    LadderEvent,
    LadderParams,
    LegPhase,
    LegState,
    NeedQuote,
    Note,
    OrderFill,
    OrderReplaced,
    OrderType,
    OrderUpdate,
    Outcome,
    PlaceFailed,
    PlaceOrder,
    PricingStyle,
    QuotePurpose,
    QuoteUpdate,
    ReplaceFailed,
    ReplaceOrder,
    Resume,
    Start,
    Stop,
    Timer,
    TradingStatus,
    WaitUntil,
    Wake,
)
from execd.domain.ladder_venue import after_done, apply_order_event, on_venue
from execd.domain.market_time import MarketPhase, market_phase, open_delay_until, require_aware
from execd.domain.order_state import (
    OrderEvent,
    OrderEventKind,
    OrderState,
    OrderStatus,
    Race,
)
from execd.domain.prices import (
    apply_cap,
    cap_on_grid,
)
from execd.domain.quotes import Quote
from execd.domain.spread import (
    GateReason,
    GateRejection,
    assess_premarket,
    check_priceable,
    check_quality,
    classify_spread,
    spread_cents,
)
from execd.domain.types import Side, Urgency

__all__ = ["choose_style", "decide"]

_Acts = list[Action]
_HUNDRED = Decimal(100)
_BPS = Decimal(10_000)


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


def decide(
    state: LegState, event: LadderEvent, now: datetime, params: LadderParams
) -> tuple[LegState, list[Action]]:
    """Advance one leg by one event; pure and deterministic.

    `now` is the venue-clock time (aware). Whenever the leg's single deadline
    changes, the actions include a `WaitUntil` for it; the shell keeps one
    timer per leg (the newest replaces the older) and calls back with `Wake`.
    """
    require_aware(now)
    acts: _Acts = []
    before = state.deadline
    if state.phase is LegPhase.DONE:
        return after_done(state, event, acts), acts
    if isinstance(event, Wake | QuoteUpdate) and past_deadline(state, now):
        # The leg's deadline beats whatever its timer meant (DESIGN.md "Every leg has a
        # deadline"): nothing more is priced.
        s = deadline_reached(state, now, p=params, acts=acts)
        if s.phase is not LegPhase.DONE and s.deadline is not None and s.deadline != before:
            acts.append(WaitUntil(s.deadline))
        return s, acts
    match event:
        case Start():
            s = _start(state, now, params, acts)
        case Resume():
            s = _resume(state, event, now, params, acts)
        case QuoteUpdate(quote=quote):
            s = _on_quote(state, quote, now, params, acts)
        case Wake():
            s = _on_wake(state, now, params, acts)
        case Stop(reason=reason):
            s = _on_stop(state, reason, now, params, acts)
        case TradingStatus():
            s = _on_status(state, event, now, params, acts)
        case PlaceFailed() if event.not_sent:
            s = _not_sent(state, event, now, params, acts)
        case OrderUpdate() | OrderFill() | OrderReplaced() | PlaceFailed() | ReplaceFailed():
            s = on_venue(state, event, acts)
            s = _advance(s, now, params, acts)
        case CancelFailed():
            s = on_venue(state, event, acts)
            s = _advance(s, now, params, acts)
        case _:
            assert_never(event)
    if past_deadline(s, now):
        s = deadline_reached(s, now, p=params, acts=acts)
    if s.phase is not LegPhase.DONE and s.deadline is not None and s.deadline != before:
        acts.append(WaitUntil(s.deadline))
    return s, acts


# ----------------------------------------------------------------------------- helpers


# ------------------------------------------------------------------------------ start


def _start(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    if s.phase is not LegPhase.PENDING:
        acts.append(Note("leg_duplicate_start", {"phase": str(s.phase)}, "warning"))
        return s
    return _begin(_choose(s, p, acts), now, p, acts)


def _choose(s: LegState, p: LadderParams, acts: _Acts) -> LegState:
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


def _begin(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
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
    return _open(s, now, p, acts)


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


def _open(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
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
    return _request_quote(s, QuotePurpose.ASSESS, now, p, acts)


def _legacy(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    """`enable_smart_execution = False`: one plain market order for every leg at every
    urgency (seed 000 legacy mode; DESIGN.md: the urgency rules belong to the ladder)."""
    acts.append(Note("leg_legacy_market", {"reason": "enable_smart_execution is false"}))
    if s.remaining <= 0:
        return finish(s, Outcome.FILLED, "filled", acts)
    return _place_fallback(s, now, p, acts, "legacy_market_order")


# ----------------------------------------------------------------------------- resume


def _resume(s: LegState, ev: Resume, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    """Crash recovery: take over the orders a leg had before a restart.

    The invariants hold across the restart: never two live orders, never more
    than `remaining`. One sound working order is adopted as it stands (a new
    order or an immediate replace would race it); anything else still live is
    cancelled and confirmed before the remainder is re-priced. What the restart
    lost (the priced mid, the arrival quote, the re-peg rounds) starts empty,
    so the first re-peg prices from a fresh quote.
    """
    if s.phase is not LegPhase.PENDING:
        acts.append(Note("leg_duplicate_resume", {"phase": str(s.phase)}, "warning"))
        return s
    s = _choose(s, p, acts)
    s = replace(
        s,
        orders=tuple(o.as_order_state() for o in ev.orders),
        attempt=free_attempt(s, ev),
    )
    for o in s.orders:
        if o.filled_qty > o.qty:
            # Impossible books (e.g. one fill journaled under two ids): the shares
            # are counted, which can only make the leg trade less, and said loudly.
            acts.append(
                Note(
                    "leg_resume_order_overfilled",
                    {
                        "client_order_id": o.client_order_id,
                        "qty": str(o.qty),
                        "filled_qty": str(o.filled_qty),
                    },
                    "error",
                )
            )
    live = s.live_orders
    acts.append(
        Note(
            "leg_resumed",
            {
                "orders": len(s.orders),
                "live_orders": len(live),
                "live_ids": [o.client_order_id for o in live],
                "executed_qty": str(s.executed_qty),
                "remaining": str(s.remaining),
                "next_attempt": s.attempt,
            },
        )
    )
    session = s.spec.session
    if s.remaining <= 0:
        if live:
            return cancel_live(
                s, now, p, acts, AfterCancel.FINISH, outcome=Outcome.FILLED, reason="filled"
            )
        return finish(s, Outcome.FILLED, "filled", acts)
    if session is None or now >= session.close:
        reason = "no_trading_session" if session is None else "session_closed"
        if live:
            return cancel_live(
                s, now, p, acts, AfterCancel.FINISH, outcome=Outcome.ENDED, reason=reason
            )
        return finish(s, Outcome.ENDED, reason, acts)
    if not live:
        return _begin(s, now, p, acts)
    adopted, why_not = adoptable(s, ev, now, p)
    if adopted is not None:
        return adopt_order(s, adopted, now, p, acts)
    acts.append(
        Note(
            "leg_resume_canceling",
            {"reason": why_not, "live_ids": [o.client_order_id for o in live]},
            "warning",
        )
    )
    # Re-priced once every cancel is confirmed (`_after_cancel`), from the
    # session checks when the leg is legacy or the market not yet open.
    return cancel_live(s, now, p, acts, AfterCancel.REPRICE)


# ------------------------------------------------------------------------------ quotes


def _on_quote(s: LegState, q: Quote, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    if q.symbol != s.spec.symbol:
        acts.append(
            Note("leg_foreign_quote", {"symbol": q.symbol, "leg": s.spec.symbol}, "warning")
        )
        return s
    if s.last_quote is not None and q.as_of < s.last_quote.as_of:
        return s  # latest-wins: an older NBBO never replaces a newer one
    s = replace(s, last_quote=q)
    if s.phase is LegPhase.PRE_OPEN:
        return _premarket(s, q, now, p, acts)
    if s.awaiting is not None:
        if s.quote_after is not None and q.as_of <= s.quote_after:
            return s
        if q.age_seconds(now) > p.quote_freshness_seconds or s.halted is not None:
            return s  # DESIGN.md "Fresh quote" (its own timestamp) or a halt: keep holding
        return _on_fresh_quote(s, s.awaiting, q, now, p, acts)
    if s.phase is LegPhase.WORKING and not s.in_fallback and s.priced_mid:
        moved = abs(q.mid - s.priced_mid) / s.priced_mid * _HUNDRED
        if moved > p.repeg_threshold_percent:
            acts.append(
                Note(
                    "leg_market_moved",
                    {
                        "priced_mid": str(s.priced_mid),
                        "mid": str(q.mid),
                        "moved_percent": f"{moved:.4f}",
                        "repeg_threshold_percent": str(p.repeg_threshold_percent),
                    },
                )
            )
            return _repeg_due(s, now, p, acts, "market_moved")
    return s


def _premarket(s: LegState, q: Quote, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
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


def _request_quote(
    s: LegState,
    purpose: QuotePurpose,
    now: datetime,
    p: LadderParams,
    acts: _Acts,
    *,
    force_new: bool = False,
) -> LegState:
    """Price from a fresh quote: the one in hand if fresh, else ask for one (LESSONS.md:
    re-read before each step)."""
    q = s.last_quote
    usable = q is not None and q.age_seconds(now) <= p.quote_freshness_seconds
    if not force_new and q is not None and usable and s.halted is None:
        return _on_fresh_quote(s, purpose, q, now, p, acts)
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


def _on_fresh_quote(
    s: LegState, purpose: QuotePurpose, q: Quote, now: datetime, p: LadderParams, acts: _Acts
) -> LegState:
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
    match purpose:
        case QuotePurpose.ASSESS:
            return _price_and_place(s, q, now, p, acts, first=True)
        case QuotePurpose.REPRICE:
            return _price_and_place(s, q, now, p, acts, first=False)
        case QuotePurpose.REPEG:
            return _repeg(s, q, now, p, acts)
        case QuotePurpose.FALLBACK:
            return _fallback(s, now, p, acts, s.end_reason or "fallback")
        case _:
            assert_never(purpose)


def _not_sent(
    s: LegState, event: PlaceFailed, now: datetime, p: LadderParams, acts: _Acts
) -> LegState:
    """The order never left: its pricing quote went stale while the write waited for the
    rate limit. It does not exist, so nothing needs cancelling; the same step is priced
    again from a fresh quote (DESIGN.md "Fresh quote"), costing no re-peg round."""
    cid = event.client_order_id
    order = s.order(cid)
    acts.append(
        Note(
            "order_not_sent_quote_stale",
            {"client_order_id": cid, "message": event.message},
            "warning",
        )
    )
    if order is None or order.status is not OrderStatus.PENDING_SUBMIT:
        return s
    s = apply_order_event(s, cid, OrderEvent(OrderEventKind.CANCELED), acts)
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
    return _request_quote(s, purpose, now, p, acts, force_new=True)


def _quote_overdue(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    """No newer quote came within `quote_wait_seconds`. A quote in hand that is still
    fresh decides (a quiet market does not resend an unchanged NBBO); otherwise the leg
    holds (DESIGN.md "Fresh quote")."""
    purpose = s.awaiting or QuotePurpose.ASSESS
    q = s.last_quote
    fresh = q is not None and q.age_seconds(now) <= p.quote_freshness_seconds
    if q is not None and fresh and purpose is not QuotePurpose.FALLBACK and s.halted is None:
        return _on_fresh_quote(s, purpose, q, now, p, acts)
    return hold_stale(s, purpose, q, now, p, acts)


def _on_status(
    s: LegState, ev: TradingStatus, now: datetime, p: LadderParams, acts: _Acts
) -> LegState:
    """A halt holds the leg like a stale quote; the resumption lets it go on from a fresh
    quote (the one in hand if still fresh, else the next)."""
    if ev.halted:
        if s.halted is None:
            acts.append(
                Note(
                    "leg_symbol_halted",
                    {"status_code": ev.code, "reason": ev.reason, "working_order": s.working_id},
                    "warning",
                )
            )
        return replace(s, halted=f"{ev.code} {ev.reason}".strip() or "halted")
    if s.halted is None:
        return s
    acts.append(Note("leg_symbol_resumed", {"status_code": ev.code, "halt": s.halted}))
    s = replace(s, halted=None)
    q = s.last_quote
    if s.awaiting is not None and q is not None:
        fresh = q.age_seconds(now) <= p.quote_freshness_seconds
        if fresh and (s.quote_after is None or q.as_of > s.quote_after):
            return _on_fresh_quote(s, s.awaiting, q, now, p, acts)
    return s


# ------------------------------------------------------------------- steps 1–2: place


def _price_and_place(
    s: LegState, q: Quote, now: datetime, p: LadderParams, acts: _Acts, *, first: bool
) -> LegState:
    """Steps 1–2 (first placement) and the step-3 re-placement after a confirmed cancel."""
    purpose = QuotePurpose.ASSESS if first else QuotePurpose.REPRICE
    if s.live_orders:  # never a second live order (LESSONS.md)
        acts.append(Note("leg_place_blocked_by_live_order", {}, "error"))
        return cancel_live(s, now, p, acts, AfterCancel.REPRICE)
    if s.remaining <= 0:
        return finish(s, Outcome.FILLED, "filled", acts)
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
        return _request_quote(s, purpose, now, p, acts)
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
            return _request_quote(s, purpose, now, p, acts, force_new=True)
    return _fallback(s, now, p, acts, str(rejection.reason))


# --------------------------------------------------------------------- step 3: re-peg


def _repeg_due(s: LegState, now: datetime, p: LadderParams, acts: _Acts, trigger: str) -> LegState:
    """The working limit timed out or the market moved: re-peg, or escalate when out of
    rounds (or, for the passive style, out of patience)."""
    patience = p.passive_patience(s.spec.urgency)
    started = s.first_placed_at
    if s.style is PricingStyle.PASSIVE and started is not None and now - started >= patience:
        acts.append(
            Note(
                "leg_passive_patience_exhausted",
                {
                    "patience_s": patience.total_seconds(),
                    "working_s": (now - started).total_seconds(),
                    "repegs": s.repegs,
                    "urgency": str(s.spec.urgency),
                },
            )
        )
        return _escalate(s, now, p, acts, "passive_patience_exhausted")
    if s.repeg_rounds >= max_rounds(s, p):
        acts.append(
            Note(
                "leg_repegs_exhausted",
                {"rounds": s.repeg_rounds, "repegs": s.repegs, "max": max_rounds(s, p)},
            )
        )
        return _escalate(s, now, p, acts, "max_repegs_reached")
    s = replace(s, repeg_rounds=s.repeg_rounds + 1, repeg_trigger=trigger)
    return _request_quote(s, QuotePurpose.REPEG, now, p, acts)


def _repeg(s: LegState, q: Quote, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    """Step 3: re-price the unfilled remainder from the fresh NBBO, only if the price moves."""
    working = s.order(s.working_id) if s.working_id else None
    if working is None or working.is_terminal or s.phase is not LegPhase.WORKING:
        return s
    rejection = check_priceable(q, now, p.quote_freshness_seconds)
    price: Decimal | None = None
    if rejection is None:
        budget = s.budget_bps if s.budget_bps is not None else p.max_slippage_bps
        price = clamped(s, style_price(s, q, p), q, budget, now, acts)
    if rejection is not None and rejection.reason is GateReason.STALE:
        return _request_quote(s, QuotePurpose.REPEG, now, p, acts)  # never re-peg from it
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
            return _escalate(s, now, p, acts, str(rejection.reason))
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
        if s.style is PricingStyle.PASSIVE:
            # A re-check that leaves the passive price where it is keeps its queue place
            # and spends no round (issue 10 item 6); the patience bound ends the wait.
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


# ------------------------------------------------------------------ step 4: fallback


def _escalate(s: LegState, now: datetime, p: LadderParams, acts: _Acts, reason: str) -> LegState:
    """Go to the fallback; the working order is cancelled and confirmed first."""
    if s.live_orders:
        return cancel_live(s, now, p, acts, AfterCancel.FALLBACK, reason=reason)
    return _fallback(s, now, p, acts, reason)


def _fallback(s: LegState, now: datetime, p: LadderParams, acts: _Acts, reason: str) -> LegState:
    """Step 4 per urgency. Low: end cleanly, never a market order (seed 000). Legacy mode
    has no urgency rules: its one market order is placed at every urgency."""
    if s.remaining <= 0:
        return finish(s, Outcome.FILLED, "filled", acts)
    if s.halted is not None:
        # Not even a market order into a halted book (it would trade at the reopening).
        return _request_quote(replace(s, end_reason=reason), QuotePurpose.FALLBACK, now, p, acts)
    if s.spec.urgency is Urgency.LOW and p.enable_smart_execution:
        acts.append(
            Note(
                "leg_fallback_skipped",
                {"reason": reason, "urgency": "low", "remaining": str(s.remaining)},
            )
        )
        return finish(s, Outcome.ENDED, reason, acts)
    return _place_fallback(s, now, p, acts, reason)


def _place_fallback(
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
        return _request_quote(s, QuotePurpose.FALLBACK, now, p, acts, force_new=fresh)
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


# ------------------------------------------------------------------------ the timer


def _on_wake(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    if s.deadline is None or now < s.deadline or s.timer is None:
        return s
    match s.timer:
        case Timer.HOLD:
            if s.phase is LegPhase.OPEN_WAIT and s.spread_waits > 0:
                # Seed 003: after the spread wait, re-check with a fresh quote.
                return _request_quote(s, QuotePurpose.ASSESS, now, p, acts, force_new=True)
            if (
                s.phase is LegPhase.PRE_OPEN
                and s.premarket is None
                and p.enable_premarket_assessment
                and p.enable_smart_execution
            ):
                acts.append(Note("leg_premarket_skipped", {"reason": "no_fresh_quote", "step": 0}))
            return _open(s, now, p, acts)
        case Timer.QUOTE:
            return _quote_overdue(s, now, p, acts)
        case Timer.REPEG:
            return _repeg_due(s, now, p, acts, "timeout")
        case Timer.CONFIRM:
            return _confirm_expired(s, now, p, acts)
        case Timer.FALLBACK:
            collared = p.enable_smart_execution and p.fallback_order == "collared"
            if collared and s.live_orders and s.fallback_reprices < p.fallback_reprices:
                # DESIGN.md: the collar is re-priced from a fresh quote a bounded number
                # of times; the cancel is confirmed before the new collar is placed.
                acts.append(
                    Note(
                        "leg_fallback_repricing",
                        {
                            "remaining": str(s.remaining),
                            "reprice": s.fallback_reprices + 1,
                            "max": p.fallback_reprices,
                            "step": 4,
                        },
                    )
                )
                s = replace(s, fallback_reprices=s.fallback_reprices + 1)
                return cancel_live(
                    s, now, p, acts, AfterCancel.FALLBACK, reason=s.end_reason or "fallback"
                )
            acts.append(Note("leg_fallback_unfilled", {"remaining": str(s.remaining)}, "warning"))
            if not s.live_orders:
                return finish(s, Outcome.ENDED, "fallback_unfilled", acts)
            return cancel_live(
                s,
                now,
                p,
                acts,
                AfterCancel.FINISH,
                outcome=Outcome.ENDED,
                reason="fallback_unfilled",
            )
        case _:
            assert_never(s.timer)


def _confirm_expired(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
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
        return _advance(s, now, p, acts)
    return s


# --------------------------------------------------------------------------- stop


def _on_stop(s: LegState, reason: str, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    acts.append(Note("leg_stop_requested", {"reason": reason, "phase": str(s.phase)}))
    if not s.live_orders:
        return finish(s, Outcome.STOPPED, reason, acts)
    if s.phase is LegPhase.CANCELING:
        return replace(
            s, after_cancel=AfterCancel.FINISH, end_outcome=Outcome.STOPPED, end_reason=reason
        )
    return cancel_live(s, now, p, acts, AfterCancel.FINISH, outcome=Outcome.STOPPED, reason=reason)


def _advance(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
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
            return _fallback(s, now, p, acts, s.end_reason or "fallback")
        case AfterCancel.REPRICE:
            session = s.spec.session
            if not p.enable_smart_execution or (session is not None and now < session.open):
                # Only a resumed leg gets here (`_resume`): a legacy leg's orders
                # are market orders, and nothing is priced before the open.
                return _begin(s, now, p, acts)
            return _request_quote(s, QuotePurpose.REPRICE, now, p, acts)
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
                return _fallback(s, now, p, acts, "max_repegs_reached")
            s = replace(s, repeg_rounds=s.repeg_rounds + 1, repegs=s.repegs + 1)
            return _request_quote(s, QuotePurpose.REPRICE, now, p, acts)


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
