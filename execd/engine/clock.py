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

    @property
    def behind_at_most_seconds(self) -> float:
        """How far `now()` may be behind the venue's clock (seconds, >= 0): the unsafe
        side at the close, so the last send allows for it (`domain.deadline`)."""
        ...


class VenueClock:
    """Local time corrected by the measured offset to the venue's clock."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset
        self.behind_at_most_seconds = 0.0

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def monotonic(self) -> float:
        return time.monotonic()

    def sync(self, venue_time: datetime, sent_at: datetime, received_at: datetime) -> float:
        """Set the offset from one `/v2/clock` round trip so that this clock is never ahead
        of the venue's: behind by at most the round trip, never before it.

        The venue stamped `venue_time` at some local instant between `sent_at` and
        `received_at`; which one is unknown. Assuming the midpoint (symmetric latency) can
        put this clock up to half a round trip *ahead*, and then the daemon acts on the
        venue's 9:30:00 before the venue is there: under load the in-process venue stamped
        late in the trip, this clock ran 12 ms ahead and a leg held for the open placed its
        order 9:29:59.99 by the venue (the flake of `test_plan_after_the_close_waits_for_
        the_next_open_across_a_restart`). Pairing the stamp with `received_at` is a lower
        bound of the true offset: "not before the open" holds exactly. Returns the round
        trip (seconds): how far behind this clock may be."""
        self.offset = venue_time - received_at
        # A local clock that stepped back mid-trip gives a negative "round trip": the
        # uncertainty is then unknown, not zero — count the trip's size either way.
        self.behind_at_most_seconds = abs((received_at - sent_at).total_seconds())
        return self.behind_at_most_seconds
