"""Issue 5, "Done when": `kill -9` of the real daemon, then a restart, never duplicates an
order, never over-fills a leg, and records every fill in the journal exactly once.

The daemon runs as a subprocess (tests/process.py) against a venue living in the test, so
the venue keeps trading while the daemon is dead. Each test kills it at one named point of
a two-leg plan (a sell of BETA, a buy of ACME, both priced marketable so they partially
fill against a thin scripted book and re-peg as it drifts):

- before a send: the order request is held by the venue before it is processed;
- between send and acknowledgement: the venue placed the order but holds its answer;
- while a replace is pending: the venue replaced the order but holds the PATCH answer;
- during a partial fill: right after the daemon logged an execution of a live order;
- and at random moments, three kills in one plan.

After the restart the plan must complete; the judge is the venue's own history
(`check_venue_history`: never two live orders per leg, never over-filled), client order
ids are never reused, and the journal's fills per order equal the venue's filled qty.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from execd.adapters.journal import Journal
from execd.control.protocol import PlanStatus
from execd.domain.ids import parse_client_order_id, plan_key
from execd.sim.config import SimConfig
from execd.sim.venue import SimVenue
from tests.engine.conftest import TapeQuote, check_venue_history, write_tape
from tests.process import DaemonProcess

pytestmark = pytest.mark.slow

FINISH_DEADLINE = 40.0
PLAN = {
    "plan_id": "crash",
    "legs": [
        {"symbol": "BETA", "side": "sell", "qty": "500"},
        {"symbol": "ACME", "side": "buy", "qty": "600"},
    ],
}
LEG_QTY = {("crash", 0): Decimal(500), ("crash", 1): Decimal(600)}


def _daemon(
    venue: SimVenue, repeg_method: str = "cancel_and_place", apply_to: str = "all"
) -> DaemonProcess:
    return DaemonProcess.for_venue(
        venue,
        # A passive order re-pegs on a timer too (seconds here, not the default 10).
        ladder={"repeg_method": repeg_method, "passive_timeout_seconds": 0.7},
        # "all": both symbols trade marketable (ask + 1 tick / bid - 1 tick) against a thin
        # book; "listed": both (unlisted) legs rest passively inside the spread.
        better_orders={"apply_to": apply_to, "normal_timeout_seconds": 0.7},
        # An intent still in flight at the crash settles within this (recovery waits).
        gateway={"request_timeout_seconds": 3.0, "write_window_seconds": 2.0},
    )


def _tape(directory: Path) -> Path:
    """ACME and BETA drift up a cent a second, 100 shares at each side, for two minutes."""
    quotes: dict[str, list[TapeQuote]] = {"ACME": [], "BETA": []}
    for i in range(600):
        at = i * 0.2
        drift = Decimal(int(at)) / 100
        quotes["ACME"].append(TapeQuote(at, 50 + drift, Decimal("50.02") + drift, 100, 100))
        quotes["BETA"].append(TapeQuote(at, 30 + drift, Decimal("30.02") + drift, 100, 100))
    return write_tape(directory / "thin.jsonl", quotes, start=time(10, 0))


def _away_tape(directory: Path) -> Path:
    """ACME climbs and BETA falls 5 cents a second (beyond the re-peg threshold each
    second): each runs away from its leg's passive order (a buy below the ask, a sell above
    the bid), so no resting order can ever fill."""
    quotes: dict[str, list[TapeQuote]] = {"ACME": [], "BETA": []}
    for i in range(600):
        at = i * 0.2
        drift = Decimal(int(at)) * 5 / 100
        quotes["ACME"].append(TapeQuote(at, 50 + drift, Decimal("50.02") + drift, 100, 100))
        quotes["BETA"].append(TapeQuote(at, 30 - drift, Decimal("30.02") - drift, 100, 100))
    return write_tape(directory / "away.jsonl", quotes, start=time(10, 0))


def _venue_config(tape: Path) -> SimConfig:
    return SimConfig(
        scenario="calm",
        tape=tape,
        seed=1,
        start=time(10, 0),
        start_date=date(2026, 3, 4),
        positions={"BETA": Decimal(500)},
    )


@pytest.fixture
async def away_venue(tmp_path: Path) -> AsyncIterator[SimVenue]:
    async with SimVenue(_venue_config(_away_tape(tmp_path))) as running:
        yield running


@pytest.fixture
async def venue(tmp_path: Path) -> AsyncIterator[SimVenue]:
    config = SimConfig(
        scenario="calm",
        tape=_tape(tmp_path),
        seed=1,
        start=time(10, 0),
        start_date=date(2026, 3, 4),
        positions={"BETA": Decimal(500)},
    )
    async with SimVenue(config) as running:
        yield running


async def _poll(predicate: Callable[[], Awaitable[bool]], what: str, limit: float = 20.0) -> None:
    """Until a venue-side condition holds (the venue has no event for these)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not await predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def _execd_orders(venue: SimVenue) -> list[dict[str, Any]]:
    key = plan_key("crash")
    return [
        entry["order"]
        for entry in (await venue.history())["orders"]
        if (parts := parse_client_order_id(entry["order"]["client_order_id"])) is not None
        and parts.plan_key == key
    ]


async def _finish(daemon: DaemonProcess) -> PlanStatus:
    """Wait for the plan to end on the (restarted) daemon."""
    loop = asyncio.get_running_loop()
    end = loop.time() + FINISH_DEADLINE
    async with daemon.client() as client:
        while True:
            status = await client.status("crash")
            if status.state not in ("accepted", "working"):
                return status
            if loop.time() > end:
                raise AssertionError(f"plan still {status.state}: {daemon.output_tail()}")
            await asyncio.sleep(0.1)


async def _submit(daemon: DaemonProcess) -> None:
    async with daemon.client() as client:
        await client.submit(PLAN)


async def _restart_and_judge(venue: SimVenue, daemon: DaemonProcess) -> None:
    """Restart after the kill; the plan completes; venue and journal agree, exactly."""
    await daemon.start()
    status = await _finish(daemon)
    assert status.state == "completed", (status.reason, daemon.output_tail())
    assert [leg.filled_qty for leg in status.legs] == [Decimal(500), Decimal(600)]
    assert await daemon.sigterm() == 0, daemon.output_tail()

    history = await venue.history()
    check_venue_history(history, LEG_QTY, ["crash"])
    orders = await _execd_orders(venue)
    cids = Counter(order["client_order_id"] for order in orders)
    assert all(n == 1 for n in cids.values()), f"client order id reused: {cids}"
    async with await Journal.open(daemon.journal_path) as journal:
        journaled: dict[str, Decimal] = defaultdict(Decimal)
        for leg in (0, 1):
            for fill in await journal.fills_for_leg("crash", leg):
                journaled[fill.client_order_id] += fill.qty
        assert await journal.unfinished_plans() == ()
        assert await journal.open_orders() == ()
    venue_filled = {
        o["client_order_id"]: Decimal(o["filled_qty"])
        for o in orders
        if Decimal(o["filled_qty"]) > 0
    }
    assert dict(journaled) == venue_filled


async def test_kill_before_the_order_request_is_processed(venue: SimVenue) -> None:
    """The first order request is held by the venue; the daemon dies meanwhile. The held
    request still lands; the restarted daemon waits out the settle window, finds it by
    client order id and adopts it — no second order for that attempt."""
    async with _daemon(venue) as daemon:
        await daemon.start()
        await venue.fail_next_requests(delay=1.5, method="POST", path="/v2/orders")
        await _submit(daemon)
        await _poll(_fault_taken(venue), "the order request to reach the venue")
        daemon.kill9()
        await daemon.wait_exit()
        await _restart_and_judge(venue, daemon)


async def test_kill_between_send_and_acknowledgement(venue: SimVenue) -> None:
    """The venue placed the order and holds its answer; the daemon dies before it hears.
    The restart adopts the order (journaled as an intent only) instead of re-sending."""
    async with _daemon(venue) as daemon:
        await daemon.start()
        await venue.fail_next_requests(delay=3.0, method="POST", path="/v2/orders", when="after")
        await _submit(daemon)

        async def placed() -> bool:
            return bool(await _execd_orders(venue))

        await _poll(placed, "the venue to place the first order")
        daemon.kill9()
        await daemon.wait_exit()
        await _restart_and_judge(venue, daemon)


async def test_kill_while_a_replace_is_pending(away_venue: SimVenue) -> None:
    """The quote runs away from both passive legs, so they re-peg by PATCH; the venue
    performs the first replace and holds the answer; the daemon dies. The restart sees the
    old order replaced and the new one live, adopts the new one and finishes.

    Nothing is left to chance: a PATCH's qty is absolute (ALPACA.md §1.7), so a fill on the
    old order while the PATCH is in flight would over-fill whatever the daemon does (that
    race has its own tests, test_daemon_replace_race.py). Here no resting order can fill —
    the market only moves away from it — and only the fallback's marketable orders, placed
    by cancel and place, ever trade."""
    venue = away_venue
    async with _daemon(venue, repeg_method="replace", apply_to="listed") as daemon:
        await daemon.start()
        await venue.fail_next_requests(delay=3.0, method="PATCH", path="/v2/orders/", when="after")
        await _submit(daemon)

        async def replaced() -> bool:
            return any(o["replaces"] for o in await _execd_orders(venue))

        await _poll(replaced, "a replace to reach the venue")
        daemon.kill9()
        await daemon.wait_exit()
        await _restart_and_judge(venue, daemon)
    adopted = [e for e in daemon.log_events() if e["event"] == "leg_order_adopted"]
    replacements = {o["client_order_id"] for o in await _execd_orders(venue) if o["replaces"]}
    assert any(e["client_order_id"] in replacements for e in adopted), adopted


async def test_kill_during_a_partial_fill(venue: SimVenue) -> None:
    """Killed right after a partial fill was logged: the order keeps filling while the
    daemon is down; the restart records the missed shares once and trades only the rest."""
    async with _daemon(venue) as daemon:
        await daemon.start()
        await _submit(daemon)
        await daemon.wait_log("order_filled", final=False)
        daemon.kill9()
        await daemon.wait_exit()
        await _restart_and_judge(venue, daemon)


async def test_three_kills_at_random_moments(venue: SimVenue) -> None:
    """Three kills at random moments of the same plan (seeded), a restart after each."""
    rng = random.Random(5)
    async with _daemon(venue) as daemon:
        await daemon.start()
        await _submit(daemon)
        for _ in range(3):
            await asyncio.sleep(rng.uniform(0.05, 1.2))  # the crash moment itself
            daemon.kill9()
            await daemon.wait_exit()
            await daemon.start()
        status = await _finish(daemon)
        assert status.state == "completed", (status.reason, daemon.output_tail())
        daemon.kill9()
        await daemon.wait_exit()
        await _restart_and_judge(venue, daemon)


def _fault_taken(venue: SimVenue) -> Callable[[], Awaitable[bool]]:
    async def taken() -> bool:
        return not venue.services.faults.pending()

    return taken
