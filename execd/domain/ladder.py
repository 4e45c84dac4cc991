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

`decide` dispatches events here (quotes, halts, timers, restarts); the steps live in
their own modules, one job each: steps 0–1 in `ladder_start`, steps 1–2 in `ladder_place`,
step 3 in `ladder_repeg`, step 4 in `ladder_fallback`, what follows a venue event in
`ladder_events`. A step that needs a fresh quote passes itself as the continuation to
`ladder_quotes.request_quote`, and `ladder_dispatch` maps a waiting leg's purpose back to
its step, so the modules import one way only. Their shared mechanics are in
`ladder_basics`, the stale-quote/halt holds and the leg deadline in `ladder_holds`,
crash-recovery helpers in `ladder_resume`, the venue-event bookkeeping in `ladder_venue`.

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

from datetime import datetime
from decimal import Decimal
from typing import assert_never

from execd.domain.ladder_basics import cancel_live, finish, past_deadline
from execd.domain.ladder_dispatch import step_for
from execd.domain.ladder_events import advance, confirm_expired, not_sent, on_stop
from execd.domain.ladder_holds import deadline_reached, hold_stale
from execd.domain.ladder_place import place_first
from execd.domain.ladder_quotes import on_fresh_quote, request_quote
from execd.domain.ladder_repeg import repeg_due
from execd.domain.ladder_replace import replace
from execd.domain.ladder_resume import adopt_order, adoptable, free_attempt
from execd.domain.ladder_start import at_open, begin, choose, choose_style, premarket, start_leg
from execd.domain.ladder_types import (
    Action,
    AfterCancel,
    CancelFailed,
    LadderEvent,
    LadderParams,
    LegPhase,
    LegState,
    Note,
    OrderFill,
    OrderReplaced,
    OrderUpdate,
    Outcome,
    PlaceFailed,
    QuotePurpose,
    QuoteUpdate,
    ReplaceFailed,
    Resume,
    Start,
    Stop,
    Timer,
    TradingStatus,
    WaitUntil,
    Wake,
)
from execd.domain.ladder_venue import after_done, on_venue
from execd.domain.market_time import require_aware
from execd.domain.quotes import Quote

_Acts = list[Action]

__all__ = ["choose_style", "decide"]
_HUNDRED = Decimal(100)
_WAKE_OR_QUOTE = (Wake, QuoteUpdate)  # built once, not a `Wake | QuoteUpdate` per call


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
    if isinstance(event, _WAKE_OR_QUOTE) and past_deadline(state, now):
        # The leg's deadline beats whatever its timer meant (DESIGN.md "Every leg has a
        # deadline"): nothing more is priced.
        s = deadline_reached(state, now, p=params, acts=acts)
        if s.phase is not LegPhase.DONE and s.deadline is not None and s.deadline != before:
            acts.append(WaitUntil(s.deadline))
        return s, acts
    match event:
        case Start():
            s = start_leg(state, now, params, acts)
        case Resume():
            s = resume(state, event, now, params, acts)
        case QuoteUpdate(quote=quote):
            s = _on_quote(state, quote, now, params, acts)
        case Wake():
            s = _on_wake(state, now, params, acts)
        case Stop(reason=reason):
            s = on_stop(state, reason, now, params, acts)
        case TradingStatus():
            s = _on_status(state, event, now, params, acts)
        case PlaceFailed() if event.not_sent:
            s = not_sent(state, event, now, params, acts)
        case OrderUpdate() | OrderFill() | OrderReplaced() | PlaceFailed() | ReplaceFailed():
            s = on_venue(state, event, acts)
            s = advance(s, now, params, acts)
        case CancelFailed():
            s = on_venue(state, event, acts)
            s = advance(s, now, params, acts)
        case _:
            assert_never(event)
    if past_deadline(s, now):
        s = deadline_reached(s, now, p=params, acts=acts)
    if s.phase is not LegPhase.DONE and s.deadline is not None and s.deadline != before:
        acts.append(WaitUntil(s.deadline))
    return s, acts


def resume(s: LegState, ev: Resume, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
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
    s = choose(s, p, acts)
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
        return begin(s, now, p, acts)
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
        return premarket(s, q, now, p, acts)
    if s.awaiting is not None:
        if s.quote_after is not None and q.as_of <= s.quote_after:
            return s
        if q.age_seconds(now) > p.quote_freshness_seconds or s.halted is not None:
            return s  # DESIGN.md "Fresh quote" (its own timestamp) or a halt: keep holding
        return on_fresh_quote(s, s.awaiting, q, now, p, acts, step_for(s.awaiting))
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
            return repeg_due(s, now, p, acts, "market_moved")
    return s


def _quote_overdue(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    """No newer quote came within `quote_wait_seconds`. A quote in hand that is still
    fresh decides (a quiet market does not resend an unchanged NBBO); otherwise the leg
    holds (DESIGN.md "Fresh quote")."""
    purpose = s.awaiting or QuotePurpose.ASSESS
    q = s.last_quote
    fresh = q is not None and q.age_seconds(now) <= p.quote_freshness_seconds
    if q is not None and fresh and purpose is not QuotePurpose.FALLBACK and s.halted is None:
        return on_fresh_quote(s, purpose, q, now, p, acts, step_for(purpose))
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
            return on_fresh_quote(s, s.awaiting, q, now, p, acts, step_for(s.awaiting))
    return s


def _on_wake(s: LegState, now: datetime, p: LadderParams, acts: _Acts) -> LegState:
    if s.deadline is None or now < s.deadline or s.timer is None:
        return s
    match s.timer:
        case Timer.HOLD:
            if s.phase is LegPhase.OPEN_WAIT and s.spread_waits > 0:
                # Seed 003: after the spread wait, re-check with a fresh quote.
                return request_quote(
                    s, QuotePurpose.ASSESS, now, p, acts, then=place_first, force_new=True
                )
            if (
                s.phase is LegPhase.PRE_OPEN
                and s.premarket is None
                and p.enable_premarket_assessment
                and p.enable_smart_execution
            ):
                acts.append(Note("leg_premarket_skipped", {"reason": "no_fresh_quote", "step": 0}))
            return at_open(s, now, p, acts)
        case Timer.QUOTE:
            return _quote_overdue(s, now, p, acts)
        case Timer.REPEG:
            return repeg_due(s, now, p, acts, "timeout")
        case Timer.CONFIRM:
            return confirm_expired(s, now, p, acts)
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
