"""When a plan runs: now, or held for its session (issue 15 §5), and until when.

A swing trader submits after the close, on a weekend or on a holiday, for the next
session. `plan_schedule` — pure, given `now` and the venue's sessions — picks the plan's
trading day and the moment it starts:

- the trading day is today while today's session has not closed, else the next session;
- a plan for today starts at once (its legs hold in step 0, the pre-market assessment,
  until the open, as before); a plan for a later session starts `premarket_lead` before
  that session's open, so step 0 assesses the pre-market quotes (seed 003) and not last
  night's;
- `not_before` (an ET time on the trading day, or RFC 3339) delays the start further;
- `deadline` (same spellings) must lie after both now and the start: a plan that could
  never run is refused at submit rather than accepted to fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from execd.domain.calendar import EASTERN, TradingSession
from execd.domain.market_time import eastern_date
from execd.domain.plans import resolve_when


@dataclass(frozen=True, slots=True)
class Schedule:
    """A plan's trading day, when it starts (None: at once) and its resolved deadline."""

    session: TradingSession
    start_at: datetime | None
    deadline: datetime | None

    @property
    def held(self) -> bool:
        return self.start_at is not None


class ScheduleError(ValueError):
    """The plan cannot run in any session it could mean (a deadline already past, ...)."""


def plan_session(now: datetime, sessions: Sequence[TradingSession]) -> TradingSession:
    """Today's session while it has not closed, else the next one in `sessions`."""
    today = eastern_date(now)
    for session in sorted(sessions, key=lambda s: s.date):
        if session.date == today and now < session.close:
            return session
        if session.date > today:
            return session
    raise ScheduleError("the venue's calendar shows no session in the coming days")


def plan_schedule(
    now: datetime,
    sessions: Sequence[TradingSession],
    *,
    not_before: str | None,
    deadline: str | None,
    premarket_lead: timedelta,
    session_date: date | None = None,
) -> Schedule:
    """See the module docstring. `session_date` pins the trading day (a restored plan)."""
    if session_date is not None:
        pinned = [s for s in sessions if s.date == session_date]
        if not pinned:
            raise ScheduleError(f"no session on {session_date} in the venue's calendar")
        session = pinned[0]
    else:
        session = plan_session(now, sessions)
    day = session.date
    start: datetime | None = None
    if day > eastern_date(now):
        start = session.open - premarket_lead
    if not_before is not None:
        wanted = resolve_when(not_before, day, EASTERN)
        if start is None or wanted > start:
            start = wanted
    if start is not None and start >= session.close:
        raise ScheduleError(
            f"not_before: {start.isoformat()} is after the close of the plan's session"
            f" ({session.close.isoformat()})"
        )
    if start is not None and start <= now:
        start = None
    end = None if deadline is None else resolve_when(deadline, day, EASTERN)
    if end is not None:
        if end <= now:
            raise ScheduleError(f"deadline: {end.isoformat()} has already passed")
        if start is not None and end <= start:
            raise ScheduleError(
                f"deadline: {end.isoformat()} is before the plan could start ({start.isoformat()})"
            )
    return Schedule(session=session, start_at=start, deadline=end)
