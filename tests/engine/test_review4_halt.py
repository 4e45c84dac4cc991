"""Review 4: the kill switch (`execd halt`) against plans caught mid-way, attacked.

`halt` stops every running plan (each leg withdraws its queued writes), lists execd's open
orders once (at cancel priority) and cancels them. These tests halt while a plan is still
being accepted, and while a leg's place is uncertain (a 5xx in flight). The venue's own
order log is the judge: after `halt` returns nothing of a halted plan may be working, and
nothing may have been sent after it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from execd.control.protocol import ControlError
from tests.engine.conftest import Harness, StartDaemon

pytestmark = pytest.mark.slow

SYMBOLS = ["HLTA", "HLTB"]
VENUE: dict[str, Any] = {"sim": {"symbols": SYMBOLS, "positions": {}}}


def _plan(plan_id: str) -> dict[str, Any]:
    return {"plan_id": plan_id, "legs": [{"symbol": s, "side": "buy", "qty": "3"} for s in SYMBOLS]}


async def _after(d: Harness, plan_id: str, at: datetime) -> list[tuple[str, str]]:
    """The plan's orders the venue created at or after `at` (venue clock)."""
    return [
        (o["order"]["client_order_id"], o["order"]["status"])
        for o in await d.orders(plan_id)
        if datetime.fromisoformat(o["order"]["created_at"]) >= at
    ]


async def _working(d: Harness, plan_id: str) -> list[str]:
    return [
        o["order"]["client_order_id"]
        for o in await d.orders(plan_id)
        if o["order"]["status"] not in ("canceled", "filled", "rejected", "expired")
    ]


async def test_halt_while_a_plan_is_being_accepted(start_daemon: StartDaemon) -> None:
    """`submit` and `halt` interleaved over the submit's acceptance (its venue reads, its
    journal write), every 4 ms: either the plan is refused as halted, or it is
    accepted and then halted — never accepted after the halt's sweep and left trading.
    After `halt` returns no order of the plan reaches the venue, none is left working."""
    d = await start_daemon(**VENUE)
    outcomes: set[bool] = set()
    for turns in range(0, 60, 4):
        plan_id = f"race-{turns}"
        submit = asyncio.ensure_future(d.submit(_plan(plan_id)))
        await asyncio.sleep(turns / 1000)  # 0-56 ms into the acceptance
        await d.daemon.engine.halt()
        halted_at = d.venue.clock.now()
        accepted = True
        try:
            await submit
        except ControlError:
            accepted = False
        outcomes.add(accepted)
        if accepted:

            async def ended(plan_id: str = plan_id) -> bool:
                return (await d.daemon.engine.status(plan_id)).finished_at is not None

            await d.wait_until(ended, f"{plan_id} ended after the halt")
            status = await d.daemon.engine.status(plan_id)
            assert status.state in ("halted", "canceled", "filled"), (turns, status)
            await asyncio.sleep(0.3)  # anything in flight lands (then it is judged)
            assert await _after(d, plan_id, halted_at) == [], turns
            assert await _working(d, plan_id) == [], turns
        await d.daemon.engine.resume()
    assert outcomes == {True, False}, f"every interleaving ended alike: {outcomes}"


async def test_halt_while_a_place_is_uncertain_sends_nothing_after(
    start_daemon: StartDaemon,
) -> None:
    """The kill switch version of `test_review4_withdraw`'s defect: the venue holds the
    first POSTs and answers 503 without placing them; `halt` is called while they are in
    flight and returns. The venue must see no order of the plan created after the halt was
    requested (the resend is new exposure after the user pulled the kill switch; a resent
    market order would fill before the stopping leg could chase it)."""
    d = await start_daemon(**VENUE)
    await d.venue.fail_next_requests(
        len(SYMBOLS), status=503, delay=1.0, method="POST", path="/v2/orders", when="before"
    )
    plan_id = (await d.submit(_plan("kill"))).plan_id

    async def in_flight() -> bool:
        return d.venue.services.faults.pending() == []

    await d.wait_until(in_flight, "the first POSTs held at the venue")
    halted_at = d.venue.clock.now()
    await d.daemon.engine.halt()

    async def ended() -> bool:
        return (await d.daemon.engine.status(plan_id)).finished_at is not None

    await d.wait_until(ended, "the plan ended")
    assert await _after(d, plan_id, halted_at) == []
