"""Market phases: where a moment falls in a trading day, pure and DST-correct.

Every comparison is between aware instants, and the session boundaries are
aware Eastern datetimes built from the venue's calendar (`calendar.py`), so a
phase never depends on the host's timezone or on which side of a DST change
the day falls (DESIGN.md "Time"). `now` is always passed in.

The phases implement seed 003's open assessment (9:30–9:32 ET wait for
spreads, 9:32–9:35 normal, later standard) as offsets from the session's open,
configurable through `PhaseWindows`, and seed 000's market-open delay
(`market_open_delay_minutes`: no passive placement before open + delay).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from execd.domain.calendar import EASTERN, TradingSession, next_session, session_on


class MarketPhase(StrEnum):
    """Where a moment falls in the trading day, in the ladder's terms."""

    CLOSED = "closed"
    PRE_MARKET = "pre_market"
    WAIT_FOR_SPREADS = "wait_for_spreads"
    NORMAL = "normal"
    STANDARD = "standard"
    AFTER_HOURS = "after_hours"

    @property
    def is_regular(self) -> bool:
        """True inside the regular session (the three opening-assessment phases)."""
        return self in _REGULAR_PHASES

    @property
    def is_extended(self) -> bool:
        """True in pre-market or after-hours (extended-hours orders only)."""
        return self in (MarketPhase.PRE_MARKET, MarketPhase.AFTER_HOURS)


_REGULAR_PHASES = frozenset(
    {MarketPhase.WAIT_FOR_SPREADS, MarketPhase.NORMAL, MarketPhase.STANDARD}
)


@dataclass(frozen=True, slots=True)
class PhaseWindows:
    """Opening-assessment windows as offsets from the regular open (seed 003).

    `wait_for_spreads`: end of WAIT_FOR_SPREADS (default open + 2 min, 9:32 ET).
    `normal_until`: end of NORMAL (default open + 5 min, 9:35 ET).
    """

    wait_for_spreads: timedelta = timedelta(minutes=2)
    normal_until: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        if self.wait_for_spreads < timedelta(0):
            raise ValueError("wait_for_spreads must not be negative")
        if self.normal_until < self.wait_for_spreads:
            raise ValueError("normal_until must not be earlier than wait_for_spreads")


def require_aware(value: datetime, name: str = "now") -> datetime:
    """Return `value` unchanged, or raise ValueError for a naive datetime.

    A naive time has no venue meaning: interpreting it in the host's zone is
    how schedules silently shift by an hour on DST days.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value


def to_eastern(value: datetime) -> datetime:
    """The same instant on US/Eastern wall time (rejects naive datetimes)."""
    return require_aware(value, "datetime").astimezone(EASTERN)


def eastern_date(now: datetime) -> date:
    """The Eastern calendar date of an instant: the day whose session applies."""
    return to_eastern(now).date()


def market_phase(
    now: datetime, session: TradingSession | None, windows: PhaseWindows
) -> MarketPhase:
    """The phase of `now` within `session`.

    `session` is the day's session (None when the venue does not trade that
    day, which is CLOSED). A `now` outside the session's extended hours, on
    whatever day, is CLOSED. Windows are clamped to the close, so a short day
    never shows an opening phase after its close. Boundaries belong to the
    later phase: 9:32:00.000 is NORMAL, the close itself is AFTER_HOURS.
    """
    require_aware(now)
    if session is None:
        return MarketPhase.CLOSED
    if now < session.extended_open or now >= session.extended_close:
        return MarketPhase.CLOSED
    if now < session.open:
        return MarketPhase.PRE_MARKET
    if now >= session.close:
        return MarketPhase.AFTER_HOURS
    if now < session.open + windows.wait_for_spreads:
        return MarketPhase.WAIT_FOR_SPREADS
    if now < session.open + windows.normal_until:
        return MarketPhase.NORMAL
    return MarketPhase.STANDARD


def market_phase_by_rules(now: datetime, windows: PhaseWindows) -> MarketPhase:
    """The phase of `now` using the NYSE rules calendar (for the simulated venue)."""
    return market_phase(now, session_on(eastern_date(now)), windows)


def next_phase_change(
    now: datetime, session: TradingSession | None, windows: PhaseWindows
) -> datetime | None:
    """The first boundary of `session` strictly after `now`, or None when none is left.

    Lets a leg in a waiting phase say "wake me at" instead of polling.
    """
    require_aware(now)
    if session is None:
        return None
    boundaries = sorted(
        {
            session.extended_open,
            session.open,
            min(session.open + windows.wait_for_spreads, session.close),
            min(session.open + windows.normal_until, session.close),
            session.close,
            session.extended_close,
        }
    )
    return next((b for b in boundaries if b > now), None)


def is_regular_hours(now: datetime, session: TradingSession | None) -> bool:
    """True when `now` is inside the session's regular hours [open, close)."""
    require_aware(now)
    return session is not None and session.open <= now < session.close


def is_extended_hours(now: datetime, session: TradingSession | None) -> bool:
    """True in pre-market or after-hours (only extended-hours day limits trade then)."""
    require_aware(now)
    if session is None:
        return False
    in_day = session.extended_open <= now < session.extended_close
    return in_day and not session.open <= now < session.close


def open_delay_until(session: TradingSession, delay: timedelta) -> datetime:
    """The earliest passive placement: open + `market_open_delay_minutes` (seed 000).

    Clamped to the close, so a delay longer than a short session ends with it.
    """
    if delay < timedelta(0):
        raise ValueError("market open delay must not be negative")
    return min(session.open + delay, session.close)


def in_open_delay(now: datetime, session: TradingSession | None, delay: timedelta) -> bool:
    """True from the open until the open delay has passed (seed 000's 9:30–9:35 rule)."""
    require_aware(now)
    if session is None:
        return False
    return session.open <= now < open_delay_until(session, delay)


def time_to_close(now: datetime, session: TradingSession) -> timedelta:
    """How long the regular session still runs after `now` (zero once closed)."""
    require_aware(now)
    return max(session.close - max(now, session.open), timedelta(0))


@dataclass(frozen=True, slots=True)
class MarketClock:
    """Alpaca's ``/v2/clock`` answer (ALPACA.md §2.3): is the regular session open, and when next.

    `is_open` covers the regular session only (false in pre-market and
    after-hours). While open, `next_open` is the next session's open; before
    the open, it is today's.
    """

    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime

    def to_alpaca(self) -> dict[str, str | bool]:
        """The wire shape, timestamps with Eastern offsets as Alpaca sends them."""
        return {
            "timestamp": to_eastern(self.timestamp).isoformat(),
            "is_open": self.is_open,
            "next_open": to_eastern(self.next_open).isoformat(),
            "next_close": to_eastern(self.next_close).isoformat(),
        }

    @classmethod
    def from_alpaca(cls, entry: Mapping[str, object]) -> MarketClock:
        """Parse the venue's clock (RFC 3339, nanoseconds truncated to microseconds)."""

        def when(key: str) -> datetime:
            value = entry.get(key)
            if not isinstance(value, str):
                raise ValueError(f"clock {key}: expected an RFC 3339 string, got {value!r}")
            return require_aware(datetime.fromisoformat(value), f"clock {key}")

        is_open = entry.get("is_open")
        if not isinstance(is_open, bool):
            raise ValueError(f"clock is_open: expected a boolean, got {is_open!r}")
        return cls(when("timestamp"), is_open, when("next_open"), when("next_close"))


def market_clock(now: datetime) -> MarketClock:
    """The ``/v2/clock`` answer at `now` under the NYSE rules (what the simulated venue serves)."""
    day = eastern_date(now)
    today = session_on(day)
    is_open = is_regular_hours(now, today)
    upcoming = next_session(day)
    next_open = today.open if today is not None and now < today.open else upcoming.open
    next_close = today.close if today is not None and now < today.close else upcoming.close
    return MarketClock(now, is_open, next_open, next_close)
