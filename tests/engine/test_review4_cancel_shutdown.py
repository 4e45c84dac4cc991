"""Review 4: `execd cancel` racing the daemon's own shutdown, with a backlogged budget.

SIGTERM's shutdown stops every plan ("daemon shutting down") and waits for them; a user's
`execd cancel` of the same plan arriving at that moment finds the plan already stopping.
Neither may hang until the grace, and nothing may be sent or left working after either.
The venue's order log is the judge.
"""

from __future__ import annotations

import asyncio

import pytest

from execd.domain.ids import parse_client_order_id, plan_key
from tests.engine.conftest import StartDaemon
from tests.engine.test_daemon_cancel_backlog import (
    BACKLOG,
    BOUND,
    _backlogged,
    _budget,
    _plan,
)

pytestmark = pytest.mark.slow


async def test_cancel_during_shutdown_answers_promptly_and_sends_nothing(
    start_daemon: StartDaemon,
) -> None:
    """A backlog of queued new orders; shutdown and `cancel` start in the same loop turn
    (and a second cancel while both run). Both end within `BOUND`; the cancel answers a
    finished plan; the venue holds no order beyond those sent or in flight at that moment,
    and none of them working."""
    d = await start_daemon(**BACKLOG)
    plan_id = (await d.submit(_plan("cancel-vs-stop"))).plan_id
    await _backlogged(d, plan_id)
    bound = len(await d.orders(plan_id)) + _budget(d).statistics().in_flight
    engine = d.daemon.engine
    venue = d.venue
    loop = asyncio.get_running_loop()
    began = loop.time()
    stopping = asyncio.ensure_future(d.stop())
    status = await asyncio.wait_for(engine.cancel(plan_id), BOUND * 2)
    again = await asyncio.wait_for(engine.cancel(plan_id), BOUND)
    await asyncio.wait_for(stopping, BOUND * 2)
    took = loop.time() - began
    assert took < BOUND, f"cancel + shutdown took {took:.1f} s"
    assert status.state in ("canceled", "filled"), status
    assert again.state == status.state
    key = plan_key(plan_id)
    orders = [
        e
        for e in (await venue.history())["orders"]
        if (parts := parse_client_order_id(e["order"]["client_order_id"])) is not None
        and parts.plan_key == key
    ]
    assert len(orders) <= bound, f"{len(orders) - bound} orders sent after the stop"
    working = [o["order"] for o in orders if o["order"]["status"] not in ("canceled", "filled")]
    assert not working, working
