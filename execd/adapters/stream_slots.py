"""Which symbols the one market-data connection carries: the feed's symbol limit.

ALPACA.md §0.4 and §4.4: the free plan's IEX feed streams at most 30 symbols on its one
connection; a subscribe that would pass the limit is answered ``405 symbol limit exceeded``
and changes nothing — *none* of its symbols is added. Until issue 14's sixth round execd
sent every wanted symbol in one subscribe and took it as done, so a 40-symbol plan lost the
stream of all 40 (the first 30 included) and priced every leg from REST re-reads, and after
a reconnection a plan of 31 lost them all again.

`StreamSlots` is the bookkeeping, without I/O (sans-I/O, like websockets' protocol): the
stream asks it what to send (`requests`) and tells it the venue's answers (`answered`,
`refused`), one per request, in order (§4.1: every (un)subscribe is answered by the full
current subscription or an error).

- At most `limit` symbols hold a *slot* (None: no limit, a paid plan). A wanted symbol
  without one waits in request order and takes the first slot given up (its leg ended).
- A symbol that holds a slot keeps it until it is no longer wanted: a newer plan never
  takes a working leg's stream away (each swap would cost both legs a gap in their quotes).
  The symbols subscribed first are the legs that started first, the ones acting now; a leg
  not yet started (a buy waiting for buying power) subscribes nothing.
- Unsubscribes are sent before subscribes, so the venue's count never passes the limit in
  between.
- A 405 refuses only its own request: the symbols the venue already streams keep
  streaming, and the refused ones go back to the queue (in the order they were wanted)
  unless a later request still in flight subscribes them again (review 11: forgetting such
  a symbol made execd and the venue disagree, and the writer re-sent a refused subscribe
  for ever).
- The limit is learned from the venue, so a limit configured too high costs a refusal, not
  the stream. Requests are answered in order, so the last answer (`_confirmed`) is exactly
  what the venue carried when it refused. A refusal that asked for *one* new symbol is a
  true probe: the limit is exactly that count. A refusal that asked for several tells only
  that the limit is below count + asked, never below count + 1 (review 11: two batches in
  flight taught a limit of 0 and nothing streamed again): the limit becomes that upper
  bound and the next subscribes go one symbol each until a probe is refused or the venue
  carries the limit.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Literal

Action = Literal["subscribe", "unsubscribe"]


@dataclass(frozen=True, slots=True)
class SlotRequest:
    """One (un)subscribe message to send: the same symbols on quotes, trades and statuses."""

    action: Action
    symbols: list[str]


class StreamSlots:
    """See the module docstring. `wanted` is the set the stream's hot path filters on."""

    def __init__(self, limit: int | None) -> None:
        if limit is not None and limit < 0:
            raise ValueError(f"symbol limit must be >= 0 or None, not {limit}")
        self.limit = limit
        """The feed's symbol limit (None: unlimited); lowered to the venue's on a 405."""
        self.wanted: set[str] = set()
        self.refusals = 0
        """How many subscribes the venue refused with 405 (on any connection)."""
        self._waiting: dict[str, None] = {}  # wanted, no slot: in request order
        self._slots: dict[str, None] = {}  # hold a slot: in the order they got it
        self._rank: dict[str, int] = {}  # wanted symbol -> when it was wanted (queue order)
        self._wants = 0
        self._sent: set[str] = set()  # subscribed on this connection (answered or not)
        self._pending: deque[SlotRequest] = deque()  # the unanswered requests, oldest first
        self._subscribing: dict[str, int] = {}  # symbol -> its subscribes in `_pending`
        self._confirmed: frozenset[str] = frozenset()  # the venue's last answer
        self._one_at_a_time = False

    # ------------------------------------------------------------------ what is wanted

    def want(self, symbols: Iterable[str]) -> bool:
        """Add wanted symbols (in the order given); True when any was new."""
        new = [s for s in dict.fromkeys(symbols) if s not in self.wanted]
        if not new:
            return False
        self.wanted.update(new)
        self._rank.update(zip(new, range(self._wants, self._wants + len(new)), strict=True))
        self._wants += len(new)
        self._waiting.update(dict.fromkeys(new))
        self._assign()
        return True

    def drop(self, symbols: Iterable[str]) -> bool:
        """Stop wanting symbols (their slots go to the longest waiting); True when any was."""
        gone = set(symbols) & self.wanted
        if not gone:
            return False
        self.wanted -= gone
        for symbol in gone:
            self._waiting.pop(symbol, None)
            self._slots.pop(symbol, None)
            del self._rank[symbol]
        self._assign()
        return True

    def _assign(self) -> None:
        """Give free slots to the waiting symbols, longest waiting first."""
        room = len(self._waiting) if self.limit is None else self.limit - len(self._slots)
        if room <= 0 or not self._waiting:
            return  # O(1) while full: a 2,000-leg plan subscribes one symbol at a time
        for symbol in list(islice(self._waiting, room)):
            del self._waiting[symbol]
            self._slots[symbol] = None

    @property
    def streamed(self) -> frozenset[str]:
        """The symbols holding a slot (subscribed, or about to be)."""
        return frozenset(self._slots)

    @property
    def any_streamed(self) -> bool:
        """Whether any symbol holds a slot (O(1): the silence watchdog asks)."""
        return bool(self._slots)

    @property
    def waiting(self) -> tuple[str, ...]:
        """Wanted symbols without a slot, in the order they will get one."""
        return tuple(self._waiting)

    # ------------------------------------------------------------------ the connection

    def connected(self) -> None:
        """A new connection: nothing is subscribed on it yet."""
        self._sent = set()
        self._pending.clear()
        self._subscribing.clear()
        self._confirmed = frozenset()

    def requests(self) -> list[SlotRequest]:
        """What to send now to make the connection carry the slotted symbols: unsubscribes
        first (they free the venue's count), then subscribes (one symbol each while the
        limit is being learned). Each is taken as sent."""
        out: list[SlotRequest] = []
        drop = sorted(self._sent - self._slots.keys())
        if drop:
            self._sent -= set(drop)
            out.append(SlotRequest("unsubscribe", drop))
        add = [s for s in self._slots if s not in self._sent]
        if add:
            self._sent.update(add)
            batches = [[s] for s in add] if self._one_at_a_time else [add]
            out.extend(SlotRequest("subscribe", batch) for batch in batches)
        self._pending.extend(out)
        counts = self._subscribing
        for symbol in add:
            counts[symbol] = counts.get(symbol, 0) + 1
        return out

    def answered(self, subscribed: Iterable[str]) -> None:
        """The venue's answer to the oldest unanswered request: its full subscription."""
        self._answer()
        self._confirmed = frozenset(subscribed)
        if self._one_at_a_time and self.limit is not None and len(self._confirmed) >= self.limit:
            self._one_at_a_time = False  # the venue carries the limit: it is exact

    def failed(self) -> None:
        """The oldest unanswered request was refused for a reason other than the limit (its
        symbols stay taken as sent: a malformed symbol would be refused again)."""
        self._answer()

    def refused(self) -> list[str]:
        """The oldest unanswered request was refused with 405 (the venue changed nothing):
        the limit is learned (module docstring), and its symbols that the venue does not
        stream and no later request in flight subscribes again go back to the queue;
        returns them."""
        request = self._answer()
        self.refusals += 1
        if request is None or request.action != "subscribe":
            return []  # not a subscribe: nothing was asked for, nothing to learn
        asked = [s for s in request.symbols if s not in self._confirmed]
        if not asked:
            return []  # refused although it added nothing: no count to learn from
        count = len(self._confirmed)
        if len(asked) == 1:
            # a true probe: the venue's count before this one symbol is exactly its limit
            self.limit = count
            self._one_at_a_time = False
        else:
            # the limit is in [count, count + asked): the upper bound, then one at a time
            bound = count + len(asked) - 1
            self.limit = bound if self.limit is None else min(self.limit, bound)
            self._one_at_a_time = True
        again = self._resubscribed_in_flight(asked)
        refused = [s for s in asked if s not in again]
        for symbol in refused:
            self._sent.discard(symbol)
            self._slots.pop(symbol, None)
        self._requeue(refused)
        return refused

    def _answer(self) -> SlotRequest | None:
        """Take the oldest unanswered request off the wire (None: a stray answer)."""
        if not self._pending:
            return None
        request = self._pending.popleft()
        if request.action == "subscribe":
            counts = self._subscribing
            for symbol in request.symbols:
                if counts[symbol] > 1:
                    counts[symbol] -= 1
                else:
                    del counts[symbol]
        return request

    def _resubscribed_in_flight(self, symbols: list[str]) -> set[str]:
        """Those of `symbols` that a later request still in flight subscribes again (and
        none unsubscribes after it): the venue will carry them if it accepts that one, so
        its own answer settles them. O(1) a symbol: a 2,000-symbol plan's probes are
        refused one by one."""
        counts, sent = self._subscribing, self._sent
        return {s for s in symbols if s in counts and s in sent}

    def _requeue(self, refused: list[str]) -> None:
        """Put `refused` back in the queue, and with them any slot over the (learned) limit
        not yet sent, all in the order they were wanted; then hand out what room is left."""
        back = [s for s in refused if s in self.wanted]
        if self.limit is not None:
            unsent = [s for s in self._slots if s not in self._sent]
            over = max(len(self._slots) - self.limit, 0)
            for symbol in unsent[len(unsent) - min(over, len(unsent)) :]:
                del self._slots[symbol]
                back.append(symbol)
        if back:
            # the queue is in want order already (`want` appends): each goes in at its place
            # by bisection (C-level copies only: a 2,000-symbol queue, refused one by one)
            rank = self._rank.__getitem__
            queue = list(self._waiting)
            for symbol in back:
                queue.insert(bisect.bisect(queue, rank(symbol), key=rank), symbol)
            self._waiting = dict.fromkeys(queue)
        self._assign()
