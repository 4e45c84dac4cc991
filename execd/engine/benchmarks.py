"""The leg's benchmark recorder: what the market looked like at each decision and fill.

A `BenchmarkCollector` rides along with one `LegRunner` and is told, after every
ladder step, which event the ladder saw and which actions it took. It never
influences a decision: it only snapshots the quote cache (latest-wins, no I/O) into
a `LegBenchmarks` value that the plan runner journals when the leg ends. The NBBO at
each fill is read here too and handed to `Journal.record_fill` with the fill, so it
is on disk with the execution itself.

It also keeps the live view's fields of the `LegRecord` current (the NBBO, its age
and why the leg is waiting), so `execd status --follow` can show them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal

import structlog

from execd.adapters.market_stream import MarketStream
from execd.domain.benchmarks import MAX_DECISIONS, Decision, LegBenchmarks, QuoteMark, thin
from execd.domain.ladder_types import (
    Action,
    CancelOrder,
    LadderEvent,
    LegPhase,
    PlaceOrder,
    QuoteUpdate,
    ReplaceOrder,
)
from execd.domain.ladder_types import LegState as LadderState
from execd.domain.quotes import Quote
from execd.engine.records import LegRecord, PlanRecord

QuoteSource = Callable[[], Quote | None]

_log = structlog.get_logger("execd.benchmarks")


def wait_reason(state: LadderState, record: LegRecord) -> str | None:
    """Why a running leg is not working an order right now, in words (None: it is)."""
    if state.result is not None:
        return None
    if state.halted is not None:
        return f"symbol halted ({state.halted})"
    if state.live_orders:
        return None
    if record.holding_since is not None or state.stale_since is not None:
        return "stale quote (holding)"
    if state.gate_since is not None:
        return "a quote that passes the spread/size gates"
    match state.phase:
        case LegPhase.PENDING:
            return "pending release"
        case LegPhase.PRE_OPEN:
            # Step 0 holds until the open plus its recommended wait (seed 003), one hold.
            return "pre-check: the open and its recommended wait"
        case LegPhase.OPEN_WAIT:
            return "open delay / wide spread at the open"
        case LegPhase.AWAIT_QUOTE:
            return "waiting for a fresh quote"
        case _:
            return None


PLAN_ARRIVAL_WAIT = 3.0
"""Seconds a plan waits, in the background, for a first quote of a symbol not yet streamed
at acceptance; without one its legs have no plan-acceptance arrival (None, never a guess)."""


async def capture_plan_arrival(
    record: PlanRecord,
    quotes: MarketStream,
    subscribe: Callable[[str], None],
    unsubscribe: Callable[[str], None],
    now: Callable[[], datetime],
    wait: float = PLAN_ARRIVAL_WAIT,
) -> None:
    """Set each leg's `plan_arrival`: the NBBO at plan acceptance.

    A symbol already streamed has its quote in the cache now. The others are subscribed
    at once (a buy released after the sells would otherwise first be streamed minutes
    later) and take the first quote that arrives within `wait` seconds. Never raises:
    a benchmark must not disturb the plan.
    """
    symbols = sorted({leg.leg.symbol for leg in record.legs})

    # By symbol: walking every leg for each symbol was O(legs²), a 250,000-step loop turn
    # for a 500-leg plan (issue 14 item 3).
    by_symbol: dict[str, list[LegRecord]] = {}
    for leg in record.legs:
        by_symbol.setdefault(leg.leg.symbol, []).append(leg)

    def assign(symbol: str, quote: Quote) -> None:
        mark = QuoteMark.of(quote, now())
        for leg in by_symbol.get(symbol, ()):
            if leg.plan_arrival is None:
                leg.plan_arrival = mark

    async def first_quote(symbol: str) -> None:
        try:
            async with asyncio.timeout(wait):
                assign(symbol, await quotes.wait_quote(symbol))
        except TimeoutError:
            _log.info("plan_arrival_unquoted", symbol=symbol, waited=wait)

    missing = []
    for symbol in symbols:
        quote = quotes.quote(symbol)
        if quote is not None:
            assign(symbol, quote)
        else:
            missing.append(symbol)
    if not missing:
        return
    for symbol in missing:
        subscribe(symbol)
    try:
        async with asyncio.TaskGroup() as group:
            for symbol in missing:
                group.create_task(first_quote(symbol))
    except Exception as exc:  # a benchmark must never disturb the plan
        _log.error("plan_arrival_capture_failed", plan_id=record.plan_id, error=repr(exc))
    finally:
        for symbol in missing:
            unsubscribe(symbol)


class BenchmarkCollector:
    """Captures one leg's benchmarks; see the module docstring."""

    def __init__(
        self,
        feed: str,
        quote: QuoteSource,
        now: Callable[[], datetime],
        record: LegRecord,
    ) -> None:
        self._feed = feed
        self._quote = quote
        self._now = now
        self._record = record
        self._decisions: list[Decision] = []
        self._last_sample: tuple[Decimal, Decimal] | None = None
        self._fallback = False
        self._failed = False
        self._leg_arrival = self.mark()
        self._ladder_quote: Quote | None = None
        record.nbbo = self._live

    def mark(self) -> QuoteMark | None:
        """The cache's NBBO now (None when the cache has none for the symbol)."""
        quote = self._quote()
        return None if quote is None else QuoteMark.of(quote, self._now())

    def _live(self) -> QuoteMark | None:
        """For the live view: the cache's NBBO, else the last quote the ladder priced from
        (it may come from a REST re-read when the stream has nothing for the symbol)."""
        mark = self.mark()
        if mark is None and self._ladder_quote is not None:
            return QuoteMark.of(self._ladder_quote, self._now())
        return mark

    def quote(self) -> Quote | None:
        """The cache's NBBO now, as the fill's benchmark."""
        return self._quote()

    def observe(self, event: LadderEvent, actions: Sequence[Action], state: LadderState) -> None:
        """Record what one ladder step saw and did; refresh the live-view fields.

        Never raises: a benchmark that cannot be recorded is logged and skipped, the leg
        trades on (observing must not be able to stop trading)."""
        try:
            self._observe(event, actions, state)
        except Exception as exc:
            if not self._failed:
                self._failed = True
                _log.error("benchmark_capture_failed", error=repr(exc))

    def _observe(self, event: LadderEvent, actions: Sequence[Action], state: LadderState) -> None:
        if isinstance(event, QuoteUpdate) and self._leg_arrival is None:
            # The symbol is often first streamed when the leg starts: its arrival is
            # then the first quote the ladder was fed.
            self._leg_arrival = self._q(event.quote)
        if isinstance(event, QuoteUpdate):
            market = (event.quote.bid, event.quote.ask)
            if market != self._last_sample:  # an unchanged re-feed adds nothing to a chart
                self._last_sample = market
                self._add(Decision(at=self._now(), kind="quote", quote=self._q(event.quote)))
        self._ladder_quote = state.last_quote or self._ladder_quote
        # The quote the ladder decided from (a stream quote or a REST re-read), else the cache.
        decided = self._q(state.last_quote) if state.last_quote is not None else self.mark()
        for action in actions:
            match action:
                case PlaceOrder():
                    self._add(
                        Decision(
                            at=self._now(),
                            kind="place",
                            quote=decided,
                            limit_price=action.limit_price,
                            qty=action.qty,
                            order_type=action.order_type.value,
                        )
                    )
                case ReplaceOrder():
                    self._add(
                        Decision(
                            at=self._now(),
                            kind="replace",
                            quote=decided,
                            limit_price=action.limit_price,
                            qty=action.qty,
                        )
                    )
                case CancelOrder():
                    self._add(Decision(at=self._now(), kind="cancel", quote=decided))
                case _:
                    pass
        self._fallback = self._fallback or state.in_fallback
        self._record.waiting = wait_reason(state, self._record)

    def result(self, interval_vwap: Decimal | None, arrival: Quote | None) -> LegBenchmarks:
        """The leg's benchmarks as they stand (called once it ends). `arrival` is the
        ladder's own arrival quote (what its report measured from), when it had one."""
        leg_arrival = self._leg_arrival
        if arrival is not None:
            at = self._leg_arrival.at if self._leg_arrival is not None else self._now()
            leg_arrival = QuoteMark.of(arrival, at)
        return LegBenchmarks(
            feed=self._feed,
            plan_arrival=self._record.plan_arrival,
            leg_arrival=leg_arrival,
            interval_vwap=interval_vwap,
            fallback_fired=self._fallback,
            decisions=tuple(thin(self._decisions)),
        )

    def _q(self, quote: Quote) -> QuoteMark:
        return QuoteMark.of(quote, self._now())

    def _add(self, decision: Decision) -> None:
        self._decisions.append(decision)
        if len(self._decisions) > 2 * MAX_DECISIONS:
            self._decisions = thin(self._decisions)
