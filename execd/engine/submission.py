"""A plan's way in: `submit` validates a document against the venue and starts it.

The checks go from free to dear (the document, the cached calendar and assets, one
positions read, the risk caps), so that a refused plan costs as few requests of the budget
that running plans share as the refusal allows; an accepted plan is journaled before it
runs, so that a resubmission — also after a restart — answers "already submitted" and
sends nothing (DESIGN.md "A plan's identity"). Kept apart from the engine's other jobs:
this is the only path that creates plans.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import structlog

from execd.adapters.budget import Priority
from execd.adapters.errors import AdapterError
from execd.adapters.journal import JournalError
from execd.adapters.market_stream import MarketStream
from execd.config import Settings
from execd.control.protocol import ControlError, ErrorCode, PlanStatus
from execd.domain.calendar import TradingSession
from execd.domain.market_time import eastern_date
from execd.domain.plans import Plan, PlanError, PlanInput, document_digest, parse_document
from execd.domain.risk import WorkingLeg, wash_conflicts
from execd.domain.schedule import Schedule, ScheduleError, plan_schedule
from execd.domain.sizing import qty_for_notional
from execd.domain.tca import far_touch
from execd.engine import intake
from execd.engine.benchmarks import capture_plan_arrival
from execd.engine.book import PlanBook
from execd.engine.journaling import journal_document
from execd.engine.leg import LegPorts
from execd.engine.records import PlanRecord
from execd.engine.runner import PlanRunner, RunnerContext
from execd.engine.venue_reads import sessions_from

_log = structlog.get_logger("execd.engine")


class Submissions:
    """`submit` (and its dry run) into the engine's `PlanBook`; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        ports: LegPorts,
        book: PlanBook,
        ctx: RunnerContext,
        subscribe: Callable[[str], None],
        unsubscribe: Callable[[str], None],
    ) -> None:
        self._settings = settings
        self._ports = ports
        self._book = book
        self._ctx = ctx
        self._subscribe = subscribe
        self._unsubscribe = unsubscribe
        self.assets = intake.AssetCache(ports.rest, ctx.assets, ports.clock.monotonic)
        """The venue's asset list, cached per venue day (recovery checks symbols in it)."""
        self._session_cache = intake.SessionCache(self._read_sessions)
        self._quote_source = intake.QuoteSource(
            ports.quotes,
            ports.rest,
            ports.clock.now,
            ports.params.quote_freshness_seconds,
            ports.params.quote_wait_seconds,
            subscribe,
            unsubscribe,
        )

    @property
    def quotes(self) -> MarketStream:
        return self._ports.quotes

    async def submit(self, plan: Mapping[str, Any], *, dry_run: bool = False) -> PlanStatus:
        if self._book.halted:
            why = (
                f" (journal unwritable: {self._book.journal_error})"
                if self._book.journal_error
                else ""
            )
            raise ControlError(ErrorCode.HALTED, f"execd is halted{why}: `execd resume` first")
        self._book.refuse_unless_accepting()
        try:
            model = parse_document(dict(plan))
        except PlanError as exc:
            raise ControlError(ErrorCode.INVALID_PLAN, "; ".join(exc.errors)) from None
        digest = document_digest(model)
        if model.plan_id is not None and not dry_run:
            existing = self._book.plans.get(model.plan_id)
            if existing is None and await self._ports.journal.get_plan(model.plan_id):
                existing = await self._book.reload(model.plan_id)  # from before a restart
            if existing is not None:
                return self._resubmitted(existing, digest)
        parsed, source, schedule, held = await self._intake(model)
        if dry_run:
            return await self._dry_run(parsed, schedule)
        if parsed.plan_id in self._book.plans:  # submitted twice concurrently
            return self._resubmitted(self._book.plans[parsed.plan_id], digest)
        if self._book.halted:  # halted while the venue was asked
            raise ControlError(ErrorCode.HALTED, "execd is halted: `execd resume` first")
        self._book.refuse_unless_accepting()
        self._refuse_wash_trades(parsed)  # again: another plan may have started meanwhile
        if oversold := intake.sell_errors(
            parsed, held, intake.committed_sells(self._book.plans.values())
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
        self._book.plans[parsed.plan_id] = record
        try:
            fresh = await self._ports.journal.record_plan(
                parsed.plan_id,
                record.submitted_at,
                journal_document(record),
                state=record.state,
                legs=parsed.legs,
            )
        except (JournalError, ValueError) as exc:
            del self._book.plans[parsed.plan_id]
            _log.error("journal_plan_failed", plan_id=parsed.plan_id, error=str(exc))
            raise ControlError(
                ErrorCode.INTERNAL, f"journal unavailable, plan not accepted: {exc}"
            ) from None
        if not fresh:  # pragma: no cover - checked above; a race with another writer
            del self._book.plans[parsed.plan_id]
            return self._resubmitted(await self._book.reload(parsed.plan_id), digest)
        self._book.start(PlanRunner(record, self._ctx), schedule.session)
        self._book.track(
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
        return record.to_status()

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
        await self.assets.load(eastern_date(now))
        parsed: Plan | None = None
        if model.targets is None:
            parsed = intake.build(model, self._settings.execution.default_urgency)
            await self._refuse_unreadless(parsed)
        else:
            await intake.refuse_unknown_targets(model, self.assets)
        holdings = await intake.holdings(self._ports.rest)
        held = holdings.available
        equity: Decimal | None = None
        source: dict[str, Any] | None = None
        if parsed is None:
            result = await intake.target_legs(
                model,
                self._ports.rest,
                held,
                self.assets,
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
            parsed, holdings, intake.committed_sells(self._book.plans.values())
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
        assets = self.assets
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
                facts = self.assets.get(leg.leg.symbol)
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
            for record in self._book.plans.values()
            if not record.finished
            for leg in record.legs
            if not leg.finished
        )
        errors = wash_conflicts(plan, working)
        if errors:
            raise ControlError(ErrorCode.INVALID_PLAN, "; ".join(errors))

    async def _sessions(self, today: date) -> list[TradingSession]:
        """A submit's sessions: the calendar, read once per venue day (`SessionCache`)."""
        try:
            return await self._session_cache.on(today)
        except AdapterError as exc:
            raise intake.venue_unavailable(exc) from None

    async def _read_sessions(self, today: date) -> list[TradingSession]:
        return await sessions_from(self._ports.rest, today, Priority.VALIDATE)
