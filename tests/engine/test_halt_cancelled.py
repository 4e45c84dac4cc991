"""A halt cancelled while it lists the venue's orders leaves nothing half-made behind.

`EngineCore.halt` stops every plan, then lists and cancels execd's open orders, then waits
for the plans to end. It used to create each plan's `done.wait()` coroutine before the
listing: a halt cancelled during the listing (a control client that hangs up, a shutdown)
dropped those coroutines unawaited — a `RuntimeWarning` at whatever moment the collector
freed them, which failed an unrelated test in CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import warnings

from tests.engine.conftest import StartDaemon
from tests.engine.test_daemon_streams import wait_resting


async def test_a_halt_cancelled_during_its_listing_leaves_no_unawaited_coroutine(
    start_daemon: StartDaemon,
) -> None:
    """A passive leg rests; the venue holds halt's open-order listing for 5 s; the halt
    is cancelled while it waits for it."""
    d = await start_daemon()
    status = await d.submit(
        {
            "plan_id": "h",
            "legs": [{"symbol": "SPY", "side": "buy", "qty": "1", "limit_price": "1.00"}],
        }
    )
    await wait_resting(d, status.plan_id)
    await d.venue.fail_next_requests(delay=5.0, method="GET", path="/v2/orders")
    faults = d.venue.services.faults
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        halt = asyncio.create_task(d.daemon.engine.halt())

        async def listing_held() -> bool:
            return not faults.pending()

        await d.wait_until(listing_held, "halt's listing reached the venue")
        halt.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await halt
        gc.collect()
    unawaited = [str(w.message) for w in caught if "never awaited" in str(w.message)]
    assert unawaited == []
    await d.daemon.engine.cancel(status.plan_id)
