"""Bars before the venue started, generated lazily and consistently with the live market.

A strategy reads history before it trades (ALPACA.md §5's data API): daily bars for ≥ 60 prior
trading days and minute bars for the days before, at 1Min, 5Min, 15Min, 1Hour and 1Day. Nothing is
generated at start (starting the simulator stays fast); a symbol's history is built the first time
it is asked for, from its own random stream (seed, symbol), so it is the same in every run of a
seed and never disturbs the live market's streams.

Consistency: the path ends at the symbol's starting price at the venue's start. Each trading day's
open and close come from a random walk run backwards from that price (daily volatility from the
symbol's figures, an overnight gap between days); the day's minute bars bridge open to close with
the intraday volatility; a day's daily bar is the aggregate of its minute bars, and coarser
intraday bars aggregate the minutes they contain. The start day's history runs from its open to
the start; live bars (:mod:`execd.sim.marketdata`) follow.

(sim) Volume per minute follows the usual U shape around the symbol's displayed size; `n` (trade
count) is volume / 100 rounded; `vw` is the bar's typical price (h + l + c) / 3.
"""

from __future__ import annotations

import base64
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from execd.domain.calendar import EASTERN, session_on, trading_sessions
from execd.domain.calendar import TradingSession as Session
from execd.sim import wire
from execd.sim.config import SymbolSpec
from execd.sim.errors import SimError

# alpaca-py's TimeFrame values (`1Min`, `5Min`, `15Min`, `1Hour`, `1Day`) and their minutes.
TIMEFRAMES: dict[str, int] = {
    "1Min": 1,
    "1T": 1,
    "5Min": 5,
    "5T": 5,
    "15Min": 15,
    "15T": 15,
    "1Hour": 60,
    "1H": 60,
    "1Day": 0,
    "1D": 0,
}
DAILY_DAYS = 90  # trading days of daily history before the start (≥ 60 asked)
INTRADAY_DAYS = 7  # trading days of minute history before the start (≥ 5 asked)
_CODE_INVALID = 40010001


@dataclass(frozen=True, slots=True)
class _Minute:
    t: datetime
    o: Decimal
    h: Decimal
    low: Decimal
    c: Decimal
    v: int


class History:
    """Lazily generated bars before `start` for the venue's symbols."""

    def __init__(self, specs: Sequence[SymbolSpec], seed: int, start: datetime) -> None:
        self._specs = {s.symbol: s for s in specs}
        self._seed = seed
        self._start = start
        self._days: dict[str, list[Session]] = {}
        self._minutes: dict[tuple[str, date], list[_Minute]] = {}
        self._anchors: dict[str, dict[date, tuple[float, float]]] = {}

    # -- the public face ------------------------------------------------------------------------

    def bars(
        self, symbol: str, timeframe: str, start: datetime | None, end: datetime | None
    ) -> list[dict[str, Any]]:
        """Bars (REST shape, §4.3 fields) of `symbol` before the venue's start, in [start, end]."""
        if symbol not in self._specs:
            return []
        minutes = TIMEFRAMES[timeframe]
        low = start or datetime.min.replace(tzinfo=EASTERN)
        high = end or self._start
        sessions = [s for s in self._sessions(symbol) if s.close >= low and s.open <= high]
        out: list[dict[str, Any]] = []
        for session in sessions:
            if minutes == 0:
                day = self._day_minutes(symbol, session)
                if day and session.open >= low and session.open <= high:
                    out.append(_bar(symbol, _midnight(session.date), day))
                continue
            if session.date < self._intraday_from(symbol):
                continue
            rows = self._day_minutes(symbol, session)
            for i in range(0, len(rows), minutes):
                chunk = rows[i : i + minutes]
                if chunk and low <= chunk[0].t <= high:
                    out.append(_bar(symbol, chunk[0].t, chunk))
        return out

    # -- generation -------------------------------------------------------------------------------

    def _sessions(self, symbol: str) -> list[Session]:
        """The trading days of history: DAILY_DAYS before the start day, and the start day when
        the start is after its open."""
        cached = self._days.get(symbol)
        if cached is not None:
            return cached
        today = self._start.astimezone(EASTERN).date()
        days = list(trading_sessions(today - timedelta(days=DAILY_DAYS * 2), today))
        days = [s for s in days if s.date < today][-DAILY_DAYS:]
        current = session_on(today)
        if current is not None and current.open < self._start:
            days.append(current)
        self._days[symbol] = days
        return days

    def _intraday_from(self, symbol: str) -> date:
        sessions = self._sessions(symbol)
        prior = [s for s in sessions if s.open < self._start]
        return prior[-INTRADAY_DAYS - 1].date if len(prior) > INTRADAY_DAYS else prior[0].date

    def _anchor(self, symbol: str) -> dict[date, tuple[float, float]]:
        """(open, close) per day: a walk run backwards from the start price."""
        cached = self._anchors.get(symbol)
        if cached is not None:
            return cached
        spec = self._specs[symbol]
        rng = random.Random(f"history/{self._seed}/{symbol}")
        vol = spec.daily_vol
        price = float(spec.price)
        out: dict[date, tuple[float, float]] = {}
        for session in reversed(self._sessions(symbol)):
            close = price  # the latest day ends at the start price (the start day at the start)
            open_ = close / math.exp(rng.gauss(0.0, vol))
            out[session.date] = (open_, close)
            price = open_ / math.exp(rng.gauss(0.0, vol * 0.3))  # the overnight gap
        self._anchors[symbol] = out
        return out

    def _day_minutes(self, symbol: str, session: Session) -> list[_Minute]:
        key = (symbol, session.date)
        cached = self._minutes.get(key)
        if cached is not None:
            return cached
        spec = self._specs[symbol]
        open_, close = self._anchor(symbol)[session.date]
        end = min(session.close, self._start)
        count = int((end - session.open).total_seconds() // 60)
        rng = random.Random(f"history/{self._seed}/{symbol}/{session.date.isoformat()}")
        tick = 0.01 if spec.price >= 1 else 0.0001
        sigma = open_ * spec.daily_vol / math.sqrt(390)
        rows: list[_Minute] = []
        prev = open_
        for k in range(count):
            left = count - k
            # A Brownian bridge: drift toward the close, shrinking noise near the end.
            step = (close - prev) / left + rng.gauss(0.0, sigma) * math.sqrt((left - 1) / left)
            nxt = max(prev + step, tick)
            wiggle = abs(rng.gauss(0.0, sigma * 0.5))
            h, low = max(prev, nxt) + wiggle, max(min(prev, nxt) - wiggle, tick)
            shape = 1.0 + 2.0 * math.exp(-k / 20.0) + 1.5 * math.exp(-(count - k) / 20.0)
            volume = max(100, round(spec.lot * shape * rng.uniform(0.5, 1.5) / 100) * 100)
            rows.append(
                _Minute(
                    session.open + timedelta(minutes=k),
                    _price(prev, tick),
                    _price(h, tick),
                    _price(low, tick),
                    _price(nxt, tick),
                    volume,
                )
            )
            prev = nxt
        self._minutes[key] = rows
        return rows


def _price(value: float, tick: float) -> Decimal:
    places = Decimal("0.01") if tick >= 0.01 else Decimal("0.0001")
    return Decimal(repr(round(value / tick) * tick)).quantize(places)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=EASTERN)


def _bar(symbol: str, t: datetime, rows: Sequence[_Minute]) -> dict[str, Any]:
    volume = sum(r.v for r in rows)
    value = sum((Decimal(r.v) * (r.h + r.low + r.c) / 3 for r in rows), Decimal(0))
    message = wire.bar_message(
        "b",
        symbol,
        t,
        rows[0].o,
        max(r.h for r in rows),
        min(r.low for r in rows),
        rows[-1].c,
        Decimal(volume),
        value / volume if volume else None,
        max(1, volume // 100),
    )
    return wire.rest_form(message)


def aggregate_live(
    symbol: str, timeframe: str, minute_bars: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Live minute bars (REST shape) re-cut into `timeframe` (1Day: one bar per Eastern day)."""
    minutes = TIMEFRAMES[timeframe]
    if minutes == 1:
        return list(minute_bars)
    groups: dict[datetime, list[dict[str, Any]]] = {}
    for row in minute_bars:
        t = datetime.fromisoformat(str(row["t"]).replace("Z", "+00:00")[:26] + "+00:00")
        if minutes == 0:
            key = _midnight(t.astimezone(EASTERN).date())
        else:
            epoch = int(t.timestamp()) // 60
            key = datetime.fromtimestamp((epoch - epoch % minutes) * 60, tz=t.tzinfo)
        groups.setdefault(key, []).append(row)
    out = []
    for key in sorted(groups):
        rows = groups[key]
        volume = sum((Decimal(str(r["v"])) for r in rows), Decimal(0))
        value = sum(
            (Decimal(str(r["v"])) * Decimal(str(r["vw"] or r["c"])) for r in rows), Decimal(0)
        )
        message = wire.bar_message(
            "b",
            symbol,
            key,
            Decimal(str(rows[0]["o"])),
            max(Decimal(str(r["h"])) for r in rows),
            min(Decimal(str(r["l"])) for r in rows),
            Decimal(str(rows[-1]["c"])),
            volume,
            value / volume if volume else None,
            sum(int(r["n"]) for r in rows),
        )
        out.append(wire.rest_form(message))
    return out


def page(
    rows: dict[str, list[dict[str, Any]]], limit: int, token: str | None
) -> tuple[dict[str, list[dict[str, Any]]], str | None]:
    """One page of a multi-symbol answer: symbols in order, `limit` rows in all; the token
    names the next row (``base64("symbol|index")``), as alpaca-py's paging sends it back."""
    flat = [(sym, i) for sym in sorted(rows) for i in range(len(rows[sym]))]
    begin = 0
    if token:
        try:
            sym, _, index = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
            begin = flat.index((sym, int(index)))
        except (ValueError, UnicodeDecodeError) as exc:
            raise SimError(400, "invalid page_token", _CODE_INVALID) from exc
    chosen = flat[begin : begin + limit]
    out: dict[str, list[dict[str, Any]]] = {}
    for sym, i in chosen:
        out.setdefault(sym, []).append(rows[sym][i])
    nxt = None
    if begin + limit < len(flat):
        sym, i = flat[begin + limit]
        nxt = base64.urlsafe_b64encode(f"{sym}|{i}".encode()).decode()
    return out, nxt
