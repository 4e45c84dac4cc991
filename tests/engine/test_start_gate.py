"""The start gate (issue 14 item 3): a burst of leg starts is spread over loop turns, at
most `per_turn` a turn, in arrival order, with the loop's other work served between them."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from execd.engine.start_gate import StartGate


class _Turns:
    """Counts the event loop's turns: a callback that re-arms itself once per turn."""

    def __init__(self) -> None:
        self.now = 0
        self._handle: asyncio.Handle | None = None

    def start(self) -> None:
        self._handle = asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        self.now += 1
        self._handle = asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


async def test_a_burst_of_500_starts_takes_bounded_turns_in_order() -> None:
    """500 legs arrive in one turn (a release wave): each turn lets at most 16 through, all
    500 pass, in the order they arrived, and another task gets a turn between slices —
    before, all 500 first steps ran in one turn."""
    gate = StartGate(per_turn=16)
    turns = _Turns()
    passed: list[tuple[int, int]] = []
    other: list[int] = []

    async def leg(n: int) -> None:
        await gate.enter()
        passed.append((n, turns.now))

    async def other_work() -> None:
        while len(passed) < 500:
            other.append(len(passed))
            await asyncio.sleep(0)

    turns.start()
    await asyncio.gather(other_work(), *(leg(n) for n in range(500)))
    turns.stop()
    assert [n for n, _ in passed] == list(range(500))
    per_turn = Counter(turn for _, turn in passed)
    assert max(per_turn.values()) <= 16
    assert len(per_turn) >= 500 // 16
    assert len({n for n in other if 0 < n < 500}) >= 500 // 16 - 1  # ran between slices
    assert gate.waiting == 0


async def test_a_leg_cancelled_in_the_gate_takes_no_slot() -> None:
    """A leg cancelled while waiting (its plan stopped, the daemon shutting down) raises
    `CancelledError` and the others still pass, none lost, 2 a turn."""
    gate = StartGate(per_turn=2)
    passed: list[int] = []

    async def leg(n: int) -> None:
        await gate.enter()
        passed.append(n)

    tasks = [asyncio.create_task(leg(n)) for n in range(6)]
    await asyncio.sleep(0)  # every leg is in the gate
    tasks[1].cancel()
    tasks[2].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert passed == [0, 3, 4, 5]
    assert [type(r) for r in results[1:3]] == [asyncio.CancelledError] * 2


def test_a_gate_lets_at_least_one_through() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        StartGate(per_turn=0)
