"""Issue 5: the journal carries plans across a restart of the daemon.

The venue runs in the test (it outlives each daemon); two daemons share one journal
directory, one after the other. `shutdown.working_orders = "leave"` stops the first with
its order still working, as a crash would (the kill -9 tests in test_daemon_crash.py do it
with a real subprocess); the second must adopt that order — never place it again — and
finish the plan. The venue's order history is the judge.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from execd.adapters.journal import Journal
from execd.config import SimSection
from execd.control.protocol import ControlError, ErrorCode
from execd.domain.ids import leg_order_prefix
from execd.engine.venue import sim_config
from execd.sim.venue import SimVenue
from tests.engine.conftest import Harness, StartDaemon, TapeQuote, write_tape

pytestmark = pytest.mark.slow

RESTING_AAPL = {"symbol": "AAPL", "side": "buy", "qty": "5", "limit_price": "150.00"}
PATIENT = {"better_orders": {"normal_timeout_seconds": 30.0}}
LEAVE = {"shutdown": {"working_orders": "leave"}}


@contextlib.asynccontextmanager
async def outside_venue(**sim: Any) -> AsyncIterator[SimVenue]:
    """A venue the test owns: it keeps running while daemons stop and start."""
    section = SimSection(**{"scenario": "calm", "seed": 1, "start": "10:00:00", **sim})
    async with SimVenue(sim_config(section)) as venue:
        yield venue


async def _wait_resting(d: Harness, plan_id: str) -> dict[str, Any]:
    """Until the plan has an order resting in the book; that order."""
    found: list[dict[str, Any]] = []

    async def resting() -> bool:
        found[:] = [e["order"] for e in await d.orders(plan_id) if e["order"]["status"] == "new"]
        return bool(found)

    await d.wait_until(resting, f"{plan_id} to rest an order")
    return found[0]


async def _journal_fills(directory: Path, plan_id: str, leg: int) -> list[tuple[str, Decimal]]:
    async with await Journal.open(directory / "journal.db") as journal:
        return [(f.execution_id, f.qty) for f in await journal.fills_for_leg(plan_id, leg)]


async def test_left_order_is_adopted_after_restart_not_placed_again(
    start_daemon: StartDaemon,
) -> None:
    """`leave` keeps the order working through a restart; the next daemon adopts it (same
    client order id, no new order), shows the plan working, and a cancel then ends it."""
    async with outside_venue() as venue:
        first = await start_daemon(venue=venue, **LEAVE, **PATIENT)
        await first.submit({"plan_id": "left", "legs": [RESTING_AAPL]})
        order = await _wait_resting(first, "left")
        await first.stop()

        open_orders = venue.exchange.list_orders(status="open", limit=50)
        assert [o["client_order_id"] for o in open_orders] == [order["client_order_id"]]

        second = await start_daemon(venue=venue, directory=first.directory, **PATIENT)
        second.plans.append("left")
        status = await second.daemon.engine.status("left")
        assert status.state == "working"
        assert status.legs[0].client_order_ids[0] == order["client_order_id"]
        orders = await second.orders("left")
        assert [e["order"]["client_order_id"] for e in orders] == [order["client_order_id"]]

        canceled = await second.daemon.engine.cancel("left")
        assert canceled.state == "canceled"
        assert venue.exchange.list_orders(status="open", limit=50) == []
        await second.check()
        await second.stop()


async def test_adopted_passive_limit_ends_on_its_patience_after_restart(
    start_daemon: StartDaemon,
) -> None:
    """A resting passive limit adopted after a restart, in a market that never reaches it,
    is worked for its urgency's patience counted from the restart, then the low-urgency leg
    ends cleanly: the adopted order cancelled, nothing new sent. (It used to re-check its
    unchanged price every 10 s until the close: no patience survived the restart.)"""
    async with outside_venue() as venue:
        plan = {"plan_id": "adopt-low", "urgency": "low", "legs": [RESTING_AAPL]}
        first = await start_daemon(venue=venue, **LEAVE, **PATIENT)
        await first.submit(plan)
        order = await _wait_resting(first, "adopt-low")
        await first.stop()

        patient_for_a_second = {"ladder": {"passive_patience_low_seconds": 1.0}}
        second = await start_daemon(
            venue=venue, directory=first.directory, **PATIENT, **patient_for_a_second
        )
        second.plans.append("adopt-low")
        status = await second.finish("adopt-low")
        leg = status.legs[0]
        assert (leg.state, leg.reason) == ("unfilled", "passive_patience_exhausted"), leg
        assert leg.filled_qty == Decimal(0)
        orders = await second.orders("adopt-low")
        assert [e["order"]["client_order_id"] for e in orders] == [order["client_order_id"]]
        assert [e["order"]["status"] for e in orders] == ["canceled"]
        await second.check()
        await second.stop()


async def test_completed_plan_resubmitted_after_restart_sends_nothing(
    start_daemon: StartDaemon,
) -> None:
    """A plan id that completed before a restart is answered from the journal: same
    state, same fills, and the venue sees no new order."""
    async with outside_venue() as venue:
        plan = {"plan_id": "done-once", "legs": [{"symbol": "TQQQ", "side": "buy", "qty": "3"}]}
        first = await start_daemon(venue=venue)
        done = await first.run(plan)
        assert done.state == "completed", done.reason
        await first.check()
        await first.stop()
        before = len((await venue.history())["orders"])

        second = await start_daemon(venue=venue, directory=first.directory)
        listed = await second.daemon.engine.list_plans()
        assert [p.plan_id for p in listed] == ["done-once"]
        again = await second.daemon.engine.submit(plan)
        assert again.state == "completed"
        assert again.legs[0].filled_qty == Decimal(3)
        assert again.legs[0].client_order_ids == done.legs[0].client_order_ids
        assert len((await venue.history())["orders"]) == before
        await second.stop()


async def test_fill_while_down_is_applied_once_and_the_plan_completes(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """The resting buy fills while no daemon runs; the restarted one records the fill once
    (from the venue's filled_qty), sends nothing more, and completes the plan."""
    tape = write_tape(
        tmp_path / "drop.jsonl",
        {
            "ACME": [TapeQuote(t / 5, Decimal("50.10"), Decimal("50.12")) for t in range(40)]
            + [TapeQuote(8 + t / 5, Decimal("49.90"), Decimal("49.95")) for t in range(100)]
        },
        start=time(10, 0),
    )
    async with outside_venue(tape=str(tape)) as venue:
        plan = {
            "plan_id": "fill-down",
            "legs": [{"symbol": "ACME", "side": "buy", "qty": "20", "limit_price": "50.00"}],
        }
        first = await start_daemon(venue=venue, **LEAVE, **PATIENT)
        await first.submit(plan)
        order = await _wait_resting(first, "fill-down")
        await first.stop()

        async def filled() -> bool:
            states = [e["order"]["status"] for e in await first.orders("fill-down")]
            return states == ["filled"]

        await first.wait_until(filled, "the resting order to fill while no daemon runs")

        second = await start_daemon(venue=venue, directory=first.directory, **PATIENT)
        second.plans.append("fill-down")
        status = await second.finish("fill-down")
        assert status.state == "completed", status.reason
        assert status.legs[0].filled_qty == Decimal(20)
        orders = await second.orders("fill-down")
        assert [e["order"]["client_order_id"] for e in orders] == [order["client_order_id"]]
        await second.check()
        await second.stop()
        fills = await _journal_fills(first.directory, "fill-down", 0)
        assert sum(qty for _, qty in fills) == Decimal(20)
        assert len({execution for execution, _ in fills}) == len(fills)


async def test_restart_continues_attempt_numbering(start_daemon: StartDaemon) -> None:
    """After a restart a leg's next order never reuses a client order id: a cancelled
    resting order is followed by attempt 1, not a second attempt 0."""
    async with outside_venue() as venue:
        first = await start_daemon(venue=venue, **LEAVE, **PATIENT)
        await first.submit({"plan_id": "numbering", "legs": [RESTING_AAPL]})
        order = await _wait_resting(first, "numbering")
        await first.stop()
        venue.exchange.cancel_order(order["id"])  # e.g. cancelled by hand while down

        second = await start_daemon(venue=venue, directory=first.directory, **PATIENT)
        second.plans.append("numbering")
        prefix = leg_order_prefix("numbering", 0)

        async def replaced() -> bool:
            return len(await second.orders("numbering")) == 2

        await second.wait_until(replaced, "a new attempt after the cancelled order")
        cids = [e["order"]["client_order_id"] for e in await second.orders("numbering")]
        assert cids == [prefix + "0", prefix + "1"]
        await second.daemon.engine.cancel("numbering")
        await second.check()
        await second.stop()


async def test_shutdown_cancels_working_orders_and_leaves_the_journal_consistent(
    start_daemon: StartDaemon,
) -> None:
    """Default `shutdown.working_orders = "cancel"`: the resting order ends cancelled at the
    venue, the plan ends `canceled` in the journal, and no journaled order is left open."""
    async with outside_venue() as venue:
        d = await start_daemon(venue=venue, **PATIENT)
        await d.submit({"plan_id": "sigterm", "legs": [RESTING_AAPL]})
        await _wait_resting(d, "sigterm")
        await d.check()
        await d.stop()
        assert venue.exchange.list_orders(status="open", limit=50) == []
        async with await Journal.open(d.directory / "journal.db") as journal:
            plan = await journal.get_plan("sigterm")
            assert plan is not None
            assert (plan.state, plan.finished_at is not None) == ("canceled", True)
            assert await journal.open_orders() == ()
            assert await journal.unfinished_plans() == ()
            (order,) = await journal.orders_for_leg("sigterm", 0)
            assert order.status == "canceled"
            events = [e.event for e in await journal.events_for_order(order.client_order_id)]
            assert events[-1] == "canceled"


async def test_shutdown_leave_keeps_the_order_and_the_plan_unfinished(
    start_daemon: StartDaemon,
) -> None:
    """`leave`: the order is still working at the venue after shutdown, and the journal
    lists it open and its plan unfinished; the next start adopts it, and its own shutdown
    (default `cancel`) cancels it."""
    async with outside_venue() as venue:
        d = await start_daemon(venue=venue, **LEAVE, **PATIENT)
        await d.submit({"plan_id": "leave", "legs": [RESTING_AAPL]})
        order = await _wait_resting(d, "leave")
        await d.stop()
        assert [o["id"] for o in venue.exchange.list_orders(status="open", limit=50)] == [
            order["id"]
        ]
        async with await Journal.open(d.directory / "journal.db") as journal:
            (unfinished,) = await journal.unfinished_plans()
            assert unfinished.plan.plan_id == "leave"
            (still_open,) = await journal.open_orders()
            assert (still_open.client_order_id, still_open.order_id) == (
                order["client_order_id"],
                order["id"],
            )
        again = await start_daemon(venue=venue, directory=d.directory, **PATIENT)
        assert (await again.daemon.engine.status("leave")).state == "working"
        await again.stop()  # default cancel: the adopted order ends cancelled
        assert venue.exchange.list_orders(status="open", limit=50) == []


async def test_halt_survives_a_restart_until_resume(start_daemon: StartDaemon) -> None:
    """Issue 11 §8: `halt`, then a restart: the new daemon is still halted (health says
    so, a plan is refused and the venue sees nothing) until `resume`, after which a plan
    runs."""
    async with outside_venue() as venue:
        first = await start_daemon(venue=venue)
        await first.daemon.engine.halt()
        await first.stop()
        before = len((await venue.history())["orders"])

        second = await start_daemon(venue=venue, directory=first.directory)
        assert (await second.daemon.engine.health()).halted
        plan = {"plan_id": "after-halt", "legs": [{"symbol": "TQQQ", "side": "buy", "qty": "2"}]}
        with pytest.raises(ControlError) as refused:
            await second.submit(plan)
        assert refused.value.code == ErrorCode.HALTED
        assert len((await venue.history())["orders"]) == before
        await second.daemon.engine.resume()
        done = await second.run(plan)
        assert done.state == "completed", done.reason
        await second.check()
        await second.stop()

        third = await start_daemon(venue=venue, directory=first.directory)
        assert not (await third.daemon.engine.health()).halted
        await third.stop()
