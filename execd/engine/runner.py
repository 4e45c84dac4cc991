"""The plan runner: sells first, buys as buying power allows, one coroutine per leg.

Ordering (DESIGN.md "plan runner"): every sell starts at once; by default buys start only
when every sell has ended, because a sell releases buying power only when it fills
(ALPACA.md §1.10). With `plans.overlap_buys`, a buy starts as soon as the account can pay
for it. Either way the buys are sized against the account's cash (its margin buying power
only with `risk.use_margin`), in plan order, each reserving its worst price (ask plus the
slippage budget). A buy that does not quite fit is shrunk to what is left, but only within
`risk.buy_shrink_tolerance_percent` of the plan's buy total (`sizing.fit_buy`); beyond it
the buy is refused with the numbers.

Release costs O(1) reads (DESIGN.md): every buy waits for its own fresh sizing quote
concurrently — a silent symbol waits alone, bounded by `stale_quote_max_wait_seconds` —
and each release *wave* (whenever a quote arrives or cash may have changed) reads the
account once for all the buys that are ready.

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
import contextlib
from collections.abc import Mapping, Set
from datetime import datetime
from decimal import Decimal

import structlog

from execd.adapters.budget import Withdrawal
from execd.adapters.errors import AdapterError, SendWithdrawn
from execd.adapters.journal import JournalError
from execd.adapters.rest import Order
from execd.control.protocol import PlanState
from execd.domain.calendar import TradingSession
from execd.domain.deadline import close_margin, leg_deadline
from execd.domain.ladder_types import LegSpec, Outcome
from execd.domain.order_state import is_live_status
from execd.domain.prices import tick_size
from execd.domain.quotes import Quote
from execd.domain.sizing import (
    fit_buy,
    qty_for_notional,
    reservation_price,
    round_qty_down,
    sellable_qty,
)
from execd.domain.tca import far_touch
from execd.domain.types import Side
from execd.engine.leg import LegRunner, ResumePoint
from execd.engine.leg_end import journal_leg as journal_leg
from execd.engine.leg_end import journal_plan_end, record_finish
from execd.engine.records import LegRecord, PlanRecord
from execd.engine.runner_context import AssetFacts as AssetFacts
from execd.engine.runner_context import RunnerContext as RunnerContext
from execd.engine.runner_context import account_figures

_log = structlog.get_logger("execd.plan")

ACCOUNT_RETRY_SECONDS = 1.0
"""How soon a release wave reads the account again after it could not (beyond the gateway's
own retries), while buys wait for it."""


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
        self._stopped = asyncio.Event()
        self._power_changed = asyncio.Event()
        # Set by `stop`: a release wave's account read still waiting for the request budget
        # (lowest priority, behind a backlog of orders) is withdrawn instead of holding the
        # stop up until the budget's window rolls.
        self._withdrawal = Withdrawal()
        self._plan_deadline: datetime | None = None
        self._session: TradingSession | None = None
        self.account_reads = 0
        self.release_looks = 0
        """Buys the release loop looked at, over the plan (tests check it is O(buys))."""
        self.sizing_quotes = 0
        """Sizing quotes the buys' fetches brought (a re-fetch counts again): a test drives
        a scenario's phases from it (tests/engine/test_review5_release_order.py)."""
        self._account_error: str | None = None
        """Why the last release wave could not read the account (None: it could)."""
        self._released: set[int] = set()
        """Buys whose leg task the release loop started (by plan index): theirs to end."""
        self._leg_stops: dict[int, str] = {}
        """Resumed legs to stop as they start, by plan index (`_drop_unknown_symbols`)."""

    # ------------------------------------------------------------------ control

    def stop(self, reason: str, state: PlanState = "canceled") -> None:
        """Cancel working orders, end every leg; the plan ends `canceled` (or `halted`)."""
        if self._stop_reason is not None:
            return
        self._stop_reason, self._stop_state = reason, state
        self.record.cancel_reason = reason
        for runner in self._runners.values():
            runner.stop(reason)
        self._withdrawal.set()
        self._stopped.set()
        self._power_changed.set()

    def request_reconcile(self, snapshot: Mapping[str, Order] | None = None) -> None:
        """Every running leg re-reads its orders (from `snapshot`, an `order_poll.Snapshot`)."""
        for runner in self._runners.values():
            runner.request_reconcile(snapshot)

    def cancels(self, client_order_id: str) -> bool:
        """True while one of this plan's running legs, stopped, cancels that order itself."""
        return any(runner.cancels(client_order_id) for runner in self._runners.values())

    @property
    def running_legs(self) -> int:
        return len(self._runners)

    # ------------------------------------------------------------------ plan

    async def run(self, session: TradingSession | None, deadline: datetime | None = None) -> None:
        """Run the plan; `deadline` is the plan's own (DESIGN.md "Every leg has a deadline").
        A scheduled plan first waits for its start (`_hold`)."""
        self._plan_deadline = deadline
        self._session = session
        await self._hold()
        rec = self.record
        if rec.state == "scheduled":
            try:
                await self._ctx.ports.journal.update_plan(rec.plan_id, "working")
            except (JournalError, ValueError) as exc:
                _log.error("journal_plan_state_failed", error=str(exc))
        rec.state = "working"
        rec.started_at = rec.started_at or self._ctx.now()
        rec.publish("plan_started")
        _log.info("plan_started", legs=len(rec.legs), resumed_legs=len(self._resume))
        todo = await self._drop_unknown_symbols([leg for leg in rec.legs if not leg.finished])
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

    async def _hold(self) -> None:
        """A scheduled plan waits for its start (its session's pre-open, or `not_before`).
        A stop while held ends the wait; the legs then end as for any stopped plan (a leg
        resumed after a restart still runs, to cancel its orders at the venue)."""
        rec = self.record
        while rec.scheduled_for is not None and self._stop_reason is None:
            left = (rec.scheduled_for - self._ctx.now()).total_seconds()
            if left <= 0:
                break
            rec.state = "scheduled"
            # Re-read the venue clock at least every minute: a long hold follows its offset.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 60.0)):
                    await self._stopped.wait()

    def _resumed(self, leg: LegRecord) -> bool:
        return leg.leg.index in self._resume

    async def _drop_unknown_symbols(self, todo: list[LegRecord]) -> list[LegRecord]:
        """End the legs whose symbol the venue no longer lists; the legs left to run.

        Only a plan recovered after a restart can meet one: a submit validates every symbol
        against the asset list, and a symbol delisted while the daemon runs keeps its facts
        for the running plan (`intake.AssetCache`). After a restart the facts are the new
        list's, and a symbol delisted while execd was down has none: sizing or releasing
        its leg would raise `KeyError` (a buy release failing every sibling buy with it).
        Such a leg ends ``symbol_unknown``, logged at error, and its siblings run. One that
        had orders at the venue still runs its ladder, stopped at once: its orders are
        cancelled and reconciled (fills included) like any stopped leg's, never abandoned.
        """
        kept: list[LegRecord] = []
        for leg in todo:
            symbol = leg.leg.symbol
            if symbol in self._ctx.assets:
                kept.append(leg)
                continue
            resumed = self._resumed(leg)
            reason = (
                f"symbol_unknown: {symbol} is no longer in the venue's asset list (delisted"
                " or renamed while execd was down)"
            )
            _log.error(
                "leg_symbol_unknown",
                plan_id=self.record.plan_id,
                leg=leg.leg.index,
                symbol=symbol,
                had_orders=resumed,
            )
            if resumed:
                self._leg_stops[leg.leg.index] = reason + "; its orders are cancelled"
                kept.append(leg)
            else:
                leg.finish("failed", reason + "; nothing sent", self._ctx.now())
                await self._ended(leg)
        return kept

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
                # A released buy is still `pending` while it waits at the start gate: it
                # is its own task's to run and end (failing it here, it would run anyway).
                if leg.state == "pending" and leg.leg.index not in self._released:
                    leg.finish("failed", f"internal error: {exc!r}", self._ctx.now())
                    await self._ended(leg)

    async def _release_each(
        self,
        buys: list[LegRecord],
        session: TradingSession | None,
        group: asyncio.TaskGroup,
    ) -> None:
        """The release loop: each buy fetches its sizing quote on its own; each wake-up (a
        batch of fetches ended, or cash may have changed) looks only at the buys whose
        quote arrived and that are not released yet, in plan order, and releases those
        the cash pays for in one wave (one account read).

        Cost: a buy is looked at when its quote arrives and again only while it waits for
        cash — O(buys) over the plan when the cash suffices, never O(pending buys) per
        ended fetch (the walk that made a 500-buy release O(n²): a stall of the loop in the
        2,000-leg benchmark, issue 14 item 3). Buys are keyed by their plan index: a
        `LegRecord`'s generated `__eq__` compares every field.

        A priced buy whose quote went stale while it waited for cash keeps its place: it is
        *held* (its cost at its last quote still counted before later buys' in the wave,
        but it is not released) while its fetch brings a fresh quote. Dropping it from the
        wave instead let a later buy take the cash it was waiting for (review 5)."""
        quotes: dict[int, Quote] = {}
        fetching: dict[int, asyncio.Task[None]] = {}
        arrived: list[int] = []
        """Buys whose fetch ended since the last wake-up (a quote, or the leg ended)."""

        async def fetch(leg: LegRecord) -> None:
            try:
                quote = await self._arrival_quote(leg)
                if quote is not None:
                    quotes[leg.leg.index] = quote
                    self.sizing_quotes += 1
            except Exception as exc:  # one buy's boundary: it ends, the others go on
                _log.exception("buy_sizing_crashed", leg=leg.leg.index, error=repr(exc))
                if not leg.finished:
                    leg.finish("failed", f"internal error: {exc!r}", self._ctx.now())
                    await self._ended(leg)
            finally:
                arrived.append(leg.leg.index)
                self._power_changed.set()

        def refetch(leg: LegRecord) -> None:
            fetching[leg.leg.index] = asyncio.create_task(fetch(leg), name=f"size:{leg.leg.label}")

        pending = {leg.leg.index: leg for leg in buys}
        """Buys not released nor ended, by plan index."""
        priced: set[int] = set()
        """Pending buys with a quote: the candidates of the next wave."""
        held: set[int] = set()
        """Priced buys re-fetching a quote that went stale: in each wave, never released."""
        try:
            for leg in buys:
                refetch(leg)
            while pending:
                self._power_changed.clear()
                if self._stop_reason is not None:
                    for leg in pending.values():
                        if not leg.finished:
                            leg.finish("canceled", self._stop_reason, self._ctx.now())
                            await self._ended(leg)
                    break
                ended, arrived[:] = list(arrived), []
                for index in ended:
                    if index not in pending:
                        continue
                    held.discard(index)  # its fetch ended: a fresh quote, or the leg ended
                    if pending[index].finished:
                        del pending[index]
                        priced.discard(index)
                    elif index in quotes:
                        priced.add(index)
                wave = []
                for index in sorted(priced):  # plan order
                    leg = pending[index]
                    self.release_looks += 1
                    if index not in held:
                        fresh = self._fresh(self._ctx.quotes.quote(leg.leg.symbol)) or self._fresh(
                            quotes[index]
                        )
                        if fresh is None:  # waited for cash so long that the quote went stale
                            held.add(index)
                            refetch(leg)
                        else:
                            quotes[index] = fresh
                    wave.append(leg)
                if any(leg.leg.index not in held for leg in wave):
                    for leg in await self._release_wave(wave, quotes, held, session, group):
                        pending.pop(leg.leg.index, None)
                        priced.discard(leg.leg.index)
                if pending and self._account_error is None:
                    await self._power_changed.wait()
                elif pending and self._ctx.now() >= self._leg_deadline():
                    why = f"could not read the account until the deadline: {self._account_error}"
                    for leg in pending.values():
                        if not leg.finished:
                            leg.finish("failed", why, self._ctx.now())
                            await self._ended(leg)
                    break
                elif pending:  # the account was unreadable: the next wave reads it again
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(ACCOUNT_RETRY_SECONDS):
                            await self._power_changed.wait()
        finally:
            for task in fetching.values():
                task.cancel()
            await asyncio.gather(*fetching.values(), return_exceptions=True)

    def _fresh(self, quote: Quote | None) -> Quote | None:
        """`quote` if it can size a buy: both sides, not crossed, fresh by its own time."""
        if quote is None or not _two_sided(quote):
            return None
        age = quote.age_seconds(self._ctx.now())
        return quote if age <= self._ctx.ports.params.quote_freshness_seconds else None

    async def _release_wave(
        self,
        wave: list[LegRecord],
        quotes: Mapping[int, Quote],
        held: Set[int],
        session: TradingSession | None,
        group: asyncio.TaskGroup,
    ) -> list[LegRecord]:
        """One account read for the wave's buys, in plan order; start those with a fresh
        quote that the cash pays for. Returns the buys released or ended.

        A buy in `held` (its quote went stale; a fresh one is being fetched) is never
        started, but keeps its place: its cost at its last quote is held back from the
        buys after it, and a later buy that would not fit beside it waits for it rather
        than being shrunk or refused for want of the cash it holds.

        The cash is the account's figure less what the engine's ledger holds for buys of
        every plan started with no live order yet (DESIGN.md "Buys spend cash, not
        margin": two plans sized from the same read must not both spend it)."""
        ledger = self._ctx.ledger
        try:
            account, reserved, spending = await ledger.cash_around(
                lambda: self._ctx.rest.account(withdraw=self._withdrawal)
            )
            self.account_reads += 1
            self._account_error = None
        except SendWithdrawn:
            return []  # the plan was stopped: the release loop ends its waiting buys
        except AdapterError as exc:
            # Unanswered even after the gateway's retries (an overloaded or unreachable
            # venue): nothing was sent, so the buys keep their place and the next wave reads
            # again, until their deadline — failing up to 500 buys on one timeout would not.
            _log.warning("buy_release_account_unreadable", buys=len(wave), error=str(exc))
            self._account_error = str(exc)
            return []
        margin = self._ctx.use_margin
        what = "buying power" if margin else "cash"
        figures = account_figures(account, margin)
        if isinstance(figures, str):
            # A broken figure is no read: sizing from it would crash or spend without bound.
            self._account_error = figures
            return []
        power_figure, cash_figure = figures
        # Buys started by any plan but with no live order yet are not in the venue's figure.
        power = power_figure - reserved
        if cash_figure is not None:  # nor more than the cash less every started buy
            power = min(power, cash_figure - spending)
        sells_done = all(leg.finished for leg in self.record.legs if leg.leg.side is Side.SELL)
        params = self._ctx.ports.params
        total = self._buy_total(quotes)
        tolerance = self._ctx.shrink_tolerance_percent
        done: list[LegRecord] = []
        waiting_ahead = False
        """An earlier buy of this wave keeps its place: its cost is held back from the rest."""
        for leg in wave:
            symbol = leg.leg.symbol
            facts = self._ctx.assets[symbol]
            quote = quotes[leg.leg.index]
            # A notional buy is sized from this wave's quote; if it waits, the next wave
            # sizes it again from a fresh one (leg.qty stays None until it is released).
            qty = leg.qty
            if qty is None:
                assert leg.leg.notional is not None
                qty = qty_for_notional(leg.leg.notional, quote.ask, facts.fractionable)
            price = self._reservation(leg, quote, params.max_slippage_bps)
            if leg.leg.index in held:
                # Stale: not started from its last quote, but its cost at that quote (ask
                # plus the slippage budget) stays held back from the buys after it.
                power -= max(qty, Decimal(0)) * price
                waiting_ahead = True
                continue
            if leg.qty is None and qty <= 0:
                leg.qty = qty
                leg.finish("unfilled", "notional buys less than one share", self._ctx.now())
                done.append(leg)
                continue
            fit = fit_buy(qty, price, power, total, tolerance, facts.fractionable)
            if fit.verdict != "fits" and (not sells_done or waiting_ahead):
                # A sell still working may release the cash, or an earlier buy may end
                # without it; until then this buy keeps its place in plan order (a later
                # buy does not take the cash it waits for).
                power -= qty * price
                waiting_ahead = True
                continue
            if fit.verdict == "refused":
                need = qty * price
                leg.qty = qty
                leg.finish(
                    "rejected",
                    f"insufficient {what}: {qty} {symbol} at up to {price} needs {need:.2f},"
                    f" the account has {max(power, Decimal(0)):.2f}; shrinking by more than"
                    f" {tolerance}% of the plan's buys ({total:.2f}) is refused",
                    self._ctx.now(),
                )
                _log.warning(
                    "buy_refused_insufficient_funds",
                    leg=leg.leg.index,
                    symbol=symbol,
                    requested=str(qty),
                    reservation_price=str(price),
                    available=str(power),
                    funds=what,
                    plan_buy_total=str(total),
                    shrink_tolerance_percent=str(tolerance),
                )
                done.append(leg)
                continue
            if fit.verdict == "shrunk":
                _log.warning(
                    "leg_shrunk_to_buying_power",
                    leg=leg.leg.index,
                    symbol=symbol,
                    requested=str(qty),
                    qty=str(fit.qty),
                    shortfall=str(fit.shortfall),
                    allowed=str(fit.allowed),
                    funds=what,
                )
                leg.reason = f"shrunk from {qty} to {fit.qty} shares by {what}"
            leg.qty = fit.qty
            power -= fit.qty * price
            key = (self.record.plan_id, leg.leg.index)
            ledger.reserve_buy(key, leg, price)
            task = group.create_task(self._run_leg(leg, session), name=f"leg:{leg.leg.label}")
            ledger.release_when_done(key, task)  # even if cancelled before its first step
            self._released.add(leg.leg.index)
            done.append(leg)
        # Journaled only now: no await between the ledger's read and the last reservation,
        # so no other plan sizes from the same cash meanwhile.
        for leg in [leg for leg in done if leg.finished]:
            await self._ended(leg)
        return done

    def _reservation(self, leg: LegRecord, quote: Quote, budget_bps: Decimal) -> Decimal:
        price = reservation_price(quote.ask, budget_bps, tick_size(quote.ask))
        if leg.leg.limit_price is not None:
            price = min(price, leg.leg.limit_price)
        return price

    def _buy_total(self, quotes: Mapping[int, Quote]) -> Decimal:
        """The plan's buys in USD at reservation prices, over the buys priced so far."""
        budget = self._ctx.ports.params.max_slippage_bps
        total = Decimal(0)
        for leg in self.record.legs:
            if leg.leg.side is not Side.BUY:
                continue
            quote = quotes.get(leg.leg.index)
            if leg.leg.notional is not None:
                total += leg.leg.notional
            elif leg.leg.qty is not None and quote is not None:
                total += leg.leg.qty * self._reservation(leg, quote, budget)
        return total

    def _hold_seconds(self, leg: LegRecord) -> float:
        """How long a leg may wait for a fresh quote: `stale_quote_max_wait_seconds`,
        within its deadline."""
        wait = self._ctx.ports.params.stale_quote_max_wait_seconds
        deadline = self._leg_deadline()
        left = (deadline - self._ctx.now()).total_seconds()
        return max(min(wait, left), 0.0)

    def _leg_deadline(self) -> datetime:
        """The leg's deadline, ending `close_margin` before the session's close: the last
        order must reach the venue before it (`domain.deadline`)."""
        ports = self._ctx.ports
        margin = close_margin(ports.clock.behind_at_most_seconds, ports.params.close_guard_seconds)
        return leg_deadline(
            self._plan_deadline, self._session, self._ctx.now(), self._ctx.max_leg_seconds, margin
        )

    async def _arrival_quote(self, leg: LegRecord) -> Quote | None:
        """A fresh quote to size the leg from, or None once the leg ended for want of one
        (or ended meanwhile: a plan stopped while a buy waits ends it `canceled`, and the
        wait may time out while the stop journals it — it must not end a second time)."""
        symbol = leg.leg.symbol
        self._ctx.subscribe(symbol)
        wait = self._hold_seconds(leg)
        try:
            async with asyncio.timeout(wait):
                return await self._usable_quote(symbol)
        except TimeoutError:
            if leg.finished:
                return None
            leg.finish(
                "unfilled",
                f"quote_stale: no fresh quote for {symbol} within {wait:g}s to size the leg",
                self._ctx.now(),
            )
            await self._ended(leg)
            return None
        finally:
            self._ctx.unsubscribe(symbol)

    async def _usable_quote(self, symbol: str) -> Quote:
        """The first fresh, two-sided, uncrossed quote (DESIGN.md "Fresh quote"): the
        stream's, else the data REST API's latest (batched with every other buy asking
        meanwhile: one read per wave), judged by its own timestamp; never size from a
        stale or broken one."""
        interval = self._ctx.ports.rest_quote_interval
        while True:
            # The stream first, for up to one interval (a plan's buys subscribe together:
            # asking REST at once for each would be a burst on the data API's budget).
            deadline = asyncio.get_running_loop().time() + interval
            while (left := deadline - asyncio.get_running_loop().time()) > 0:
                seen = self._ctx.now()
                quote = self._fresh(self._ctx.quotes.quote(symbol))
                if quote is not None:
                    return quote
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await self._ctx.quotes.wait_quote(symbol, seen)
            try:
                quote = self._fresh(await self._ctx.rest.latest_quote(symbol))
            except AdapterError as exc:
                _log.info("rest_quote_failed", symbol=symbol, error=str(exc))
            if quote is not None:
                return quote
            cached = self._ctx.quotes.quote(symbol)
            if cached is not None and not _two_sided(cached):
                _log.warning("sizing_quote_unusable", bid=str(cached.bid), ask=str(cached.ask))

    # ------------------------------------------------------------------ one leg

    async def _run_leg(self, leg: LegRecord, session: TradingSession | None) -> None:
        rec, ctx = self.record, self._ctx
        index, symbol = leg.leg.index, leg.leg.symbol
        structlog.contextvars.bind_contextvars(
            plan_id=rec.plan_id, leg=index, symbol=symbol, side=leg.leg.side.value
        )
        # A wave starts hundreds of legs at once: their set-up and their first step each
        # pass the engine's gate, a bounded number per loop turn (`engine.start_gate`).
        # A reserved buy cancelled before it gets through is released by its task's end
        # (`Commitments.release_when_done`): nothing here runs if it never took a step.
        await ctx.starts.enter()
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
            if leg.leg.side is Side.SELL and index in self._resume:
                ctx.ledger.commit_sell((rec.plan_id, index), leg)  # its orders hold the shares
            elif leg.leg.side is Side.SELL and not await self._cap_sell(leg):
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
                deadline=self._leg_deadline(),
            )
            resume = self._resume.get(index)
            runner = LegRunner(spec, ctx.ports, inbox, leg, self._publish, resume)
            self._runners[index] = runner
            stop = self._stop_reason or self._leg_stops.get(index)
            if stop is not None:
                runner.stop(stop)
            _log.info(
                "leg_started",
                qty=str(leg.qty),
                urgency=leg.leg.urgency.value,
                resumed=resume is not None,
            )
            await self._journal_leg(leg)
            rec.publish("leg_started", leg)
            await ctx.starts.enter()  # the journal answers a batch of legs in one turn
            finish = await runner.run()
            runner.build_report(finish)
            record_finish(leg, finish, ctx.now(), ctx.ports.feed)
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
            ctx.ledger.release((rec.plan_id, index))
            ctx.router.unregister(rec.plan_id, index)
            ctx.unsubscribe(symbol)
            self._power_changed.set()
            if leg.finished:
                await self._journal_leg(leg)
            rec.publish("leg_finished", leg)

    async def _cap_sell(self, leg: LegRecord) -> bool:
        """Re-read the position as the sell starts and never sell more than is free: the
        position less what other plans' started sells have yet to sell (execd is long-only,
        it never opens a short). False once the leg ended for want of shares."""
        symbol, ctx = leg.leg.symbol, self._ctx
        try:
            position, committed = await ctx.ledger.sells_around(
                symbol, lambda: ctx.rest.position(symbol)
            )
        except AdapterError as exc:
            leg.finish("failed", f"could not read the {symbol} position: {exc}", ctx.now())
            return False
        total = Decimal(0) if position is None else Decimal(str(position.qty))
        available = total
        if position is not None and position.qty_available is not None:
            available = Decimal(str(position.qty_available))
        free = round_qty_down(
            sellable_qty(total, available, committed), ctx.assets[symbol].fractionable
        )
        qty = leg.qty or Decimal(0)
        if qty > free:
            why = f"the position is {total}, {committed} of it being sold by other plans"
            _log.warning(
                "sell_capped_to_position",
                requested=str(qty),
                qty=str(free),
                position=str(total),
                available=str(available),
                committed=str(committed),
            )
            if free <= 0:
                leg.finish("rejected", f"nothing to sell: {why} (no short sales)", ctx.now())
                return False
            leg.reason = f"capped from {qty} to {free} shares: {why}"
            leg.qty = free
        ctx.ledger.commit_sell((self.record.plan_id, leg.leg.index), leg)
        return True

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
        if leg.max_repegs is None and leg.style in ("marketable", "passive"):
            params = self._ctx.ports.params
            leg.max_repegs = (
                params.max_repegs if leg.style == "marketable" else params.max_repegs_per_order
            )
        if leg.leg.side is Side.SELL and leg.filled_qty:
            self._power_changed.set()
        self.record.publish(event, leg)

    async def _cancel_leg_orders(self, leg: LegRecord) -> None:
        """After a crash: cancel whatever this leg left working at the venue."""
        for cid in leg.client_order_ids:
            try:
                order = await self._ctx.rest.get_order_by_client_id(cid)
                if order is not None and is_live_status(str(order.status.value)):
                    await self._ctx.rest.cancel_order(str(order.id))
                    _log.warning("leg_crash_cancel_sent", client_order_id=cid)
            except AdapterError as exc:
                _log.error("leg_crash_cancel_failed", client_order_id=cid, error=str(exc))


def _leg_reasons(rec: PlanRecord) -> list[str]:
    return [
        f"{leg.leg.label}: {leg.reason or leg.state}" for leg in rec.legs if leg.state != "filled"
    ]


def _two_sided(quote: Quote) -> bool:
    return quote.bid > 0 and quote.ask > 0 and quote.ask >= quote.bid
