"""Review 4: cancelling one plan withdraws only that plan's queued requests.

Two plans share the request budget, both backlogged behind its pacing. `execd cancel A`
withdraws A's queued places (each leg's own `Withdrawal`, and A's runner's); B's stay in
line and are sent in turn: every B leg still gets its order. The venue's log judges.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from execd.adapters.budget import Priority, RequestBudget
from tests.engine.conftest import Harness, StartDaemon

pytestmark = pytest.mark.slow

A = [f"IA{i:02d}" for i in range(8)]
B = [f"IB{i:02d}" for i in range(6)]
BACKLOG: dict[str, Any] = {
    # 180 a minute, 4 at once, then three a second: both plans queue for new-order grants.
    "gateway": {"requests_per_minute": 180, "cancel_reserve": 4, "request_burst": 4},
    "sim": {"symbols": A + B, "positions": {}},
    # A's passive limits must still be resting when it is cancelled: the production re-check
    # and high-urgency patience, not the suite's fast ones (a 2 s re-check fills A first).
    "ladder": {"passive_timeout_seconds": 10.0, "passive_patience_high_seconds": 7.0},
}


def _plan(plan_id: str, symbols: list[str]) -> dict[str, Any]:
    return {"plan_id": plan_id, "legs": [{"symbol": s, "side": "buy", "qty": "1"} for s in symbols]}


def _budget(d: Harness) -> RequestBudget:
    return d.daemon.engine._ports.rest.budget


async def test_cancel_of_one_plan_leaves_the_others_queue_alone(
    start_daemon: StartDaemon,
) -> None:
    d = await start_daemon(**BACKLOG)
    a = (await d.submit(_plan("iso-a", A))).plan_id
    b = (await d.submit(_plan("iso-b", B))).plan_id

    async def queued() -> bool:
        return _budget(d).statistics().waiting[Priority.NEW_ORDER] >= 3

    await d.wait_until(queued, "both plans queued for grants")
    b_before = {o["order"]["client_order_id"] for o in await d.orders(b)}
    assert len(b_before) < len(B), "plan B was not waiting: the test proves nothing"
    status = await asyncio.wait_for(d.daemon.engine.cancel(a), 10.0)
    assert status.state == "canceled", status
    assert (await d.daemon.engine.status(b)).state == "working"
    loop = asyncio.get_running_loop()
    end = loop.time() + 20.0
    while True:
        legs = {o["order"]["client_order_id"].rsplit("-", 2)[1] for o in await d.orders(b)}
        if len(legs) == len(B):
            break
        assert loop.time() < end, f"plan B's legs never sent after A's cancel: {sorted(legs)}"
        await asyncio.sleep(0.05)
    b_status = await d.daemon.engine.status(b)
    assert b_status.state in ("working", "completed", "filled"), b_status
    await d.daemon.engine.cancel(b)
