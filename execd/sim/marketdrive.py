"""The market the exchange drives: ticks from the source, the book, our resting orders'
fills from the market's flow, stops, minute bars, and trading halts (ALPACA.md §4.3 "s").

The universe runs lazily: a listed symbol's market starts the first time it is used
(:meth:`MarketDriver.activate`), replayed from the venue's start on its own random stream.
A small share of the market's prints is reported late, which is what makes updated bars.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

from execd.domain.calendar import EASTERN, session_on
from execd.domain.types import Side
from execd.sim import wire
from execd.sim.errors import not_found
from execd.sim.market import BookSnapshot, Print, session_at
from execd.sim.state import EngineState

_ZERO = Decimal(0)
# Share of the market's prints reported late (out of sequence), a few seconds after they happen.
_LATE_REPORT_PROB = 0.02


class MarketDriver(EngineState):
    """The exchange's market side (a part of :class:`Exchange`)."""

    # -- market --------------------------------------------------------------------------------

    def _schedule_tick(self) -> None:
        """(Re)schedule the one market tick at the source's next event time; a superseded tick
        (the source gained an earlier event, see :meth:`activate`) does nothing."""
        self._tick_token += 1
        upcoming = self._source.next_time()
        if upcoming is not None:
            self._at(max(upcoming, self._now), partial(self._market_tick, self._tick_token))

    def _market_tick(self, token: int) -> None:
        if token != self._tick_token:
            return
        for event in self._source.pop():
            if event.symbol in self._halted:
                continue  # a halted symbol has no market: no quotes, no prints, no matching
            if isinstance(event, BookSnapshot):
                self._on_snapshot(event)
            else:
                self._on_print(event)
        self._schedule_tick()

    def activate(self, symbols: Iterable[str]) -> None:
        """Start the market of listed symbols that are not running yet (the universe runs
        lazily so that starting the venue stays fast): their path from the venue's start is
        replayed silently and their book starts at its state now."""
        if self._generated is None:
            return
        started = False
        for symbol in symbols:
            if symbol not in self._insts or self._generated.is_live(symbol):
                continue
            snap = self._generated.activate(symbol, self._now)
            started = True
            if snap is not None and symbol not in self._halted:
                self._on_snapshot(snap)
        if started:
            self._schedule_tick()

    def _on_snapshot(self, snap: BookSnapshot) -> None:
        book = self._books[snap.symbol]
        executions = book.on_snapshot(snap)
        for ex in executions:
            self._execute(self._orders[ex.order_id], [(book.inst.price(ex.price), ex.qty)])
        waiting = self._waiting_market.pop(snap.symbol, [])
        for order in waiting:
            self._work(order)
        self._publish_quote(snap.symbol, snap.bid_exchange, snap.ask_exchange)

    def _on_print(self, trade: Print) -> None:
        book = self._books[trade.symbol]
        price = book.inst.price(trade.price)
        report = partial(
            self._md.publish_trade,
            trade.symbol,
            trade.t,
            price,
            Decimal(trade.size),
            trade.exchange,
        )
        if self._report_rng.random() < _LATE_REPORT_PROB:
            # A late report (§4.3 updatedBars): printed with its own time, a few seconds on.
            self._at(self._now + timedelta(seconds=self._report_rng.uniform(1.0, 20.0)), report)
        else:
            report()
        for ex in book.on_print(trade):
            self._execute(self._orders[ex.order_id], [(book.inst.price(ex.price), ex.qty)])
        regular = self._in_regular_session(trade.t)
        for order in list(self._stops.get(trade.symbol, [])):
            if order.req.type == "trailing_stop":
                if not regular:
                    continue  # §1.3: trailing stops do not trigger outside regular hours
                mark = order.hwm if order.hwm is not None else price
                order.hwm = min(mark, price) if order.side is Side.BUY else max(mark, price)
            stop = order.trailing_stop_price or order.req.stop_price or _ZERO
            hit = price >= stop if order.side is Side.BUY else price <= stop
            if hit and order.is_open:
                self._stops[trade.symbol].remove(order)
                order.triggered = True
                self._work(order)

    @staticmethod
    def _in_regular_session(t: datetime) -> bool:
        session = session_at(t)
        return session is not None and session.open <= t < session.close

    def _publish_quote(self, symbol: str, bx: str, ax: str) -> None:
        book = self._books[symbol]
        bid, ask = book.top(self._now)
        inst = book.inst
        message = wire.quote_message(
            symbol,
            self._now,
            inst.number(bid.price) if bid else 0,
            bid.size if bid else 0,
            inst.number(ask.price) if ask else 0,
            ask.size if ask else 0,
            bx,
            ax,
        )
        self._md.publish_quote(message, self._now)

    def _schedule_minute(self, after: datetime) -> None:
        nxt = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        self._at(nxt, lambda: self._on_minute(nxt))
        self._at(nxt + timedelta(seconds=30), self._md.on_half_minute)

    def _on_minute(self, when: datetime) -> None:
        session = session_on(when.astimezone(EASTERN).date())
        regular = session is not None and session.open < when <= session.close
        self._md.on_minute(when, regular)
        self._activity.record_equity(when, self._ledger.equity())
        self._schedule_minute(when)

    # -- trading halts (§4.3 "s") -------------------------------------------------------------

    def halt(self, symbol: str, seconds: float | None = None) -> None:
        """Halt trading in `symbol` (for `seconds`, else until :meth:`resume`).

        While halted the symbol has no quotes and no prints and nothing matches: orders are
        accepted and wait; on resumption the first quote re-opens matching. The `statuses`
        channel says so both ways.
        """
        now = self._catch_up()
        if symbol not in self._insts:
            raise not_found(f"unknown symbol {symbol}")  # (sim) admin only
        self._halt_token += 1
        token = self._halt_token
        if symbol not in self._halted:
            self._halted.add(symbol)
            self._md.publish_status(wire.status_message(symbol, now, halted=True))
        if seconds is not None:
            self._at(now + timedelta(seconds=seconds), partial(self._resume_if, symbol, token))

    def resume(self, symbol: str) -> None:
        """Resume trading in a halted `symbol` (no-op when it trades)."""
        now = self._catch_up()
        if symbol not in self._insts:
            raise not_found(f"unknown symbol {symbol}")  # (sim) admin only
        if symbol in self._halted:
            self._halted.discard(symbol)
            self._md.publish_status(wire.status_message(symbol, now, halted=False))

    def halted(self) -> tuple[str, ...]:
        """The symbols halted now."""
        self._catch_up()
        return tuple(sorted(self._halted))

    def _resume_if(self, symbol: str, token: int) -> None:
        if token == self._halt_token:  # a later halt/resume call supersedes this timer
            self.resume(symbol)

    def _schedule_config_halts(self) -> None:
        for event in self._config.halts:
            when = datetime.combine(self._now.astimezone(EASTERN).date(), event.at, EASTERN)
            if when >= self._now and event.symbol in self._insts:
                self._at(when, partial(self.halt, event.symbol, event.seconds))
