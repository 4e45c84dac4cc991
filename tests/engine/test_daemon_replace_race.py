"""The PATCH re-peg race under `ladder.repeg_method = "replace"` (ALPACA.md §1.7).

Alpaca's PATCH `qty` is absolute: a replacement sized before a fill that lands on the old
order while the PATCH is in flight is larger than what is left, and would over-fill the
leg (alpacahq/Alpaca-API#165). These tests script exactly when the old order can fill —
a tape whose ask crosses the resting order only inside the window where the venue holds
the PATCH — and judge by the venue's own fills, never by the daemon's account of them.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from datetime import date, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from execd.control.protocol import PlanStatus
from execd.sim.config import SimConfig
from execd.sim.venue import SimVenue
from tests.engine.conftest import (
    DEADLINE,
    Harness,
    StartDaemon,
    TapeQuote,
    check_venue_history,
    write_tape,
)
from tests.process import DaemonProcess

pytestmark = pytest.mark.slow

D = Decimal
LEG_QTY = D(300)
CROSSING_SIZE = 120
"""Shares shown at the old order's limit while it may not fill: the replacement's excess."""
LOW = (D("50.00"), D("50.02"))  # the passive buy rests at 50.01
CROSSING = (D("49.99"), D("50.01"))  # the ask on the old order's limit: it fills
ABOVE = (D("50.10"), D("50.30"))  # every limit below the ask: nothing fills
SWEEP = (D("50.03"), D("50.05"))  # a deep ask below a re-pegged limit: what is live fills
DROP = (D("49.96"), D("49.98"))  # a deep ask below every limit: whatever is live fills

Phase = tuple[float, tuple[Decimal, Decimal], int]
"""(venue seconds after 10:00:00 it starts, (bid, ask), ask size)."""


def _tape(directory: Path, phases: list[Phase], end: float) -> Path:
    """ACME through `phases`; each quote repeats every 0.25 s so that it stays fresh."""
    quotes: list[TapeQuote] = []
    bounds = [*(start for start, _, _ in phases[1:]), end]
    for (start, (bid, ask), size), stop in zip(phases, bounds, strict=True):
        at = start
        while at < stop - 1e-9:
            quotes.append(TapeQuote(at, bid, ask, 100, size))
            at += 0.25
    return write_tape(directory / "race.jsonl", {"ACME": quotes}, start=time(10, 0))


async def _venue(tape: Path) -> SimVenue:
    return SimVenue(
        SimConfig(
            scenario="calm",
            tape=tape,
            seed=1,
            start=time(10, 0),
            start_date=date(2026, 3, 4),
            # Paper's random partial fills would add fills the script does not control.
            partial_fill_rate=0.0,
        )
    )


def _venue_seconds(venue: SimVenue) -> float:
    return (venue.clock.now() - venue.exchange.started_at).total_seconds()


async def _at(venue: SimVenue, seconds: float) -> None:
    """Until the venue clock reaches `seconds` (the tape has no event to wait on)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while _venue_seconds(venue) < seconds:
        assert loop.time() < end, f"venue clock stuck before {seconds} s"
        await asyncio.sleep(0.01)


async def _judge(d: Harness, venue: SimVenue) -> tuple[list[dict[str, Any]], Decimal]:
    """The leg's orders at the venue and the sum of the venue's fills of them."""
    orders = [entry["order"] for entry in await d.orders("race", 0)]
    ids = {order["id"] for order in orders}
    history = await venue.history()
    filled = sum((D(f["qty"]) for f in history["fills"] if f["order_id"] in ids), D(0))
    return orders, filled


async def _check_and_stop(d: Harness) -> None:
    """The fixture's history check and shutdown, while this test's venue still runs."""
    await d.check()
    await d.stop()


PLAN = {"plan_id": "race", "legs": [{"symbol": "ACME", "side": "buy", "qty": str(LEG_QTY)}]}
SETTINGS: dict[str, dict[str, Any]] = {
    "ladder": {"repeg_method": "replace"},
    # Re-peg only on the scripted quote moves, never on a timer.
    "better_orders": {"normal_timeout_seconds": 60.0},
}


async def test_fill_during_a_held_patch_is_corrected_before_the_replacement_fills(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    """A passive buy rests at 50.01; the bid jumps and the leg re-pegs by PATCH with qty
    300, which the venue holds 1.5 s. Meanwhile the ask sits on the old order: 120+ shares
    fill. The PATCH then lands with the stale qty 300. Before the sweep at 8 s would fill
    it, the daemon shrinks it to the true remainder (cancel, confirm, place the rest)."""
    phases: list[Phase] = [(0, LOW, 100), (4.0, ABOVE, 100), (4.6, CROSSING, CROSSING_SIZE)]
    phases += [(5.2, ABOVE, 100), (8.0, SWEEP, 5000)]
    async with await _venue(_tape(tmp_path, phases, 12.0)) as venue:
        d = await start_daemon(venue=venue, **SETTINGS)
        await venue.fail_next_requests(delay=1.5, method="PATCH", path="/v2/orders/")
        status = await d.submit(PLAN)
        final = await d.finish(status.plan_id)
        orders, filled = await _judge(d, venue)
        first, replacement = orders[0], orders[1]
        # The scenario happened as scripted: the replacement was sized before the fills.
        assert replacement["replaces"] == first["id"]
        assert D(first["filled_qty"]) >= CROSSING_SIZE
        assert D(replacement["qty"]) == LEG_QTY
        assert replacement["status"] == "canceled"
        assert filled == LEG_QTY, f"the venue filled {filled} of {LEG_QTY}"
        assert final.state == "completed", final.reason
        assert final.legs[0].filled_qty == LEG_QTY
        await _check_and_stop(d)


async def test_fill_the_daemon_has_not_heard_of_is_read_before_the_patch(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    """The trade_updates socket goes silent (ALPACA.md §9: events dropped); the ask sits on
    the resting buy and 120+ shares fill that the daemon never hears of. The bid jumps: a
    PATCH sized from the leg's count (300) would be instantly over-sized, and the sweep one
    second later would fill all of it before any confirmation timer. The daemon re-reads
    the old order before patching, sees the unheard fills, and re-pegs by cancel and place
    of the true remainder instead (placed once the cancel is confirmed over REST, the
    stream still silent), which the drop at 8.5 s fills."""
    phases: list[Phase] = [(0, LOW, 100), (3.2, CROSSING, CROSSING_SIZE), (3.8, LOW, 0)]
    phases += [(4.2, ABOVE, 100), (5.2, SWEEP, 5000), (8.5, DROP, 5000)]
    async with await _venue(_tape(tmp_path, phases, 13.0)) as venue:
        d = await start_daemon(venue=venue, **SETTINGS)
        status = await d.submit(PLAN)

        async def working() -> bool:
            return (await d.daemon.engine.status("race")).legs[0].state == "working"

        await d.wait_until(working, "the first order acknowledged")
        assert _venue_seconds(venue) < 3.0, "the script needs the order working first"
        await _at(venue, 3.0)
        await venue.mute_streams("trading", 6.0)
        final = await d.finish(status.plan_id)
        orders, filled = await _judge(d, venue)
        first = orders[0]
        assert D(first["filled_qty"]) >= CROSSING_SIZE
        assert first["status"] == "canceled", "re-pegged by cancel, not by a stale PATCH"
        assert not any(order["replaces"] for order in orders)
        assert filled == LEG_QTY, f"the venue filled {filled} of {LEG_QTY}: {orders}"
        assert final.state == "completed", final.reason
        await _check_and_stop(d)


async def test_a_restart_never_adopts_a_replacement_larger_than_what_is_left(
    tmp_path: Path,
) -> None:
    """The PATCH (qty 300) is held before the venue sees it; the old order fills 120+
    meanwhile; the daemon is frozen (SIGSTOP: its connection stays open) so the held PATCH
    lands with its stale qty while nobody can correct it, then killed. The restarted
    daemon counts the old order's fills from the venue, finds the live replacement larger
    than the remainder, cancels it instead of adopting it and places only the remainder,
    which the sweep fills: the venue's fills total exactly 300."""
    # A daemon process starts in ~1.5 s on a quiet machine, 4+ s on a loaded one: the
    # move waits until RESTART_MOVE, and the crossing gives the re-peg (GET, then PATCH)
    # 2 s, not 0.6 s, to reach the venue — the PATCH, held 3.5 s, still lands after it.
    move, crossing = RESTART_MOVE, RESTART_MOVE + 2.0
    phases: list[Phase] = [(0, LOW, 100), (move, ABOVE, 100), (crossing, CROSSING, CROSSING_SIZE)]
    phases += [(crossing + 0.6, ABOVE, 100), (crossing + 9.4, SWEEP, 5000)]
    async with await _venue(_tape(tmp_path, phases, crossing + 15.4)) as venue:
        daemon = DaemonProcess.for_venue(
            venue,
            ladder={"repeg_method": "replace"},
            better_orders={"normal_timeout_seconds": 60.0},
            gateway={"request_timeout_seconds": 3.0, "write_window_seconds": 2.0},
        )
        async with daemon:
            await daemon.start()
            await venue.fail_next_requests(delay=3.5, method="PATCH", path="/v2/orders/")
            async with daemon.client() as client:
                await client.submit(PLAN)

            async def placed() -> bool:
                return bool((await venue.history())["orders"])

            await _poll(placed, "the first order")
            assert _venue_seconds(venue) < move, "the leg was not working before the move"
            await _at(venue, crossing + 0.4)
            assert not venue.services.faults.pending(), "the PATCH was not sent in time"
            daemon.signal(signal.SIGSTOP)

            async def replaced() -> bool:
                orders = [e["order"] for e in (await venue.history())["orders"]]
                return any(order["replaces"] for order in orders)

            await _poll(replaced, "the held PATCH to land")
            daemon.kill9()
            await daemon.wait_exit()
            await daemon.start()
            final = await _finish(daemon)
            resumed = [e for e in daemon.log_events() if e["event"] == "leg_resume_canceling"]
            assert [e["reason"] for e in resumed] == ["oversized"], resumed
            assert await daemon.sigterm() == 0, daemon.output_tail()
        history = await venue.history()
        orders = [entry["order"] for entry in history["orders"]]
        ids = {order["id"] for order in orders}
        filled = sum((D(f["qty"]) for f in history["fills"] if f["order_id"] in ids), D(0))
        first, replacement = orders[0], orders[1]
        assert replacement["replaces"] == first["id"]
        assert D(first["filled_qty"]) >= CROSSING_SIZE
        assert D(replacement["qty"]) == LEG_QTY
        assert replacement["status"] == "canceled"
        assert filled == LEG_QTY, f"the venue filled {filled} of {LEG_QTY}: {orders}"
        assert final.state == "completed", (final.reason, daemon.output_tail())
        check_venue_history(history, {("race", 0): LEG_QTY}, ["race"])


RESTART_MOVE = 8.0
"""Venue seconds of the restart test's quote move: after the daemon process is up and working."""


async def _poll(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not await predicate():
        assert loop.time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _finish(daemon: DaemonProcess) -> PlanStatus:
    """The plan's final status on the (restarted) daemon."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE * 2
    async with daemon.client() as client:
        while True:
            status = await client.status("race")
            if status.state not in ("accepted", "working"):
                return status
            assert loop.time() < end, f"plan still {status.state}: {daemon.output_tail()}"
            await asyncio.sleep(0.1)
