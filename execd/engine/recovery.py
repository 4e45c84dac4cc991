"""Restart reconciliation: rebuild unfinished plans from the journal and the venue.

Runs once at start, after the order stream listens and before the control socket accepts
plans and `READY=1` (issue 5 §3). For every unfinished plan in the journal:

1. every order each leg ever intended is looked up at the venue by client order id — an
   intent the venue never received (a crash before the send) reads as absent, never as
   something to send again. A request sent just before the crash may still be on its
   way (the venue processes what it received, and the gateway resends an unanswered
   order within its write window), so an intent younger than the settle window (write
   window + request timeout) is looked up again once that is over before it is declared
   absent;
2. shares the venue filled that the journal has not recorded (a crash between a fill and
   its write, or fills while execd was down) are recorded once, as one reconciled
   execution per order priced from the venue's average. The venue may report a fill
   before its average price exists (LESSONS): the order is read again, backing off,
   within `PRICE_WAIT_SECONDS` shared by the whole start (logged `fill_price_pending`);
   still without a price, the start is refused naming the order — never a guessed price,
   never a fill counted twice (systemd starts again; nothing was recorded);
3. open execd orders the venue knows and the journal does not are adopted by their client
   order id (they belong to a journaled leg) or, when no unfinished leg claims them,
   cancelled: nothing is left working that nobody watches;
4. each leg that had orders gets a `ResumePoint` — the ladder adopts a working order
   instead of placing a new one, and new attempts continue the numbering so no client
   order id is ever reused. Legs that had none start as usual.

A plan whose trading day is over (the day it was submitted, or the later session it was
scheduled for, is past, or today's session has closed) is marked expired: the engine runs
it only to cancel what is left and end it.

Any venue error here aborts the start (the daemon exits non-zero and systemd retries):
resuming on a guess could duplicate an order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

import structlog
from alpaca.trading.models import Order

from execd.adapters.journal import Journal, OrderRow, RecordConflict, UnfinishedPlan
from execd.adapters.open_orders import list_open_orders
from execd.adapters.rest import RestGateway
from execd.domain.calendar import TradingSession
from execd.domain.ids import is_execd_order, parse_client_order_id, plan_key
from execd.domain.ladder_types import AdoptedOrder, OrderType
from execd.domain.market_time import eastern_date
from execd.domain.order_state import Execution, OrderStatus, unseen_fill_price
from execd.domain.types import Side, Urgency
from execd.engine.journaling import restore_record
from execd.engine.leg import ResumePoint
from execd.engine.records import LegRecord, PlanRecord

_log = structlog.get_logger("execd.recovery")

PRICE_WAIT_SECONDS = 30.0
"""How long one start re-reads orders the venue reports filled without a price, all of
them together (read at the first wait). Bounded well within systemd's TimeoutStartSec
(120 s) with the settle wait."""
PRICE_POLL_FIRST = 0.25
PRICE_POLL_MAX = 2.0
"""Seconds between those re-reads: doubling from the first to the most."""

ABSENT_EVENT = "absent_at_venue"
"""Journal event for an intent the venue never received (recorded as `rejected`)."""
RECONCILED_EVENT = "reconciled_at_start"


class RecoveryError(Exception):
    """The venue could not be asked; starting anyway could duplicate an order."""


@dataclass(slots=True)
class RecoveredPlan:
    """One unfinished plan, ready for a `PlanRunner`."""

    record: PlanRecord
    resume: dict[int, ResumePoint] = field(default_factory=dict)
    expired: bool = False


@dataclass(frozen=True, slots=True)
class RecoveryContext:
    journal: Journal
    rest: RestGateway
    clock: Callable[[], datetime]
    default_urgency: Urgency
    session: TradingSession | None
    settle_seconds: float = 40.0
    """How long after its intent an order request may still reach the venue."""
    price_wait: PriceWait = field(default_factory=lambda: PriceWait())
    """The one deadline every wait for a fill's price in this start shares."""


class PriceWait:
    """`PRICE_WAIT_SECONDS` for a whole start, not per order: several unpriced fills
    waited for in turn must not add up past systemd's TimeoutStartSec. The clock starts
    at the first wait (monotonic)."""

    def __init__(self) -> None:
        self._deadline: float | None = None

    def left(self, now: float) -> float:
        """Seconds left of the shared wait at monotonic `now` (negative once it is over)."""
        if self._deadline is None:
            self._deadline = now + PRICE_WAIT_SECONDS
        return self._deadline - now


async def recover(ctx: RecoveryContext) -> list[RecoveredPlan]:
    """Bring every unfinished plan up to the venue's truth; see the module docstring."""
    unfinished = await ctx.journal.unfinished_plans()
    try:
        listing = await list_open_orders(ctx.rest)
    except Exception as exc:
        raise RecoveryError(f"could not list open orders: {exc}") from exc
    if not listing.complete:
        # An open order left unread could be an unknown one nobody would watch.
        raise RecoveryError(
            f"could not list every open order ({len(listing.orders)} read): {listing.error!r}"
        )
    listed = listing.orders
    unclaimed = {
        str(o.client_order_id): o for o in listed if is_execd_order(str(o.client_order_id))
    }
    recovered = [await _recover_plan(ctx, plan, unclaimed) for plan in unfinished]
    for cid, order in unclaimed.items():
        # An execd order no unfinished plan claims: nobody would watch it. A refusal
        # (already filled, pending) is logged, not fatal: the next start tries again.
        _log.warning("orphan_order_canceled", client_order_id=cid, order_id=str(order.id))
        try:
            await ctx.rest.cancel_order(str(order.id))
        except Exception as exc:
            _log.error("orphan_cancel_failed", client_order_id=cid, error=repr(exc))
    _log.info(
        "recovery_done",
        plans=len(recovered),
        resumed_legs=sum(len(p.resume) for p in recovered),
        expired_plans=sum(1 for p in recovered if p.expired),
        orphans_canceled=len(unclaimed),
    )
    return recovered


async def _recover_plan(
    ctx: RecoveryContext, unfinished: UnfinishedPlan, unclaimed: dict[str, Order]
) -> RecoveredPlan:
    row = unfinished.plan
    record = restore_record(row, unfinished.legs, ctx.default_urgency, ctx.clock)
    day = record.session_date or eastern_date(row.submitted_at)
    plan = RecoveredPlan(record, expired=_expired(day, ctx.clock(), ctx.session))
    structlog.contextvars.bind_contextvars(plan_id=row.plan_id)
    try:
        for leg in record.legs:
            if leg.finished:
                continue
            point = await _recover_leg(ctx, record.plan_id, leg, unclaimed)
            if point is not None:
                plan.resume[leg.leg.index] = point
    finally:
        structlog.contextvars.unbind_contextvars("plan_id")
    _log.info(
        "plan_recovered",
        plan_id=row.plan_id,
        expired=plan.expired,
        resumed_legs=sorted(plan.resume),
        finished_legs=sum(1 for leg in record.legs if leg.finished),
    )
    return plan


async def _recover_leg(
    ctx: RecoveryContext, plan_id: str, leg: LegRecord, unclaimed: dict[str, Order]
) -> ResumePoint | None:
    index = leg.leg.index
    rows = list(await ctx.journal.orders_for_leg(plan_id, index))
    key = plan_key(plan_id)
    journaled = {r.client_order_id for r in rows}
    for cid, order in list(unclaimed.items()):
        parts = parse_client_order_id(cid)
        if parts is not None and (parts.plan_key, parts.leg_index) == (key, index):
            del unclaimed[cid]
            if cid not in journaled:
                rows.append(await _journal_unknown_order(ctx, plan_id, index, order))
    for r in rows:
        unclaimed.pop(r.client_order_id, None)
    if not rows:
        return None
    fills = await ctx.journal.fills_for_leg(plan_id, index)
    adopted: list[AdoptedOrder] = []
    order_ids: dict[str, str] = {}
    for r in sorted(rows, key=lambda o: o.attempt):
        executions = tuple(
            Execution(f.execution_id, f.qty, f.price, f.at)
            for f in fills
            if f.client_order_id == r.client_order_id
        )
        venue = await _lookup(ctx, r.client_order_id)
        if venue is None and not r.status.is_terminal:
            venue = await _settle(ctx, r)
        if venue is None:
            adopted.append(await _absent(ctx, r, executions))
            continue
        order_ids[r.client_order_id] = str(venue.id)
        adopted.append(await _reconcile(ctx, r, venue, executions))
    leg.client_order_ids = [o.client_order_id for o in adopted]
    leg.filled_qty = sum((e.qty for o in adopted for e in o.executions), Decimal(0))
    if leg.qty is None:
        # A notional leg: its first order was for the whole leg (nothing had filled).
        leg.qty = adopted[0].qty
    next_attempt = max(r.attempt for r in rows) + 1
    _log.info(
        "leg_recovered",
        leg=index,
        orders=len(adopted),
        live=[o.client_order_id for o in adopted if not o.status.is_terminal],
        executed=str(sum((e.qty for o in adopted for e in o.executions), Decimal(0))),
        next_attempt=next_attempt,
    )
    return ResumePoint(tuple(adopted), next_attempt, order_ids)


async def _lookup(ctx: RecoveryContext, cid: str) -> Order | None:
    try:
        return await ctx.rest.get_order_by_client_id(cid)
    except Exception as exc:
        raise RecoveryError(f"could not look up order {cid}: {exc}") from exc


async def _settle(ctx: RecoveryContext, row: OrderRow) -> Order | None:
    """Look an absent intent up again once a request sent at its time can no longer land."""
    wait = (row.intent_at - ctx.clock()).total_seconds() + ctx.settle_seconds
    if wait <= 0:
        return None
    _log.warning("intent_settling", client_order_id=row.client_order_id, seconds=round(wait, 3))
    await asyncio.sleep(wait)
    return await _lookup(ctx, row.client_order_id)


async def _absent(
    ctx: RecoveryContext, row: OrderRow, executions: tuple[Execution, ...]
) -> AdoptedOrder:
    """The venue has no such order: the request never arrived (or was refused)."""
    if not row.status.is_terminal:
        _log.warning("intent_never_reached_venue", client_order_id=row.client_order_id)
        await ctx.journal.record_event(
            row.client_order_id,
            None,
            ABSENT_EVENT,
            ctx.clock(),
            {"client_order_id": row.client_order_id},
            status=OrderStatus.REJECTED,
        )
    return AdoptedOrder(
        client_order_id=row.client_order_id,
        qty=row.qty,
        status=row.status if row.status.is_terminal else OrderStatus.REJECTED,
        order_type=OrderType(row.order_type),
        limit_price=row.limit_price,
        executions=executions,
    )


async def _reconcile(
    ctx: RecoveryContext, row: OrderRow, venue: Order, executions: tuple[Execution, ...]
) -> AdoptedOrder:
    """Record what the venue did while execd was not listening, and adopt the order."""
    cid = row.client_order_id
    counted = sum((e.qty for e in executions), Decimal(0))
    if Decimal(str(venue.filled_qty or 0)) > counted and venue.filled_avg_price is None:
        venue = await _wait_for_price(ctx, cid, venue)
    now = ctx.clock()
    status = OrderStatus(str(venue.status.value))
    filled = Decimal(str(venue.filled_qty or 0))
    if filled > counted:
        assert venue.filled_avg_price is not None  # `_wait_for_price` raised otherwise
        price = unseen_fill_price(Decimal(str(venue.filled_avg_price)), filled, executions)
        execution_id = f"reconciled:{venue.id}:{counted}-{filled}"
        try:
            await ctx.journal.record_fill(
                execution_id, cid, filled - counted, price, now, cumulative=filled
            )
        except RecordConflict as exc:  # never block a start over a bookkeeping clash
            _log.error("reconciled_fill_conflict", client_order_id=cid, error=str(exc))
        executions = (*executions, Execution(execution_id, filled - counted, price, now))
        _log.warning(
            "fill_applied_after_restart",
            client_order_id=cid,
            qty=str(filled - counted),
            price=str(price),
        )
    await ctx.journal.record_event(
        cid, str(venue.id), RECONCILED_EVENT, now, venue.model_dump(mode="json"), status=status
    )
    limit = venue.limit_price
    return AdoptedOrder(
        client_order_id=cid,
        qty=Decimal(str(venue.qty)) if venue.qty is not None else row.qty,
        status=status,
        order_type=OrderType.MARKET if limit is None else OrderType.LIMIT,
        limit_price=None if limit is None else Decimal(str(limit)),
        executions=executions,
    )


async def _wait_for_price(ctx: RecoveryContext, cid: str, venue: Order) -> Order:
    """Re-read an order reported filled without `filled_avg_price` until it has one.

    Raises `RecoveryError` naming the order when none appears within what is left of the
    start's `PRICE_WAIT_SECONDS` (`ctx.price_wait`, monotonic): recording the fill needs
    its price, and guessing one would misstate the leg's cost and the benchmark; nothing
    is recorded, so the next start reconciles it."""
    loop = asyncio.get_running_loop()
    wait = ctx.price_wait.left(loop.time())
    deadline = loop.time() + wait
    _log.warning(
        "fill_price_pending",
        client_order_id=cid,
        order_id=str(venue.id),
        filled_qty=str(venue.filled_qty),
        wait_seconds=round(max(wait, 0.0), 3),
    )
    delay = PRICE_POLL_FIRST
    while (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(delay, left))  # the venue has not priced it yet: back off
        delay = min(delay * 2, PRICE_POLL_MAX)
        again = await _lookup(ctx, cid)
        if again is None:
            raise RecoveryError(f"order {cid} (venue id {venue.id}) vanished at the venue")
        venue = again
        if venue.filled_avg_price is not None:
            _log.info("fill_price_arrived", client_order_id=cid, order_id=str(venue.id))
            return venue
    raise RecoveryError(
        f"order {cid} (venue id {venue.id}, {venue.symbol}) reports {venue.filled_qty} "
        f"shares filled but no filled_avg_price within the start's {PRICE_WAIT_SECONDS:g} s "
        "wait for prices; execd records a fill only "
        "with its price: it will reconcile the order at its next start"
    )


async def _journal_unknown_order(
    ctx: RecoveryContext, plan_id: str, index: int, order: Order
) -> OrderRow:
    """An execd order of this leg the journal has no intent for: file it, then adopt it."""
    cid = str(order.client_order_id)
    parts = parse_client_order_id(cid)
    assert parts is not None
    _log.warning("unjournaled_order_adopted", client_order_id=cid, order_id=str(order.id))
    limit = None if order.limit_price is None else Decimal(str(order.limit_price))
    await ctx.journal.record_intent(
        cid,
        plan_id=plan_id,
        leg_index=index,
        attempt=parts.attempt,
        kind="place",
        order_type="market" if limit is None else "limit",
        side=_side(order),
        qty=Decimal(str(order.qty)),
        limit_price=limit,
        at=ctx.clock(),
    )
    await ctx.journal.record_ack(cid, str(order.id), str(order.status.value), ctx.clock())
    row = await ctx.journal.get_order(cid)
    assert row is not None
    return row


def _side(order: Order) -> Side:
    return Side(str(order.side.value if order.side is not None else ""))


def _expired(day: date, now: datetime, session: TradingSession | None) -> bool:
    """Day orders: a plan lives on its trading day (the day it was submitted, or the later
    session it was scheduled for) until that day's close."""
    if day > eastern_date(now):
        return False  # held for a later session: not due yet
    if session is None or now >= session.close:
        return True
    return day < session.date
