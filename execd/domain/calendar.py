"""The NYSE trading calendar as pure rules.

The simulated venue serves Alpaca's ``/v2/calendar`` from these rules, and the
daemon uses the same `TradingSession` values (built from the venue's own
calendar through `TradingSession.from_alpaca`) to reason about the day's
sessions (DESIGN.md "Time"). Nothing here reads a clock: callers pass dates.

Rules implemented (the modern NYSE schedule, correct from 2000 on):

* Weekends and the NYSE holidays: New Year's Day, Martin Luther King Jr. Day
  (3rd Monday of January, from 1998), Washington's Birthday (3rd Monday of
  February), Good Friday, Memorial Day (last Monday of May), Juneteenth (from
  2022), Independence Day, Labor Day (1st Monday of September), Thanksgiving
  (4th Thursday of November) and Christmas.
* A fixed-date holiday on a Sunday is observed on the Monday after, on a
  Saturday on the Friday before — except New Year's Day: NYSE does not close
  on December 31 for a Saturday New Year (NYSE Rule 7.2; 2021-12-31 traded).
* Unscheduled closures (national days of mourning, 9/11, Hurricane Sandy)
  are listed in `SPECIAL_CLOSURES`.
* Half days (regular close 13:00, extended close 17:00 as Alpaca reports it):
  July 3 when a weekday and not itself the observed holiday, the day after
  Thanksgiving, and Christmas Eve when a weekday and not the observed holiday.
* Regular session 09:30–16:00 ET, extended 04:00–20:00 ET.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

EASTERN = ZoneInfo("America/New_York")

REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)
HALF_DAY_CLOSE = time(13, 0)
EXTENDED_OPEN = time(4, 0)
EXTENDED_CLOSE = time(20, 0)
# On early-close days the after-hours session ends at 17:00; Alpaca's
# calendar reports `"session_close": "1700"` for them (e.g. 2026-11-27).
HALF_DAY_EXTENDED_CLOSE = time(17, 0)

# Exchange closures no rule predicts (NYSE announcements).
SPECIAL_CLOSURES: frozenset[date] = frozenset(
    {
        date(2001, 9, 11),  # September 11 attacks, through the 14th
        date(2001, 9, 12),
        date(2001, 9, 13),
        date(2001, 9, 14),
        date(2004, 6, 11),  # President Reagan, national day of mourning
        date(2007, 1, 2),  # President Ford, national day of mourning
        date(2012, 10, 29),  # Hurricane Sandy
        date(2012, 10, 30),
        date(2018, 12, 5),  # President G. H. W. Bush, national day of mourning
        date(2025, 1, 9),  # President Carter, national day of mourning
    }
)

# US equity settlement cycle: T+3 until 2017-09-05, T+2 until 2024-05-28,
# T+1 since (SEC rule changes).
_T2_FROM = date(2017, 9, 5)
_T1_FROM = date(2024, 5, 28)

_SATURDAY = 5
# `TradingSession.date` shadows the type inside the class body; annotate with this.
_Date = date
_SUNDAY = 6


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th `weekday` (Monday = 0) of a month, n counted from 1."""
    first = date(year, month, 1)
    offset = (weekday - first.weekday()) % 7
    return first + timedelta(days=offset + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    """The last `weekday` (Monday = 0) of a month."""
    next_month = date(year + month // 12, month % 12 + 1, 1)
    last = next_month - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def easter_sunday(year: int) -> date:
    """Western (Gregorian) Easter Sunday: the anonymous Gregorian algorithm."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _observed(day: date) -> date:
    """Saturday holidays are observed on Friday, Sunday holidays on Monday."""
    if day.weekday() == _SATURDAY:
        return day - timedelta(days=1)
    if day.weekday() == _SUNDAY:
        return day + timedelta(days=1)
    return day


@lru_cache(maxsize=256)
def nyse_holidays(year: int) -> frozenset[date]:
    """Every weekday in `year` on which the NYSE is closed (rule and special)."""
    days: set[date] = set()
    new_year = date(year, 1, 1)
    if new_year.weekday() == _SUNDAY:
        days.add(new_year + timedelta(days=1))
    elif new_year.weekday() != _SATURDAY:
        days.add(new_year)
    # A Saturday New Year is not observed on the Friday before (NYSE rule).
    if year >= 1998:
        days.add(_nth_weekday(year, 1, 0, 3))  # Martin Luther King Jr. Day
    days.add(_nth_weekday(year, 2, 0, 3))  # Washington's Birthday
    days.add(easter_sunday(year) - timedelta(days=2))  # Good Friday
    days.add(_last_weekday(year, 5, 0))  # Memorial Day
    if year >= 2022:
        days.add(_observed(date(year, 6, 19)))  # Juneteenth
    days.add(_observed(date(year, 7, 4)))  # Independence Day
    days.add(_nth_weekday(year, 9, 0, 1))  # Labor Day
    days.add(_nth_weekday(year, 11, 3, 4))  # Thanksgiving
    days.add(_observed(date(year, 12, 25)))  # Christmas
    days.update(d for d in SPECIAL_CLOSURES if d.year == year)
    return frozenset(days)


def is_trading_day(day: date) -> bool:
    """True when the NYSE holds a regular session on `day`."""
    return day.weekday() < _SATURDAY and day not in nyse_holidays(day.year)


def is_half_day(day: date) -> bool:
    """True for a trading day that closes early at 13:00 ET."""
    if not is_trading_day(day):
        return False
    thanksgiving = _nth_weekday(day.year, 11, 3, 4)
    return day in (date(day.year, 7, 3), thanksgiving + timedelta(days=1), date(day.year, 12, 24))


def _is_settlement_day(day: date) -> bool:
    """A day on which trades settle: a trading day that is not a bank-only holiday.

    Columbus Day and Veterans Day close the Federal Reserve (and with it DTC
    settlement) while the exchange trades.
    """
    if not is_trading_day(day):
        return False
    columbus = _nth_weekday(day.year, 10, 0, 2)
    veterans = date(day.year, 11, 11)
    if veterans.weekday() == _SUNDAY:
        veterans += timedelta(days=1)
    return day not in (columbus, veterans)


def settlement_date(trade_date: date) -> date:
    """The settlement date of a trade on `trade_date` (T+3 / T+2 / T+1 by era)."""
    cycle = 1 if trade_date >= _T1_FROM else 2 if trade_date >= _T2_FROM else 3
    day = trade_date
    while cycle:
        day += timedelta(days=1)
        if _is_settlement_day(day):
            cycle -= 1
    return day


def _at(day: date, wall: time) -> datetime:
    """An aware Eastern datetime for a wall-clock time on `day` (DST-correct)."""
    return datetime.combine(day, wall, tzinfo=EASTERN)


def _parse_hhmm(value: str, field: str) -> time:
    """Parse Alpaca's two time spellings: ``"09:30"`` (open/close) and ``"0400"``."""
    digits = value.replace(":", "")
    if len(digits) != 4 or not digits.isdigit():
        raise ValueError(f"calendar {field}: expected HH:MM or HHMM, got {value!r}")
    return time(int(digits[:2]), int(digits[2:]))


@dataclass(frozen=True, slots=True)
class TradingSession:
    """One trading day's session boundaries, all aware datetimes in Eastern time.

    `open`/`close` bound the regular session (where the ladder runs);
    `extended_open`/`extended_close` bound pre-market and after-hours.
    `settlement_date` is what Alpaca's calendar reports, when known.
    """

    date: date
    open: datetime
    close: datetime
    extended_open: datetime
    extended_close: datetime
    settlement_date: _Date | None = None

    def __post_init__(self) -> None:
        for name in ("open", "close", "extended_open", "extended_close"):
            value: datetime = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"TradingSession.{name} must be timezone-aware")
        if not self.extended_open <= self.open < self.close <= self.extended_close:
            raise ValueError(
                "TradingSession bounds out of order: need "
                "extended_open <= open < close <= extended_close"
            )

    @property
    def is_half_day(self) -> bool:
        """True when the regular session closes before 16:00 ET (an early close)."""
        return self.close.astimezone(EASTERN).time() < REGULAR_CLOSE

    @classmethod
    def regular(cls, day: _Date) -> TradingSession:
        """The session the NYSE rules give for a trading day (no holiday check)."""
        half = is_half_day(day)
        return cls(
            date=day,
            open=_at(day, REGULAR_OPEN),
            close=_at(day, HALF_DAY_CLOSE if half else REGULAR_CLOSE),
            extended_open=_at(day, EXTENDED_OPEN),
            extended_close=_at(day, HALF_DAY_EXTENDED_CLOSE if half else EXTENDED_CLOSE),
            settlement_date=settlement_date(day),
        )

    @classmethod
    def from_alpaca(cls, entry: Mapping[str, str]) -> TradingSession:
        """Build a session from one entry of Alpaca's ``/v2/calendar`` answer (ALPACA.md §2.4).

        ``open``/``close`` are ``"HH:MM"``, ``session_open``/``session_close``
        ``"HHMM"`` (both spellings accepted for each); the session fields default
        to 04:00/20:00 when absent, as older answers omit them.
        """
        try:
            day = _Date.fromisoformat(entry["date"])
            open_ = _parse_hhmm(entry["open"], "open")
            close = _parse_hhmm(entry["close"], "close")
        except KeyError as exc:
            raise ValueError(f"calendar entry lacks {exc.args[0]!r}") from exc
        ext_open = _parse_hhmm(entry.get("session_open", "0400"), "session_open")
        ext_close = _parse_hhmm(entry.get("session_close", "2000"), "session_close")
        settle = entry.get("settlement_date")
        return cls(
            date=day,
            open=_at(day, open_),
            close=_at(day, close),
            extended_open=_at(day, ext_open),
            extended_close=_at(day, ext_close),
            settlement_date=_Date.fromisoformat(settle) if settle else None,
        )

    def to_alpaca(self) -> dict[str, str]:
        """This session as one entry of Alpaca's ``/v2/calendar`` answer."""
        entry = {
            "date": self.date.isoformat(),
            "open": self.open.astimezone(EASTERN).strftime("%H:%M"),
            "close": self.close.astimezone(EASTERN).strftime("%H:%M"),
            "session_open": self.extended_open.astimezone(EASTERN).strftime("%H%M"),
            "session_close": self.extended_close.astimezone(EASTERN).strftime("%H%M"),
        }
        if self.settlement_date is not None:
            entry["settlement_date"] = self.settlement_date.isoformat()
        return entry


@lru_cache(maxsize=64)
def session_on(day: date) -> TradingSession | None:
    """The NYSE session on `day`, or None when the exchange is closed all day (cached: the
    simulated venue asks on every tick of every symbol; a session is immutable)."""
    if not is_trading_day(day):
        return None
    return TradingSession.regular(day)


def trading_sessions(start: date, end: date) -> list[TradingSession]:
    """Every session from `start` to `end`, both inclusive (as ``/v2/calendar``)."""
    sessions: list[TradingSession] = []
    day = start
    while day <= end:
        session = session_on(day)
        if session is not None:
            sessions.append(session)
        day += timedelta(days=1)
    return sessions


def next_session(after: date) -> TradingSession:
    """The first session strictly after `after` (there is always one within two weeks)."""
    day = after + timedelta(days=1)
    while (session := session_on(day)) is None:
        day += timedelta(days=1)
    return session


def previous_session(before: date) -> TradingSession:
    """The last session strictly before `before`."""
    day = before - timedelta(days=1)
    while (session := session_on(day)) is None:
        day -= timedelta(days=1)
    return session
