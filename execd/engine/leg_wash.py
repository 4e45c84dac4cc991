"""Before a leg's market order: cancel execd's own opposite-side orders in the symbol.

Split from leg.py (one job: the wash-trade guard, ALPACA.md §7). It talks to the venue
only through the REST gateway and waits, bounded, until each cancel is confirmed.
"""

from __future__ import annotations

import asyncio

import structlog

from execd.adapters.budget import Withdrawal
from execd.adapters.errors import AdapterError, SendWithdrawn
from execd.adapters.rest import RestGateway
from execd.domain.ids import is_execd_order
from execd.domain.ladder_types import PlaceOrder
from execd.domain.order_state import TERMINAL_STATUSES

_log = structlog.get_logger("execd.leg")

_TERMINAL_STATUSES = frozenset(s.value for s in TERMINAL_STATUSES)


async def clear_opposite_side(
    rest: RestGateway,
    action: PlaceOrder,
    confirm_timeout: float,
    withdraw: Withdrawal | None = None,
) -> None:
    """Before a market order, cancel execd's own opposite-side orders in the symbol.

    A market order crossing a resting opposite-side order of the same account is a
    wash trade that Alpaca refuses (ALPACA.md §7, LESSONS.md). Only orders execd placed
    are touched (by client order id); the other leg sees its order cancelled and
    re-prices from what is left. The look-up belongs to the place: a stopped leg withdraws
    it with the place (`withdraw`), rather than wait behind a backlogged budget for a read
    whose order will not be sent.
    """
    try:
        orders = await rest.list_orders(status="open", symbols=[action.symbol], withdraw=withdraw)
    except SendWithdrawn:
        return  # the place that follows is withdrawn too
    except AdapterError as exc:
        _log.warning("wash_check_failed", error=str(exc))
        return
    opposite = action.side.opposite.value
    pending: list[str] = []
    for order in orders:
        cid = str(order.client_order_id)
        if not is_execd_order(cid) or order.side is None or str(order.side.value) != opposite:
            continue
        try:
            await rest.cancel_order(str(order.id))
            pending.append(str(order.id))
            _log.warning("wash_trade_avoided_cancel", canceled_client_order_id=cid)
        except AdapterError as exc:
            _log.warning("wash_cancel_failed", canceled_client_order_id=cid, error=str(exc))
    for order_id in pending:
        await _wait_terminal(rest, order_id, confirm_timeout)


async def _wait_terminal(rest: RestGateway, order_id: str, confirm_timeout: float) -> None:
    """Re-read an order until the venue confirms it is over (bounded by the confirm
    timeout). Its stream events belong to another leg, so this leg asks over REST."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + confirm_timeout
    delay = 0.02
    while loop.time() < deadline:
        try:
            order = await rest.get_order(order_id)
        except AdapterError as exc:
            _log.warning("wash_cancel_read_failed", order_id=order_id, error=str(exc))
        else:
            if str(order.status.value) in _TERMINAL_STATUSES:
                return
        await asyncio.sleep(min(delay, max(deadline - loop.time(), 0)))
        delay = min(delay * 2, 0.5)
    _log.error("wash_cancel_unconfirmed", order_id=order_id)
