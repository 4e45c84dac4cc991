"""The plan runner: sells first, buys as buying power allows, one coroutine per leg.

Ordering (DESIGN.md "plan runner"): every sell starts at once; by default buys start only
when every sell has ended, because a sell releases buying power only when it fills
(ALPACA.md §1.10). With `plans.overlap_buys`, a buy starts as soon as the account can pay
for it. Either way the buys are sized against the account's buying power in plan order,
each reserving its worst price (ask plus the slippage budget), and the last one is shrunk
to what is really left rather than refused for a few cents (LESSONS.md).

Each leg runs inside the one sanctioned `except Exception` of execd (STYLE.md rule 5): a
crash in one leg is logged with its context, the leg is marked failed, its orders are
cancelled, and its siblings go on. `CancelledError` always propagates.

A plan rebuilt after a restart (`execd.engine.recovery`) runs through the same code: legs
already over are skipped, legs that had orders resume from their `ResumePoint` at once
(a buy that was already sized and working is not re-sized), and the rest start as usual.
Every leg's end is journaled as soon as it happens, so a leg that ended is never re-run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import msgspec
import structlog

from execd.adapters.errors import AdapterError
from execd.adapters.journal import JournalError
from execd.adapters.market_stream import MarketStream
from execd.adapters.rest import Order, RestGateway
from execd.adapters.wire import TradeUpdate
from execd.control.protocol import PlanState
from execd.domain.calendar import TradingSession
from execd.domain.ladder_types import Finish, LegSpec, Outcome
from execd.domain.prices import tick_size
from execd.domain.quotes import Quote
from execd.domain.sizing import affordable_qty, qty_for_notional, reservation_price
from execd.domain.tca import far_touch, round_bps
from execd.domain.types import Side
from execd.engine.leg import LegPorts, LegRunner, ResumePoint
from execd.engine.records import LegRecord, PlanRecord, final_leg_state
from execd.engine.router import OrderRouter

_log = structlog.get_logger("execd.plan")


@dataclass(frozen=True, slots=True)
class AssetFacts:
    """What the runner needs to know about a symbol (from `/v2/assets`)."""

    symbol: str
    tradable: bool
    fractionable: bool


@dataclass(slots=True)
class RunnerContext:
    """Shared by every plan: the ports, the router, subscriptions and asset facts."""

    ports: LegPorts
    router: OrderRouter[TradeUpdate]
    assets: dict[str, AssetFacts]
    overlap_buys: bool
    subscribe: Callable[[str], None]
    unsubscribe: Callable[[str], None]

    @property
    def rest(self) -> RestGateway:
        return self.ports.rest

    @property
    def quotes(self) -> MarketStream:
        return self.ports.quotes

    def now(self) -> datetime:
        return self.ports.clock.now()


class PlanRunner:
    """Runs one plan to its end; `cancel` and `halt` stop it early."""

    def __init__(
        self,
        record: PlanRecord,
        ctx: RunnerContext,
        resume: Mapping[int, ResumePoint] | None = None,
    ) -> None:
        self.record = record
        self._ctx = ctx
        self._resume: Mapping[int, ResumePoint] = resume or {}
        self._runners: dict[int, LegRunner] = {}
        self._stop_reason: str | None = None
        self._stop_state: PlanState = "canceled"
        self._power_changed = asyncio.Event()

    # ------------------------------------------------------------------ control

    def stop(self, reason: str, state: PlanState = "canceled") -> None:
        """Cancel working orders, end every leg; the plan ends `canceled` (or `halted`)."""
        if self._stop_reason is not None:
            return
        self._stop_reason, self._stop_state = reason, state
        self.record.cancel_reason = reason
        for runner in self._runners.values():
            runner.stop(reason)
        self._power_changed.set()

    def request_reconcile(self, snapshot: Mapping[str, Order] | None = None) -> None:
        """Every running leg re-reads its orders (from `snapshot`, an `order_poll.Snapshot`)."""
        for runner in self._runners.values():
            runner.request_reconcile(snapshot)

    @property
    def running_legs(self) -> int:
        return len(self._runners)

    # ------------------------------------------------------------------ plan

    async def run(self, session: TradingSession | None) -> None:
        rec = self.record
        rec.state = "working"
        rec.started_at = rec.started_at or self._ctx.now()
        rec.publish("plan_started")
        _log.info("plan_started", legs=len(rec.legs), resumed_legs=len(self._resume))
        todo = [leg for leg in rec.legs if not leg.finished]
        sells = [leg for leg in todo if leg.leg.side is Side.SELL]
        # A buy that had orders before a restart was sized and released already.
        resumed = [leg for leg in todo if leg.leg.side is Side.BUY and self._resumed(leg)]
        buys = [leg for leg in todo if leg.leg.side is Side.BUY and not self._resumed(leg)]
        async with asyncio.TaskGroup() as group:
            for leg in sells + resumed:
                group.create_task(self._run_leg(leg, session), name=f"leg:{leg.leg.label}")
            if self._ctx.overlap_buys:
                group.create_task(self._release_buys(buys, session, group), name="buys")
        if not self._ctx.overlap_buys:
            async with asyncio.TaskGroup() as group:
                await self._release_buys(buys, session, group)
        await self._finish()

    def _resumed(self, leg: LegRecord) -> bool:
        return leg.leg.index in self._resume

    async def _finish(self) -> None:
        rec = self.record
        states = [leg.state for leg in rec.legs]
        filled = sum(1 for s in states if s == "filled")
        if self._stop_reason is not None:
            state, reason = self._stop_state, self._stop_reason
        elif filled == len(states):
            state, reason = "completed", "every leg filled"
        elif filled == 0 and all(leg.filled_qty == 0 for leg in rec.legs):
            state, reason = "failed", "no leg filled: " + "; ".join(_leg_reasons(rec))
        else:
            state, reason = (
                "partial",
                f"{filled} of {len(states)} legs filled: " + "; ".join(_leg_reasons(rec)),
            )
        _log.info("plan_finished", state=state, reason=reason)
        # On disk before anyone hears of it: a crash after `cancel` answered must not
        # bring the plan back to trade.
        await journal_plan_end(self._ctx.ports, rec, state, reason, self._ctx.now())
        rec.end(state, reason)

    # ------------------------------------------------------------------ buys

    async def _release_buys(
        self,
        buys: list[LegRecord],
        session: TradingSession | None,
        group: asyncio.TaskGroup,
    ) -> None:
        """Start each buy, in plan order, once the account can pay for it."""
        try:
            await self._release_each(buys, session, group)
        except Exception as exc:  # the boundary: an error here ends the buys, not the plan
            _log.exception("buy_release_crashed", error=repr(exc))
            for leg in buys:
                if leg.state == "pending":
                    leg.finish("failed", f"internal error: {exc!r}", self._ctx.now())
                    await self._ended(leg)

    async def _release_each(
        self,
        buys: list[LegRecord],
        session: TradingSession | None,
        group: asyncio.TaskGroup,
    ) -> None:
        started: list[tuple[LegRecord, Decimal]] = []
        for leg in buys:
            while True:
                self._power_changed.clear()
                if self._stop_reason is not None:
                    leg.finish("canceled", self._stop_reason, self._ctx.now())
                    await self._ended(leg)
                    break
                sized = await self._size_buy(leg, started)
                if sized is None:
                    break  # the leg was ended with its reason
                qty, price, sells_done = sized
                if qty >= (leg.qty or Decimal(0)) or sells_done:
                    if qty < (leg.qty or Decimal(0)):
                        _log.warning(
                            "leg_shrunk_to_buying_power",
                            leg=leg.leg.index,
                            symbol=leg.leg.symbol,
                            requested=str(leg.qty),
                            qty=str(qty),
                        )
                        leg.reason = f"shrunk from {leg.qty} to {qty} shares by buying power"
                    if qty <= 0:
                        leg.finish("rejected", "insufficient buying power", self._ctx.now())
                        await self._ended(leg)
                        break
                    leg.qty = qty
                    started.append((leg, price))
                    group.create_task(self._run_leg(leg, session), name=f"leg:{leg.leg.label}")
                    break
                await self._power_changed.wait()

    async def _size_buy(
        self, leg: LegRecord, started: list[tuple[LegRecord, Decimal]]
    ) -> tuple[Decimal, Decimal, bool] | None:
        """(affordable qty, reservation price, sells all done), or None if the leg ended."""
        facts = self._ctx.assets[leg.leg.symbol]
        quote = await self._arrival_quote(leg)
        if quote is None:
            return None
        if leg.qty is None:
            assert leg.leg.notional is not None
            leg.qty = qty_for_notional(leg.leg.notional, quote.ask, facts.fractionable)
            if leg.qty <= 0:
                leg.finish("unfilled", "notional buys less than one share", self._ctx.now())
                await self._ended(leg)
                return None
        params = self._ctx.ports.params
        price = reservation_price(quote.ask, params.max_slippage_bps, tick_size(quote.ask))
        if leg.leg.limit_price is not None:
            price = min(price, leg.leg.limit_price)
        try:
            account = await self._ctx.rest.account()
        except AdapterError as exc:
            leg.finish("failed", f"could not read buying power: {exc}", self._ctx.now())
            await self._ended(leg)
            return None
        power = Decimal(str(account.buying_power or 0))
        # Buys already started but with no live order yet are not in the venue's figure.
        for other, other_price in started:
            if not other.finished and other.limit_price is None:
                power -= ((other.qty or Decimal(0)) - other.filled_qty) * other_price
        sells_done = all(leg.finished for leg in self.record.legs if leg.leg.side is Side.SELL)
        qty = affordable_qty(leg.qty, price, power, facts.fractionable)
        return qty, price, sells_done

    async def _arrival_quote(self, leg: LegRecord) -> Quote | None:
        symbol = leg.leg.symbol
        self._ctx.subscribe(symbol)
        try:
            wait = self._ctx.ports.params.quote_wait_seconds * 3
            return await asyncio.wait_for(self._usable_quote(symbol), wait)
        except TimeoutError:
            leg.finish("unfilled", f"no quote for {symbol} to size the leg", self._ctx.now())
            await self._ended(leg)
            return None
        finally:
            self._ctx.unsubscribe(symbol)

    async def _usable_quote(self, symbol: str) -> Quote:
        """The first quote with both sides and not crossed: never size from a broken one."""
        newer_than = None
        while True:
            quote = await self._ctx.quotes.wait_quote(symbol, newer_than)
            if quote.bid > 0 and quote.ask > 0 and quote.ask >= quote.bid:
                return quote
            _log.warning("sizing_quote_unusable", bid=str(quote.bid), ask=str(quote.ask))
            newer_than = self._ctx.now()

    # ------------------------------------------------------------------ one leg

    async def _run_leg(self, leg: LegRecord, session: TradingSession | None) -> None:
        rec, ctx = self.record, self._ctx
        index, symbol = leg.leg.index, leg.leg.symbol
        structlog.contextvars.bind_contextvars(
            plan_id=rec.plan_id, leg=index, symbol=symbol, side=leg.leg.side.value
        )
        leg.started_at = ctx.now()
        ctx.subscribe(symbol)
        inbox = ctx.router.register(rec.plan_id, index)
        try:
            if self._stop_reason is not None and index not in self._resume:
                # Nothing sent yet: nothing to cancel. (A resumed leg runs its ladder
                # even when stopped: its orders at the venue must be cancelled.)
                leg.finish("canceled", self._stop_reason, ctx.now())
                return
            if leg.qty is None:
                quote = await self._arrival_quote(leg)
                if quote is None:
                    return
                notional = leg.leg.notional or Decimal(0)
                touch = far_touch(leg.leg.side, quote)
                leg.qty = qty_for_notional(notional, touch, ctx.assets[symbol].fractionable)
                if leg.qty <= 0:
                    leg.finish("unfilled", "notional trades less than one share", ctx.now())
                    return
            spec = LegSpec(
                plan_id=rec.plan_id,
                leg_index=index,
                symbol=symbol,
                side=leg.leg.side,
                qty=leg.qty,
                urgency=leg.leg.urgency,
                limit_price=leg.leg.limit_price,
                session=session,
            )
            resume = self._resume.get(index)
            runner = LegRunner(spec, ctx.ports, inbox, leg, self._publish, resume)
            self._runners[index] = runner
            if self._stop_reason is not None:
                runner.stop(self._stop_reason)
            _log.info(
                "leg_started",
                qty=str(leg.qty),
                urgency=leg.leg.urgency.value,
                resumed=resume is not None,
            )
            await self._journal_leg(leg)
            rec.publish("leg_started", leg)
            finish = await runner.run()
            runner.build_report(finish)
            self._record_finish(leg, finish)
            await self._journal_leg(leg)  # before anything else: an ended leg never re-runs
            if finish.outcome is Outcome.UNRESOLVED:
                await self._cancel_leg_orders(leg)
        except Exception as exc:  # the one sanctioned boundary: one leg, not the plan
            _log.exception("leg_crashed", error=repr(exc))
            leg.finish("failed", f"internal error: {exc!r}", ctx.now())
            await self._journal_leg(leg)
            await self._cancel_leg_orders(leg)
        finally:
            self._runners.pop(index, None)
            ctx.router.unregister(rec.plan_id, index)
            ctx.unsubscribe(symbol)
            self._power_changed.set()
            if leg.finished:
                await self._journal_leg(leg)
            rec.publish("leg_finished", leg)

    async def _ended(self, leg: LegRecord) -> None:
        """A leg ended before its ladder ran: journal it, then tell the watchers."""
        await self._journal_leg(leg)
        self.record.publish("leg_finished", leg)

    async def _journal_leg(self, leg: LegRecord) -> None:
        """Persist the leg as it stands; a finished leg is then never resumed."""
        try:
            await journal_leg(self._ctx.ports, self.record.plan_id, leg)
        except (JournalError, ValueError) as exc:
            _log.error("journal_leg_failed", leg=leg.leg.index, error=str(exc))

    def _publish(self, event: str, leg: LegRecord) -> None:
        if leg.leg.side is Side.SELL and leg.filled_qty:
            self._power_changed.set()
        self.record.publish(event, leg)

    def _record_finish(self, leg: LegRecord, finish: Finish) -> None:
        qty = leg.qty or Decimal(0)
        leg.state = final_leg_state(finish, qty)
        leg.step = 5
        leg.reason = finish.reason if leg.reason is None else f"{finish.reason}; {leg.reason}"
        leg.finished_at = self._ctx.now()
        leg.limit_price = None
        leg.filled_qty = finish.filled_qty
        report = leg.report
        arrival = finish.arrival_quote
        duration = (leg.finished_at - leg.started_at).total_seconds() if leg.started_at else None
        _log.info(
            "leg_finished",
            state=leg.state,
            outcome=finish.outcome.value,
            reason=finish.reason,
            style=None if finish.style is None else finish.style.value,
            style_reason=finish.style_reason,
            requested_qty=str(qty),
            filled_qty=str(finish.filled_qty),
            avg_fill_price=_s(None if report is None else report.avg_price),
            arrival_bid=_s(None if arrival is None else arrival.bid),
            arrival_ask=_s(None if arrival is None else arrival.ask),
            arrival_mid=_s(None if arrival is None else arrival.mid),
            slippage_vs_arrival_mid_bps=_bps(None if report is None else report.vs_arrival_mid_bps),
            slippage_vs_nbbo_at_fill_bps=_bps(None if report is None else report.vs_fill_mid_bps),
            vs_touch_at_fill_bps=_bps(None if report is None else report.vs_fill_touch_bps),
            vs_vwap_bps=_bps(None if report is None else report.vs_vwap_bps),
            market_order_price=_s(None if report is None else report.market_order_price),
            saving_vs_market_bps=_bps(None if report is None else report.saving_vs_market_bps),
            saving_vs_market_usd=_s(None if report is None else report.saving_vs_market_usd),
            repegs=finish.repegs,
            fallback_fired=leg.fallback_fired,
            fills=len(finish.fills),
            duration_seconds=duration,
            feed=self._ctx.ports.feed,
        )

    async def _cancel_leg_orders(self, leg: LegRecord) -> None:
        """After a crash: cancel whatever this leg left working at the venue."""
        for cid in leg.client_order_ids:
            try:
                order = await self._ctx.rest.get_order_by_client_id(cid)
                if order is not None and str(order.status.value) in _OPEN_STATUSES:
                    await self._ctx.rest.cancel_order(str(order.id))
                    _log.warning("leg_crash_cancel_sent", client_order_id=cid)
            except AdapterError as exc:
                _log.error("leg_crash_cancel_failed", client_order_id=cid, error=str(exc))


async def journal_plan_end(
    ports: LegPorts, rec: PlanRecord, state: str, reason: str, at: datetime
) -> None:
    """Every leg as it ended, then the plan's end (which takes it off the restart list)."""
    try:
        for leg in rec.legs:
            await journal_leg(ports, rec.plan_id, leg)
        await ports.journal.update_plan(rec.plan_id, state, reason, at)
    except (JournalError, ValueError) as exc:
        _log.error("journal_plan_end_failed", plan_id=rec.plan_id, error=str(exc))


async def journal_leg(ports: LegPorts, plan_id: str, leg: LegRecord) -> None:
    """Write a leg's state and progress, with its status as the control socket shows it
    (its resolved qty — a notional or shrunk leg — and, once over, its report)."""
    await ports.journal.update_leg(
        plan_id,
        leg.leg.index,
        state=leg.state,
        step=str(leg.step),
        filled_qty=leg.filled_qty,
        avg_fill_price=leg.avg_fill_price,
        reason=leg.reason,
        started_at=leg.started_at,
        finished_at=leg.finished_at,
        report=msgspec.json.encode(leg.to_status()),
    )
    if leg.finished and leg.benchmarks is not None:
        await ports.journal.record_benchmarks(plan_id, leg.leg.index, leg.benchmarks)


_OPEN_STATUSES = frozenset(
    {
        "new",
        "partially_filled",
        "accepted",
        "pending_new",
        "accepted_for_bidding",
        "pending_replace",
        "held",
        "done_for_day",
    }
)


def _leg_reasons(rec: PlanRecord) -> list[str]:
    return [
        f"{leg.leg.label}: {leg.reason or leg.state}" for leg in rec.legs if leg.state != "filled"
    ]


def _s(value: object) -> str | None:
    return None if value is None else str(value)


def _bps(value: Decimal | None) -> str | None:
    """Basis points for a log line, to 2 places (the report itself keeps them exact)."""
    return None if value is None else str(round_bps(value))
