"""The NYSE calendar rules against published exchange calendars."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.domain.calendar import (
    EASTERN,
    TradingSession,
    easter_sunday,
    is_half_day,
    is_trading_day,
    next_session,
    nyse_holidays,
    previous_session,
    session_on,
    settlement_date,
    trading_sessions,
)

# Published NYSE holiday schedules (weekday closures).
HOLIDAYS_2013 = {
    date(2013, 1, 1),
    date(2013, 1, 21),
    date(2013, 2, 18),
    date(2013, 3, 29),
    date(2013, 5, 27),
    date(2013, 7, 4),
    date(2013, 9, 2),
    date(2013, 11, 28),
    date(2013, 12, 25),
}
HOLIDAYS_2025 = {
    date(2025, 1, 1),
    date(2025, 1, 9),  # national day of mourning, President Carter
    date(2025, 1, 20),
    date(2025, 2, 17),
    date(2025, 4, 18),
    date(2025, 5, 26),
    date(2025, 6, 19),
    date(2025, 7, 4),
    date(2025, 9, 1),
    date(2025, 11, 27),
    date(2025, 12, 25),
}
HOLIDAYS_2026 = {
    date(2026, 1, 1),
    date(2026, 1, 19),
    date(2026, 2, 16),
    date(2026, 4, 3),
    date(2026, 5, 25),
    date(2026, 6, 19),
    date(2026, 7, 3),  # July 4 is a Saturday
    date(2026, 9, 7),
    date(2026, 11, 26),
    date(2026, 12, 25),
}

dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2035, 12, 31))


@pytest.mark.parametrize(
    ("year", "expected"), [(2013, HOLIDAYS_2013), (2025, HOLIDAYS_2025), (2026, HOLIDAYS_2026)]
)
def test_holiday_lists_match_the_published_schedule(year: int, expected: set[date]) -> None:
    """The computed holidays of a year are exactly the NYSE's published list."""
    assert nyse_holidays(year) == expected


@pytest.mark.parametrize(
    ("year", "expected"),
    [
        (2013, {date(2013, 7, 3), date(2013, 11, 29), date(2013, 12, 24)}),
        (2025, {date(2025, 7, 3), date(2025, 11, 28), date(2025, 12, 24)}),
        # 2026: July 3 is the observed Independence Day, so no July half day.
        (2026, {date(2026, 11, 27), date(2026, 12, 24)}),
        # 2023: July 3 was a Monday half day before a Tuesday July 4.
        (2023, {date(2023, 7, 3), date(2023, 11, 24)}),
    ],
)
def test_half_days_match_the_published_schedule(year: int, expected: set[date]) -> None:
    """Early closes are July 3, the day after Thanksgiving and Christmas Eve, when trading."""
    days = [s.date for s in trading_sessions(date(year, 1, 1), date(year, 12, 31)) if s.is_half_day]
    assert set(days) == expected


def test_tape_days_are_full_sessions() -> None:
    """The recorded tapes' days (2013-10-07/08) are full 09:30–16:00 sessions."""
    sessions = trading_sessions(date(2013, 10, 5), date(2013, 10, 8))
    assert [s.date for s in sessions] == [date(2013, 10, 7), date(2013, 10, 8)]
    for s in sessions:
        assert not s.is_half_day
        assert s.open == datetime(s.date.year, 10, s.date.day, 9, 30, tzinfo=EASTERN)
        assert s.close == datetime(s.date.year, 10, s.date.day, 16, 0, tzinfo=EASTERN)
        assert s.open.astimezone(UTC).hour == 13  # EDT in October


def test_half_day_session_times() -> None:
    """A half day closes at 13:00 and its extended session at 17:00 (as Alpaca reports)."""
    s = session_on(date(2026, 11, 27))
    assert s is not None
    assert s.is_half_day
    assert s.close == datetime(2026, 11, 27, 13, 0, tzinfo=EASTERN)
    assert s.extended_close == datetime(2026, 11, 27, 17, 0, tzinfo=EASTERN)
    assert s.to_alpaca() == {
        "date": "2026-11-27",
        "open": "09:30",
        "close": "13:00",
        "session_open": "0400",
        "session_close": "1700",
        "settlement_date": "2026-11-30",
    }


def test_saturday_new_year_is_not_observed_on_friday() -> None:
    """NYSE traded on 2021-12-31 although New Year's Day 2022 was a Saturday."""
    assert is_trading_day(date(2021, 12, 31))
    assert date(2021, 12, 31) not in nyse_holidays(2021)
    assert date(2021, 12, 31) not in nyse_holidays(2022)


def test_sunday_holidays_move_to_monday_and_saturday_to_friday() -> None:
    """Observed-day rules: Juneteenth 2022 (Sun) → Mon 20th; Christmas 2021 (Sat) → Fri 24th."""
    assert not is_trading_day(date(2022, 6, 20))
    assert not is_trading_day(date(2021, 12, 24))
    assert not is_half_day(date(2021, 12, 24))  # the observed holiday, not a half day
    assert not is_trading_day(date(2023, 1, 2))  # New Year 2023 was a Sunday


def test_juneteenth_only_from_2022() -> None:
    """Juneteenth became an NYSE holiday in 2022; 2021-06-18 traded."""
    assert is_trading_day(date(2021, 6, 18))
    assert not is_trading_day(date(2022, 6, 20))


@pytest.mark.parametrize(
    "easter",
    [date(2000, 4, 23), date(2013, 3, 31), date(2024, 3, 31), date(2025, 4, 20), date(2026, 4, 5)],
)
def test_easter_computation(easter: date) -> None:
    """Easter Sunday matches known dates (Good Friday is two days earlier)."""
    assert easter_sunday(easter.year) == easter


def test_session_on_weekend_and_holiday_is_none() -> None:
    """No session on a Saturday, a Sunday or a holiday."""
    assert session_on(date(2026, 3, 7)) is None
    assert session_on(date(2026, 3, 8)) is None
    assert session_on(date(2026, 4, 3)) is None
    assert session_on(date(2026, 3, 9)) is not None


def test_sessions_follow_dst() -> None:
    """The 09:30 ET open is 14:30 UTC in winter and 13:30 UTC once DST starts (2026-03-08)."""
    before = session_on(date(2026, 3, 6))
    after = session_on(date(2026, 3, 9))
    assert before is not None
    assert after is not None
    assert before.open.astimezone(UTC).hour == 14
    assert after.open.astimezone(UTC).hour == 13
    assert after.open.astimezone(UTC).minute == 30


@pytest.mark.parametrize(
    ("trade", "settle"),
    [
        (date(2013, 10, 7), date(2013, 10, 10)),  # T+3 era
        (date(2020, 3, 6), date(2020, 3, 10)),  # T+2 era, over a weekend
        (date(2025, 7, 3), date(2025, 7, 7)),  # T+1, over Independence Day
        (date(2026, 11, 25), date(2026, 11, 27)),  # over Thanksgiving
        (date(2026, 10, 9), date(2026, 10, 13)),  # Columbus Day: banks closed
    ],
)
def test_settlement_dates(trade: date, settle: date) -> None:
    """Settlement counts settlement days in the cycle of the trade's era."""
    assert settlement_date(trade) == settle


def test_from_alpaca_parses_the_wire_shape() -> None:
    """An Alpaca calendar entry becomes an aware Eastern session."""
    s = TradingSession.from_alpaca(
        {
            "date": "2026-11-27",
            "open": "09:30",
            "close": "13:00",
            "session_open": "0400",
            "session_close": "1700",
            "settlement_date": "2026-11-30",
        }
    )
    assert s == session_on(date(2026, 11, 27))
    assert s.is_half_day


def test_from_alpaca_without_session_fields_defaults_extended_hours() -> None:
    """Older answers carry only date/open/close; extended hours default to 04:00–20:00."""
    s = TradingSession.from_alpaca({"date": "2013-10-07", "open": "09:30", "close": "16:00"})
    assert s.extended_open == datetime(2013, 10, 7, 4, 0, tzinfo=EASTERN)
    assert s.extended_close == datetime(2013, 10, 7, 20, 0, tzinfo=EASTERN)
    assert s.settlement_date is None
    assert "settlement_date" not in s.to_alpaca()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"date": "2026-01-05", "open": "09:30"}, "lacks 'close'"),
        ({"date": "2026-01-05", "open": "9:30", "close": "16:00"}, "calendar open"),
        ({"date": "2026-01-05", "open": "16:00", "close": "09:30"}, "out of order"),
    ],
)
def test_from_alpaca_rejects_malformed_entries(entry: dict[str, str], message: str) -> None:
    """A malformed calendar entry raises ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=message):
        TradingSession.from_alpaca(entry)


def test_naive_session_rejected() -> None:
    """A session cannot be built from naive datetimes."""
    naive = datetime(2026, 1, 5, 9, 30)
    with pytest.raises(ValueError, match="timezone-aware"):
        TradingSession(date(2026, 1, 5), naive, naive, naive, naive)


def test_next_and_previous_session_skip_closures() -> None:
    """The neighbours of Good Friday 2026 are Thursday before and Monday after."""
    assert next_session(date(2026, 4, 2)).date == date(2026, 4, 6)
    assert previous_session(date(2026, 4, 6)).date == date(2026, 4, 2)


@given(dates)
def test_alpaca_round_trip(day: date) -> None:
    """Every generated session survives to_alpaca → from_alpaca unchanged."""
    session = session_on(day)
    if session is not None:
        assert TradingSession.from_alpaca(session.to_alpaca()) == session


@given(dates, st.integers(min_value=0, max_value=40))
def test_trading_sessions_agree_with_session_on(start: date, span: int) -> None:
    """The range query lists exactly the days session_on answers, never a weekend."""
    end = start + timedelta(days=span)
    listed = trading_sessions(start, end)
    expected = [
        s for i in range(span + 1) if (s := session_on(start + timedelta(days=i))) is not None
    ]
    assert listed == expected
    assert all(s.date.weekday() < 5 for s in listed)
    assert all(s.open.tzinfo is EASTERN for s in listed)


@given(dates)
def test_session_shape(day: date) -> None:
    """Every session opens 09:30 ET and closes 13:00 on half days, 16:00 otherwise."""
    s = session_on(day)
    if s is None:
        return
    assert s.open.timetz().replace(tzinfo=None).isoformat() == "09:30:00"
    assert s.close.hour == (13 if s.is_half_day else 16)
    assert s.is_half_day == is_half_day(day)
    assert s.settlement_date is not None
    assert s.settlement_date > day
