"""Jittered exponential backoff as a pure generator.

Every retry loop in the adapters (both websocket streams, REST retries) draws its
delays from `BackoffPolicy.delays`. The generator does no I/O and never sleeps: the
caller owns the `await asyncio.sleep(delay)`, the random source is passed in (tests
use `random.Random(seed).random`), and "reset after a healthy session" is simply
starting a fresh generator.

The default shape copies alpaca-py's stream reconnect (ALPACA.md §8.3): *equal
jitter*, the base doubles 1, 2, 4, 8, 16 s and is capped at 30 s, and each wait is
uniform in ``[base/2, base]`` so that a crowd of clients never reconnects in step,
while a wait is never shorter than half its base (no 10 ms reconnect storms,
alpaca-py#740).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Parameters of one backoff schedule (seconds)."""

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 30.0
    #: fraction of each base that is random: 0.5 → uniform in [base/2, base].
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            raise ValueError("need 0 < initial <= maximum")
        if self.factor < 1:
            raise ValueError("factor must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")

    def delays(self, rand: Callable[[], float]) -> Iterator[float]:
        """Endless delays: base ``initial * factor**n`` capped at `maximum`, jittered.

        `rand` returns floats uniform in [0, 1) (``random.random`` or a seeded
        ``random.Random(...).random``).
        """
        base = self.initial
        while True:
            yield base * (1 - self.jitter * rand())
            base = min(base * self.factor, self.maximum)
