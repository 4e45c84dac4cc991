"""The daemon's clocks: the venue's wall clock for market rules, monotonic for timeouts.

Market-time rules run on the *venue's* clock (DESIGN.md "Time"): the local offset against
Alpaca's `/v2/clock` timestamp is measured at start and on every re-sync, so a host whose
clock is off by seconds still sees 9:30:00 when the venue does. Timeouts never use wall
time: they are monotonic deadlines of the event loop.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What the shell needs to know about time."""

    def now(self) -> datetime:
        """The venue's current time, aware (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (the event loop's timer base)."""
        ...


class VenueClock:
    """Local time corrected by the measured offset to the venue's clock."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def monotonic(self) -> float:
        return time.monotonic()

    def sync(self, venue_time: datetime, sent_at: datetime, received_at: datetime) -> None:
        """Set the offset from one `/v2/clock` round trip, assuming symmetric latency."""
        midpoint = sent_at + (received_at - sent_at) / 2
        self.offset = venue_time - midpoint
