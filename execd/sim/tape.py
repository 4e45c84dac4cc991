"""Replay of recorded Alpaca stream messages (JSON lines of ``"T":"q"`` and ``"T":"t"``).

The tape's NBBO is the top of the book; levels behind it are synthetic (the tape does not record
depth), drawn from the venue's seeded generator. Prints carry the tape's prices and sizes; their
aggressor is inferred from the prevailing quote (at/above the ask: a buyer; at/below the bid: a
seller; inside: the nearer side).
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from execd.domain.calendar import EASTERN
from execd.domain.types import Side
from execd.sim.config import SymbolSpec
from execd.sim.market import BookSnapshot, Instrument, Level, MarketEvent, Print, synthetic_depth


@dataclass(frozen=True, slots=True)
class TapeRecord:
    """One tape line, parsed: prices as exact decimals (tape floats via str)."""

    kind: str  # "q" or "t"
    symbol: str
    t: datetime
    fields: dict[str, Any]


def parse_time(value: str) -> datetime:
    """RFC 3339 (Z or offset, up to nanoseconds) to an aware datetime (microsecond precision)."""
    text = value.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without offset: {value!r}")
    return parsed


def read_tape(path: Path, *, limit: int | None = None) -> list[TapeRecord]:
    """The quote and trade records of a tape file, in file (= time) order: all of them, or the
    first `limit` (the clock's origin needs one, not the whole file parsed).

    A whole tape is parsed once per file version (path, modification time, size) and shared:
    the benchmarks build several identical venues per tape, and parsing is most of a tape
    venue's start-up. The records are frozen; their `fields` are read, never written.
    """
    if limit is not None:
        return _parse(path, limit)
    st = path.stat()
    return list(_parsed(path.resolve(), st.st_mtime_ns, st.st_size))


@functools.lru_cache(maxsize=4)
def _parsed(path: Path, mtime_ns: int, size: int) -> tuple[TapeRecord, ...]:
    del mtime_ns, size  # the cache key: a rewritten tape is parsed again
    return tuple(_parse(path, None))


def _parse(path: Path, limit: int | None) -> list[TapeRecord]:
    out: list[TapeRecord] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if limit is not None and len(out) >= limit:
                break
            line = line.strip()
            if not line:
                continue
            msg = json.loads(line, parse_float=Decimal)
            kind = msg.get("T")
            if kind in ("q", "t"):
                out.append(TapeRecord(kind, str(msg["S"]), parse_time(msg["t"]), msg))
    return out


def start_instant(records: list[TapeRecord], start: time | None) -> datetime:
    """The venue time a replay begins: `start` (Eastern) on the tape's date, or its first record."""
    if not records:
        raise ValueError("empty tape")
    first = records[0].t
    if start is None:
        return first
    wanted = datetime.combine(first.astimezone(EASTERN).date(), start, tzinfo=EASTERN)
    return max(wanted, first)


def tape_origin(path: Path, start: time | None) -> datetime:
    """Where the venue clock starts for a tape replay (used by ``VenueClock.from_config``)."""
    return start_instant(read_tape(path, limit=1), start)


class TapeMarket:
    """A :class:`MarketSource` that replays a tape from `start`."""

    def __init__(self, path: Path, seed: int, start: time | None = None, depth: int = 8) -> None:
        records = read_tape(path)
        self._begin = start_instant(records, start)
        self._rng = random.Random(seed)
        self._depth = depth
        self._insts: dict[str, Instrument] = {}
        self._last_quote: dict[str, TapeRecord] = {}
        for rec in records:
            if rec.symbol not in self._insts and rec.kind == "q" and rec.fields["ap"] > 0:
                price = Decimal(rec.fields["ap"])
                self._insts[rec.symbol] = Instrument.of(
                    SymbolSpec(rec.symbol, price, exchange="NYSE", name=rec.symbol)
                )
        # Records before the start only set the prevailing quote, replayed at the start instant.
        self._pending: list[TapeRecord] = []
        for rec in records:
            if rec.t < self._begin:
                if rec.kind == "q":
                    self._last_quote[rec.symbol] = rec
            else:
                self._pending.append(rec)
        primed = [
            TapeRecord("q", r.symbol, self._begin, r.fields) for r in self._last_quote.values()
        ]
        self._pending = primed + self._pending
        self._pos = 0

    @property
    def begin(self) -> datetime:
        """The venue time the replay starts at."""
        return self._begin

    def instruments(self) -> tuple[Instrument, ...]:
        return tuple(self._insts.values())

    def next_time(self) -> datetime | None:
        return self._pending[self._pos].t if self._pos < len(self._pending) else None

    def pop(self) -> list[MarketEvent]:
        rec = self._pending[self._pos]
        self._pos += 1
        inst = self._insts.get(rec.symbol)
        if inst is None:
            return []
        if rec.kind == "q":
            self._last_quote[rec.symbol] = rec
            return [self._snapshot(inst, rec)]
        return [self._print(inst, rec)]

    def _snapshot(self, inst: Instrument, rec: TapeRecord) -> BookSnapshot:
        f = rec.fields
        lot = max(100, int(f["bs"]) + int(f["as"])) // 2
        bids: tuple[Level, ...] = ()
        asks: tuple[Level, ...] = ()
        if f["bp"] > 0:
            top = inst.ticks_floor(Decimal(f["bp"]))
            deeper = synthetic_depth(self._rng, top - 1, -1, self._depth - 1, lot, 0.1)
            bids = (Level(top, int(f["bs"])), *deeper)
        if f["ap"] > 0:
            top = inst.ticks_ceil(Decimal(f["ap"]))
            deeper = synthetic_depth(self._rng, top + 1, +1, self._depth - 1, lot, 0.1)
            asks = (Level(top, int(f["as"])), *deeper)
        return BookSnapshot(
            rec.symbol, rec.t, bids, asks, str(f.get("bx", "Q")), str(f.get("ax", "Q"))
        )

    def _print(self, inst: Instrument, rec: TapeRecord) -> Print:
        f = rec.fields
        price = Decimal(f["p"])
        quote = self._last_quote.get(rec.symbol)
        aggressor = Side.BUY
        if quote is not None:
            bid, ask = Decimal(quote.fields["bp"]), Decimal(quote.fields["ap"])
            if price <= bid:
                aggressor = Side.SELL
            elif price < ask:
                aggressor = Side.SELL if price - bid < ask - price else Side.BUY
        ticks = inst.ticks_floor(price) if aggressor is Side.SELL else inst.ticks_ceil(price)
        return Print(rec.symbol, rec.t, ticks, int(f["s"]), aggressor, str(f.get("x", "Q")))
