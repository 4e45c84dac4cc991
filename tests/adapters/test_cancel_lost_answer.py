"""A cancel whose answer was lost is settled by reading the order (ALPACA.md §1.8), and
the one rule of which statuses still trade is `domain.order_state.is_live_status`:
`done_for_day` is not terminal (§1.9: the order resumes the next day), so the DELETE is
sent again rather than the order being reported dead while it will trade again. Against
the real simulated venue over loopback; the venue's matching never sets `done_for_day`,
so its ``/sim/orders/status`` fault shows that status for the one order."""

from __future__ import annotations

from decimal import Decimal

import pytest

from execd.domain.types import Side
from execd.sim.admin import HttpFault
from execd.sim.venue import SimVenue
from tests.adapters.test_sim_integration import _latest, _wait_status, rest_for, venue

__all__ = ["venue"]  # the fixture


@pytest.mark.parametrize(
    "status",
    [
        "done_for_day",
        "accepted_for_bidding",
        "stopped",
    ],
)
async def test_a_lost_cancel_of_a_live_rare_status_is_sent_again(
    venue: SimVenue, status: str
) -> None:
    async with rest_for(venue) as rest:
        quote = await _latest(rest, "TQQQ")
        resting = (quote.bid - Decimal("1.00")).quantize(Decimal("0.01"))
        order = await rest.submit_order(
            symbol="TQQQ", side=Side.BUY, qty=Decimal(2), limit_price=resting,
            client_order_id="xd-0123456789ab-0-0",
        )  # fmt: skip
        order_id = str(order.id)
        await _wait_status(rest, order_id, {"new"})
        venue.services.overrides.set_status(order_id, status)
        path = f"/v2/orders/{order_id}"
        venue.services.faults.add(HttpFault(status=504, method="DELETE", path=path), 1)
        await rest.cancel_order(order_id)  # before: VenueRefused 'already in "done_for_day"'
        assert venue.services.requests[f"DELETE {path}"] == 2
        venue.services.overrides.set_status(order_id, None)
        await _wait_status(rest, order_id, {"canceled"})
