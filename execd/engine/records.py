"""What the engine knows about each plan and leg, and how it reads on the control socket.

`LegRecord` and `PlanRecord` are the engine's mutable view (one writer each: the leg
coroutine, the plan runner); `to_status()` freezes them into the control protocol's
`LegStatus` / `PlanStatus`. Progress is derived from the ladder's own state by the pure
`leg_progress`, so the socket, the logs and the ladder can never disagree about where a
leg is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from execd.control.protocol import (
    TERMINAL_LEG_STATES,
    LegState,
    LegStatus,
    PlanState,
    PlanStatus,
    PricingStyle,
    WatchEvent,
)
from execd.domain.benchmarks import LegBenchmarks, QuoteMark
from execd.domain.ladder_types import Finish, LegPhase, Outcome
from execd.domain.ladder_types import LegState as LadderState
from execd.domain.plans import Leg, Plan
from execd.domain.tca import LegReport, slippage_bps
from execd.engine.events import EventHub

WATCH_QUEUE_SIZE = 4096


def leg_progress(state: LadderState) -> tuple[LegState, int]:
    """(state, ladder step 0-5) of a running leg, from the ladder's own phase."""
    if state.result is not None:
        return final_leg_state(state.result, state.spec.qty), 5
    if state.in_fallback:
        step = 4
    elif state.repegs > 0:
        step = 3
    elif state.orders:
        step = 2
    else:
        step = 1
    match state.phase:
        case LegPhase.PENDING:
            return "pending", 0
        case LegPhase.PRE_OPEN:
            return "waiting", 0
        case LegPhase.OPEN_WAIT:
            return "waiting", 1
        case LegPhase.AWAIT_QUOTE:
            return ("working" if state.live_orders else "waiting"), step
        case LegPhase.WORKING | LegPhase.REPLACING | LegPhase.CANCELING | LegPhase.DONE:
            return "working", step


def final_leg_state(finish: Finish, qty: Decimal) -> LegState:
    """How a finished leg reads: a full fill is `filled` whatever ended the ladder."""
    if finish.filled_qty >= qty:
        return "filled"
    match finish.outcome:
        case Outcome.FILLED | Outcome.ENDED:
            return "unfilled"
        case Outcome.STOPPED:
            return "canceled"
        case Outcome.FAILED:
            return "rejected"
        case Outcome.UNRESOLVED:
            return "failed"


@dataclass(slots=True)
class LegRecord:
    """One leg as the engine sees it now."""

    leg: Leg
    qty: Decimal | None = None
    """Shares to trade: the plan's qty, or the notional converted at the leg's start."""
    state: LegState = "pending"
    step: int = 0
    filled_qty: Decimal = Decimal(0)
    avg_fill_price: Decimal | None = None
    arrival_mid: Decimal | None = None
    limit_price: Decimal | None = None
    repegs: int = 0
    client_order_ids: list[str] = field(default_factory=list)
    holding_since: datetime | None = None
    """Set while the leg holds because its symbol's quotes are stale (`quote_hold`)."""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str | None = None
    style: PricingStyle | None = None
    fallback_fired: bool = False
    report: LegReport | None = None
    restored: LegStatus | None = None
    """How a leg that finished before a restart read then (from the journal)."""
    plan_arrival: QuoteMark | None = None
    """The NBBO when the plan was accepted (issue 13: arrival at acceptance and at start)."""
    nbbo: Callable[[], QuoteMark | None] | None = None
    """The quote cache's NBBO for this leg's symbol now, for the live view
    (`execd status --follow`); set while the leg's ladder runs."""
    waiting: str | None = None
    """Why a running leg has no working order, in words (None while it works one)."""
    benchmarks: LegBenchmarks | None = None
    """What the leg saw of the market (engine.benchmarks), journaled when it ends."""
    max_repegs: int | None = None
    """Re-pegs the leg's pricing style allows, once the style is known."""

    def __post_init__(self) -> None:
        if self.qty is None:
            self.qty = self.leg.qty

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_LEG_STATES

    def finish(self, state: LegState, reason: str, at: datetime) -> None:
        """End a leg that never ran its ladder (canceled before start, refused, ...)."""
        self.state = state
        self.reason = reason
        self.finished_at = at
        self.limit_price = None

    def _slippage(self) -> Decimal | None:
        """vs arrival mid: the step-5 report's once over; while working, from the fills so
        far (the live view shows slippage as fills arrive)."""
        if self.report is not None:
            return self.report.vs_arrival_mid_bps
        if self.avg_fill_price is None or self.arrival_mid is None or self.arrival_mid <= 0:
            return None
        return slippage_bps(self.leg.side, self.avg_fill_price, self.arrival_mid)

    def to_status(self) -> LegStatus:
        if self.restored is not None and self.finished:
            return self.restored
        r = self.report
        nbbo = None if self.nbbo is None or self.finished else self.nbbo()
        return LegStatus(
            index=self.leg.index,
            symbol=self.leg.symbol,
            side=self.leg.side,
            qty=self.qty,
            notional=self.leg.notional,
            urgency=self.leg.urgency,
            state=self.state,
            step=self.step,
            filled_qty=self.filled_qty,
            avg_fill_price=self.avg_fill_price,
            arrival_mid=self.arrival_mid,
            slippage_bps=self._slippage(),
            repegs=self.repegs,
            client_order_ids=tuple(self.client_order_ids),
            started_at=self.started_at,
            finished_at=self.finished_at,
            reason=self.reason,
            limit_price=self.limit_price,
            style=self.style,
            interval_vwap=None if r is None else r.interval_vwap,
            vs_vwap_bps=None if r is None else r.vs_vwap_bps,
            market_order_price=None if r is None else r.market_order_price,
            saving_vs_market_bps=None if r is None else r.saving_vs_market_bps,
            saving_vs_market_usd=None if r is None else r.saving_vs_market_usd,
            bid=None if nbbo is None else nbbo.bid,
            ask=None if nbbo is None else nbbo.ask,
            quote_age_seconds=None if nbbo is None else nbbo.age_seconds,
            waiting=None if self.finished else self.waiting,
            fallback_fired=self.fallback_fired,
            max_repegs=self.max_repegs,
        )


STATUS_SLICE = 100
"""Legs per slice of `PlanRecord.status` between which the loop runs other work."""


@dataclass(slots=True)
class PlanRecord:
    """One plan, its legs, and the watchers of its progress."""

    plan: Plan
    submitted_at: datetime
    clock: Callable[[], datetime]
    legs: list[LegRecord] = field(default_factory=list)
    state: PlanState = "accepted"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str | None = None
    cancel_reason: str | None = None
    seq: int = 0
    digest: str | None = None
    """`document_digest` of the submitted document: a resubmission is compared with it."""
    session_date: date | None = None
    """The trading day the plan runs in (None: the day it was submitted)."""
    scheduled_for: datetime | None = None
    """When a held plan starts (its session's pre-open or its `not_before`)."""
    deadline_at: datetime | None = None
    """The plan's `deadline` resolved on its trading day: legs not done by then end."""
    source: dict[str, object] | None = None
    """A targets plan's document (targets, cash), kept with the legs computed from it."""
    watchers: set[asyncio.Queue[WatchEvent | None]] = field(default_factory=set)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    hub: EventHub | None = None
    """The daemon's event hub (metrics, webhooks): sees every event the watchers see."""

    def __post_init__(self) -> None:
        if not self.legs:
            self.legs = [LegRecord(leg) for leg in self.plan]

    @property
    def plan_id(self) -> str:
        return self.plan.plan_id

    @property
    def finished(self) -> bool:
        return self.done.is_set()

    def to_status(self) -> PlanStatus:
        return self._status(tuple(leg.to_status() for leg in self.legs))

    async def status(self) -> PlanStatus:
        """`to_status` built in slices of `STATUS_SLICE` legs with the loop let go between
        them: a 500-leg plan's status (~25 µs a leg) would otherwise hold the loop for
        10 ms+ each time someone polls it, and 2,000 legs' quotes and timers wait."""
        legs: list[LegStatus] = []
        for start in range(0, len(self.legs), STATUS_SLICE):
            if start:
                await asyncio.sleep(0)
            legs.extend(leg.to_status() for leg in self.legs[start : start + STATUS_SLICE])
        return self._status(tuple(legs))

    def _status(self, legs: tuple[LegStatus, ...]) -> PlanStatus:
        return PlanStatus(
            plan_id=self.plan_id,
            state=self.state,
            submitted_at=self.submitted_at,
            legs=legs,
            started_at=self.started_at,
            finished_at=self.finished_at,
            reason=self.reason,
            scheduled_for=self.scheduled_for,
            not_before=self.plan.not_before,
            deadline=self.plan.deadline,
        )

    def publish(self, event: str, leg: LegRecord | None = None, message: str | None = None) -> None:
        """Send one progress event to every watcher (a full watcher is dropped, not waited on)."""
        item = WatchEvent(
            plan_id=self.plan_id,
            seq=self.seq,
            at=self.clock(),
            event=event,
            plan_state=self.state,
            leg=None if leg is None else leg.to_status(),
            message=message,
        )
        self.seq += 1
        if self.hub is not None:
            self.hub.plan_event(item, self.to_status)
        for queue in list(self.watchers):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                # Too slow to follow: end its stream (it then reads the final status).
                self.watchers.discard(queue)
                queue.get_nowait()
                queue.put_nowait(None)

    def end(self, state: PlanState, reason: str) -> None:
        """The plan is over: record it, tell the watchers, close their streams."""
        self.state = state
        self.reason = reason
        self.finished_at = self.clock()
        self.publish("plan_finished", message=reason)
        for queue in list(self.watchers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self.watchers.clear()
        self.done.set()

    def watch_queue(self) -> asyncio.Queue[WatchEvent | None]:
        queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue(WATCH_QUEUE_SIZE)
        self.watchers.add(queue)
        return queue


def sync_record(r: LegRecord, s: LadderState) -> bool:
    """Copy the ladder's state into the leg's record; True when something a watcher
    shows (state, step, filled qty, working limit) changed."""
    before = (r.state, r.step, r.filled_qty, r.limit_price)
    r.state, r.step = leg_progress(s)
    fills = s.fills
    r.filled_qty = s.executed_qty
    if fills:
        notional = sum((e.qty * e.price for e in fills), Decimal(0))
        qty = sum((e.qty for e in fills), Decimal(0))
        r.avg_fill_price = notional / qty if qty else None
    r.repegs = s.repegs
    r.limit_price = s.limit_price if s.live_orders else None
    r.fallback_fired = s.in_fallback
    if s.style is not None:
        r.style = s.style.value
    if s.arrival_quote is not None:
        r.arrival_mid = s.arrival_quote.mid
    return (r.state, r.step, r.filled_qty, r.limit_price) != before
