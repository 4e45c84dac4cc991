"""The kill switch: `execd halt`, `execd resume`, and the halt the journal's failure forces.

Kept apart from the engine's plan lifecycle because it is the one path that must work when
everything else is going wrong (a full disk, a backlog of orders, a venue refusing cancels):
it stops every plan, cancels every working execd order over REST, and records that the
daemon is halted so that a restart stays halted until the user says otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

from execd.adapters.journal import JournalError
from execd.control.protocol import ControlError, ErrorCode, HaltState, WorkingOrder
from execd.engine.book import PlanBook
from execd.engine.events import EventHub
from execd.engine.leg import LegPorts
from execd.engine.venue_reads import sweep_open_execd_orders

_log = structlog.get_logger("execd.engine")


def _log_crash(task: asyncio.Task[HaltState]) -> None:
    """A stop pass that raised is logged even when every caller has gone (and so none
    will see its exception)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        _log.error("halt_crashed", error=repr(exc), exc_info=exc)


class KillSwitch:
    """Halts and resumes the engine's `PlanBook`; see the module docstring.

    `grace_seconds`: the deadline of a halt, from its start: its cancels are retried and
    the stopped plans' ends waited for within it.

    One stop pass at a time: a halt (or the journal failure's stop) that comes while
    another is running joins it — waits for it and answers what it answers — instead of
    listing the venue again and sending a second DELETE for every order the first has not
    yet seen cancelled. The pass is a task of its own, so a client that hangs up on
    `execd halt` does not stop the cancels half way (the shutdown waits for it)."""

    def __init__(
        self, ports: LegPorts, book: PlanBook, events: EventHub, grace_seconds: float
    ) -> None:
        self._ports = ports
        self._book = book
        self._events = events
        self._grace_seconds = grace_seconds
        self._pass: asyncio.Task[HaltState] | None = None
        # Halts asked so far: a resume that waited for a pass un-halts only if no halt
        # came while it waited (the user's last word wins).
        self._halts = 0

    async def halt(self) -> HaltState:
        """The kill switch: stop every plan, cancel every working execd order (REST only).

        While a stop pass runs, a second halt joins it (logged `halt_joined`) and is
        answered the same `HaltState`: the orders that pass cancelled.

        Refused (`shutting_down`) once the daemon stops: the shutdown owns the orders then
        (cancelling them, or leaving them for the next start as configured), and a pass
        started now would outlive the REST gateway."""
        if self._book.shutting_down:
            raise ControlError(
                ErrorCode.SHUTTING_DOWN,
                "execd is shutting down: its orders are cancelled or left working as"
                " `[shutdown] working_orders` says; check the venue",
            )
        self._halts += 1
        self._book.halted = True
        if self._running():
            _log.warning("halt_joined", hint="a halt is already cancelling: waiting for it")
        else:
            self._start(self._halt())
        return await self._join()

    async def _halt(self) -> HaltState:
        _log.warning("halt_requested")
        await self.journal_halt(True, "halted by `execd halt`")
        self._events.daemon_event("halt", self._ports.clock.now(), reason="execd halt")
        return await self._stop_pass("halted")

    async def resume(self) -> HaltState:
        """Accept plans again; after the running stop pass, if any (its listing would
        otherwise cancel the orders of a plan submitted right after the resume)."""
        book = self._book
        halts = self._halts
        if book.journal_error is None and self._running():
            _log.info("resume_waits_for_halt")
            await self._join()
            if self._halts != halts:
                # A halt came while this resume waited, and was answered "halted".
                _log.warning("resume_overridden", hint="a later `execd halt` stands")
                return HaltState(
                    halted=True,
                    refused="a later `execd halt` came while this resume waited: still halted",
                )
        if book.journal_error is not None:
            raise ControlError(
                ErrorCode.HALTED,
                f"the journal cannot be written ({book.journal_error}); fix the storage"
                " and restart execd, then `execd resume`",
            )
        await self.journal_halt(False, "")
        if book.failure_marker is not None:
            book.failure_marker.clear()
        book.halted = False
        _log.info("resumed")
        self._events.daemon_event("resume", self._ports.clock.now())
        return HaltState(halted=False)

    async def on_journal_unwritable(self, reason: str) -> None:
        """The storage refused a journal write (issue 11 §5): stop sending at once, stop
        every plan (state ``halted``, the reason said), cancel execd's working orders,
        and make the failure survive a restart so nothing resumes from a journal that
        stopped recording. `health` reports it; `resume` is refused until a restart.
        A halt already running cancels the orders: this stop joins it."""
        book = self._book
        book.journal_error = reason
        book.halted = True
        _log.critical("journal_unwritable", error=reason)
        self._events.daemon_event(
            "halt", self._ports.clock.now(), reason=f"journal unwritable: {reason}"
        )
        if book.failure_marker is not None:
            book.failure_marker.mark(reason)
        stop_reason = f"journal unwritable: {reason}"
        if self._running():
            # The running pass has listed (or will list) every order: stop the plans it
            # may not have reached yet with this reason, and wait for it.
            book.stop_unfinished(stop_reason, state="halted")
            _log.warning("journal_unwritable_joined_halt")
        else:
            self._start(self._stop_pass(stop_reason))
        await self._join()

    async def finish_pass(self, grace: float) -> None:
        """At shutdown, before the REST gateway closes: let a running stop pass end (it
        answers a user's halt with what it cancelled) instead of cancelling it half way,
        within `grace` seconds; past it, it is cancelled (logged) so it never outlives the
        gateway. New halts are refused by then (`shutting_down`)."""
        work = self._pass
        if work is None or work.done():
            return
        _log.info("shutdown_waits_for_halt")
        _, pending = await asyncio.wait({work}, timeout=grace)
        if pending:
            _log.error("halt_shutdown_timeout", hint="execd orders may still be working")
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)

    # ------------------------------------------------------------------ the stop pass

    def _running(self) -> bool:
        return self._pass is not None and not self._pass.done()

    def _start(self, work: Coroutine[Any, Any, HaltState]) -> None:
        self._pass = self._book.track(work, "halt")
        self._pass.add_done_callback(_log_crash)

    async def _join(self) -> HaltState:
        """Wait for the running pass; a caller cancelled (a client that hung up) leaves it
        running."""
        assert self._pass is not None
        return await asyncio.shield(self._pass)

    async def _stop_pass(self, reason: str) -> HaltState:
        """Stop every plan, cancel execd's open orders, wait for the plans to end — all
        within one deadline, `grace_seconds` from the start: a cancel the venue refuses
        while the order is unsettled (a replace pending, §1.7) is sent again until then,
        however slow the venue, and the orders still refused then are named at error."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._grace_seconds
        waits = self._book.stop_unfinished(reason, state="halted")
        # The stopped legs cancel their own orders; the sweep cancels the rest (orders no
        # leg owns: a leg already ended, a POST in flight) and confirms the legs' cancels.
        sweep = await sweep_open_execd_orders(
            self._ports.rest, until=deadline, owned=self._book.leg_cancels
        )
        if not all(done.is_set() for done in waits):
            try:
                async with asyncio.timeout_at(deadline):
                    await asyncio.gather(*(done.wait() for done in waits))
            except TimeoutError:
                ended = sum(done.is_set() for done in waits)
                _log.error("halt_plans_unconfirmed", plans=len(waits) - ended)
        still = tuple(
            WorkingOrder(client_order_id=cid, status=status)
            for cid, status in sorted(sweep.still_working.items())
        )
        return HaltState(
            halted=True,
            canceled_orders=sweep.canceled,
            still_working=still,
            listing_failed=sweep.listing_failed,
        )

    async def journal_halt(self, halted: bool, reason: str) -> None:
        """The kill switch survives a restart (issue 11 §8). A halt whose journal write
        fails still halts this process (loudly); a resume that cannot be journaled is
        refused, since a restart would otherwise come back halted without saying why."""
        try:
            await self._ports.journal.set_halted(halted, self._ports.clock.now(), reason)
        except (JournalError, ValueError) as exc:
            _log.error("journal_halt_failed", halted=halted, error=str(exc))
            if not halted:
                raise ControlError(
                    ErrorCode.INTERNAL, f"journal unavailable, still halted: {exc}"
                ) from None
