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
  streaming, the refused ones go back to the head of the queue, and the limit is learned
  from the venue (its count before the refused request), so a limit configured too high
  costs one refusal, not the stream. When a refused request held several symbols the exact
  limit is unknown: the next subscribes go one symbol each until one is refused.
"""

from __future__ import annotations

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
        self._sent: set[str] = set()  # subscribed on this connection (answered or not)
        self._pending: deque[list[str]] = deque()  # each unanswered request's additions
        self._confirmed: frozenset[str] = frozenset()  # the venue's last answer
        self._one_at_a_time = False

    # ------------------------------------------------------------------ what is wanted

    def want(self, symbols: Iterable[str]) -> bool:
        """Add wanted symbols (in the order given); True when any was new."""
        new = [s for s in dict.fromkeys(symbols) if s not in self.wanted]
        if not new:
            return False
        self.wanted.update(new)
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
    def waiting(self) -> tuple[str, ...]:
        """Wanted symbols without a slot, in the order they will get one."""
        return tuple(self._waiting)

    # ------------------------------------------------------------------ the connection

    def connected(self) -> None:
        """A new connection: nothing is subscribed on it yet."""
        self._sent = set()
        self._pending.clear()
        self._confirmed = frozenset()

    def requests(self) -> list[SlotRequest]:
        """What to send now to make the connection carry the slotted symbols: unsubscribes
        first (they free the venue's count), then subscribes (one symbol each while the
        limit is being learned). Each is taken as sent."""
        out: list[SlotRequest] = []
        drop = sorted(self._sent - self._slots.keys())
        if drop:
            self._sent -= set(drop)
            self._pending.append([])
            out.append(SlotRequest("unsubscribe", drop))
        add = [s for s in self._slots if s not in self._sent]
        if add:
            self._sent.update(add)
            batches = [[s] for s in add] if self._one_at_a_time else [add]
            for batch in batches:
                self._pending.append(batch)
                out.append(SlotRequest("subscribe", batch))
        return out

    def answered(self, subscribed: Iterable[str]) -> None:
        """The venue's answer to the oldest unanswered request: its full subscription."""
        if self._pending:
            self._pending.popleft()
        self._confirmed = frozenset(subscribed)

    def failed(self) -> None:
        """The oldest unanswered request was refused for a reason other than the limit (its
        symbols stay taken as sent: a malformed symbol would be refused again)."""
        if self._pending:
            self._pending.popleft()

    def refused(self) -> list[str]:
        """The oldest unanswered request was refused with 405 (the venue changed nothing):
        its symbols not already streamed go back to the head of the queue and the limit is
        learned; returns them."""
        batch = self._pending.popleft() if self._pending else []
        self.refusals += 1
        refused = [s for s in batch if s not in self._confirmed]
        for symbol in refused:
            self._sent.discard(symbol)
            self._slots.pop(symbol, None)
        if len(batch) <= 1 or self._one_at_a_time:
            # the venue's count before this one symbol is exactly its limit
            self.limit = len(self._confirmed)
            self._one_at_a_time = False
        else:
            # somewhere in [confirmed, confirmed + batch): probe one symbol at a time
            self._one_at_a_time = True
        self._requeue(refused)
        return refused

    def _requeue(self, refused: list[str]) -> None:
        """Put `refused` back at the head of the queue, and with them any slot over the
        (learned) limit not yet sent; then hand out what room is left."""
        back = [s for s in refused if s in self.wanted]
        if self.limit is not None:
            unsent = [s for s in self._slots if s not in self._sent]
            over = max(len(self._slots) - self.limit, 0)
            for symbol in unsent[len(unsent) - min(over, len(unsent)) :]:
                del self._slots[symbol]
                back.append(symbol)
        self._waiting = {**dict.fromkeys(back), **self._waiting}
        self._assign()
