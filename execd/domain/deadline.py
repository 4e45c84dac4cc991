"""The leg's deadline, in one pure function (DESIGN.md "Every leg has a deadline").

A leg waits for many things — the open, a fresh quote, a halted symbol, a gate that does
not pass, a rate-limit block — and each wait has its own bound; the deadline is the one
bound over all of them, so nothing waits forever. It is, in order of preference:

1. the plan's own `deadline` (the user said when the trade stops being wanted);
2. else the close of the trading session the leg trades in (DAY orders end there anyway);
3. else `now + max_leg_seconds` (no session known: a configured maximum).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from execd.domain.calendar import TradingSession
from execd.domain.market_time import require_aware

__all__ = ["leg_deadline"]


def leg_deadline(
    plan_deadline: datetime | None,
    session: TradingSession | None,
    now: datetime,
    max_leg_seconds: float,
) -> datetime:
    """When a leg must be over: the plan's deadline, else the session's close, else
    `now + max_leg_seconds`. All datetimes aware (venue clock)."""
    require_aware(now)
    if max_leg_seconds <= 0:
        raise ValueError(f"max_leg_seconds must be positive: {max_leg_seconds}")
    if plan_deadline is not None:
        require_aware(plan_deadline, "plan_deadline")
        return plan_deadline
    if session is not None:
        return session.close
    return now + timedelta(seconds=max_leg_seconds)
