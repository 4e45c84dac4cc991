"""A running leg's place whose answer was lost must never be placed anew on a 404.

A passive buy is POSTed; the venue processes the POST only after our request timeout
(the answer is lost: `OutcomeUnknown`). The bid jumps: the re-peg cancels the uncertain order;
its look-up by client order id says 404 — which only proves the venue has not processed
the first copy *yet*. The leg used to take that as "refused" and place anew under a new
client order id; then the first copy landed: two live orders for the same remaining
quantity (an over-fill waiting to happen), the first held by the leg as rejected so
nothing cancelled it. The venue's own order log is the judge: at most one live order.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from execd.domain.ids import client_order_id
from tests.engine.conftest import Harness, StartDaemon
from tests.engine.test_daemon_replace_race import ABOVE, LEG_QTY, LOW, PLAN, _tape, _venue

pytestmark = pytest.mark.slow

LIVE = {"new", "accepted", "partially_filled", "pending_new", "pending_replace", "held"}
LATE = 4.0
"""Seconds the venue holds the first POST (our request timeout: 0.5 s)."""


async def _plan_orders(d: Harness) -> list[dict[str, object]]:
    return [o["order"] for o in await d.orders(PLAN["plan_id"])]  # type: ignore[arg-type]


async def test_a_lost_place_that_404s_is_not_placed_anew_while_running(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    # The bid jumps at once: the leg re-pegs (cancel and place) the uncertain order.
    async with await _venue(_tape(tmp_path, [(0.0, LOW, 100), (2.0, ABOVE, 100)], 30.0)) as venue:
        d = await start_daemon(
            venue=venue,
            # One copy only: its answer lost, the look-up 404s, the write window closes.
            gateway={"request_timeout_seconds": 0.5, "write_window_seconds": 0.3},
            ladder={"confirm_timeout_seconds": 1.0},
            better_orders={"normal_timeout_seconds": 60.0},
        )
        await venue.fail_next_requests(1, delay=LATE, method="POST", path="/v2/orders")
        try:
            loop = asyncio.get_running_loop()
            await d.submit(PLAN)
            landed_by = loop.time() + LATE + 0.5

            async def first_landed() -> bool:  # the held POST processed by the venue
                return loop.time() > landed_by and len(await _plan_orders(d)) >= 1

            await d.wait_until(first_landed, "the held POST processed")
            until = loop.time() + 3.0
            worst: list[dict[str, object]] = []
            while loop.time() < until:  # watch: never two live orders at once
                working = [o for o in await _plan_orders(d) if o["status"] in LIVE]
                if len(working) > len(worst):
                    worst = working
                await asyncio.sleep(0.05)
            orders = await _plan_orders(d)
        finally:
            await d.stop()
        assert len(worst) <= 1, f"two live orders for one leg: {worst}"
        filled = sum(Decimal(str(o.get("filled_qty") or 0)) for o in orders)
        assert filled <= LEG_QTY, orders


async def test_a_lost_place_that_lands_after_the_leg_gave_it_up_is_cancelled_at_once(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    """The same lost place, but the leg's look-ups give up first (`max_confirm_retries`
    = 1: two 404s) and it places the remainder anew. When the first copy lands after
    all, the leg cancels it at once: the venue is left with one live order, the new one."""
    async with await _venue(_tape(tmp_path, [(0.0, LOW, 100), (2.0, ABOVE, 100)], 30.0)) as venue:
        d = await start_daemon(
            venue=venue,
            gateway={"request_timeout_seconds": 0.5, "write_window_seconds": 0.3},
            ladder={"confirm_timeout_seconds": 0.5, "max_confirm_retries": 1},
            better_orders={"normal_timeout_seconds": 60.0},
        )
        await venue.fail_next_requests(1, delay=LATE, method="POST", path="/v2/orders")
        try:
            await d.submit(PLAN)
            first = client_order_id(PLAN["plan_id"], 0, 0)  # type: ignore[arg-type]

            async def late_copy_cancelled() -> bool:
                orders = {str(o["client_order_id"]): o for o in await _plan_orders(d)}
                return first in orders and orders[first]["status"] == "canceled"

            await d.wait_until(late_copy_cancelled, "the late copy landed and cancelled")
            orders = await _plan_orders(d)
        finally:
            await d.stop()
        live = [o for o in orders if o["status"] in LIVE]
        assert [o["client_order_id"] for o in live] == [client_order_id("race", 0, 1)], orders
        assert all(Decimal(str(o.get("filled_qty") or 0)) == 0 for o in orders), orders
