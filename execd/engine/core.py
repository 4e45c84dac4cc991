"""The engine: plans in, progress out. It is the control socket's handler.

`Engine` validates plans (the core's plan model, then the venue's assets and positions, so
that an invalid plan is refused before any order is sent), starts a `PlanRunner` per plan
under its own supervision, and answers `status`, `cancel`, `halt`, `resume`, `health` and
`watch`. A resubmitted `plan_id` returns the existing plan and sends nothing — also after
a restart: plans are journaled before they run, and `recover` (called once at start,
before the socket accepts plans) resumes the unfinished ones and reloads the latest
finished ones so `status` and `list` read the same as before.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import msgspec
import structlog

from execd.adapters.budget import Priority
from execd.adapters.errors import AdapterError
from execd.adapters.journal import JournalError
from execd.adapters.market_stream import MarketStream
from execd.adapters.order_stream import OrderStream
from execd.adapters.wire import TradeUpdate
from execd.config import Settings
from execd.control.protocol import (
    ControlError,
    ErrorCode,
    HaltState,
    Health,
    PlanStatus,
    WatchEvent,
)
from execd.domain.calendar import TradingSession
from execd.domain.ids import parse_client_order_id, plan_key
from execd.domain.market_time import eastern_date
from execd.domain.plans import (
    Plan,
    PlanError,
    PlanInput,
    document_digest,
    parse_document,
)
from execd.domain.risk import WorkingLeg, wash_conflicts
from execd.domain.schedule import Schedule, ScheduleError, plan_schedule
from execd.domain.sizing import qty_for_notional
from execd.domain.tca import far_touch
from execd.domain.types import Urgency
from execd.engine import intake
from execd.engine.benchmarks import capture_plan_arrival
from execd.engine.events import EventHub
from execd.engine.journaling import journal_document, restore_record
from execd.engine.leg import LegPorts
from execd.engine.order_poll import Snapshot, reconcile_working_orders
from execd.engine.records import PlanRecord
from execd.engine.recovery import RecoveryContext, recover
from execd.engine.router import OrderRouter
from execd.engine.runner import PlanRunner, RunnerContext, journal_leg
from execd.engine.stream_limit import with_stream_warning
from execd.engine.venue_reads import cancel_open_execd_orders, session_on, sessions_from

_log = structlog.get_logger("execd.engine")

RELOADED_PLANS = 200
"""Finished plans reloaded from the journal at start, for `status` and `list`."""
EXPIRED_REASON = "plan expired while execd was down"


class FailureMarker(Protocol):
    """Records "the journal refused a write" where a full disk cannot refuse it
    (`execd.adapters.journal_lock.JournalLock`)."""

    previous_failure: str | None

    def mark(self, reason: str) -> None: ...

    def clear(self) -> None: ...


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
        self._plans: dict[str, PlanRecord] = {}
        self._runners: dict[str, PlanRunner] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._halted = False
        self._accepting = False  # until `recover` has run
        self._shutting_down = False
        self._journal_error: str | None = None
        self.failure_marker: FailureMarker | None = None
        """Where a journal failure is recorded for the next start (the lock file)."""
        self._recovering: tuple[int, float] | None = None  # (orders, monotonic ETA)
        self._subscriptions: Counter[str] = Counter()
        self.events = EventHub()
        """What happened, for the metrics and the webhooks (engine.telemetry)."""
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
        self._asset_cache = intake.AssetCache(ports.rest, self._ctx.assets, ports.clock.monotonic)
        self._session_cache = intake.SessionCache(self._read_sessions)
        self._quote_source = intake.QuoteSource(
            ports.quotes,
            ports.rest,
            ports.clock.now,
            ports.params.quote_freshness_seconds,
            ports.params.quote_wait_seconds,
            self._subscribe,
            self._unsubscribe,
        )

    @property
    def quotes(self) -> MarketStream:
        return self._ports.quotes

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
        if self._halted:
            why = f" (journal unwritable: {self._journal_error})" if self._journal_error else ""
            raise ControlError(ErrorCode.HALTED, f"execd is halted{why}: `execd resume` first")
        self._refuse_unless_accepting()
        try:
            model = parse_document(dict(plan))
        except PlanError as exc:
            raise ControlError(ErrorCode.INVALID_PLAN, "; ".join(exc.errors)) from None
        digest = document_digest(model)
        if model.plan_id is not None and not dry_run:
            existing = self._plans.get(model.plan_id)
            if existing is None and await self._ports.journal.get_plan(model.plan_id):
                existing = await self._reload(model.plan_id)  # from before a restart
            if existing is not None:
                return self._resubmitted(existing, digest)
        parsed, source, schedule, held = await self._intake(model)
        if dry_run:
            preview = await self._dry_run(parsed, schedule)
            return with_stream_warning(preview, parsed, self.quotes, self._ports.feed)
        if parsed.plan_id in self._plans:  # submitted twice concurrently
            return self._resubmitted(self._plans[parsed.plan_id], digest)
        if self._halted:  # halted while the venue was asked
            raise ControlError(ErrorCode.HALTED, "execd is halted: `execd resume` first")
        self._refuse_unless_accepting()
        self._refuse_wash_trades(parsed)  # again: another plan may have started meanwhile
        if oversold := intake.sell_errors(
            parsed, held, intake.committed_sells(self._plans.values())
        ):
            raise ControlError(ErrorCode.INVALID_PLAN, "; ".join(oversold))  # same, for sells
        now = self._ports.clock.now()
        record = PlanRecord(parsed, now, self._ports.clock.now)
        record.digest = digest
        record.source = source
        record.session_date = schedule.session.date
        record.scheduled_for = schedule.start_at
        record.deadline_at = schedule.deadline
        if schedule.held:
            record.state = "scheduled"
        self._plans[parsed.plan_id] = record
        try:
            fresh = await self._ports.journal.record_plan(
                parsed.plan_id,
                record.submitted_at,
                journal_document(record),
                state=record.state,
                legs=parsed.legs,
            )
        except (JournalError, ValueError) as exc:
            del self._plans[parsed.plan_id]
            _log.error("journal_plan_failed", plan_id=parsed.plan_id, error=str(exc))
            raise ControlError(
                ErrorCode.INTERNAL, f"journal unavailable, plan not accepted: {exc}"
            ) from None
        if not fresh:  # pragma: no cover - checked above; a race with another writer
            del self._plans[parsed.plan_id]
            return self._resubmitted(await self._reload(parsed.plan_id), digest)
        self._start(PlanRunner(record, self._ctx), schedule.session)
        self._track(
            capture_plan_arrival(
                record, self.quotes, self._subscribe, self._unsubscribe, self._ports.clock.now
            ),
            f"plan_arrival:{parsed.plan_id}",
        )
        _log.info(
            "plan_accepted",
            plan_id=parsed.plan_id,
            legs=len(parsed),
            scheduled_for=None if schedule.start_at is None else schedule.start_at.isoformat(),
        )
        return with_stream_warning(record.to_status(), parsed, self.quotes, self._ports.feed)

    def _resubmitted(self, existing: PlanRecord, digest: str) -> PlanStatus:
        """DESIGN.md "A plan's identity": same id and document, nothing sent; a different
        document under the same id is refused."""
        if existing.digest is not None and existing.digest != digest:
            _log.warning("plan_id_conflict", plan_id=existing.plan_id)
            raise ControlError(
                ErrorCode.PLAN_ID_CONFLICT,
                f"plan {existing.plan_id} was submitted with a different document; nothing"
                " sent (give the new plan another plan_id, or `execd submit --new-id`)",
            )
        _log.info("plan_resubmitted", plan_id=existing.plan_id)
        return msgspec.structs.replace(existing.to_status(), already_submitted=True)

    async def _intake(
        self, model: PlanInput
    ) -> tuple[Plan, dict[str, Any] | None, Schedule, intake.Holdings]:
        """Validate a document against the venue: schedule, assets (cached), positions (one
        read), a targets plan's legs, risk caps. `ControlError` names every problem found
        at the first stage that finds any.

        The stages go from free to dear, and a refusal stops at the first that refuses: the
        document and the cached calendar and asset list (no read), then the positions (one
        read), then the risk caps (the account, and quotes: a symbol with none waits for
        one). Every submit's reads come out of the request budget that running plans wait
        on, refused ones too: a client retrying a refused submit in a loop must spend as
        few as the refusal allows (review 6, spam lane)."""
        now = self._ports.clock.now()
        sessions = await self._sessions(eastern_date(now))
        try:
            schedule = plan_schedule(
                now,
                sessions,
                not_before=model.not_before,
                deadline=model.deadline,
                premarket_lead=timedelta(minutes=self._settings.plans.premarket_lead_minutes),
            )
        except ScheduleError as exc:
            raise ControlError(ErrorCode.INVALID_PLAN, str(exc)) from None
        await self._asset_cache.load(eastern_date(now))
        parsed: Plan | None = None
        if model.targets is None:
            parsed = intake.build(model, self._settings.execution.default_urgency)
            await self._refuse_unreadless(parsed)
        else:
            await intake.refuse_unknown_targets(model, self._asset_cache)
        holdings = await intake.holdings(self._ports.rest)
        held = holdings.available
        equity: Decimal | None = None
        source: dict[str, Any] | None = None
        if parsed is None:
            result = await intake.target_legs(
                model,
                self._ports.rest,
                held,
                self._asset_cache,
                self._quote_source,
                self._settings.plans.min_trade_notional,
            )
            equity = result.equity
            source = model.model_dump(
                mode="json", include={"targets", "cash", "liquidate_unlisted"}
            )
            source["equity"] = str(result.equity)
            parsed = intake.build(model, self._settings.execution.default_urgency, result.legs)
            await self._refuse_unreadless(parsed)
        if errors := intake.sell_errors(
            parsed, holdings, intake.committed_sells(self._plans.values())
        ):
            raise ControlError(ErrorCode.INVALID_PLAN, "; ".join(errors))
        if errors := await intake.risk_errors(
            parsed,
            self._ports.risk,
            self._ports.rest,
            self._quote_source,
            equity,
            scheduled=schedule.held,
        ):
            raise ControlError(ErrorCode.INVALID_PLAN, "; ".join(errors))
        return parsed, source, schedule, holdings

    async def _refuse_unreadless(self, plan: Plan) -> None:
        """What a plan is refused for before the positions and account reads: a wash trade
        against a working plan, an unknown or untradable symbol, a fractional whole-share
        qty (from the cached list, but the venue is asked about a symbol first, within
        bounds: it may have been listed or made fractionable today, review 7)."""
        self._refuse_wash_trades(plan)
        assets = self._asset_cache
        if intake.leg_errors(plan, assets.get):
            await assets.recheck(intake.doubtful_symbols(plan, assets.get))
        if errors := intake.leg_errors(plan, assets.get):
            raise ControlError(ErrorCode.INVALID_PLAN, "; ".join(errors))

    async def _dry_run(self, plan: Plan, schedule: Schedule) -> PlanStatus:
        """What `submit` would do, priced now: each leg's style and first limit price."""
        params = self._ports.params
        found = (await self._quote_source.many(plan.symbols())).fresh
        record = PlanRecord(plan, self._ports.clock.now(), self._ports.clock.now)
        record.scheduled_for = schedule.start_at
        record.state = "scheduled" if schedule.held else "accepted"
        for leg in record.legs:
            style, price = intake.first_price(
                plan, leg.leg.index, found.get(leg.leg.symbol), params
            )
            leg.style = style.value
            leg.limit_price = price
            leg.max_repegs = intake.max_repegs(style.value, params)
            quote = found.get(leg.leg.symbol)
            leg.arrival_mid = None if quote is None else quote.mid
            if leg.qty is None and quote is not None and leg.leg.notional is not None:
                facts = self._asset_cache.get(leg.leg.symbol)
                leg.qty = qty_for_notional(
                    leg.leg.notional,
                    far_touch(leg.leg.side, quote),
                    facts is not None and facts.fractionable,
                )
        _log.info("plan_dry_run", plan_id=plan.plan_id, legs=len(plan))
        return msgspec.structs.replace(record.to_status(), dry_run=True)

    def _refuse_wash_trades(self, plan: Plan) -> None:
        """Refuse a plan that trades a symbol the other way of a working plan (issue 11 §10)."""
        working = (
            WorkingLeg(record.plan_id, leg.leg.label, leg.leg.symbol, leg.leg.side)
            for record in self._plans.values()
            if not record.finished
            for leg in record.legs
            if not leg.finished
        )
        errors = wash_conflicts(plan, working)
        if errors:
            raise ControlError(ErrorCode.INVALID_PLAN, "; ".join(errors))

    def recovery_progress(self) -> str | None:
        """``recovering N orders, ≈S s left`` while `recover` runs, else None."""
        if self._recovering is None:
            return None
        orders, eta = self._recovering
        left = max(0.0, eta - self._ports.clock.monotonic())
        noun = "order" if orders == 1 else "orders"
        return f"recovering {orders} {noun}, ≈{left:.0f} s left"

    def _refuse_unless_accepting(self) -> None:
        """`starting` (with the recovery's progress) or `shutting_down`, never `halted`:
        the kill switch is the only reason for that code (issue 11 §7)."""
        if self._accepting:
            return
        if self._shutting_down:
            raise ControlError(ErrorCode.SHUTTING_DOWN, "execd is shutting down")
        progress = self.recovery_progress() or "not reconciled with the venue yet"
        raise ControlError(ErrorCode.STARTING, f"execd is starting: {progress}")

    def leg_may_claim(self, client_order_id: str) -> bool:
        """True while an unfinished leg of an unfinished plan may yet own the order.

        The orphan sweeper's guard for a leg not (yet) registered with the router: a
        resumed leg adopting its orders after a restart, a scheduled plan's leg. Only a
        finished leg's (or an unknown plan's) live order is an orphan."""
        parts = parse_client_order_id(client_order_id)
        if parts is None:
            return False
        for record in self._plans.values():
            if record.finished_at is None and plan_key(record.plan_id) == parts.plan_key:
                return any(
                    leg.leg.index == parts.leg_index and not leg.finished for leg in record.legs
                )
        return False

    async def status(self, plan_id: str) -> PlanStatus:
        if self._recovering is not None:
            self._refuse_unless_accepting()
        return await self._record(plan_id).status()

    async def list_plans(self) -> list[PlanStatus]:
        if self._recovering is not None:
            self._refuse_unless_accepting()
        return [await record.status() for record in list(self._plans.values())]

    async def cancel(self, plan_id: str) -> PlanStatus:
        if self._recovering is not None:
            self._refuse_unless_accepting()
        record = self._record(plan_id)
        runner = self._runners.get(plan_id)
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
        self._halted = True
        _log.warning("halt_requested")
        await self._journal_halt(True, "halted by `execd halt`")
        self.events.daemon_event("halt", self._ports.clock.now(), reason="execd halt")
        waits = []
        for plan_id, runner in list(self._runners.items()):
            record = self._plans[plan_id]
            if not record.finished:
                runner.stop("halted", state="halted")
                waits.append(record.done)
        canceled = await cancel_open_execd_orders(self._ports.rest)
        if waits:
            try:
                async with asyncio.timeout(self._grace_seconds()):
                    await asyncio.gather(*(done.wait() for done in waits))
            except TimeoutError:
                _log.error("halt_plans_unconfirmed", plans=len(waits))
        return HaltState(halted=True, canceled_orders=canceled)

    async def resume(self) -> HaltState:
        if self._journal_error is not None:
            raise ControlError(
                ErrorCode.HALTED,
                f"the journal cannot be written ({self._journal_error}); fix the storage"
                " and restart execd, then `execd resume`",
            )
        await self._journal_halt(False, "")
        if self.failure_marker is not None:
            self.failure_marker.clear()
        self._halted = False
        _log.info("resumed")
        self.events.daemon_event("resume", self._ports.clock.now())
        return HaltState(halted=False)

    async def on_journal_unwritable(self, reason: str) -> None:
        """The storage refused a journal write (issue 11 §5): stop sending at once, stop
        every plan (state ``halted``, the reason said), cancel execd's working orders,
        and make the failure survive a restart so nothing resumes from a journal that
        stopped recording. `health` reports it; `resume` is refused until a restart."""
        self._journal_error = reason
        self._halted = True
        _log.critical("journal_unwritable", error=reason)
        self.events.daemon_event(
            "halt", self._ports.clock.now(), reason=f"journal unwritable: {reason}"
        )
        if self.failure_marker is not None:
            self.failure_marker.mark(reason)
        stop_reason = f"journal unwritable: {reason}"
        waits = []
        for plan_id, runner in list(self._runners.items()):
            record = self._plans[plan_id]
            if not record.finished:
                runner.stop(stop_reason, state="halted")
                waits.append(record.done)
        await cancel_open_execd_orders(self._ports.rest)
        if waits:
            try:
                async with asyncio.timeout(self._grace_seconds()):
                    await asyncio.gather(*(done.wait() for done in waits))
            except TimeoutError:
                _log.error("halt_plans_unconfirmed", plans=len(waits))

    async def _journal_halt(self, halted: bool, reason: str) -> None:
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

    def running_legs(self) -> int:
        """Legs running their ladder now (`order_poll.WorkingLegs`)."""
        return sum(runner.running_legs for runner in self._runners.values())

    def working_since(self) -> datetime | None:
        """When the oldest unfinished plan was submitted (`order_poll.WorkingLegs`)."""
        times = [r.submitted_at for r in self._plans.values() if not r.finished]
        return min(times, default=None)

    def reconcile_legs(self, snapshot: Snapshot | None) -> None:
        """Every running leg re-reads its orders before acting (`order_poll.WorkingLegs`)."""
        for runner in self._runners.values():
            runner.request_reconcile(snapshot)

    async def health(self) -> Health:
        quotes = self.quotes.statistics()
        budget = self._ports.rest.budget.statistics()
        ages = {
            symbol: round(age, 3) for symbol, age in quotes.message_age.items() if age is not None
        }
        return Health(
            halted=self._halted,
            market_data_connected=quotes.connected,
            trade_updates_connected=(
                self._order_stream is not None and self._order_stream.connected
            ),
            quote_age_seconds=ages,
            request_budget_left=budget.remaining,
            request_budget_limit=budget.limit,
            venue=self._info.venue,
            feed=self._info.feed,
            working_plans=sum(1 for r in self._plans.values() if not r.finished),
            stale_quote_symbols=self._stale_symbols(quotes.subscribed),
            legs_holding=tuple(
                f"{r.plan_id}[{leg.leg.index}] {leg.leg.symbol}"
                for r in self._plans.values()
                for leg in r.legs
                if leg.holding_since is not None and not leg.finished
            ),
            recovering=self.recovery_progress(),
            journal_error=self._journal_error,
            journal_path=str(self._ports.journal.path),
        )

    def _stale_symbols(self, symbols: tuple[str, ...]) -> tuple[str, ...]:
        grace = self._ports.params.quote_wait_seconds
        return tuple(s for s in symbols if self.quotes.outage(s, grace) is not None)

    async def watch(self, plan_id: str) -> AsyncIterator[WatchEvent]:
        if self._recovering is not None:
            self._refuse_unless_accepting()
        record = self._record(plan_id)
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
        working = [r for r in self._plans.values() if not r.finished]
        legs = sum(1 for r in working for leg in r.legs if not leg.finished)
        streams = "streams up" if self.quotes.statistics().connected else "market data down"
        if self._order_stream is not None and not self._order_stream.connected:
            streams = "order stream down"
        halted = "HALTED; " if self._halted else ""
        if (progress := self.recovery_progress()) is not None:
            return f"{halted}{progress}; {streams}"
        return f"{halted}{len(working)} plans working, {legs} legs; {streams}"

    # ------------------------------------------------------------------ lifecycle

    async def recover(self) -> None:
        """At start, before plans are accepted: resume what the journal left unfinished.

        Raises `RecoveryError` when the venue cannot be asked (starting anyway could
        duplicate an order; the daemon exits and systemd retries).
        """
        await self._start_progress()
        try:
            await self._recover()
        finally:
            self._recovering = None

    async def _start_progress(self) -> None:
        """What `recovery_progress` reports: the journal's open orders, and the time the
        longest settle wait (an order sent just before a crash, never answered) ends."""
        gateway = self._settings.gateway
        settle = gateway.write_window_seconds + gateway.request_timeout_seconds
        rows = await self._ports.journal.open_orders()
        now = self._ports.clock.now()
        waits = [
            settle - (now - row.intent_at).total_seconds() for row in rows if row.acked_at is None
        ]
        longest = max([0.0, *waits])
        self._recovering = (len(rows), self._ports.clock.monotonic() + longest)
        if rows:
            _log.info("recovery_started", orders=len(rows), settle_seconds=round(longest, 1))

    async def _recover(self) -> None:
        journal = self._ports.journal
        halted = await journal.halted()
        previous = None if self.failure_marker is None else self.failure_marker.previous_failure
        if previous is not None and halted is None:
            # The last daemon's journal stopped recording mid-trade: reconcile what the
            # venue did, but trade nothing until the user has looked (`execd resume`).
            halted = f"the journal was unwritable: {previous}"
            await self._journal_halt(True, halted)
        if halted is not None:
            self._halted = True
            _log.warning("halted_at_start", reason=halted, hint="`execd resume` to trade again")
        for row in await journal.plans(RELOADED_PLANS):
            if row.finished_at is not None:
                legs = await journal.legs(row.plan_id)
                try:
                    self._plans[row.plan_id] = restore_record(
                        row, legs, self._default_urgency, self._ports.clock.now
                    )
                except (ValueError, PlanError) as exc:  # history only: never block a start
                    _log.error("journal_plan_unreadable", plan_id=row.plan_id, error=str(exc))
        gateway = self._settings.gateway
        context = RecoveryContext(
            journal=journal,
            rest=self._ports.rest,
            clock=self._ports.clock.now,
            default_urgency=self._default_urgency,
            session=await self._session(),
            settle_seconds=gateway.write_window_seconds + gateway.request_timeout_seconds,
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
            self._plans[record.plan_id] = record
            runner = PlanRunner(record, self._ctx, plan.resume)
            if self._halted:  # `halt` arrived while reconciling: cancel, never resume
                runner.stop("halted", state="halted")
            elif plan.expired:
                runner.stop(EXPIRED_REASON)
            today = context.session
            same_day = today is not None and record.session_date in (None, today.date)
            self._start(runner, today if same_day else None)
        self._accepting = True

    async def _reload(self, plan_id: str) -> PlanRecord:
        journal = self._ports.journal
        row = await journal.get_plan(plan_id)
        if row is None:  # pragma: no cover - record_plan just said it exists
            raise ControlError(ErrorCode.INTERNAL, f"plan {plan_id} vanished from the journal")
        record = restore_record(
            row, await journal.legs(plan_id), self._default_urgency, self._ports.clock.now
        )
        self._plans[plan_id] = record
        return record

    def _start(self, runner: PlanRunner, session: TradingSession | None = None) -> None:
        """Run a plan; `session` when already known (a recovered plan must not fail on a
        second calendar read with its adopted orders working)."""
        plan_id = runner.record.plan_id
        runner.record.hub = self.events
        self._runners[plan_id] = runner
        self._track(self._run_plan(runner, session), f"plan:{plan_id}")

    def _track(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` as a task the engine's shutdown waits for (then cancels)."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def _default_urgency(self) -> Urgency:
        return self._settings.execution.default_urgency

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
        or (`leave_orders`) stop the legs where they stand, orders working, for the next
        start to adopt from the journal."""
        self._accepting = False
        self._shutting_down = True
        if leave_orders:
            await self._abandon(grace)
            return
        for plan_id, runner in list(self._runners.items()):
            if not self._plans[plan_id].finished:
                runner.stop("daemon shutting down")
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=grace)
            for task in pending:
                _log.error("plan_shutdown_timeout", task=task.get_name())
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            await self._close_unfinished("daemon shut down before its cancels were confirmed")
        swept = await cancel_open_execd_orders(self._ports.rest)
        if swept:
            _log.warning("shutdown_swept_open_orders", count=swept)

    async def _close_unfinished(self, reason: str) -> None:
        """Cancel mode: a plan whose legs did not end in the grace time is still closed in
        the journal, so the next start cancels its orders instead of trading it."""
        for record in self._plans.values():
            if not record.finished:
                record.end("canceled", reason)
                await self._journal_end(record)

    async def _abandon(self, grace: float) -> None:
        """Cancel the plan tasks, not their orders: the journal keeps them unfinished."""
        working = [r.plan_id for r in self._plans.values() if not r.finished]
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=grace)
            for task in pending:
                _log.error("plan_shutdown_timeout", task=task.get_name())
        _log.warning("shutdown_left_working_orders", plans=working)

    # ------------------------------------------------------------------ internals

    def _record(self, plan_id: str) -> PlanRecord:
        record = self._plans.get(plan_id)
        if record is None:
            raise ControlError(ErrorCode.NOT_FOUND, f"no plan {plan_id!r}")
        return record

    def _grace_seconds(self) -> float:
        return self._settings.ladder.confirm_timeout_seconds * 3

    async def _run_plan(self, runner: PlanRunner, session: TradingSession | None) -> None:
        record = runner.record
        structlog.contextvars.bind_contextvars(plan_id=record.plan_id)
        try:
            if session is None:
                session = await self._session(record.session_date)
            await runner.run(session, record.deadline_at)
        except Exception as exc:  # a plan's failure must not take the daemon down
            _log.exception("plan_crashed", error=repr(exc))
            if not record.finished:
                record.end("failed", f"internal error: {exc!r}")
                await self._journal_end(record)
        finally:
            self._runners.pop(record.plan_id, None)

    async def _journal_end(self, record: PlanRecord) -> None:
        """A finished plan leaves the journal's unfinished list (never resumed again)."""
        try:
            for leg in record.legs:
                await journal_leg(self._ports, record.plan_id, leg)
            await self._ports.journal.update_plan(
                record.plan_id, record.state, record.reason, record.finished_at
            )
        except (JournalError, ValueError) as exc:
            _log.error("journal_plan_end_failed", plan_id=record.plan_id, error=str(exc))

    async def _session(self, day: date | None = None) -> TradingSession | None:
        """The session of `day` (default today, on the venue's clock)."""
        return await session_on(self._ports.rest, day or eastern_date(self._ports.clock.now()))

    async def _sessions(self, today: date) -> list[TradingSession]:
        """A submit's sessions: the calendar, read once per venue day (`SessionCache`)."""
        try:
            return await self._session_cache.on(today)
        except AdapterError as exc:
            raise intake.venue_unavailable(exc) from None

    async def _read_sessions(self, today: date) -> list[TradingSession]:
        return await sessions_from(self._ports.rest, today, Priority.VALIDATE)
