"""Alpaca's per-key request budget, as a pure fixed-window counter.

Alpaca allows 200 trading requests per minute per API key and reports the budget on every
response with ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``
(UNIX epoch seconds at which the quota resets); beyond it the answer is HTTP 429
``{"code":42910000,"message":"rate limit exceeded"}`` (ALPACA.md §0.4).

The venue uses a **fixed window**: the first request of a key opens a window of
``window_seconds``; every request in it (accepted or refused) counts; the window and the count
reset together at ``reset``. A fixed window is what the ``X-RateLimit-Reset`` header describes
(one instant at which the whole quota comes back), and it makes a client's worst case easy to
reason about: at most ``limit`` accepted requests per window, so up to ``2 × limit`` across a
window boundary.

No I/O and no clock: the caller passes ``now`` (wall-clock epoch seconds, because the reset
header is an epoch timestamp).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["RateDecision", "RateLimiter", "rate_limit_headers"]

DEFAULT_LIMIT = 200
DEFAULT_WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The outcome of counting one request: allowed or not, and the numbers for the headers."""

    allowed: bool
    limit: int
    remaining: int
    reset: int  # epoch seconds, rounded up, when the window ends


@dataclass(slots=True)
class _Window:
    start: float
    count: int


@dataclass(slots=True)
class RateLimiter:
    """Fixed-window request counter per key (API key id); see the module docstring."""

    limit: int = DEFAULT_LIMIT
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    _windows: dict[str, _Window] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._validate(self.limit, self.window_seconds)

    @staticmethod
    def _validate(limit: int, window_seconds: float) -> None:
        if limit < 0:
            raise ValueError("rate limit must be >= 0")
        if window_seconds <= 0:
            raise ValueError("rate-limit window must be > 0 seconds")

    def configure(self, limit: int, window_seconds: float | None = None) -> None:
        """Change the budget (the /sim/ admin API tightens it); open windows keep their counts."""
        window = self.window_seconds if window_seconds is None else window_seconds
        self._validate(limit, window)
        self.limit = limit
        self.window_seconds = window

    def reset(self) -> None:
        """Forget every key's window (a fresh minute for everyone)."""
        self._windows.clear()

    def hit(self, key: str, now: float) -> RateDecision:
        """Count one request of ``key`` at ``now`` and say whether it is within the budget."""
        window = self._windows.get(key)
        if window is None or now >= window.start + self.window_seconds:
            window = _Window(start=now, count=0)
            self._windows[key] = window
        window.count += 1
        allowed = window.count <= self.limit
        return RateDecision(
            allowed=allowed,
            limit=self.limit,
            remaining=max(self.limit - window.count, 0),
            reset=math.ceil(window.start + self.window_seconds),
        )

    def peek(self, key: str, now: float) -> RateDecision:
        """The current numbers for ``key`` without counting a request."""
        window = self._windows.get(key)
        if window is None or now >= window.start + self.window_seconds:
            return RateDecision(True, self.limit, self.limit, math.ceil(now + self.window_seconds))
        return RateDecision(
            allowed=window.count < self.limit,
            limit=self.limit,
            remaining=max(self.limit - window.count, 0),
            reset=math.ceil(window.start + self.window_seconds),
        )


def rate_limit_headers(decision: RateDecision) -> dict[str, str]:
    """The ``X-RateLimit-*`` headers Alpaca puts on every trading response (§0.4)."""
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(decision.reset),
    }
