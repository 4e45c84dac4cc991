"""The venue's clock: the one source of "now" for the market, the matching engine and REST.

Real mode: starts at an Eastern date/time and advances with a monotonic source × `speed`.
Manual mode (``monotonic=None``): time moves only through :meth:`advance` / :meth:`jump_to`, so unit
tests step the venue without sleeping. Tape replay uses :meth:`jump_to` to follow tape timestamps.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from execd.domain.calendar import EASTERN, is_trading_day, previous_session
from execd.sim.config import SimConfig
from execd.sim.tape import tape_origin


class VenueClock:
    """Venue time as an aware UTC datetime; never moves backwards."""

    def __init__(
        self,
        origin: datetime,
        *,
        speed: float = 1.0,
        monotonic: Callable[[], float] | None = _time.monotonic,
    ) -> None:
        if origin.tzinfo is None:
            raise ValueError("origin must be timezone-aware")
        self._origin = origin.astimezone(UTC)
        self._speed = speed
        self._monotonic = monotonic
        self._anchor = monotonic() if monotonic is not None else 0.0
        self._offset = timedelta(0)

    @classmethod
    def manual(cls, origin: datetime) -> VenueClock:
        """A clock that only moves when told to (tests, deterministic runs)."""
        return cls(origin, monotonic=None)

    @classmethod
    def from_config(
        cls, config: SimConfig, *, monotonic: Callable[[], float] | None = _time.monotonic
    ) -> VenueClock:
        """The clock a config asks for: `start_date` + `start` Eastern.

        Missing parts come from the wall clock (the shell's one wall-clock read), so `execd sim`
        alone behaves like a live venue.
        """
        if config.tape is not None:
            # Tape replay: the venue lives on the tape's date and time (session rules apply).
            origin = tape_origin(config.tape, config.start)
        else:
            origin = origin_for(config.start_date, config.start)
        return cls(origin, speed=config.speed, monotonic=monotonic)

    @property
    def speed(self) -> float:
        """Venue seconds per real second."""
        return self._speed

    @property
    def is_manual(self) -> bool:
        """True when only advance()/jump_to() move the clock."""
        return self._monotonic is None

    def now(self) -> datetime:
        """The current venue time (UTC, aware)."""
        elapsed = 0.0
        if self._monotonic is not None:
            elapsed = (self._monotonic() - self._anchor) * self._speed
        return self._origin + self._offset + timedelta(seconds=elapsed)

    def advance(self, seconds: float) -> datetime:
        """Move venue time forward by `seconds` (on top of real time in real mode)."""
        if seconds < 0:
            raise ValueError("the venue clock never goes backwards")
        self._offset += timedelta(seconds=seconds)
        return self.now()

    def jump_to(self, when: datetime) -> datetime:
        """Move venue time forward to `when` (no-op if already past it): tape following."""
        delta = (when - self.now()).total_seconds()
        if delta > 0:
            self._offset += timedelta(seconds=delta)
        return self.now()

    def real_seconds_until(self, when: datetime) -> float:
        """Real (loop) seconds until venue time reaches `when`; 0 if it already has."""
        return max(0.0, (when - self.now()).total_seconds() / self._speed)


def origin_for(start_date: date | None, start: time | None) -> datetime:
    """The Eastern start instant for a config's `start_date`/`start`, filled from the wall clock.

    With neither, the venue is live: today, now (closed on a weekend, like Alpaca). With a
    time of day but no date, the venue starts on the latest trading day on or before today,
    because someone asking for 09:29:50 wants to see the open, whatever today is.
    """
    wall = datetime.now(EASTERN)
    day = start_date or wall.date()
    if start is None:
        start = wall.timetz().replace(tzinfo=None) if start_date is None else time(9, 30)
    elif start_date is None and not is_trading_day(day):
        day = previous_session(day).date
    return datetime.combine(day, start, tzinfo=EASTERN).astimezone(UTC)
