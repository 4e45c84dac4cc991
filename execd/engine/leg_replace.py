"""The guard a leg runs before a PATCH re-peg (`ladder.repeg_method = "replace"`).

Alpaca's PATCH `qty` is absolute (ALPACA.md §1.7; alpacahq/Alpaca-API#165): a replacement
sized from a count that misses fills still on their way (a lagging or silent
trade_updates socket, ALPACA.md §9) is larger than what is left and, at a marketable
price, fills at once — an over-fill nothing can take back. One GET of the old order just
before the PATCH closes that gap down to the PATCH's own flight; it costs the same request
budget as the cancel-and-place re-peg it may turn into. Fills that land during the flight
itself are the ladder's `leg_order_oversized` check once the replace is confirmed, and a
restart's `adoptable` check (ladder_resume.py) — the residual risk README.md states.
"""

from __future__ import annotations

from decimal import Decimal

import structlog

from execd.adapters.budget import Priority, Withdrawal
from execd.adapters.errors import AdapterError, SendWithdrawn
from execd.adapters.rest import RestGateway

_log = structlog.get_logger("execd.leg")


async def replace_unsafe(
    rest: RestGateway,
    cid: str,
    order_id: str,
    qty: Decimal,
    counted: Decimal,
    withdraw: Withdrawal | None = None,
) -> str | None:
    """Why a PATCH of `qty` replacing `cid` must not be sent; None: send it.

    `counted` is what the leg has counted of the old order's fills. The
    read queues with the replace's priority: it is part of that write, not a background
    read that may wait behind others. It is withdrawn with the replace (`withdraw`, a
    stopped leg): raises `SendWithdrawn`, and the replace is not sent either.
    """
    try:
        order = await rest.get_order(order_id, Priority.REPLACE, withdraw=withdraw)
    except SendWithdrawn:
        raise
    except AdapterError as exc:
        return f"old order not re-read before the replace: {exc}"
    filled = Decimal(str(order.filled_qty or 0))
    if filled <= counted:
        return None
    _log.error(
        "replace_oversized",
        replaces=cid,
        replacement_qty=str(qty),
        venue_filled_qty=str(filled),
        counted_qty=str(counted),
        excess=str(filled - counted),
        action="cancel_and_place",
    )
    return f"old order filled {filled}, {filled - counted} more than counted"
