"""Review 6: a stopped leg's reconciliation re-read every order it ever tracked.

`_reconcile` skipped only FILLED orders: every CANCELED, REPLACED or REJECTED one was read
again by client order id — and after a stop those reads go at CANCEL priority, so a leg
with many past re-pegs flooded the cancel lane with reads whose answer it already knew (a
terminal state is final at Alpaca, ALPACA.md §1.9). The venue counts the look-ups.
"""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from tests.engine.conftest import Harness, StartDaemon
from tests.engine.test_daemon_replace_race import PLAN, SETTINGS, _tape, _venue

pytestmark = pytest.mark.slow

LOOK_UP = "/v2/orders:by_client_order_id"
SPARE = 50
"""Look-ups the venue counts: each one met consumes one (near-instant) delayed fault."""


def _bids(n: int) -> list[tuple[float, tuple[D, D], int]]:
    """The bid steps up every 1.5 s: each step re-pegs the resting buy by PATCH, and
    every limit stays below the ask (nothing fills)."""
    bids = [D("50.00") + D("0.05") * i for i in range(n)]
    return [(1.5 * i, (bid, bid + D("0.02")), 100) for i, bid in enumerate(bids)]


async def _replaced(d: Harness) -> int:
    return sum(1 for o in await d.orders("race") if o["order"]["status"] == "replaced")


async def test_a_stopped_leg_does_not_re_read_orders_it_knows_are_terminal(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    async with await _venue(_tape(tmp_path, _bids(5), 30.0)) as venue:
        d = await start_daemon(venue=venue, **SETTINGS)
        plan_id = (await d.submit(PLAN)).plan_id

        async def repegged() -> bool:
            return await _replaced(d) >= 3

        await d.wait_until(repegged, "three re-pegs replaced")
        replaced = await _replaced(d)
        # The stop's DELETE is refused (422): the leg reconciles after the stop (CANCEL
        # priority). From here on, every look-up by client order id is counted.
        await venue.fail_next_requests(1, status=422, method="DELETE", path="/v2/orders/")
        await venue.fail_next_requests(SPARE, delay=0.001, method="GET", path=LOOK_UP)
        status = await d.daemon.engine.cancel(plan_id)
        assert status.state == "canceled", status

        async def ended() -> bool:
            return all(
                o["order"]["status"] in ("replaced", "canceled") for o in await d.orders("race")
            )

        await d.wait_until(ended, "the leg's orders all ended")
        look_ups = SPARE - sum(
            int(f["remaining"]) for f in venue.services.faults.pending() if f["path"] == LOOK_UP
        )
        await d.stop()
    assert replaced >= 3
    # Only the working order (unknown to the leg after the refused cancel) is read again;
    # the replaced ones are final.
    assert 1 <= look_ups <= 2, f"{look_ups} look-ups after the stop, {replaced} replaced"
