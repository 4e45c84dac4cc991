"""The engine's side of the journal: venue events in, plan records back out.

`EventRecorder` keeps every `trade_updates` event, verbatim and in stream order, whether or
not a leg is still listening for it (the venue's word is never dropped). The order stream
hands it each event synchronously (`OrderStream(on_update=...)`); one supervised task
writes them, so the stream never waits on the disk and the events keep their order.
Fills are not recorded here: the leg records exactly the executions it counts, before the
ladder hears of them, so the journal and the ladder can never disagree about shares.

`restore_record` turns journal rows back into the `PlanRecord` the control socket shows, so
`status`, `list` and a resubmitted plan id behave the same across a restart.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any, cast, get_args

import msgspec
import structlog

from execd.adapters.journal import Journal, JournalError, LegRow, PlanRow
from execd.adapters.wire import TradeUpdate
from execd.control.protocol import LegState, LegStatus, PlanState
from execd.domain.order_state import OrderStatus
from execd.domain.plans import document_digest, parse_document, parse_plan
from execd.domain.types import Urgency
from execd.engine.records import PlanRecord

_log = structlog.get_logger("execd.journal")

_ORDER_STATUSES = frozenset(status.value for status in OrderStatus)
_PLAN_STATES = frozenset(get_args(PlanState))
_LEG_STATES = frozenset(get_args(LegState))


class EventRecorder:
    """Writes every order event to the journal, in the order the stream delivered them."""

    def __init__(self, journal: Journal, clock: Callable[[], datetime]) -> None:
        self._journal = journal
        self._clock = clock
        self._queue: asyncio.Queue[TradeUpdate] = asyncio.Queue()

    def offer(self, update: TradeUpdate) -> None:
        """Queue one event (called from the stream's dispatch; never blocks)."""
        self._queue.put_nowait(update)

    async def run(self) -> None:
        """The recorder task: one write at a time, so events keep the stream's order."""
        while True:
            update = await self._queue.get()
            try:
                await self._record(update)
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        """Return once every event offered so far is on disk (shutdown, tests)."""
        await self._queue.join()

    async def _record(self, update: TradeUpdate) -> None:
        order = update.order
        status = order.status if order.status in _ORDER_STATUSES else None
        try:
            await self._journal.record_event(
                order.client_order_id,
                order.id,
                update.event,
                update.timestamp or self._clock(),
                msgspec.json.encode(update),
                status=status,
            )
        except (JournalError, ValueError) as exc:
            # Logged with the whole event, so nothing of it is lost even then.
            _log.error(
                "journal_event_failed",
                client_order_id=order.client_order_id,
                order_event=update.event,
                raw=msgspec.json.encode(update).decode(),
                error=str(exc),
            )


def restore_record(
    plan: PlanRow,
    legs: Sequence[LegRow],
    default_urgency: Urgency,
    clock: Callable[[], datetime],
) -> PlanRecord:
    """The engine's record of a journaled plan, finished or not.

    Finished legs read exactly as they did (their journaled status, report included);
    unfinished ones as far as the journal knows (the restart's reconciliation and the leg
    itself bring them up to date).
    """
    raw = json.loads(plan.plan_json)
    meta = raw.pop(SUBMISSION_KEY, None) if isinstance(raw, dict) else None
    parsed = parse_plan(raw, _no_new_id, default_urgency)
    record = PlanRecord(parsed, plan.submitted_at, clock)
    if isinstance(meta, dict):
        record.digest = meta.get("digest")
        day = meta.get("session_date")
        record.session_date = None if day is None else date.fromisoformat(day)
        record.scheduled_for = _moment(meta.get("scheduled_for"))
        record.deadline_at = _moment(meta.get("deadline_at"))
        record.source = meta.get("source")
    if record.digest is None:  # journaled before plans had identities: its own legs
        record.digest = document_digest(parse_document(raw))
    if plan.finished_at is None and plan.state == "scheduled":
        record.state = "scheduled"
    for leg, row in zip(record.legs, legs, strict=True):
        leg.filled_qty = row.filled_qty
        leg.avg_fill_price = row.avg_fill_price
        leg.reason = row.reason
        leg.started_at = row.started_at
        leg.finished_at = row.finished_at
        if row.state in _LEG_STATES:
            leg.state = cast(LegState, row.state)
        if row.report is not None:
            # The leg's status as last journaled: its resolved qty (notional or shrunk to
            # buying power) always; how it read in full only once it is over.
            status = msgspec.json.decode(row.report, type=LegStatus)
            leg.qty = status.qty
            leg.client_order_ids = list(status.client_order_ids)
            if leg.finished:
                leg.restored = status
        if leg.finished:
            leg.step = 5
    if plan.finished_at is not None:
        record.state = cast(PlanState, plan.state if plan.state in _PLAN_STATES else "failed")
        record.reason = plan.reason
        record.finished_at = plan.finished_at
        record.started_at = record.started_at or plan.submitted_at
        record.done.set()
    elif any(leg.started_at is not None for leg in record.legs):
        record.started_at = min(leg.started_at for leg in record.legs if leg.started_at)
    return record


SUBMISSION_KEY = "submission"
"""The key of `journal_document`'s execd-only part (never part of the user's plan)."""


def journal_document(record: PlanRecord) -> dict[str, Any]:
    """What the journal keeps of a plan: its wire form (the legs as they run — for a
    targets plan the computed ones, so a restart never recomputes them) and, under
    `SUBMISSION_KEY`, its identity digest, trading day, schedule and targets source."""
    return {
        **record.plan.to_wire(),
        SUBMISSION_KEY: {
            "digest": record.digest,
            "session_date": None
            if record.session_date is None
            else record.session_date.isoformat(),
            "scheduled_for": _iso(record.scheduled_for),
            "deadline_at": _iso(record.deadline_at),
            "source": record.source,
        },
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _moment(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _no_new_id() -> str:
    raise ValueError("a journaled plan always has its plan_id")
