"""The venue's public market data: what it publishes (quotes, trades, bars) and what it remembers.

The exchange decides *when* the market moves; this module turns each move into Alpaca's
market-data messages (ALPACA.md §4.3), fans them out to the stream listeners and keeps what the
data REST API answers from (latest quote, latest trade, completed minute bars, §5).

Only the market's own activity is published here. The account's fills are never routed (§6: paper
orders are simulated against the NBBO, they never reach a tape), so they never become trade
prints, bar volume or VWAP; the liquidity they take changes the book, which is the impact model.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from execd.domain.calendar import EASTERN, session_on
from execd.sim import wire
from execd.sim.market import session_at

MarketDataListener = Callable[[dict[str, Any]], None]

_ZERO = Decimal(0)


@dataclass(slots=True)
class _Bar:
    """A minute bar being built from prints."""

    start: datetime
    o: Decimal
    h: Decimal
    low: Decimal
    c: Decimal
    v: Decimal
    value: Decimal
    n: int


def last_market_time(now: datetime) -> datetime:
    """When the market last traded at or before `now`: now in a (pre/post) session, else the last
    session's extended close (looking back at most two weeks)."""
    day = now.astimezone(EASTERN).date()
    for back in range(15):
        session = session_on(day - timedelta(days=back))
        if session is None or session.extended_open > now:
            continue
        return min(now, session.extended_close)
    return now


def _new_bar(start: datetime, price: Decimal) -> _Bar:
    return _Bar(start, price, price, price, price, _ZERO, _ZERO, 0)


def _add(bar: _Bar, price: Decimal, size: Decimal) -> None:
    bar.h, bar.low, bar.c = max(bar.h, price), min(bar.low, price), price
    bar.v += size
    bar.value += size * price
    bar.n += 1


def _message(kind: str, symbol: str, bar: _Bar) -> dict[str, Any]:
    vwap = bar.value / bar.v if bar.v else None
    return wire.bar_message(
        kind, symbol, bar.start, bar.o, bar.h, bar.low, bar.c, bar.v, vwap, bar.n
    )


def _day_start(t: datetime) -> datetime:
    """A daily bar's `t`: midnight Eastern of its trading day (as Alpaca stamps daily bars)."""
    day = t.astimezone(EASTERN).date()
    return datetime(day.year, day.month, day.day, tzinfo=EASTERN)


# Ticks kept per symbol for the historical quotes/trades endpoints.
_TICKS_KEPT = 50_000
# How many closed minute bars (all symbols) stay open to late prints.
_LATE_BARS_KEPT = 512


class MarketData:
    """Publishes and remembers one venue's market data. Synchronous; the exchange drives it."""

    def __init__(self) -> None:
        self._listeners: list[MarketDataListener] = []
        self._last_quote: dict[str, dict[str, Any]] = {}
        self._last_trade: dict[str, dict[str, Any]] = {}
        self._trade_ids = 0
        self._bar: dict[str, _Bar] = {}
        self._bars: dict[str, list[dict[str, Any]]] = {}
        self._silenced: dict[str, datetime | None] = {}
        # Recently closed minute bars (late prints still land in them) and those to re-send.
        self._closed: dict[tuple[str, datetime], _Bar] = {}
        self._updated: set[tuple[str, datetime]] = set()
        self._day: dict[str, _Bar] = {}
        self._status: dict[str, dict[str, Any]] = {}
        # The live session's ticks, for the historical quotes/trades endpoints (bounded).
        self._quote_log: dict[str, deque[dict[str, Any]]] = {}
        self._trade_log: dict[str, deque[dict[str, Any]]] = {}

    # -- listeners ------------------------------------------------------------------------------

    def subscribe(self, listener: MarketDataListener) -> Callable[[], None]:
        """Call `listener` with every message (§4.3, `t` an aware datetime); returns unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _send(self, message: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            listener(message)

    # -- the state before the first tick ------------------------------------------------------

    def prime(self, quote: dict[str, Any], trade: dict[str, Any], bar: dict[str, Any]) -> None:
        """The symbol's last quote, trade and minute bar before the venue started.

        Alpaca's latest-quote/trade/bar endpoints always answer with the last one, however old
        (§5); the venue has a market from its first request, not from its first tick. Nothing is
        sent to the streams: these are history, not news.
        """
        symbol = str(quote["S"])
        self._last_quote.setdefault(symbol, quote)
        self._last_trade.setdefault(symbol, trade)
        self._bars.setdefault(symbol, []).insert(0, bar)

    # -- publishing -----------------------------------------------------------------------------

    def publish_quote(self, message: dict[str, Any], now: datetime) -> None:
        """A new NBBO (a §4.3 "q" message), unless the symbol's quotes are silenced."""
        symbol = str(message["S"])
        if symbol in self._silenced:
            until = self._silenced[symbol]
            if until is None or now < until:
                return
            del self._silenced[symbol]
        self._last_quote[symbol] = message
        self._quote_log.setdefault(symbol, deque(maxlen=_TICKS_KEPT)).append(message)
        self._send(message)

    def publish_trade(
        self, symbol: str, t: datetime, price: Decimal, size: Decimal, exchange: str
    ) -> None:
        """A print of the market's own flow: the trade stream, the latest trade and the bars.

        A print reported after its minute's bar went out (a late report) is added to that bar,
        which is sent again as an updated bar (`u`) at the next half minute (§4.3 updatedBars).
        """
        self._trade_ids += 1
        message = wire.trade_message(symbol, t, self._trade_ids, price, size, exchange)
        self._last_trade[symbol] = message
        self._trade_log.setdefault(symbol, deque(maxlen=_TICKS_KEPT)).append(message)
        minute = t.replace(second=0, microsecond=0)
        bar = self._bar.get(symbol)
        late = self._closed.get((symbol, minute))
        if late is not None and (bar is None or bar.start != minute):
            _add(late, price, size)
            self._updated.add((symbol, minute))
        else:
            if bar is None or bar.start != minute:
                if bar is not None:
                    self._close_bar(symbol, bar)
                bar = self._bar[symbol] = _new_bar(minute, price)
            _add(bar, price, size)
        if self._in_regular(t):
            day = self._day.get(symbol)
            if day is None or day.start.date() != t.astimezone(EASTERN).date():
                day = self._day[symbol] = _new_bar(_day_start(t), price)
            _add(day, price, size)
        self._send(message)

    def publish_status(self, message: dict[str, Any]) -> None:
        """A trading status change (§4.3 "s": a halt or a resumption)."""
        self._status[str(message["S"])] = message
        self._send(message)

    def on_minute(self, when: datetime, regular: bool) -> None:
        """Minute bars just after each minute, for symbols that traded in it; during the regular
        session, each symbol's running daily bar too (§4.3 dailyBars)."""
        for symbol, bar in list(self._bar.items()):
            if bar.start < when:
                self._close_bar(symbol, bar)
                del self._bar[symbol]
        if regular:
            for symbol, day in self._day.items():
                if day.start.date() == when.astimezone(EASTERN).date():
                    self._send(_message("d", symbol, day))

    def on_half_minute(self) -> None:
        """Bars that late prints changed go out again as updated bars (§4.3 updatedBars)."""
        for symbol, minute in sorted(self._updated):
            bar = self._closed[(symbol, minute)]
            message = _message("u", symbol, bar)
            stored = self._bars.get(symbol, [])
            for i in range(len(stored) - 1, -1, -1):
                if stored[i]["t"] == minute:
                    stored[i] = {**message, "T": "b"}
                    break
            self._send(message)
        self._updated.clear()

    def _close_bar(self, symbol: str, bar: _Bar) -> None:
        message = _message("b", symbol, bar)
        self._bars.setdefault(symbol, []).append(message)
        self._closed[(symbol, bar.start)] = bar
        while len(self._closed) > _LATE_BARS_KEPT:
            self._closed.pop(next(iter(self._closed)))
        self._send(message)

    def silence(self, symbol: str, now: datetime, seconds: float | None) -> None:
        """Stop publishing quotes for `symbol` for `seconds` (None: until called with 0)."""
        if seconds == 0:
            self._silenced.pop(symbol, None)
        else:
            self._silenced[symbol] = None if seconds is None else now + timedelta(seconds=seconds)

    # -- what the REST API reads ----------------------------------------------------------------

    @staticmethod
    def _in_regular(t: datetime) -> bool:
        session = session_at(t)
        return session is not None and session.open <= t < session.close

    def last_trade_price(self, symbol: str) -> Decimal | None:
        """The latest print's price (None before the first one)."""
        trade = self._last_trade.get(symbol)
        return None if trade is None else Decimal(str(trade["p"]))

    def latest_quotes(self, symbols: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The `quotes` map of GET /v2/stocks/quotes/latest (REST shape, §5)."""
        return {s: wire.rest_form(self._last_quote[s]) for s in symbols if s in self._last_quote}

    def latest_trades(self, symbols: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The `trades` map of GET /v2/stocks/trades/latest."""
        return {s: wire.rest_form(self._last_trade[s]) for s in symbols if s in self._last_trade}

    def latest_bars(self, symbols: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The `bars` map of GET /v2/stocks/bars/latest: each symbol's last completed minute."""
        return {s: wire.rest_form(self._bars[s][-1]) for s in symbols if self._bars.get(s)}

    def ticks(
        self, kind: str, symbol: str, start: datetime | None, end: datetime | None
    ) -> list[dict[str, Any]]:
        """The live session's quotes (`kind` "q") or trades ("t") of `symbol` in [start, end],
        in time order (REST shape). (sim) Ticks before the venue started are not generated."""
        log = (self._quote_log if kind == "q" else self._trade_log).get(symbol, ())
        rows = sorted(log, key=lambda m: m["t"]) if kind == "t" else list(log)  # late prints
        return [
            wire.rest_form(m)
            for m in rows
            if (start is None or m["t"] >= start) and (end is None or m["t"] <= end)
        ]

    def minute_bars(
        self, symbol: str, start: datetime | None, end: datetime | None
    ) -> list[dict[str, Any]]:
        """Completed minute bars of the live session in [start, end] (REST shape)."""
        return [
            wire.rest_form(b)
            for b in self._bars.get(symbol, [])
            if (start is None or b["t"] >= start) and (end is None or b["t"] <= end)
        ]
