"""The market our orders meet: NBBO snapshots with depth, and trade prints, from a seeded generator.

Prices inside the engine are integer ticks of the instrument (exact; converted to ``Decimal`` at
the edges), sizes are whole shares. The generator's randomness is one ``random.Random(seed)``; it
never looks at our orders, so a seed always yields the same market, whatever we trade.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import NamedTuple, Protocol

from execd.domain.calendar import EASTERN, TradingSession, session_on
from execd.domain.types import Side
from execd.sim.config import SymbolSpec
from execd.sim.scenarios import ScenarioParams, params_for

_CENT = Decimal("0.01")
_SUB_PENNY = Decimal("0.0001")
_EXCHANGES = ("Q", "P", "Z", "K", "V", "N", "U")
# Seconds in a regular session's square root: turns daily volatility into per-√second volatility.
_SQRT_SESSION_S = math.sqrt(23_400)


@dataclass(frozen=True, slots=True)
class Instrument:
    """A symbol with its price grid (Rule 612: $0.01 at or above $1, $0.0001 below)."""

    spec: SymbolSpec
    tick: Decimal
    #: ticks per dollar (100 or 10,000)
    per_dollar: int = 100

    @classmethod
    def of(cls, spec: SymbolSpec) -> Instrument:
        if spec.price >= 1:
            return cls(spec, _CENT, 100)
        return cls(spec, _SUB_PENNY, 10_000)

    def number(self, ticks: int) -> float | int:
        """`wire.number(self.price(ticks))` straight from the ticks (every quote published
        makes two): an int when whole, else the float nearest the exact price — the same
        float, as both conversions round the exact quotient once."""
        whole, rest = divmod(ticks, self.per_dollar)
        return whole if rest == 0 else ticks / self.per_dollar

    @property
    def symbol(self) -> str:
        return self.spec.symbol

    def price(self, ticks: int) -> Decimal:
        """The exact price of `ticks`."""
        return (self.tick * ticks).quantize(self.tick)

    def ticks_floor(self, price: Decimal) -> int:
        """The highest tick at or below `price` (a buy limit's worst acceptable tick)."""
        return int((price / self.tick).to_integral_value(ROUND_FLOOR))

    def ticks_ceil(self, price: Decimal) -> int:
        """The lowest tick at or above `price` (a sell limit's worst acceptable tick)."""
        return int((price / self.tick).to_integral_value(ROUND_CEILING))


class Level(NamedTuple):
    """One price level of displayed liquidity.

    A named tuple, not a frozen dataclass: the generator makes 16 a tick (~64,000 a second
    for 2,000 symbols) and a frozen dataclass's ``__init__`` cost 3x as much (issue 14)."""

    price: int
    size: int


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """The market's own book for a symbol at `t` (before our consumption), best level first."""

    symbol: str
    t: datetime
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    bid_exchange: str = "Q"
    ask_exchange: str = "Q"


@dataclass(frozen=True, slots=True)
class Print:
    """A trade on the consolidated tape; `aggressor` is the side that crossed the spread."""

    symbol: str
    t: datetime
    price: int
    size: int
    aggressor: Side
    exchange: str = "Q"


MarketEvent = BookSnapshot | Print


class MarketSource(Protocol):
    """Where market events come from: the generator or a tape."""

    def instruments(self) -> tuple[Instrument, ...]:
        """The symbols this source drives."""
        ...

    def next_time(self) -> datetime | None:
        """When the next event happens (None: never again)."""
        ...

    def pop(self) -> list[MarketEvent]:
        """The events at `next_time()`, in order."""
        ...


def synthetic_depth(
    rng: random.Random, best: int, direction: int, count: int, lot: int, gap_prob: float
) -> tuple[Level, ...]:
    """`count` levels from `best` away from the spread (`direction` -1 for bids, +1 for asks).

    Used by the generator and behind a tape's NBBO, whose depth is not recorded.
    """
    # The hot loop of the generator (16 calls a tick): the draws are exactly those of
    # ``rng.uniform(0.3, 2.0)`` and `_round_lot`, inlined (same numbers, same order).
    levels: list[Level] = []
    price = best
    draw = rng.random
    for k in range(count):
        if k > 0:
            price += direction * (rng.randint(2, 5) if draw() < gap_prob else 1)
        if price <= 0:
            break
        lots = round(lot * (0.3 + _SIZE_SPAN * draw()) * (1 + 0.25 * k) / 100)
        levels.append(_new_level(Level, (price, (lots if lots > 1 else 1) * 100)))
    return tuple(levels)


_SIZE_SPAN = 2.0 - 0.3
"""`random.uniform(0.3, 2.0)` is ``0.3 + (2.0 - 0.3) * random()``: the same float."""
_new_level = tuple.__new__
"""`Level(price, size)` without the named tuple's Python-level ``__new__``."""


def _round_lot(shares: float) -> int:
    return max(1, round(shares / 100)) * 100


class _SymbolState:
    """The generator's mutable state for one symbol, with its own random stream: a symbol's
    market depends on the seed and the symbol only, never on which other symbols run."""

    def __init__(
        self, inst: Instrument, params: ScenarioParams, t: datetime, rng: random.Random
    ) -> None:
        self.inst = inst
        self.params = params
        self.rng = rng
        self.unit = 1 if inst.tick == _CENT else 5  # ticks per "cent" of spread
        self.mid = float(inst.spec.price / inst.tick)
        self.trend = 1
        self.last_t = t
        self.next_t = t + timedelta(seconds=rng.uniform(0.0, 0.2))


class GeneratedMarket:
    """A seeded synthetic market for a set of symbols under a scenario.

    `live` symbols run from `start`; the others are listed (instruments) and start when
    :meth:`activate` is first called for them, replaying their own path from `start` so that
    the market of a seed does not depend on when a symbol was first used.
    """

    def __init__(
        self,
        specs: tuple[SymbolSpec, ...],
        scenario: str,
        seed: int,
        start: datetime,
        depth: int = 8,
        live: tuple[str, ...] | None = None,
    ) -> None:
        self._seed = seed
        self._scenario = scenario
        self._start = start
        self._depth = depth
        self._instruments = tuple(Instrument.of(spec) for spec in specs)
        self._index = {inst.symbol: i for i, inst in enumerate(self._instruments)}
        # The running symbols as a heap on (next event time, start order): the next event is
        # found in O(log n), not by scanning every symbol (2,000 symbols tick ~4,000 times a
        # second). Ties go to the symbol started first, as a scan in start order would.
        self._heap: list[tuple[datetime, int, _SymbolState]] = []
        self._live: set[str] = set()
        for name in live if live is not None else tuple(self._index):
            if name in self._index and name not in self._live:
                self._add(self._new_state(name))

    def _add(self, state: _SymbolState) -> None:
        heapq.heappush(self._heap, (state.next_t, len(self._live), state))
        self._live.add(state.inst.symbol)

    def _new_state(self, symbol: str) -> _SymbolState:
        i = self._index[symbol]
        rng = random.Random(f"{self._seed}/{symbol}")
        params = params_for(self._scenario, i)
        return _SymbolState(self._instruments[i], params, self._start, rng)

    def instruments(self) -> tuple[Instrument, ...]:
        return self._instruments

    def is_live(self, symbol: str) -> bool:
        """Whether the symbol's market is running."""
        return symbol in self._live

    def activate(self, symbol: str, now: datetime) -> BookSnapshot | None:
        """Start a listed symbol's market at venue time `now` (its path replayed from the start,
        silently); returns its book at `now`. No-op (None) when it already runs or is unknown."""
        if symbol not in self._index or self.is_live(symbol):
            return None
        state = self._new_state(symbol)
        last: BookSnapshot | None = None
        while state.next_t <= now:
            for event in self._step(state):
                if isinstance(event, BookSnapshot):
                    last = event
        self._add(state)
        return last

    def next_time(self) -> datetime | None:
        return self._heap[0][0] if self._heap else None

    def pop(self) -> list[MarketEvent]:
        _, order, state = self._heap[0]  # ties: the symbol started first, deterministic
        events = self._step(state)
        heapq.heapreplace(self._heap, (state.next_t, order, state))
        return events

    def _step(self, st: _SymbolState) -> list[MarketEvent]:
        rng, p, t = st.rng, st.params, st.next_t
        phase, since_open = _phase(t)
        if phase == "closed":
            st.last_t = t
            st.next_t = t + timedelta(seconds=30)
            return []
        rate, spread_mult, size_mult, jump_prob = p.rate_hz, 1.0, p.size_mult, p.jump_prob
        vol_mult = p.vol_mult
        spread_cents = max(rng.randint(*p.spread_cents), st.inst.spec.spread_cents)
        if phase == "extended":
            rate, size_mult = rate * 0.3, size_mult * 0.3
            spread_cents = rng.randint(5, 25)
        elif p.open_dynamics and since_open < 300:
            # The open: 10–30¢ spreads collapsing to the normal 1–3¢ within five minutes.
            decay = math.exp(-since_open / 75.0)
            spread_cents = round(rng.uniform(10, 30) * decay) + rng.randint(1, 3)
            rate, jump_prob, vol_mult = rate * 1.7, max(jump_prob, 0.08), vol_mult * 2.5
        dt = max((t - st.last_t).total_seconds(), 0.0)
        sigma = float(st.inst.spec.price) * st.inst.spec.daily_vol * vol_mult / _SQRT_SESSION_S
        sigma_ticks = sigma / float(st.inst.tick)
        if rng.random() < 0.01:
            st.trend = -st.trend
        drift = st.trend * p.trend_per_s * sigma_ticks * dt
        st.mid += rng.gauss(drift, sigma_ticks * math.sqrt(dt))
        if jump_prob and rng.random() < jump_prob:
            st.mid += rng.choice((-1, 1)) * rng.randint(*p.jump_cents) * st.unit
        st.mid = max(st.mid, 10.0 * st.unit)
        spread = max(1, round(spread_cents * spread_mult) * st.unit)
        bid = math.floor(st.mid - spread / 2)
        ask = bid + spread
        lot = round(st.inst.spec.lot * size_mult)
        snap = BookSnapshot(
            st.inst.symbol,
            t,
            synthetic_depth(rng, bid, -1, self._depth, lot, p.gap_prob),
            synthetic_depth(rng, ask, +1, self._depth, lot, p.gap_prob),
            rng.choice(_EXCHANGES),
            rng.choice(_EXCHANGES),
        )
        events: list[MarketEvent] = [snap]
        if rng.random() < p.trade_prob:
            buy_prob = 0.5 + (0.15 * st.trend if p.trend_per_s else 0.0)
            aggressor = Side.BUY if rng.random() < buy_prob else Side.SELL
            price = ask if aggressor is Side.BUY else bid
            size = _round_lot(lot * rng.uniform(0.1, 1.2))
            events.append(Print(st.inst.symbol, t, price, size, aggressor, rng.choice(_EXCHANGES)))
        gap = rng.expovariate(rate)
        if p.stale_prob and rng.random() < p.stale_prob:
            gap += rng.uniform(*p.stale_gap_s)
        st.last_t = t
        st.next_t = t + timedelta(seconds=max(gap, 0.02))
        return events


_day_cache: list[tuple[datetime, datetime, TradingSession | None]] = []


def session_at(t: datetime) -> TradingSession | None:
    """The session of `t`'s Eastern date. Every tick asks; the last day's answer is kept with
    its Eastern-midnight bounds, so a tick costs two comparisons, not a time-zone conversion
    and a calendar look-up (issue 14: ~5 % of the venue at 2,000 symbols)."""
    if _day_cache:
        lo, hi, session = _day_cache[0]
        if lo <= t < hi:
            return session
    day = t.astimezone(EASTERN).date()
    # Kept in `t`'s own zone (the venue's clock is UTC): comparing datetimes of two zones
    # asks the Eastern zone for its offset at every comparison.
    lo = datetime.combine(day, time(0), EASTERN).astimezone(t.tzinfo)
    hi = datetime.combine(day + timedelta(days=1), time(0), EASTERN).astimezone(t.tzinfo)
    session = session_on(day)
    _day_cache[:] = [(lo, hi, session)]
    return session


def _phase(t: datetime) -> tuple[str, float]:
    """("regular" | "extended" | "closed", seconds since the regular open) at venue time `t`."""
    session = session_at(t)
    if session is None or not session.extended_open <= t < session.extended_close:
        return "closed", 0.0
    if session.open <= t < session.close:
        return "regular", (t - session.open).total_seconds()
    return "extended", 0.0
