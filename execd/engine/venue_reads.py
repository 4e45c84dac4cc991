"""The engine's reads and sweeps of the venue that are not a leg's: the trading calendar
and the cancellation of execd's own open orders (halt, journal failure, shutdown).

Kept apart from `core.Engine` so that the engine's plan lifecycle reads on its own; each
function takes the REST gateway and returns data, logging only what it could not do.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import structlog

from execd.adapters.budget import Priority
from execd.adapters.errors import AdapterError
from execd.adapters.rest import RestGateway
from execd.domain.calendar import TradingSession
from execd.domain.ids import is_execd_order

_log = structlog.get_logger("execd.engine")

_OPEN_ORDER_STATUSES = ("new", "partially_filled", "accepted", "pending_new", "held")


async def session_on(rest: RestGateway, day: date) -> TradingSession | None:
    """The session of `day` from the venue's calendar (half days included); None when the
    market is closed that day."""
    for entry in await rest.calendar(day, day + timedelta(days=1)):
        session = TradingSession.from_alpaca(_calendar_entry(entry))
        if session.date == day:
            return session
    return None


async def sessions_from(
    rest: RestGateway, today: date, priority: Priority = Priority.READ
) -> list[TradingSession]:
    """The venue's sessions from `today` for two weeks (the next one is always in it).
    Raises `AdapterError` when the calendar cannot be read. `priority`: a plan submit's
    read queues as `Priority.VALIDATE`."""
    days = await rest.calendar(today, today + timedelta(days=14), priority=priority)
    return [TradingSession.from_alpaca(_calendar_entry(day)) for day in days]


async def cancel_open_execd_orders(rest: RestGateway) -> int:
    """Cancel every open order whose client id execd generated, and nothing else (LESSONS:
    an account-wide "clean book" kills orders execd did not place). Returns how many.

    The listing queues as a cancel: behind a backlog of new orders a read waits for the
    window to roll (up to a minute), and the kill switch must not."""
    try:
        orders = await rest.list_orders(status="open", limit=500, priority=Priority.CANCEL)
    except AdapterError as exc:
        _log.error("halt_list_orders_failed", error=str(exc))
        return 0
    canceled = 0
    for order in orders:
        cid = str(order.client_order_id)
        if not is_execd_order(cid) or str(order.status.value) not in _OPEN_ORDER_STATUSES:
            continue
        try:
            await rest.cancel_order(str(order.id))
            canceled += 1
        except AdapterError as exc:
            _log.warning("halt_cancel_failed", client_order_id=cid, error=str(exc))
    _log.warning("halt_orders_canceled", count=canceled)
    return canceled


def _calendar_entry(day: Any) -> dict[str, str]:
    """alpaca-py's `Calendar` model back to Alpaca's wire shape for `TradingSession`."""
    return {
        "date": day.date.isoformat(),
        "open": day.open.strftime("%H:%M"),
        "close": day.close.strftime("%H:%M"),
    }
