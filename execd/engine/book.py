"""The engine's plan book: which plans exist, which run, and whether plans are accepted now.

Every part of the engine (submit, the kill switch, start and shutdown, the queries) reads and
changes the same few facts — the plans by id, their runners, the tasks the shutdown waits
for, the halted and accepting flags. They live here, once, with the small operations on them
that more than one part needs (start a runner under supervision, stop the unfinished plans,
journal a plan's end), so that each part is a module of its own job and none of them owns
another's state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import date, datetime
from typing import Any, Protocol, TypeVar

import structlog

from execd.adapters.journal import JournalError
from execd.control.protocol import ControlError, ErrorCode, PlanState
from execd.domain.calendar import TradingSession
from execd.domain.ids import parse_client_order_id, plan_key
from execd.domain.market_time import eastern_date
from execd.domain.types import Urgency
from execd.engine.events import EventHub
from execd.engine.journaling import restore_record
from execd.engine.leg import LegPorts
from execd.engine.order_poll import Snapshot
from execd.engine.records import PlanRecord
from execd.engine.runner import PlanRunner, journal_leg
from execd.engine.venue_reads import session_on

_log = structlog.get_logger("execd.engine")

T = TypeVar("T")


class FailureMarker(Protocol):
    """Records "the journal refused a write" where a full disk cannot refuse it
    (`execd.adapters.journal_lock.JournalLock`)."""

    previous_failure: str | None

    def mark(self, reason: str) -> None: ...

    def clear(self) -> None: ...


class PlanBook:
    """The plans of this daemon and the flags that gate them; see the module docstring."""

    def __init__(self, ports: LegPorts, events: EventHub, default_urgency: Urgency) -> None:
        self._ports = ports
        self._events = events
        self.default_urgency = default_urgency
        self.plans: dict[str, PlanRecord] = {}
        self.runners: dict[str, PlanRunner] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.halted = False
        self.accepting = False  # until `recover` has run
        self.shutting_down = False
        self.journal_error: str | None = None
        self.failure_marker: FailureMarker | None = None
        """Where a journal failure is recorded for the next start (the lock file)."""
        self.recovering: tuple[int, float] | None = None  # (orders, monotonic ETA)

    # ------------------------------------------------------------------ gates

    def record(self, plan_id: str) -> PlanRecord:
        """The plan `plan_id`, or `not_found`."""
        record = self.plans.get(plan_id)
        if record is None:
            raise ControlError(ErrorCode.NOT_FOUND, f"no plan {plan_id!r}")
        return record

    def recovery_progress(self) -> str | None:
        """``recovering N orders, ≈S s left`` while `recover` runs, else None."""
        if self.recovering is None:
            return None
        orders, eta = self.recovering
        left = max(0.0, eta - self._ports.clock.monotonic())
        noun = "order" if orders == 1 else "orders"
        return f"recovering {orders} {noun}, ≈{left:.0f} s left"

    def refuse_unless_accepting(self) -> None:
        """`starting` (with the recovery's progress) or `shutting_down`, never `halted`:
        the kill switch is the only reason for that code (issue 11 §7)."""
        if self.accepting:
            return
        if self.shutting_down:
            raise ControlError(ErrorCode.SHUTTING_DOWN, "execd is shutting down")
        progress = self.recovery_progress() or "not reconciled with the venue yet"
        raise ControlError(ErrorCode.STARTING, f"execd is starting: {progress}")

    def refuse_while_recovering(self) -> None:
        """A query is answered `starting` while the journal is reconciled (its plans are
        not all loaded yet), and normally before and after."""
        if self.recovering is not None:
            self.refuse_unless_accepting()

    # ------------------------------------------------------------------ what is working

    def unfinished(self) -> list[PlanRecord]:
        return [r for r in self.plans.values() if not r.finished]

    def leg_may_claim(self, client_order_id: str) -> bool:
        """True while an unfinished leg of an unfinished plan may yet own the order.

        The orphan sweeper's guard for a leg not (yet) registered with the router: a
        resumed leg adopting its orders after a restart, a scheduled plan's leg. Only a
        finished leg's (or an unknown plan's) live order is an orphan."""
        parts = parse_client_order_id(client_order_id)
        if parts is None:
            return False
        for record in self.plans.values():
            if record.finished_at is None and plan_key(record.plan_id) == parts.plan_key:
                return any(
                    leg.leg.index == parts.leg_index and not leg.finished for leg in record.legs
                )
        return False

    def running_legs(self) -> int:
        """Legs running their ladder now (`order_poll.WorkingLegs`)."""
        return sum(runner.running_legs for runner in self.runners.values())

    def working_since(self) -> datetime | None:
        """When the oldest unfinished plan was submitted (`order_poll.WorkingLegs`)."""
        return min((r.submitted_at for r in self.unfinished()), default=None)

    def reconcile_legs(self, snapshot: Snapshot | None) -> None:
        """Every running leg re-reads its orders before acting (`order_poll.WorkingLegs`)."""
        for runner in self.runners.values():
            runner.request_reconcile(snapshot)

    def stop_unfinished(self, reason: str, state: PlanState = "canceled") -> list[asyncio.Event]:
        """Stop every running plan not yet finished; their `done` events, to wait on."""
        waits = []
        for plan_id, runner in list(self.runners.items()):
            record = self.plans[plan_id]
            if not record.finished:
                runner.stop(reason, state=state)
                waits.append(record.done)
        return waits

    def leg_cancels(self, client_order_id: str) -> bool:
        """True while a running leg, stopped, cancels that order itself (the halt's sweep
        sends it no second DELETE)."""
        return any(runner.cancels(client_order_id) for runner in self.runners.values())

    # ------------------------------------------------------------------ running plans

    def start(self, runner: PlanRunner, session: TradingSession | None = None) -> None:
        """Run a plan; `session` when already known (a recovered plan must not fail on a
        second calendar read with its adopted orders working)."""
        plan_id = runner.record.plan_id
        runner.record.hub = self._events
        self.runners[plan_id] = runner
        self.track(self._run_plan(runner, session), f"plan:{plan_id}")

    def track(self, work: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Run `work` as a task the engine's shutdown waits for (then cancels)."""
        task = asyncio.create_task(work, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _run_plan(self, runner: PlanRunner, session: TradingSession | None) -> None:
        record = runner.record
        structlog.contextvars.bind_contextvars(plan_id=record.plan_id)
        try:
            if session is None:
                session = await self.session(record.session_date)
            await runner.run(session, record.deadline_at)
        except Exception as exc:  # a plan's failure must not take the daemon down
            _log.exception("plan_crashed", error=repr(exc))
            if not record.finished:
                record.end("failed", f"internal error: {exc!r}")
                await self.journal_end(record)
        finally:
            self.runners.pop(record.plan_id, None)

    async def session(self, day: date | None = None) -> TradingSession | None:
        """The session of `day` (default today, on the venue's clock)."""
        return await session_on(self._ports.rest, day or eastern_date(self._ports.clock.now()))

    # ------------------------------------------------------------------ the journal

    async def reload(self, plan_id: str) -> PlanRecord:
        """A plan from the journal (submitted before a restart) back into the book."""
        journal = self._ports.journal
        row = await journal.get_plan(plan_id)
        if row is None:  # pragma: no cover - record_plan just said it exists
            raise ControlError(ErrorCode.INTERNAL, f"plan {plan_id} vanished from the journal")
        record = restore_record(
            row, await journal.legs(plan_id), self.default_urgency, self._ports.clock.now
        )
        self.plans[plan_id] = record
        return record

    async def journal_end(self, record: PlanRecord) -> None:
        """A finished plan leaves the journal's unfinished list (never resumed again)."""
        try:
            for leg in record.legs:
                await journal_leg(self._ports, record.plan_id, leg)
            await self._ports.journal.update_plan(
                record.plan_id, record.state, record.reason, record.finished_at
            )
        except (JournalError, ValueError) as exc:
            _log.error("journal_plan_end_failed", plan_id=record.plan_id, error=str(exc))

    async def close_unfinished(self, reason: str) -> None:
        """Cancel mode: a plan whose legs did not end in the grace time is still closed in
        the journal, so the next start cancels its orders instead of trading it."""
        for record in self.plans.values():
            if not record.finished:
                record.end("canceled", reason)
                await self.journal_end(record)
