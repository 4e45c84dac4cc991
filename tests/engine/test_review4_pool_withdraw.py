"""Review 4: the withdrawal's "last check before the send" is not the last wait.

`RestGateway._attempt` checks `Withdrawal.is_set()` when the budget grants the slot, then
calls aiohttp — which first waits for a free connection of the write pool (32 keep-alive
connections, the wait bounded by the 3 s connect timeout). A place that passed the check and
is waiting for a connection when the leg stops is sent anyway, as soon as one frees.

Here the venue places every order at once but holds its answer 2 s (`when: after`), so the
first 32 places hold the whole write pool and the rest of a 48-leg plan wait for
connections; the plan is cancelled meanwhile. The venue's order log judges: no order of
the plan may be created after the cancel was requested.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest

from execd.adapters.budget import RequestBudget
from execd.config import SimSection
from execd.engine.venue import sim_config
from execd.sim.server import ServerOptions
from execd.sim.venue import SimVenue
from tests.engine.conftest import Harness, StartDaemon

pytestmark = pytest.mark.slow

SYMBOLS = [f"P{i:03d}" for i in range(48)]
POOL = 32  # RestConfig.connections: the write pool's size
HELD = 2.0  # under the write pool's 3 s wait for a connection: the waiters are then sent

WIDE: dict[str, Any] = {
    # Budget wide enough that every leg's place is granted at once: the pool is the queue.
    "gateway": {"requests_per_minute": 600, "cancel_reserve": 10, "request_burst": 200},
}


def _budget(d: Harness) -> RequestBudget:
    return d.daemon.engine._ports.rest.budget


@contextlib.asynccontextmanager
async def paid_plan_venue() -> AsyncIterator[SimVenue]:
    """The venue with every symbol streamed (a paid market-data plan): every leg is priced
    from the stream and places at once. On the free plan's 30 symbols the other 18 legs
    are priced from REST a second later and may place between the saturation and the
    cancel — legitimately, before the cancel was asked for."""
    section = SimSection(scenario="calm", seed=1, start="10:00:00", symbols=SYMBOLS, positions={})
    options = ServerOptions(data_symbol_limit=None)
    async with SimVenue(sim_config(section), options=options) as venue:
        yield venue


async def test_cancel_sends_no_place_that_waits_for_a_pooled_connection(
    start_daemon: StartDaemon,
) -> None:
    async with paid_plan_venue() as venue:
        d = await start_daemon(
            venue=venue, venue_settings={"stream_symbol_limit": 1000}, gateway=WIDE["gateway"]
        )
        await _cancel_while_pool_waits(d)
        await d.check()
        await d.stop()


async def _cancel_while_pool_waits(d: Harness) -> None:
    await d.venue.fail_next_requests(
        len(SYMBOLS), delay=HELD, method="POST", path="/v2/orders", when="after"
    )
    plan: dict[str, Any] = {
        "plan_id": "pool",
        "legs": [{"symbol": s, "side": "buy", "qty": "1"} for s in SYMBOLS],
    }
    plan_id = (await d.submit(plan)).plan_id

    async def saturated() -> bool:
        return _budget(d).statistics().in_flight > POOL and len(await d.orders(plan_id)) >= POOL

    await d.wait_until(saturated, "the write pool full and places waiting for a connection")
    canceled_at = d.venue.clock.now()
    waiting = _budget(d).statistics().in_flight - POOL
    status = await asyncio.wait_for(d.daemon.engine.cancel(plan_id), 30.0)
    assert status.state in ("canceled", "filled"), status
    late = [
        o["order"]["client_order_id"]
        for o in await d.orders(plan_id)
        if datetime.fromisoformat(o["order"]["created_at"]) > canceled_at
    ]
    assert late == [], (
        f"{len(late)} orders created after the cancel ({waiting} requests past the budget "
        f"beyond the pool at the cancel): {late}"
    )
