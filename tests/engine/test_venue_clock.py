"""The daemon's venue clock (`execd.engine.clock.VenueClock`): never ahead of the venue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from execd.engine.clock import VenueClock

T0 = datetime(2026, 3, 5, 14, 29, 50, tzinfo=UTC)


@given(
    true_offset=st.floats(-1e6, 1e6),
    trip=st.floats(0.0, 5.0),
    stamped=st.floats(0.0, 1.0),
)
def test_sync_never_puts_the_clock_ahead_of_the_venue(
    true_offset: float, trip: float, stamped: float
) -> None:
    """Wherever in the round trip the venue stamped its time, the synced clock is at most
    the round trip behind the venue and never ahead of it: a leg held for the open cannot
    act on 9:30:00 before the venue's clock reads it (the restart-at-the-open flake: the
    midpoint rule ran 12 ms ahead under load)."""
    offset = timedelta(seconds=true_offset)
    sent = T0
    received = T0 + timedelta(seconds=trip)
    handled = sent + (received - sent) * stamped  # the local instant the venue stamped
    clock = VenueClock()
    behind_at_most = clock.sync(handled + offset, sent, received)
    error = (clock.offset - offset).total_seconds()
    assert error <= 0  # never ahead
    assert -error <= behind_at_most + 1e-6


def test_a_late_stamp_in_a_slow_round_trip() -> None:
    """The case seen: a 1 s round trip, the venue stamped 0.9 s in. The midpoint rule put the
    clock 0.4 s ahead; now it is 0.1 s behind."""
    clock = VenueClock()
    clock.sync(T0 + timedelta(seconds=0.9), T0, T0 + timedelta(seconds=1))
    assert clock.offset == timedelta(seconds=-0.1)


def test_the_clock_keeps_its_uncertainty_for_the_close_guard() -> None:
    """How far behind the clock may be is what a leg's last send before the close allows
    for (`domain.deadline.close_margin`); a local clock that stepped back mid-trip (a
    negative "trip") still counts the trip's size, never a negative uncertainty."""
    clock = VenueClock()
    assert clock.behind_at_most_seconds == 0.0
    clock.sync(T0, T0, T0 + timedelta(seconds=1.5))
    assert clock.behind_at_most_seconds == 1.5
    clock.sync(T0, T0, T0 - timedelta(seconds=0.25))
    assert clock.behind_at_most_seconds == 0.25
