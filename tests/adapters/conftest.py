"""Helpers shared by the adapter tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: one scale for every test deadline (STYLE.md: "timeouts scale with one constant").
DEADLINE = 5.0


async def wait_until(predicate: Callable[[], bool], within: float = DEADLINE) -> None:
    """Poll `predicate` until true, failing after `within` seconds (STYLE.md's sanctioned
    "poll a predicate with a deadline", for state that offers no event to await)."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - a test probe, with a deadline
            await asyncio.sleep(0.005)
