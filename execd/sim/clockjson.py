"""The clock answers (ALPACA.md §2.3): the multi-market ``/v3/clock`` entries the JS SDK 4.x reads
(`ClockResp{clocks}`, `Clock{market, timestamp, is_market_day, phase, phase_until,
next_market_open, next_market_close}`, `PublicMarket{acronym, mic, name, timezone}`, phases
closed|pre|core|lunch|post). (sim) The venue lists the two US equity markets it models, on one
calendar.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from execd.domain.calendar import EASTERN, next_session, session_on
from execd.sim import wire

_TZ = "America/New_York"
V3_MARKETS: tuple[dict[str, str], ...] = (
    {"acronym": "NYSE", "mic": "XNYS", "name": "New York Stock Exchange", "timezone": _TZ},
    {"acronym": "NASDAQ", "mic": "XNAS", "name": "Nasdaq Stock Market", "timezone": _TZ},
)


def clock_v3_times(now: datetime) -> dict[str, Any]:
    """The time fields of one /v3/clock entry for the US equity calendar at `now`."""
    today = now.astimezone(EASTERN).date()
    session = session_on(today)
    phase, until = "closed", None
    if session is not None:
        for start, end, name in (
            (session.extended_open, session.open, "pre"),
            (session.open, session.close, "core"),
            (session.close, session.extended_close, "post"),
        ):
            if start <= now < end:
                phase, until = name, end
        if until is None and now < session.extended_open:
            until = session.extended_open
    following = next_session(today)
    if until is None:
        until = following.extended_open
    upcoming = session if session is not None and now < session.open else following
    closing = session if session is not None and now < session.close else upcoming
    return {
        "timestamp": wire.ts_eastern(now),
        "is_market_day": session is not None,
        "phase": phase,
        "phase_until": wire.ts_eastern(until),
        "next_market_open": wire.ts_eastern(upcoming.open),
        "next_market_close": wire.ts_eastern(closing.close),
    }
