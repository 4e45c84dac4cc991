"""A live execd order that no running leg owns is cancelled while the daemon runs.

The residual case of the withdraw fix: a leg stops while its place is uncertain (the POST
got no answer), the look-up by client order id answers 404, the leg ends ``not_sent`` —
and then the first POST, still in flight, lands at the venue. Its events reach the order
stream unrouted; before the orphan sweeper the order stayed live (and could fill) until
the next start. The venue's own order log is the judge.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from execd.config import SimSection
from execd.domain.ids import client_order_id
from execd.engine.orphans import OrphanStatistics
from execd.engine.venue import sim_config
from execd.sim.venue import SimVenue
from tests.engine.conftest import DEADLINE, Harness, StartDaemon, TapeQuote, write_tape

pytestmark = pytest.mark.slow

SYMBOL = "ORPH"


def _quiet_tape(tmp_path: Path) -> Path:
    quiet = [TapeQuote(i * 0.2, Decimal("40.00"), Decimal("40.05")) for i in range(600)]
    return write_tape(tmp_path / "quiet.jsonl", {SYMBOL: quiet}, start=time(10, 0))


async def _start(start_daemon: StartDaemon, tmp_path: Path) -> Harness:
    return await start_daemon(
        sim={"tape": str(_quiet_tape(tmp_path))},
        gateway={"request_timeout_seconds": 0.5},
    )


def _order(cid: str, price: str = "39.00") -> dict[str, Any]:
    return {
        "symbol": SYMBOL,
        "side": "buy",
        "type": "limit",
        "qty": "3",
        "limit_price": price,
        "time_in_force": "day",
        "client_order_id": cid,
    }


async def _status_of(d: Harness, cid: str) -> str | None:
    for entry in (await d.history())["orders"]:
        if entry["order"]["client_order_id"] == cid:
            return str(entry["order"]["status"])
    return None


def _deletes(d: Harness) -> int:
    return sum(n for k, n in d.venue.services.requests.items() if k.startswith("DELETE "))


async def test_a_place_that_lands_after_its_leg_ended_is_cancelled(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """The venue holds the leg's first POST (longer than the client's timeout) and only
    then performs it. The plan is cancelled meanwhile; the gateway's look-up answers 404
    and the leg ends without an order. The held POST then creates a resting buy that no
    leg owns: it must be cancelled promptly, never fill, and be logged."""
    d = await _start(start_daemon, tmp_path)
    await d.venue.fail_next_requests(1, delay=2.0, method="POST", path="/v2/orders", when="before")
    plan = {
        "plan_id": "late",
        "legs": [{"symbol": SYMBOL, "side": "buy", "qty": "5", "limit_price": "39.00"}],
    }
    plan_id = (await d.submit(plan)).plan_id

    async def in_flight() -> bool:
        return d.venue.services.faults.pending() == []

    await d.wait_until(in_flight, "the first POST held at the venue")
    await d.daemon.engine.cancel(plan_id)

    async def ended() -> bool:
        return (await d.daemon.engine.status(plan_id)).finished_at is not None

    await d.wait_until(ended, "the plan ended")

    async def landed_and_dead() -> bool:
        orders = await d.orders(plan_id)
        return bool(orders) and all(o["order"]["status"] == "canceled" for o in orders)

    await d.wait_until(landed_and_dead, "the late order to land and be cancelled")
    orders = await d.orders(plan_id)
    assert len(orders) == 1, orders
    assert Decimal(orders[0]["order"]["filled_qty"] or "0") == 0
    assert d.daemon.orphans is not None
    # Review 6: the place's outcome is unknown (not "not sent"), so the stopping leg keeps
    # looking for it and cancels it itself once it lands; the sweeper does if the leg
    # ended first. Either way exactly one order, cancelled unfilled.
    assert d.daemon.orphans.canceled <= 1
    await d.stop()


async def _ended_plan(d: Harness, plan_id: str) -> None:
    """A plan that ran and was cancelled: its legs are unregistered (the orphans injected
    under its client-id prefix below have no running leg, as in the residual case)."""
    plan = {
        "plan_id": plan_id,
        "legs": [{"symbol": SYMBOL, "side": "buy", "qty": "1", "limit_price": "30.00"}],
    }
    await d.submit(plan)
    await d.daemon.engine.cancel(plan_id)

    async def ended() -> bool:
        return (await d.daemon.engine.status(plan_id)).finished_at is not None

    await d.wait_until(ended, f"{plan_id} ended")


async def test_a_foreign_order_is_never_cancelled(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """Another app's resting order on the same account: its events arrive unrouted, and
    the daemon never touches it (only execd's own orders, by client-order-id prefix). A
    live execd orphan submitted after it is cancelled: the sweeper was running."""
    d = await _start(start_daemon, tmp_path)
    await _ended_plan(d, "ghost")
    before = _deletes(d)
    exchange = d.venue.exchange
    exchange.submit_order(_order("other-app-order-1"))
    ours = client_order_id("ghost", 0, 900)
    exchange.submit_order(_order(ours))

    async def ours_dead() -> bool:
        return await _status_of(d, ours) == "canceled"

    await d.wait_until(ours_dead, "the execd orphan cancelled")
    assert await _status_of(d, "other-app-order-1") == "new"
    assert _deletes(d) - before == 1
    await d.stop()


async def test_duplicate_unrouted_updates_send_one_cancel(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """An orphan's several live events (pending_new, new) and a repeated delivery send
    exactly one DELETE; a terminal late event (a leg's own final ``canceled`` or ``fill``
    after it unregistered) is never offered for a cancel."""
    d = await _start(start_daemon, tmp_path)
    await _ended_plan(d, "ghost")
    before = _deletes(d)
    resting = client_order_id("ghost", 0, 900)
    d.venue.exchange.submit_order(_order(resting))

    async def resting_dead() -> bool:
        return await _status_of(d, resting) == "canceled"

    await d.wait_until(resting_dead, "the resting orphan cancelled")
    sweeper = d.daemon.orphans
    assert sweeper is not None
    order_id = _order_id(await d.history(), resting)
    for status in ("new", "partially_filled", "accepted"):
        assert not sweeper.offer(resting, order_id, SYMBOL, status), status
    late = client_order_id("ghost", 0, 901)
    for status in ("canceled", "filled", "expired", "replaced", "rejected"):
        assert not sweeper.offer(late, "late-order-id", SYMBOL, status), status
    assert _deletes(d) - before == 1
    assert sweeper.canceled == 1
    await d.stop()


async def _poll(predicate: Callable[[], bool], what: str) -> None:
    """Until `predicate` holds, or fail at DEADLINE (before a harness exists to ask)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def _order_id(history: dict[str, Any], cid: str) -> str:
    return next(
        str(e["order"]["id"]) for e in history["orders"] if e["order"]["client_order_id"] == cid
    )


async def test_an_orphan_that_lands_during_recovery_is_cancelled_by_the_first_pass(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """An execd order that lands between recovery's open-order listing and the sweeper
    being switched on: its events arrive while the sweeper is off, and a resting order
    sends no other. The sweeper's first pass over a fresh listing cancels it (it stayed
    live until the next start), and the metrics count it."""
    section = SimSection(scenario="calm", seed=1, start="10:00:00", tape=str(_quiet_tape(tmp_path)))
    async with SimVenue(sim_config(section)) as venue:
        # Recovery's listing is performed, then its answer held: the window to land in.
        await venue.fail_next_requests(1, delay=1.0, method="GET", path="/v2/orders", when="after")
        starting: asyncio.Future[Harness] = asyncio.ensure_future(
            start_daemon(venue=venue, gateway={"request_timeout_seconds": 5.0})
        )
        await _poll(lambda: not venue.services.faults.pending(), "recovery's listing")
        orphan = client_order_id("gone", 0, 3)
        venue.exchange.submit_order(_order(orphan))
        d = await starting

        async def orphan_dead() -> bool:
            return await _status_of(d, orphan) == "canceled"

        await d.wait_until(orphan_dead, "the orphan placed during recovery cancelled")
        sweeper = d.daemon.orphans
        assert sweeper is not None
        assert sweeper.statistics() == OrphanStatistics(found=1, canceled=1, failed=0)
        assert d.daemon.telemetry is not None
        text = d.daemon.telemetry.metrics.exposition().decode()
        assert "execd_orphan_orders_found_total 1.0" in text
        assert "execd_orphan_orders_canceled_total 1.0" in text
        assert "execd_orphan_orders_cancel_failed_total 0.0" in text
        await d.stop()
