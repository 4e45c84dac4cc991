"""One symbol's live book as our orders see it: the market's levels, minus what we took, plus our
resting orders with their place in the queue.

Matching rules (the venue models a market, not Alpaca paper's "fill at the NBBO, any size"):

* A taker walks the displayed levels of the far side up to its limit, level by level, each at the
  level's price. Liquidity we take stays consumed and comes back with a half-life (the market
  refills, gradually).
* A resting order joins the back of the queue at its price: ahead of it is the displayed size at
  that price when it arrived. Cancels ahead shrink that queue (it is clamped to what is displayed
  at the price). It fills only from opposite-side flow: a trade print at or through its price,
  after the queue ahead is consumed, or a later quote whose far side crosses its price (a seller
  arriving at our bid trades with us, at our price).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from execd.domain.types import Side
from execd.sim.market import BookSnapshot, Instrument, Level, Print

# A market order never runs out of book: past the generated depth, levels keep coming one tick
# apart with the deepest level's size (up to this many).
_MAX_EXTENSION = 10_000


@dataclass(slots=True)
class Resting:
    """One of our orders waiting in the book (mutable: its queue and remainder move)."""

    order_id: str
    side: Side
    limit: int
    remaining: Decimal
    queue_ahead: int
    seq: int


@dataclass(frozen=True, slots=True)
class Execution:
    """A match of one of our orders: `qty` at `price` ticks."""

    order_id: str
    price: int
    qty: Decimal


class SymbolBook:
    """The live book of one symbol (owned by the exchange)."""

    def __init__(self, inst: Instrument, refill_half_life_s: float) -> None:
        self.inst = inst
        self.snapshot: BookSnapshot | None = None
        self._half_life = refill_half_life_s
        # (is_ask, price) -> (shares consumed, when): how much of a level we have taken.
        self._consumed: dict[tuple[bool, int], tuple[float, datetime]] = {}
        self._resting: dict[str, Resting] = {}
        self._seq = 0

    # -- the displayed book -------------------------------------------------------------------

    def _still_consumed(self, key: tuple[bool, int], now: datetime) -> float:
        entry = self._consumed.get(key)
        if entry is None:
            return 0.0
        amount, since = entry
        elapsed = max((now - since).total_seconds(), 0.0)
        left = amount * 0.5 ** (elapsed / self._half_life) if self._half_life > 0 else 0.0
        if left < 1.0:
            del self._consumed[key]
            return 0.0
        return left

    def _consume(self, is_ask: bool, price: int, qty: Decimal, now: datetime) -> None:
        key = (is_ask, price)
        self._consumed[key] = (self._still_consumed(key, now) + float(qty), now)

    def levels(self, is_ask: bool, now: datetime) -> list[Level]:
        """Displayed levels of one side after our consumption, best first (empty levels dropped)."""
        if self.snapshot is None:
            return []
        raw = self.snapshot.asks if is_ask else self.snapshot.bids
        out = []
        for lvl in raw:
            size = int(lvl.size - self._still_consumed((is_ask, lvl.price), now))
            if size > 0:
                out.append(Level(lvl.price, size))
        return out

    def displayed_at(self, is_ask: bool, price: int, now: datetime) -> int:
        """Displayed shares at `price` on one side (0 if no level there)."""
        return next((lvl.size for lvl in self.levels(is_ask, now) if lvl.price == price), 0)

    def top(self, now: datetime) -> tuple[Level | None, Level | None]:
        """The displayed NBBO (bid, ask); None for an empty side."""
        return self._best(False, now), self._best(True, now)

    def _best(self, is_ask: bool, now: datetime) -> Level | None:
        """`levels(is_ask, now)[0]` without building the other levels: every tick publishes
        the top (issue 14: the venue at 2,000 symbols). A consumption left below one share
        reads as none wherever it is read, so stopping early changes no answer."""
        if self.snapshot is None:
            return None
        raw = self.snapshot.asks if is_ask else self.snapshot.bids
        if not self._consumed:
            return next((lvl for lvl in raw if lvl.size > 0), None)
        for lvl in raw:
            size = int(lvl.size - self._still_consumed((is_ask, lvl.price), now))
            if size > 0:
                return Level(lvl.price, size)
        return None

    # -- taking ---------------------------------------------------------------------------------

    def take(
        self, side: Side, qty: Decimal, limit: int | None, now: datetime
    ) -> list[tuple[int, Decimal]]:
        """Walk the far side for a `side` taker of `qty` up to `limit` ticks (None: any price).

        Returns (price ticks, qty) per level touched, and marks that liquidity consumed.
        """
        is_ask = side is Side.BUY
        fills: list[tuple[int, Decimal]] = []
        left = qty
        levels = self.levels(is_ask, now)
        if not levels and limit is None and self.snapshot is not None:
            # Both the market and our consumption emptied the side: price from the raw book.
            raw = self.snapshot.asks if is_ask else self.snapshot.bids
            levels = [raw[-1]] if raw else []
        step = 1 if is_ask else -1
        k = 0
        while left > 0 and levels:
            if k < len(levels):
                lvl = levels[k]
            elif k - len(levels) < _MAX_EXTENSION and limit is None:
                last = levels[-1]
                lvl = Level(last.price + step * (k - len(levels) + 1), last.size)
            else:
                break
            if limit is not None and (lvl.price > limit if is_ask else lvl.price < limit):
                break
            q = min(left, Decimal(lvl.size))
            fills.append((lvl.price, q))
            self._consume(is_ask, lvl.price, q, now)
            left -= q
            k += 1
        return fills

    def crosses(self, side: Side, limit: int, now: datetime) -> bool:
        """Would a `side` limit at `limit` take displayed liquidity right now?"""
        bid, ask = self.top(now)
        if side is Side.BUY:
            return ask is not None and ask.price <= limit
        return bid is not None and bid.price >= limit

    # -- resting ----------------------------------------------------------------------------------

    def rest(
        self, order_id: str, side: Side, limit: int, remaining: Decimal, now: datetime
    ) -> None:
        """Put an order at the back of the queue at `limit`."""
        self._seq += 1
        ahead = self.displayed_at(side is Side.SELL, limit, now)
        self._resting[order_id] = Resting(order_id, side, limit, remaining, ahead, self._seq)

    def remove(self, order_id: str) -> Resting | None:
        """Take an order out of the book (cancel, replace, expiry, fully filled)."""
        return self._resting.pop(order_id, None)

    def resting(self, order_id: str) -> Resting | None:
        """The resting entry of an order, if it rests."""
        return self._resting.get(order_id)

    def resting_orders(self) -> list[Resting]:
        """All resting orders, in time priority."""
        return sorted(self._resting.values(), key=lambda r: r.seq)

    def on_snapshot(self, snap: BookSnapshot) -> list[Execution]:
        """A new market book: shrink queues to what is displayed, and fill orders it crosses."""
        self.snapshot = snap
        now = snap.t
        out: list[Execution] = []
        for r in self._priority():
            r.queue_ahead = min(r.queue_ahead, self.displayed_at(r.side is Side.SELL, r.limit, now))
            if not self.crosses(r.side, r.limit, now):
                continue
            # Sellers (buyers) arrived at or through our resting price: they trade with us there.
            got = sum((q for _, q in self.take(r.side, r.remaining, r.limit, now)), Decimal(0))
            if got > 0:
                out.append(self._fill(r, got))
        return out

    def on_print(self, trade: Print) -> list[Execution]:
        """Opposite-side flow: fill resting orders at or better than the print, queue first."""
        out: list[Execution] = []
        used = Decimal(0)
        size = Decimal(trade.size)
        for r in self._priority():
            if r.side is trade.aggressor:
                continue
            reached = trade.price <= r.limit if r.side is Side.BUY else trade.price >= r.limit
            if not reached:
                continue
            ahead = Decimal(r.queue_ahead)
            qty = min(r.remaining, max(Decimal(0), size - ahead - used))
            r.queue_ahead = max(0, r.queue_ahead - trade.size)
            if qty > 0:
                used += qty
                out.append(self._fill(r, qty))
        return out

    def _priority(self) -> list[Resting]:
        """Price, then time priority (best bids / lowest asks first)."""
        return sorted(
            self._resting.values(),
            key=lambda r: (-r.limit if r.side is Side.BUY else r.limit, r.seq),
        )

    def _fill(self, r: Resting, qty: Decimal) -> Execution:
        r.remaining -= qty
        if r.remaining <= 0:
            self._resting.pop(r.order_id, None)
        return Execution(r.order_id, r.limit, qty)
