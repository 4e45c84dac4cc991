"""What a stopped leg leaves in the journal for a request it withdrew (issue 14, lane leg).

A place withdrawn while it waited for the request budget was never sent: the journal
closes its intent as `not_sent` (status canceled), so a restart neither looks for it nor
takes it for a venue refusal. A replace withdrawn the same way was journaled `refused`
(status rejected) — as if the venue had turned down a PATCH it never received. The venue's
request log is the judge of what was sent.
"""

from __future__ import annotations

import asyncio
from datetime import time
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from execd.adapters.budget import Priority
from execd.adapters.journal import Journal
from execd.domain.order_state import OrderStatus
from tests.engine.conftest import StartDaemon, TapeQuote, write_tape
from tests.engine.test_daemon_cancel_backlog import BACKLOG, BOUND, _backlogged, _budget
from tests.engine.test_daemon_replace_race import ABOVE, LOW, PLAN, SETTINGS, _tape, _venue

pytestmark = pytest.mark.slow


async def test_a_withdrawn_replace_is_journaled_not_sent(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    """A passive buy rests; the bid jumps and the leg re-pegs by PATCH, which the venue
    answers 429 again and again (the replace waits for the budget's next grant). The plan
    is cancelled meanwhile: the replace is withdrawn unsent, and its journal row reads
    `not_sent`/canceled, never `refused`/rejected. The venue never saw a PATCH succeed."""
    phases = [(0.0, LOW, 100), (3.0, ABOVE, 100)]
    async with await _venue(_tape(tmp_path, phases, 30.0)) as venue:
        d = await start_daemon(venue=venue, **SETTINGS)
        await venue.fail_next_requests(1000, status=429, method="PATCH", path="/v2/orders/")
        plan_id = (await d.submit(PLAN)).plan_id

        async def patch_refused() -> bool:
            # only PATCHes are answered 429: one was sent and waits to be sent again
            return _budget(d).statistics().rate_limited_total > 0

        await d.wait_until(patch_refused, "a PATCH answered 429")
        status = await d.daemon.engine.cancel(plan_id)
        assert status.state == "canceled", status
        await venue.clear_faults()
        await d.stop()
        async with await Journal.open(d.directory / "journal.db") as journal:
            rows = await journal.orders_for_leg(plan_id, 0)
            replaces = [row for row in rows if row.kind == "replace"]
            assert replaces, f"no replace was intended: {rows}"
            for row in replaces:
                events = [e.event for e in await journal.events_for_order(row.client_order_id)]
                assert events[-1] == "not_sent", (row.client_order_id, events)
                assert row.status is OrderStatus.CANCELED, row


A_SYMBOLS = ["W000", "W001"]
B_SYMBOLS = [f"B{i:03d}" for i in range(16)]


def _two_plans(directory: Path) -> dict[str, dict[str, Any]]:
    """Settings: the backlog's budget, and a tape on which no passive buy ever fills
    (bid 50.00, ask 50.02 all along) nor re-pegs on a timer within the test."""
    steady = [TapeQuote(i * 0.25, D("50.00"), D("50.02")) for i in range(240)]
    tape = write_tape(
        directory / "steady.jsonl", dict.fromkeys([*A_SYMBOLS, *B_SYMBOLS], steady), time(10)
    )
    return {
        "gateway": BACKLOG["gateway"],
        "sim": {"tape": str(tape), "partial_fill_rate": 0.0, "positions": {}},
        "better_orders": {"normal_timeout_seconds": 60.0},
    }


def _buys(plan_id: str, symbols: list[str]) -> dict[str, Any]:
    return {"plan_id": plan_id, "legs": [{"symbol": s, "side": "buy", "qty": "1"} for s in symbols]}


async def test_a_cancel_is_not_held_up_by_a_reconciliation_read_in_line(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    """Plan A's two legs work at the venue; plan B's sixteen wait for new-order grants (60
    requests a minute). A's legs are asked to re-read their orders (as after a stream
    reconnect): the reads queue behind B's backlog. Cancelling A withdraws those reads,
    cancels A's orders and confirms within `BOUND`; before, each leg noticed its stop only
    once its read was granted, behind every new order of B (~1 s each)."""
    d = await start_daemon(**_two_plans(tmp_path))
    a = (await d.submit(_buys("a", A_SYMBOLS))).plan_id

    async def a_working() -> bool:
        return len(await d.orders(a)) == len(A_SYMBOLS)

    await d.wait_until(a_working, "plan A's orders working")
    b = (await d.submit(_buys("b", B_SYMBOLS))).plan_id
    await _backlogged(d, b)
    d.daemon.engine._runners[a].request_reconcile()

    async def reads_queued() -> bool:
        return _budget(d).statistics().waiting[Priority.READ] >= len(A_SYMBOLS)

    await d.wait_until(reads_queued, "plan A's re-reads queued behind plan B's backlog")
    loop = asyncio.get_running_loop()
    began = loop.time()
    status = await d.daemon.engine.cancel(a)
    took = loop.time() - began
    assert status.state == "canceled", status
    assert took < BOUND, f"cancel took {took:.1f} s"
    assert _budget(d).statistics().waiting[Priority.NEW_ORDER] > 0, "B's backlog was gone"
    orders = await d.orders(a)
    working = [o["order"] for o in orders if o["order"]["status"] not in ("canceled", "filled")]
    assert not working, f"plan A's orders left working: {working}"
    await d.daemon.engine.cancel(b)


async def test_a_cancel_is_not_held_up_by_the_read_before_a_patch(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    """Sixteen legs rest passive buys (60 requests a minute) and re-peg by PATCH when the
    bid jumps on every symbol at once: each first re-reads its old order (queued as a
    replace, paced at one a second), so most legs wait in line for that read. Cancelling
    the plan withdraws the queued reads with their PATCHes: confirmed within `BOUND`, no
    PATCH sent after it, nothing left working. Before, each leg heard its stop only once
    its read was granted (~1 s apart)."""
    # A burst of 20 places all sixteen at once (the submit's reads take a few), so the bid
    # can jump early; the re-reads after it are paced at the backlog's rate all the same.
    jump = 5.0
    quotes = [TapeQuote(i * 0.25, D("50.00"), D("50.02")) for i in range(int(jump * 4))]
    quotes += [TapeQuote(jump + i * 0.25, D("50.10"), D("50.30")) for i in range(160)]
    tape = write_tape(tmp_path / "jump.jsonl", dict.fromkeys(B_SYMBOLS, quotes), time(10))
    d = await start_daemon(
        gateway={**BACKLOG["gateway"], "request_burst": 20},
        sim={"tape": str(tape), "partial_fill_rate": 0.0, "positions": {}},
        ladder={"repeg_method": "replace"},
        better_orders={"normal_timeout_seconds": 60.0},
    )
    plan_id = (await d.submit(_buys("p", B_SYMBOLS))).plan_id

    async def reads_queued() -> bool:
        return _budget(d).statistics().waiting[Priority.REPLACE] >= 6

    await d.wait_until(reads_queued, "re-reads before the PATCHes queued")
    bound = len(await d.orders(plan_id)) + _budget(d).statistics().in_flight
    loop = asyncio.get_running_loop()
    began = loop.time()
    status = await d.daemon.engine.cancel(plan_id)
    took = loop.time() - began
    assert status.state == "canceled", status
    assert took < BOUND, f"cancel took {took:.1f} s"
    orders = await d.orders(plan_id)
    assert len(orders) <= bound, "PATCHes reached the venue after the cancel"
    working = [o["order"] for o in orders if o["order"]["status"] not in ("canceled", "filled")]
    assert not working, f"orders left working: {working}"


async def test_a_submit_does_not_wait_behind_a_backlog_of_new_orders(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    """Plan B's sixteen legs wait for new-order grants (60 requests a minute, one a second
    once the burst is spent). Submitting plan A reads the venue to validate it (the
    calendar, the positions): a user waits at the socket, so those reads go before the
    queued new orders (after cancels and replaces) and the submit answers within `BOUND`.
    Before, they queued as background reads behind every new order of B."""
    d = await start_daemon(**_two_plans(tmp_path))
    b = (await d.submit(_buys("b", B_SYMBOLS))).plan_id
    await _backlogged(d, b)
    loop = asyncio.get_running_loop()
    began = loop.time()
    status = await d.submit(_buys("a", A_SYMBOLS))
    took = loop.time() - began
    assert status.state == "accepted", status
    assert took < BOUND, f"submit took {took:.1f} s"
    waiting = _budget(d).statistics().waiting[Priority.NEW_ORDER]
    assert waiting >= 4, "B's backlog was gone: the test proves nothing"
    await d.daemon.engine.cancel(a := status.plan_id)
    await d.daemon.engine.cancel(b)
    assert (await d.daemon.engine.status(a)).state == "canceled"
