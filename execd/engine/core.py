"""The engine: plans in, progress out. It is the control socket's handler.

`Engine` is the one object the daemon, the control server and the order-stream pollers
hold; it answers `status`, `list`, `cancel`, `health` and `watch` itself and hands each
other job to the module that does it:

- `submission.Submissions` — `submit`: validate a plan against the venue, journal it,
  start it (a resubmitted `plan_id` returns the existing plan and sends nothing);
- `kill_switch.KillSwitch` — `halt`, `resume`, and the halt a journal failure forces;
- `lifecycle.Lifecycle` — `recover` once at start (before the socket accepts plans: the
  journal's unfinished plans resume, the latest finished ones reload), `shutdown` at stop;
- `book.PlanBook` — the plans, their runners and the flags every part shares.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from execd.adapters.market_stream import MarketStream
from execd.adapters.order_stream import OrderStream
from execd.adapters.wire import TradeUpdate
from execd.config import Settings
from execd.control.protocol import HaltState, Health, PlanStatus, WatchEvent
from execd.engine.book import FailureMarker, PlanBook
from execd.engine.events import EventHub
from execd.engine.kill_switch import KillSwitch
from execd.engine.leg import LegPorts
from execd.engine.lifecycle import Lifecycle
from execd.engine.order_poll import Snapshot, reconcile_working_orders
from execd.engine.router import OrderRouter
from execd.engine.runner import PlanRunner, RunnerContext
from execd.engine.submission import Submissions

__all__ = ["Engine", "EngineInfo"]

_log = structlog.get_logger("execd.engine")


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """Facts for `health` that the engine does not own."""

    venue: str
    feed: str


class Engine:
    """Implements `execd.control.server.ControlHandler`; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        ports: LegPorts,
        router: OrderRouter[TradeUpdate],
        order_stream: OrderStream | None,
        info: EngineInfo,
    ) -> None:
        self._settings = settings
        self._ports = ports
        self._router = router
        self._order_stream = order_stream
        self._info = info
        self._subscriptions: Counter[str] = Counter()
        self.events = EventHub()
        """What happened, for the metrics and the webhooks (engine.telemetry)."""
        self._book = PlanBook(ports, self.events, settings.execution.default_urgency)
        self._ctx = RunnerContext(
            ports=ports,
            router=router,
            assets={},
            overlap_buys=settings.plans.overlap_buys,
            subscribe=self._subscribe,
            unsubscribe=self._unsubscribe,
            use_margin=settings.risk.use_margin,
            shrink_tolerance_percent=settings.risk.buy_shrink_tolerance_percent,
            max_leg_seconds=settings.ladder.max_leg_seconds,
        )
        self._submissions = Submissions(
            settings, ports, self._book, self._ctx, self._subscribe, self._unsubscribe
        )
        self._kill_switch = KillSwitch(ports, self._book, self.events, self._grace_seconds())
        self._lifecycle = Lifecycle(
            settings, ports, self._book, self._ctx, self._kill_switch, self._submissions.assets
        )

    @property
    def quotes(self) -> MarketStream:
        return self._ports.quotes

    @property
    def failure_marker(self) -> FailureMarker | None:
        """Where a journal failure is recorded for the next start (the lock file)."""
        return self._book.failure_marker

    @failure_marker.setter
    def failure_marker(self, marker: FailureMarker | None) -> None:
        self._book.failure_marker = marker

    @property
    def _runners(self) -> dict[str, PlanRunner]:
        """The running plans' runners (tests reach a plan's runner through it)."""
        return self._book.runners

    # ------------------------------------------------------------------ subscriptions

    def _subscribe(self, symbol: str) -> None:
        if self._subscriptions[symbol] == 0:
            self.quotes.subscribe([symbol])
        self._subscriptions[symbol] += 1

    def _unsubscribe(self, symbol: str) -> None:
        self._subscriptions[symbol] -= 1
        if self._subscriptions[symbol] <= 0:
            del self._subscriptions[symbol]
            self.quotes.unsubscribe([symbol])

    # ------------------------------------------------------------------ handler ops

    async def submit(self, plan: Mapping[str, Any], *, dry_run: bool = False) -> PlanStatus:
        return await self._submissions.submit(plan, dry_run=dry_run)

    def recovery_progress(self) -> str | None:
        """``recovering N orders, ≈S s left`` while `recover` runs, else None."""
        return self._book.recovery_progress()

    def leg_may_claim(self, client_order_id: str) -> bool:
        """The orphan sweeper's guard (`PlanBook.leg_may_claim`)."""
        return self._book.leg_may_claim(client_order_id)

    async def status(self, plan_id: str) -> PlanStatus:
        self._book.refuse_while_recovering()
        return await self._book.record(plan_id).status()

    async def list_plans(self) -> list[PlanStatus]:
        self._book.refuse_while_recovering()
        return [await record.status() for record in list(self._book.plans.values())]

    async def cancel(self, plan_id: str) -> PlanStatus:
        self._book.refuse_while_recovering()
        record = self._book.record(plan_id)
        runner = self._book.runners.get(plan_id)
        if runner is not None and not record.finished:
            _log.info("plan_cancel_requested", plan_id=plan_id)
            runner.stop("canceled by user")
            try:
                async with asyncio.timeout(self._grace_seconds()):
                    await record.done.wait()
            except TimeoutError:
                _log.error("plan_cancel_unconfirmed", plan_id=plan_id)
        return record.to_status()

    async def halt(self) -> HaltState:
        """The kill switch: stop every plan, cancel every working execd order (REST only)."""
        return await self._kill_switch.halt()

    async def resume(self) -> HaltState:
        return await self._kill_switch.resume()

    async def on_journal_unwritable(self, reason: str) -> None:
        """The storage refused a journal write: halt (`KillSwitch.on_journal_unwritable`)."""
        await self._kill_switch.on_journal_unwritable(reason)

    def running_legs(self) -> int:
        """Legs running their ladder now (`order_poll.WorkingLegs`)."""
        return self._book.running_legs()

    def working_since(self) -> datetime | None:
        """When the oldest unfinished plan was submitted (`order_poll.WorkingLegs`)."""
        return self._book.working_since()

    def reconcile_legs(self, snapshot: Snapshot | None) -> None:
        """Every running leg re-reads its orders before acting (`order_poll.WorkingLegs`)."""
        self._book.reconcile_legs(snapshot)

    async def health(self) -> Health:
        quotes = self.quotes.statistics()
        budget = self._ports.rest.budget.statistics()
        data_budget = self._ports.rest.data_budget.statistics()
        ages = {
            symbol: round(age, 3) for symbol, age in quotes.message_age.items() if age is not None
        }
        return Health(
            halted=self._book.halted,
            market_data_connected=quotes.connected,
            trade_updates_connected=(
                self._order_stream is not None and self._order_stream.connected
            ),
            quote_age_seconds=ages,
            request_budget_left=budget.remaining,
            request_budget_limit=budget.limit,
            data_budget_left=data_budget.remaining,
            data_budget_limit=data_budget.limit,
            venue=self._info.venue,
            feed=self._info.feed,
            working_plans=len(self._book.unfinished()),
            stale_quote_symbols=self._stale_symbols(quotes.subscribed),
            legs_holding=tuple(
                f"{r.plan_id}[{leg.leg.index}] {leg.leg.symbol}"
                for r in self._book.plans.values()
                for leg in r.legs
                if leg.holding_since is not None and not leg.finished
            ),
            recovering=self.recovery_progress(),
            journal_error=self._book.journal_error,
            journal_path=str(self._ports.journal.path),
        )

    def _stale_symbols(self, symbols: tuple[str, ...]) -> tuple[str, ...]:
        grace = self._ports.params.quote_wait_seconds
        return tuple(s for s in symbols if self.quotes.outage(s, grace) is not None)

    async def watch(self, plan_id: str) -> AsyncIterator[WatchEvent]:
        self._book.refuse_while_recovering()
        record = self._book.record(plan_id)
        queue = None if record.finished else record.watch_queue()
        for leg in record.legs:
            yield WatchEvent(
                plan_id=plan_id,
                seq=-1,
                at=self._ports.clock.now(),
                event="snapshot",
                plan_state=record.state,
                leg=leg.to_status(),
            )
        if queue is None:
            return
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                yield item
        finally:
            record.watchers.discard(queue)

    def summary(self) -> str:
        """One line for systemd's STATUS=: plans, legs, streams, halt."""
        working = self._book.unfinished()
        legs = sum(1 for r in working for leg in r.legs if not leg.finished)
        streams = "streams up" if self.quotes.statistics().connected else "market data down"
        if self._order_stream is not None and not self._order_stream.connected:
            streams = "order stream down"
        halted = "HALTED; " if self._book.halted else ""
        if (progress := self.recovery_progress()) is not None:
            return f"{halted}{progress}; {streams}"
        return f"{halted}{len(working)} plans working, {legs} legs; {streams}"

    # ------------------------------------------------------------------ lifecycle

    async def recover(self) -> None:
        """At start, before plans are accepted: resume what the journal left unfinished.

        Raises `RecoveryError` when the venue cannot be asked (starting anyway could
        duplicate an order; the daemon exits and systemd retries).
        """
        await self._lifecycle.recover()

    async def on_order_stream_reconnected(self, down_since: object) -> None:
        """After an outage of trade_updates, every running leg re-reads its orders."""
        if down_since is None:
            return
        _log.warning("order_stream_reconnected_reconciling", down_since=str(down_since))
        await reconcile_working_orders(
            self._ports.rest,
            self,
            "order_stream_reconnected",
            self._settings.gateway.request_timeout_seconds,
            fallback=True,
        )

    async def shutdown(self, grace: float, *, leave_orders: bool = False) -> None:
        """Stop accepting plans; then cancel working orders and wait for the plans to end,
        or (`leave_orders`) leave them working for the next start to adopt."""
        await self._lifecycle.shutdown(grace, leave_orders=leave_orders)

    def _grace_seconds(self) -> float:
        """How long `cancel` waits for a stopped plan to confirm its end; a halt's deadline."""
        return self._settings.ladder.confirm_timeout_seconds * 3
