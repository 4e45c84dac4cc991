"""Issue 11 §6: a storm of 429s does not stall plans.

20 injected 429s on ``POST /v2/orders``, each carrying the venue's real rate-limit headers
(requests still remaining, a reset at the window's end). The budget used to block to the
reset (~60 s per 429) and the gateway gave up after 4 attempts, ending the leg
``429 42910000``. Now each such 429 costs a short backoff and the order goes out once.
"""

from __future__ import annotations

import pytest

from tests.engine.conftest import StartDaemon

pytestmark = pytest.mark.slow


async def test_429_storm_on_new_orders_does_not_stall_the_plan(
    start_daemon: StartDaemon,
) -> None:
    """The plan completes; the venue saw exactly one order for the leg."""
    d = await start_daemon()
    await d.venue.fail_next_requests(20, status=429, method="POST", path="/v2/orders")
    status = await d.run(
        {"plan_id": "storm", "legs": [{"symbol": "TQQQ", "side": "buy", "qty": "3"}]}
    )
    assert status.state == "completed", status.reason
    assert d.venue.services.faults.pending() == []
    orders = await d.orders("storm")
    assert len(orders) == 1, orders
    assert orders[0]["order"]["status"] == "filled"


async def test_429s_beyond_the_write_window_do_not_end_the_leg(
    start_daemon: StartDaemon,
) -> None:
    """Issue 11 §6: a leg ends only at its deadline. A plain market order (legacy mode: no
    quote-staleness bound on its send) whose 429s outlast the write window was never
    sent — every answer said "not processed" — so the leg sends it again instead of
    ending ``429``; the venue sees exactly one order and the plan completes."""
    d = await start_daemon(
        execution={"enable_smart_execution": False},
        gateway={"write_window_seconds": 1.0},
    )
    await d.venue.fail_next_requests(8, status=429, method="POST", path="/v2/orders")
    status = await d.run(
        {"plan_id": "long-storm", "legs": [{"symbol": "TQQQ", "side": "buy", "qty": "3"}]}
    )
    assert status.state == "completed", status.reason
    orders = await d.orders("long-storm")
    assert len(orders) == 1, orders
    assert orders[0]["order"]["type"] == "market"
