"""Review 4: a stopped leg's order writes, attacked through the real daemon and venue.

A stop withdraws the leg's queued place/replace (`Withdrawal`); once an attempt's fate is
uncertain (a 5xx, a lost answer) the gateway settles it by client order id and, if the
venue has no such order, sends the same body again. These tests stop the plan while an
attempt is in that state. The venue's own order log is the judge of what was sent.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.engine.conftest import StartDaemon

pytestmark = pytest.mark.slow

SYMBOL = "WDRW"
VENUE: dict[str, Any] = {"sim": {"symbols": [SYMBOL], "positions": {}}}


def _plan(plan_id: str) -> dict[str, Any]:
    return {"plan_id": plan_id, "legs": [{"symbol": SYMBOL, "side": "buy", "qty": "5"}]}


async def test_cancel_while_a_place_is_uncertain_sends_no_new_copy(
    start_daemon: StartDaemon,
) -> None:
    """The venue holds the first POST for a while and answers 503 without placing it
    (`when: before`). The plan is cancelled while that POST is in flight. The gateway then
    asks for the order by client id (404: it does not exist) — and with the leg stopped
    there is no reason left to send it: the venue must never see an order of this plan.
    Before a fix the resend goes out regardless (`withdraw` is dropped once an attempt is
    uncertain), so a cancelled plan — or a halted account — gets a fresh order, which the
    stopping leg must then chase with a cancel (and which may fill meanwhile)."""
    d = await start_daemon(**VENUE)
    await d.venue.fail_next_requests(
        1, status=503, delay=1.0, method="POST", path="/v2/orders", when="before"
    )
    plan_id = (await d.submit(_plan("uncertain"))).plan_id

    async def in_flight() -> bool:
        return d.venue.services.faults.pending() == []

    await d.wait_until(in_flight, "the first POST held at the venue")
    status = await asyncio.wait_for(d.daemon.engine.cancel(plan_id), 30.0)
    assert status.state in ("canceled", "filled"), status
    orders = await d.orders(plan_id)
    assert orders == [], (
        "orders reached the venue after the cancel: "
        f"{[(o['order']['client_order_id'], o['order']['status']) for o in orders]}"
    )


async def test_cancel_while_a_place_is_uncertain_leaves_nothing_working(
    start_daemon: StartDaemon,
) -> None:
    """Same storm, but the held POST *was* placed (`when: after`): the copy in flight at the
    cancel exists at the venue. Whatever the gateway concludes, the stopping leg must find
    it and cancel it: nothing of the plan is left working at the venue (guard)."""
    d = await start_daemon(**VENUE)
    await d.venue.fail_next_requests(
        1, status=503, delay=1.0, method="POST", path="/v2/orders", when="after"
    )
    plan_id = (await d.submit(_plan("landed"))).plan_id

    async def in_flight() -> bool:
        return d.venue.services.faults.pending() == []

    await d.wait_until(in_flight, "the first POST held at the venue")
    status = await asyncio.wait_for(d.daemon.engine.cancel(plan_id), 30.0)
    assert status.state in ("canceled", "filled"), status
    orders = await d.orders(plan_id)
    ids = [o["order"]["client_order_id"] for o in orders]
    assert len(ids) == len(set(ids)) <= 1, ids
    working = [o["order"] for o in orders if o["order"]["status"] not in ("canceled", "filled")]
    assert not working, f"orders left working after the cancel: {working}"
