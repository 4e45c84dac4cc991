"""Review 6: a stop racing a re-peg PATCH whose answer was lost (lane leg's not_sent).

A passive buy rests; the bid jumps and the leg re-pegs by PATCH. The venue is slow: it
processes the PATCH only after our request timeout (the answer is lost), the look-up by
the new client order id comes back 404 before that, and the plan is cancelled while the
look-up is out. The gateway used to raise `SendWithdrawn` and the leg journaled the
replacement `not_sent`/CANCELED; then the first PATCH landed: the venue held a live
replacement that neither the leg (it never learnt its order id) nor the journal (closed)
knew of. Now the gateway says `OutcomeUnknown`: the leg keeps the replacement as possibly
live and its stop cancels it by client order id once it appears. The venue's own order
log is the judge: a cancelled plan must leave nothing working.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from execd.adapters.journal import Journal
from tests.engine.conftest import Harness, StartDaemon
from tests.engine.test_daemon_replace_race import ABOVE, LOW, PLAN, SETTINGS, _tape, _venue

pytestmark = pytest.mark.slow

LIVE = {"new", "accepted", "partially_filled", "pending_new", "pending_replace", "held"}


async def _plan_orders(d: Harness) -> list[dict[str, object]]:
    return [o["order"] for o in await d.orders("race")]  # PLAN["plan_id"]


async def test_a_cancel_during_a_lost_patch_leaves_nothing_working(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    phases = [(0.0, LOW, 100), (3.0, ABOVE, 100)]
    async with await _venue(_tape(tmp_path, phases, 30.0)) as venue:
        d = await start_daemon(venue=venue, gateway={"request_timeout_seconds": 0.5}, **SETTINGS)
        # The PATCH is processed 2 s after it arrives (our timeout: 0.5 s); the look-up
        # that settles it is answered 404 0.4 s late; the cancel's DELETEs meet 429s first
        # (a rate-limit burst), so the venue has taken the PATCH before any DELETE.
        await venue.fail_next_requests(1, delay=2.0, method="PATCH", path="/v2/orders/")
        await venue.fail_next_requests(
            1, delay=0.4, method="GET", path="/v2/orders:by_client_order_id"
        )
        await venue.fail_next_requests(3, status=429, method="DELETE", path="/v2/orders")
        try:
            working, rows = await _cancel_during_the_look_up(d)
        finally:
            await d.stop()  # before the venue goes (the harness's checks would fail first)
        assert not working, f"cancelled plan left working: {working}; journal: {rows}"
        # The journal says what happened: the replacement existed and was cancelled (not
        # closed `not_sent` before it landed, which a restart would never look for again).
        assert any(kind == "replace" and status == "canceled" for _, kind, status in rows), rows


async def _cancel_during_the_look_up(
    d: Harness,
) -> tuple[list[dict[str, object]], list[tuple[str, str, str]]]:
    venue = d.venue
    plan_id = (await d.submit(PLAN)).plan_id

    async def look_up_out() -> bool:
        pending = venue.services.faults.pending()
        return len(pending) == 1 and pending[0]["method"] == "DELETE"

    await d.wait_until(look_up_out, "the PATCH lost and its look-up in flight")
    status = await d.daemon.engine.cancel(plan_id)
    assert status.state == "canceled", status

    async def replacement_landed() -> bool:  # the held PATCH processed by the venue
        return any(o.get("replaces") for o in await _plan_orders(d))

    await d.wait_until(replacement_landed, "the held PATCH processed")
    loop = asyncio.get_running_loop()
    until = loop.time() + 3.0
    working: list[dict[str, object]] = []
    while loop.time() < until:  # the daemon has until then to notice and cancel it
        working = [o for o in await _plan_orders(d) if o["status"] in LIVE]
        if not working:
            break
        await asyncio.sleep(0.1)
    async with await Journal.open(d.directory / "journal.db") as journal:
        rows = await journal.orders_for_leg(plan_id, 0)
    return working, [(r.client_order_id, r.kind, r.status.value) for r in rows]
