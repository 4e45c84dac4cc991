"""The kill switch: `execd halt`, `execd resume`, and the halt the journal's failure forces.

Kept apart from the engine's plan lifecycle because it is the one path that must work when
everything else is going wrong (a full disk, a backlog of orders, a venue refusing cancels):
it stops every plan, cancels every working execd order over REST, and records that the
daemon is halted so that a restart stays halted until the user says otherwise.
"""

from __future__ import annotations

import asyncio

import structlog

from execd.adapters.journal import JournalError
from execd.control.protocol import ControlError, ErrorCode, HaltState
from execd.engine.book import PlanBook
from execd.engine.events import EventHub
from execd.engine.leg import LegPorts
from execd.engine.venue_reads import cancel_open_execd_orders

_log = structlog.get_logger("execd.engine")


class KillSwitch:
    """Halts and resumes the engine's `PlanBook`; see the module docstring.

    `grace_seconds`: how long a halt waits for the stopped plans to confirm their end."""

    def __init__(
        self, ports: LegPorts, book: PlanBook, events: EventHub, grace_seconds: float
    ) -> None:
        self._ports = ports
        self._book = book
        self._events = events
        self._grace_seconds = grace_seconds

    async def halt(self) -> HaltState:
        """The kill switch: stop every plan, cancel every working execd order (REST only)."""
        self._book.halted = True
        _log.warning("halt_requested")
        await self.journal_halt(True, "halted by `execd halt`")
        self._events.daemon_event("halt", self._ports.clock.now(), reason="execd halt")
        waits = self._book.stop_unfinished("halted", state="halted")
        canceled = await cancel_open_execd_orders(self._ports.rest)
        await self._wait_plans(waits)
        return HaltState(halted=True, canceled_orders=canceled)

    async def resume(self) -> HaltState:
        book = self._book
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
        stopped recording. `health` reports it; `resume` is refused until a restart."""
        book = self._book
        book.journal_error = reason
        book.halted = True
        _log.critical("journal_unwritable", error=reason)
        self._events.daemon_event(
            "halt", self._ports.clock.now(), reason=f"journal unwritable: {reason}"
        )
        if book.failure_marker is not None:
            book.failure_marker.mark(reason)
        waits = book.stop_unfinished(f"journal unwritable: {reason}", state="halted")
        await cancel_open_execd_orders(self._ports.rest)
        await self._wait_plans(waits)

    async def _wait_plans(self, waits: list[asyncio.Event]) -> None:
        """Wait (within the grace) for the stopped plans to confirm their end."""
        if not waits:
            return
        try:
            async with asyncio.timeout(self._grace_seconds):
                await asyncio.gather(*(done.wait() for done in waits))
        except TimeoutError:
            _log.error("halt_plans_unconfirmed", plans=len(waits))

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
