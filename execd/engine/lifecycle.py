"""The engine's start and stop: resume what the journal left unfinished, and end the plans.

At start (`recover`, before the control socket accepts plans) the journal's unfinished
plans are reconciled with the venue and resumed, and the latest finished ones reloaded so
`status` and `list` read as before the restart. At stop (`shutdown`) the plans are either
stopped and their orders cancelled, or (`leave_orders`) left working for the next start to
adopt. Kept apart from the control surface: these run once each, under the daemon's own
phases and timeouts, never on a client's request.
"""

from __future__ import annotations

import asyncio

import structlog

from execd.config import Settings
from execd.domain.market_time import eastern_date
from execd.domain.plans import PlanError
from execd.engine import intake
from execd.engine.book import PlanBook
from execd.engine.journaling import restore_record
from execd.engine.kill_switch import KillSwitch
from execd.engine.leg import LegPorts
from execd.engine.recovery import RecoveryContext, recover
from execd.engine.runner import PlanRunner, RunnerContext
from execd.engine.venue_reads import HALT_RETRY_SECONDS, cancel_open_execd_orders

_log = structlog.get_logger("execd.engine")

RELOADED_PLANS = 200
"""Finished plans reloaded from the journal at start, for `status` and `list`."""
EXPIRED_REASON = "plan expired while execd was down"


class Lifecycle:
    """`recover` once at start, `shutdown` once at stop; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        ports: LegPorts,
        book: PlanBook,
        ctx: RunnerContext,
        kill_switch: KillSwitch,
        assets: intake.AssetCache,
    ) -> None:
        self._settings = settings
        self._ports = ports
        self._book = book
        self._ctx = ctx
        self._kill_switch = kill_switch
        self._asset_cache = assets

    # ------------------------------------------------------------------ start

    async def recover(self) -> None:
        """At start, before plans are accepted: resume what the journal left unfinished.

        Raises `RecoveryError` when the venue cannot be asked (starting anyway could
        duplicate an order; the daemon exits and systemd retries).
        """
        await self._start_progress()
        try:
            await self._recover()
        finally:
            self._book.recovering = None

    def _settle_seconds(self) -> float:
        gateway = self._settings.gateway
        return gateway.write_window_seconds + gateway.request_timeout_seconds

    async def _start_progress(self) -> None:
        """What `recovery_progress` reports: the journal's open orders, and the time the
        longest settle wait (an order sent just before a crash, never answered) ends."""
        settle = self._settle_seconds()
        rows = await self._ports.journal.open_orders()
        now = self._ports.clock.now()
        waits = [
            settle - (now - row.intent_at).total_seconds() for row in rows if row.acked_at is None
        ]
        longest = max([0.0, *waits])
        self._book.recovering = (len(rows), self._ports.clock.monotonic() + longest)
        if rows:
            _log.info("recovery_started", orders=len(rows), settle_seconds=round(longest, 1))

    async def _recover(self) -> None:
        book = self._book
        journal = self._ports.journal
        halted = await journal.halted()
        marker = book.failure_marker
        previous = None if marker is None else marker.previous_failure
        if previous is not None and halted is None:
            # The last daemon's journal stopped recording mid-trade: reconcile what the
            # venue did, but trade nothing until the user has looked (`execd resume`).
            halted = f"the journal was unwritable: {previous}"
            await self._kill_switch.journal_halt(True, halted)
        if halted is not None:
            book.halted = True
            _log.warning("halted_at_start", reason=halted, hint="`execd resume` to trade again")
        for row in await journal.plans(RELOADED_PLANS):
            if row.finished_at is not None:
                legs = await journal.legs(row.plan_id)
                try:
                    book.plans[row.plan_id] = restore_record(
                        row, legs, book.default_urgency, self._ports.clock.now
                    )
                except (ValueError, PlanError) as exc:  # history only: never block a start
                    _log.error("journal_plan_unreadable", plan_id=row.plan_id, error=str(exc))
        context = RecoveryContext(
            journal=journal,
            rest=self._ports.rest,
            clock=self._ports.clock.now,
            default_urgency=book.default_urgency,
            session=await book.session(),
            settle_seconds=self._settle_seconds(),
        )
        recovered = await recover(context)
        now = self._ports.clock.now()
        if recovered:
            await self._asset_cache.load(eastern_date(self._ports.clock.now()))
        for plan in recovered:
            for symbol in plan.record.plan.symbols():
                if self._asset_cache.get(symbol) is None:  # delisted while down
                    _log.error("recovered_symbol_unknown", symbol=symbol)
            record = plan.record
            held = record.scheduled_for is not None and record.scheduled_for > now
            record.state = "scheduled" if held else "working"
            book.plans[record.plan_id] = record
            runner = PlanRunner(record, self._ctx, plan.resume)
            if book.halted:  # `halt` arrived while reconciling: cancel, never resume
                runner.stop("halted", state="halted")
            elif plan.expired:
                runner.stop(EXPIRED_REASON)
            today = context.session
            same_day = today is not None and record.session_date in (None, today.date)
            book.start(runner, today if same_day else None)
        book.accepting = True

    # ------------------------------------------------------------------ stop

    async def shutdown(self, grace: float, *, leave_orders: bool = False) -> None:
        """Stop accepting plans; then cancel working orders and wait for the plans to end,
        or (`leave_orders`) stop the legs where they stand, orders working, for the next
        start to adopt from the journal."""
        book = self._book
        book.accepting = False
        book.shutting_down = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if leave_orders:
            await self._abandon(grace)
            return
        book.stop_unfinished("daemon shutting down")
        if book.tasks:
            _, pending = await asyncio.wait(list(book.tasks), timeout=grace)
            for task in pending:
                _log.error("plan_shutdown_timeout", task=task.get_name())
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            await book.close_unfinished("daemon shut down before its cancels were confirmed")
        # A refused cancel of an unsettled order is retried within the grace, and at
        # least as long as any refused cancel (the plans may have spent the grace).
        until = max(deadline, loop.time() + HALT_RETRY_SECONDS)
        swept = await cancel_open_execd_orders(self._ports.rest, until=until)
        if swept:
            _log.warning("shutdown_swept_open_orders", count=swept)

    async def _abandon(self, grace: float) -> None:
        """Cancel the plan tasks, not their orders: the journal keeps them unfinished.

        A halt already cancelling is the user's explicit word, later than the config's:
        its pass is waited for (within `grace`), not cancelled half way, and it ends before
        the gateway closes (review 10). Halts that come now are refused."""
        book = self._book
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        await self._kill_switch.finish_pass(grace)
        grace = max(0.0, deadline - loop.time())
        working = [r.plan_id for r in book.unfinished()]
        for task in list(book.tasks):
            task.cancel()
        if book.tasks:
            _, pending = await asyncio.wait(list(book.tasks), timeout=grace)
            for task in pending:
                _log.error("plan_shutdown_timeout", task=task.get_name())
        _log.warning("shutdown_left_working_orders", plans=working)
