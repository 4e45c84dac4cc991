"""Leg starts spread over loop turns: at most `per_turn` legs take a step through the gate
per turn of the event loop, in the order they arrived.

A 500-leg plan releases its buys in one wave; every leg's first step (set-up, then
`decide` and the path to its first order) used to run in the same loop turn — 500 × ~0.3 ms,
a 150 ms turn in which no quote, fill or timer was served (issue 14 item 3). Legs pass the
gate instead: the gate lets the next `per_turn` through once per turn, so a burst of starts
becomes bounded turns with the loop's I/O served between them.

Nothing is decided by the gate: a leg waiting in it has sent nothing, and its first step
still runs every check from the state of the market when it runs (a plan stopped meanwhile
finds the leg stopping at its first action). Its cost is a turn per leg passing it, and a
future while it waits.
"""

from __future__ import annotations

import asyncio
from collections import deque

START_SLICE = 16
"""Legs that take their first step in one loop turn (~0.3 ms each: ~5 ms a turn)."""


class StartGate:
    """A FIFO of legs about to start; once per loop turn the next `per_turn` go through."""

    def __init__(self, per_turn: int = START_SLICE) -> None:
        if per_turn < 1:
            raise ValueError(f"per_turn must be at least 1, not {per_turn}")
        self._per_turn = per_turn
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._pump: asyncio.Handle | None = None

    @property
    def waiting(self) -> int:
        """Legs in the gate now (a cancelled one until the gate reaches it)."""
        return len(self._waiting)

    async def enter(self) -> None:
        """Return in a later loop turn, at most `per_turn` callers per turn, in order.
        A caller cancelled while waiting takes no turn's slot."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiting.append(future)
        if self._pump is None:
            self._pump = loop.call_soon(self._turn)
        await future

    def _turn(self) -> None:
        """Once per loop turn while legs wait: let the next `per_turn` through (they run
        in the next turn: one call of this per turn bounds each turn's starts)."""
        self._pump = None
        let = 0
        while self._waiting and let < self._per_turn:
            future = self._waiting.popleft()
            if not future.done():  # cancelled: skipped, takes no slot
                future.set_result(None)
                let += 1
        if self._waiting:
            self._pump = asyncio.get_running_loop().call_soon(self._turn)
