"""The leg's deadline and its last send, in pure functions (DESIGN.md "Every leg has a
deadline").

A leg waits for many things — the open, a fresh quote, a halted symbol, a gate that does
not pass, a rate-limit block — and each wait has its own bound; the deadline is the one
bound over all of them, so nothing waits forever. It is, in order of preference:

1. the plan's own `deadline` (the user said when the trade stops being wanted);
2. else the close of the trading session the leg trades in (DAY orders end there anyway);
3. else `now + max_leg_seconds` (no session known: a configured maximum).

At the close the leg ends early by `close_margin` (`last_send`): the daemon's venue clock
may be behind the venue's by up to one `/v2/clock` round trip (`engine.clock`), and an
order needs time to travel. A day order that reaches Alpaca after 16:00 is not refused: it
is queued for the next trading day (ALPACA.md) — an order the user did not ask for.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from execd.domain.calendar import TradingSession
from execd.domain.market_time import require_aware

__all__ = ["close_margin", "last_send", "leg_deadline", "send_window"]


def close_margin(behind_at_most_seconds: float, close_guard_seconds: float) -> timedelta:
    """How long before the session's close the last order may leave: how far the daemon's
    clock may be behind the venue's, plus the configured allowance for travel.

    A NaN, infinite or negative input raises: a guard that silently became 0 (or NaN,
    which compares false with everything) would let an order through after the close."""
    for name, value in (
        ("behind_at_most_seconds", behind_at_most_seconds),
        ("close_guard_seconds", close_guard_seconds),
    ):
        if not 0 <= value < float("inf"):
            raise ValueError(f"{name} must be a finite number >= 0: {value}")
    return timedelta(seconds=behind_at_most_seconds + close_guard_seconds)


def last_send(session: TradingSession | None, margin: timedelta) -> datetime | None:
    """The last instant (venue clock, as the daemon reads it) a new order or replace may
    be sent in `session`: its close minus `margin`. None without a session."""
    return None if session is None else session.close - margin


def send_window(
    now: datetime, priced_until: datetime | None, cutoff: datetime | None
) -> float | None:
    """Seconds from `now` in which an order write may first be sent: until its pricing
    quote goes stale and until the session's `cutoff` (`last_send`), whichever is first.
    None = unbounded. Zero or less: it is not sent (the gateway sends only while its
    loop time has not passed the window's end)."""
    require_aware(now)
    ends = [t for t in (priced_until, cutoff) if t is not None]
    if not ends:
        return None
    return (min(ends) - now).total_seconds()


def leg_deadline(
    plan_deadline: datetime | None,
    session: TradingSession | None,
    now: datetime,
    max_leg_seconds: float,
    margin: timedelta = timedelta(0),
) -> datetime:
    """When a leg must be over: the plan's deadline, else the session's close, else
    `now + max_leg_seconds`; never past the session's `last_send` (its close minus
    `margin`). All datetimes aware (venue clock)."""
    require_aware(now)
    if max_leg_seconds <= 0:
        raise ValueError(f"max_leg_seconds must be positive: {max_leg_seconds}")
    cutoff = last_send(session, margin)
    if plan_deadline is not None:
        require_aware(plan_deadline, "plan_deadline")
        return plan_deadline if cutoff is None else min(plan_deadline, cutoff)
    if cutoff is not None:
        return cutoff
    return now + timedelta(seconds=max_leg_seconds)
