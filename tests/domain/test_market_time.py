"""Market phases: exact boundaries, DST, half days, naive input."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.domain.calendar import EASTERN, TradingSession, session_on
from execd.domain.market_time import (
    MarketClock,
    MarketPhase,
    PhaseWindows,
    eastern_date,
    in_open_delay,
    is_extended_hours,
    is_regular_hours,
    market_clock,
    market_phase,
    market_phase_by_rules,
    next_phase_change,
    open_delay_until,
    time_to_close,
    to_eastern,
)

WINDOWS = PhaseWindows()
TOKYO = ZoneInfo("Asia/Tokyo")

# Trading days either side of the 2026 DST changes (Mar 8 and Nov 1), plus half days.
DST_AND_HALF_DAYS = [
    date(2026, 3, 6),
    date(2026, 3, 9),
    date(2026, 10, 30),
    date(2026, 11, 2),
    date(2026, 11, 27),
    date(2026, 12, 24),
]
PHASE_ORDER = [
    MarketPhase.PRE_MARKET,
    MarketPhase.WAIT_FOR_SPREADS,
    MarketPhase.NORMAL,
    MarketPhase.STANDARD,
    MarketPhase.AFTER_HOURS,
]


def _session(day: date) -> TradingSession:
    session = session_on(day)
    assert session is not None
    return session


def _et(day: date, h: int, m: int, s: int = 0, us: int = 0) -> datetime:
    return datetime.combine(day, time(h, m, s, us), tzinfo=EASTERN)


def _expected_by_wall_clock(wall: time, half_day: bool) -> MarketPhase:
    """A reference model written in Eastern wall time, independent of the code under test."""
    close, ext_close = (time(13), time(17)) if half_day else (time(16), time(20))
    if wall < time(4) or wall >= ext_close:
        return MarketPhase.CLOSED
    if wall < time(9, 30):
        return MarketPhase.PRE_MARKET
    if wall >= close:
        return MarketPhase.AFTER_HOURS
    if wall < time(9, 32):
        return MarketPhase.WAIT_FOR_SPREADS
    if wall < time(9, 35):
        return MarketPhase.NORMAL
    return MarketPhase.STANDARD


@pytest.mark.parametrize(
    ("wall", "phase"),
    [
        (time(3, 59, 59, 999999), MarketPhase.CLOSED),
        (time(4, 0), MarketPhase.PRE_MARKET),
        (time(9, 29, 59, 999999), MarketPhase.PRE_MARKET),
        (time(9, 30), MarketPhase.WAIT_FOR_SPREADS),
        (time(9, 31, 59, 999999), MarketPhase.WAIT_FOR_SPREADS),
        (time(9, 32), MarketPhase.NORMAL),
        (time(9, 34, 59, 999999), MarketPhase.NORMAL),
        (time(9, 35), MarketPhase.STANDARD),
        (time(15, 59, 59, 999999), MarketPhase.STANDARD),
        (time(16, 0), MarketPhase.AFTER_HOURS),
        (time(19, 59, 59, 999999), MarketPhase.AFTER_HOURS),
        (time(20, 0), MarketPhase.CLOSED),
    ],
)
def test_phase_boundaries_are_exact(wall: time, phase: MarketPhase) -> None:
    """Each boundary belongs to the later phase, to the microsecond (9:32:00.000 is NORMAL)."""
    day = date(2026, 3, 9)
    now = datetime.combine(day, wall, tzinfo=EASTERN)
    assert market_phase(now, _session(day), WINDOWS) is phase


def test_half_day_phases() -> None:
    """On a half day 13:00 ET starts after-hours, and after-hours ends at 17:00."""
    day = date(2026, 11, 27)
    s = _session(day)
    assert market_phase(_et(day, 12, 59, 59, 999999), s, WINDOWS) is MarketPhase.STANDARD
    assert market_phase(_et(day, 13, 0), s, WINDOWS) is MarketPhase.AFTER_HOURS
    assert market_phase(_et(day, 17, 0), s, WINDOWS) is MarketPhase.CLOSED


def test_no_session_is_closed() -> None:
    """A holiday (session None) is CLOSED even at 10:00 ET."""
    now = _et(date(2026, 4, 3), 10, 0)
    assert market_phase(now, None, WINDOWS) is MarketPhase.CLOSED
    assert market_phase_by_rules(now, WINDOWS) is MarketPhase.CLOSED


def test_other_days_session_is_closed() -> None:
    """A moment on another day than the session's is CLOSED, not mistaken for its hours."""
    s = _session(date(2026, 3, 9))
    assert market_phase(_et(date(2026, 3, 10), 10, 0), s, WINDOWS) is MarketPhase.CLOSED


def test_naive_datetime_rejected() -> None:
    """Every entry point refuses a naive datetime instead of guessing its zone."""
    naive = datetime(2026, 3, 9, 9, 32)
    s = _session(date(2026, 3, 9))
    with pytest.raises(ValueError, match="timezone-aware"):
        market_phase(naive, s, WINDOWS)
    with pytest.raises(ValueError, match="timezone-aware"):
        market_phase(naive, None, WINDOWS)
    with pytest.raises(ValueError, match="timezone-aware"):
        to_eastern(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        is_regular_hours(naive, s)
    with pytest.raises(ValueError, match="timezone-aware"):
        next_phase_change(naive, s, WINDOWS)


def test_utc_input_across_dst() -> None:
    """13:30 UTC is the open in summer time but pre-market in winter time."""
    summer = datetime(2026, 3, 9, 13, 30, tzinfo=UTC)
    winter = datetime(2026, 3, 6, 13, 30, tzinfo=UTC)
    assert market_phase_by_rules(summer, WINDOWS) is MarketPhase.WAIT_FOR_SPREADS
    assert market_phase_by_rules(winter, WINDOWS) is MarketPhase.PRE_MARKET
    assert market_phase_by_rules(winter + timedelta(hours=1), WINDOWS) is (
        MarketPhase.WAIT_FOR_SPREADS
    )


def test_eastern_date_uses_eastern_wall_time() -> None:
    """01:00 UTC on the 10th is still the 9th in New York."""
    assert eastern_date(datetime(2026, 3, 10, 1, 0, tzinfo=UTC)) == date(2026, 3, 9)


def test_configurable_windows() -> None:
    """Custom windows move the opening phases."""
    day = date(2026, 3, 9)
    windows = PhaseWindows(wait_for_spreads=timedelta(minutes=1), normal_until=timedelta(minutes=8))
    s = _session(day)
    assert market_phase(_et(day, 9, 30, 59), s, windows) is MarketPhase.WAIT_FOR_SPREADS
    assert market_phase(_et(day, 9, 31), s, windows) is MarketPhase.NORMAL
    assert market_phase(_et(day, 9, 37, 59), s, windows) is MarketPhase.NORMAL
    assert market_phase(_et(day, 9, 38), s, windows) is MarketPhase.STANDARD


def test_windows_validation() -> None:
    """Windows out of order or negative are refused."""
    with pytest.raises(ValueError, match="normal_until"):
        PhaseWindows(wait_for_spreads=timedelta(minutes=5), normal_until=timedelta(minutes=2))
    with pytest.raises(ValueError, match="negative"):
        PhaseWindows(wait_for_spreads=timedelta(seconds=-1))


def test_open_delay() -> None:
    """Seed 000's 5-minute delay: no passive placement until 9:35 ET, clamped to the close."""
    day = date(2026, 11, 27)
    s = _session(day)
    assert open_delay_until(s, timedelta(minutes=5)) == _et(day, 9, 35)
    assert open_delay_until(s, timedelta(hours=10)) == s.close
    assert in_open_delay(_et(day, 9, 34, 59), s, timedelta(minutes=5))
    assert not in_open_delay(_et(day, 9, 35), s, timedelta(minutes=5))
    assert not in_open_delay(_et(day, 9, 0), s, timedelta(minutes=5))
    with pytest.raises(ValueError, match="negative"):
        open_delay_until(s, timedelta(minutes=-1))


def test_regular_and_extended_hours() -> None:
    """Regular hours are [open, close); extended hours are the rest of 04:00–20:00."""
    day = date(2026, 3, 9)
    s = _session(day)
    assert is_regular_hours(_et(day, 9, 30), s)
    assert not is_regular_hours(_et(day, 16, 0), s)
    assert is_extended_hours(_et(day, 16, 0), s)
    assert is_extended_hours(_et(day, 4, 0), s)
    assert not is_extended_hours(_et(day, 12, 0), s)
    assert not is_extended_hours(_et(day, 20, 0), s)
    assert not is_regular_hours(_et(day, 12, 0), None)


def test_next_phase_change() -> None:
    """The next boundary after a moment, and None after the extended close."""
    day = date(2026, 3, 9)
    s = _session(day)
    assert next_phase_change(_et(day, 3, 0), s, WINDOWS) == _et(day, 4, 0)
    assert next_phase_change(_et(day, 9, 30), s, WINDOWS) == _et(day, 9, 32)
    assert next_phase_change(_et(day, 9, 33), s, WINDOWS) == _et(day, 9, 35)
    assert next_phase_change(_et(day, 20, 0), s, WINDOWS) is None
    assert next_phase_change(_et(day, 10, 0), None, WINDOWS) is None


def test_time_to_close() -> None:
    """Time left in the regular session, never negative."""
    day = date(2026, 11, 27)
    s = _session(day)
    assert time_to_close(_et(day, 12, 0), s) == timedelta(hours=1)
    assert time_to_close(_et(day, 14, 0), s) == timedelta(0)


@given(
    st.sampled_from(DST_AND_HALF_DAYS),
    st.integers(min_value=-3600, max_value=25 * 3600),
    st.sampled_from([UTC, EASTERN, TOKYO]),
)
def test_phase_matches_wall_clock_model_across_dst(day: date, seconds: int, zone: ZoneInfo) -> None:
    """Across DST changes and half days, any instant in any zone gets the wall-clock phase."""
    midnight_et = datetime.combine(day, time(0), tzinfo=EASTERN)
    now = (midnight_et.astimezone(UTC) + timedelta(seconds=seconds)).astimezone(zone)
    wall = to_eastern(now)
    s = _session(day)
    phase = market_phase(now, s, WINDOWS)
    if wall.date() != day:
        assert phase is MarketPhase.CLOSED
    else:
        assert phase is _expected_by_wall_clock(wall.time(), s.is_half_day)
    assert phase.is_regular == is_regular_hours(now, s)
    assert phase.is_extended == is_extended_hours(now, s)


@given(
    st.sampled_from(DST_AND_HALF_DAYS),
    st.integers(min_value=0, max_value=24 * 3600),
    st.integers(min_value=0, max_value=24 * 3600),
)
def test_phases_never_go_backwards_within_a_day(day: date, a: int, b: int) -> None:
    """Within one trading day the phase sequence only moves forward."""
    start = datetime.combine(day, time(4), tzinfo=EASTERN)
    s = _session(day)
    early, late = sorted((a, b))
    p1 = market_phase(start + timedelta(seconds=early), s, WINDOWS)
    p2 = market_phase(start + timedelta(seconds=late), s, WINDOWS)
    if MarketPhase.CLOSED not in (p1, p2):
        assert PHASE_ORDER.index(p1) <= PHASE_ORDER.index(p2)


@given(st.sampled_from(DST_AND_HALF_DAYS), st.integers(min_value=0, max_value=24 * 3600))
def test_next_phase_change_is_where_the_phase_changes(day: date, seconds: int) -> None:
    """The phase is constant until the next boundary and different at it."""
    now = datetime.combine(day, time(0), tzinfo=EASTERN) + timedelta(seconds=seconds)
    s = _session(day)
    boundary = next_phase_change(now, s, WINDOWS)
    if boundary is None:
        return
    assert boundary > now
    before = market_phase(boundary - timedelta(microseconds=1), s, WINDOWS)
    assert before is market_phase(now, s, WINDOWS)
    assert market_phase(boundary, s, WINDOWS) is not before


@pytest.mark.parametrize(
    ("now", "is_open", "next_open", "next_close"),
    [
        # Friday before the spring DST change, pre-market: today's open and close.
        (
            "2026-03-06T08:00:00-05:00",
            False,
            "2026-03-06T09:30:00-05:00",
            "2026-03-06T16:00:00-05:00",
        ),
        # Open: the next open is Monday's, already on daylight time.
        (
            "2026-03-06T10:00:00-05:00",
            True,
            "2026-03-09T09:30:00-04:00",
            "2026-03-06T16:00:00-05:00",
        ),
        # After the close on Wednesday before Thanksgiving: skip the holiday to the half day.
        (
            "2026-11-25T16:00:00-05:00",
            False,
            "2026-11-27T09:30:00-05:00",
            "2026-11-27T13:00:00-05:00",
        ),
        # A holiday at noon.
        (
            "2026-04-03T12:00:00-04:00",
            False,
            "2026-04-06T09:30:00-04:00",
            "2026-04-06T16:00:00-04:00",
        ),
    ],
)
def test_market_clock(now: str, is_open: bool, next_open: str, next_close: str) -> None:
    """The simulated /v2/clock: regular session only, next open/close across DST and holidays."""
    clock = market_clock(datetime.fromisoformat(now))
    assert clock.to_alpaca() == {
        "timestamp": now,
        "is_open": is_open,
        "next_open": next_open,
        "next_close": next_close,
    }


def test_market_clock_from_alpaca() -> None:
    """The venue's clock parses, nanoseconds and Z included; broken fields are named."""
    clock = MarketClock.from_alpaca(
        {
            "timestamp": "2026-03-09T14:00:00.123456789Z",
            "is_open": True,
            "next_open": "2026-03-10T09:30:00-04:00",
            "next_close": "2026-03-09T16:00:00-04:00",
        }
    )
    assert clock.timestamp == datetime(2026, 3, 9, 14, 0, 0, 123456, tzinfo=UTC)
    assert clock.is_open
    assert clock == market_clock(clock.timestamp)
    with pytest.raises(ValueError, match="clock is_open"):
        MarketClock.from_alpaca({"is_open": "true"})
    with pytest.raises(ValueError, match="clock next_open"):
        MarketClock.from_alpaca(
            {"timestamp": "2026-03-09T14:00:00Z", "is_open": True, "next_open": "2026-03-10T09:30"}
        )


@given(
    st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    )
)
def test_market_clock_properties(now: datetime) -> None:
    """next_open and next_close are in the future (or now for close) and agree with is_open."""
    clock = market_clock(now)
    assert clock.next_open > now
    assert clock.next_close > now
    assert clock.is_open == (clock.next_close < clock.next_open)
    assert clock.is_open == market_phase_by_rules(now, WINDOWS).is_regular
