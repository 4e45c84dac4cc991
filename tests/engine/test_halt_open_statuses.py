"""The kill switch treats every status that is not terminal as live (ALPACA.md §1.9).

`execd halt` used an allow-list of open statuses (new, partially_filled, accepted,
pending_new, held): an execd order in `pending_replace` — or `done_for_day`,
`accepted_for_bidding`, `stopped`, `calculated`, or a status Alpaca adds later — was never
cancelled. The orphan sweeper already treats every non-terminal status as live; the kill
switch must too, and an order whose cancel the venue refuses because a replace is pending
(§1.7) is cancelled once the replace has resolved.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alpaca.trading.enums import OrderStatus as AlpacaStatus
from structlog.testing import capture_logs

from execd.adapters.budget import RequestBudget
from execd.adapters.rest import RestGateway
from execd.domain.ids import client_order_id
from execd.domain.order_state import TERMINAL_STATUSES, is_live_status
from execd.engine import venue_reads
from execd.engine.venue_reads import cancel_open_execd_orders
from execd.sim.clock import VenueClock
from execd.sim.config import SimConfig
from execd.sim.server import ServerOptions
from execd.sim.venue import SimVenue
from tests.engine.conftest import (
    DEADLINE,
    TERMINAL,
    StartDaemon,
    TapeQuote,
    sim_rest_config,
    write_tape,
)
from tests.engine.test_open_orders_paging import time_passes

D = Decimal
ACK = 1.5
"""The venue's ack latency (s): a replace stays `pending_replace` this long."""


def test_every_status_that_is_not_terminal_is_live() -> None:
    """Every status alpaca-py knows, and one it does not know yet: only the five terminal
    ones (filled, canceled, expired, replaced, rejected) are left alone."""
    terminal = {s.value for s in TERMINAL_STATUSES}
    for status in [*(s.value for s in AlpacaStatus), "some_status_alpaca_adds_later"]:
        assert is_live_status(status) == (status not in terminal), status


PLAN = {"plan_id": "pr", "legs": [{"symbol": "ACME", "side": "buy", "qty": "5"}]}


@pytest.fixture
async def venue() -> AsyncIterator[SimVenue]:
    """A venue on a manual clock that acknowledges in 1.5 s of venue time."""
    config = SimConfig(
        scenario="calm",
        seed=3,
        start=time(10, 0),
        start_date=date(2026, 3, 4),
        symbols=("SPY",),
        ack_latency_s=ACK,
    )
    clock = VenueClock.manual(VenueClock.from_config(config).now())
    async with SimVenue(config, options=ServerOptions(rate_limit=10_000), clock=clock) as running:
        yield running


@pytest.fixture
async def rest(venue: SimVenue) -> AsyncIterator[RestGateway]:
    config = sim_rest_config(venue)
    async with RestGateway(config, RequestBudget(10_000, read_reserve=10)) as gateway:
        yield gateway


async def test_halt_cancels_an_order_whose_cancel_a_pending_replace_refused(
    venue: SimVenue, rest: RestGateway
) -> None:
    """No leg owns the order (the kill switch is the last line: a leg that crashed, a
    daemon that restarted): an execd order is in `pending_replace` when halt lists, and the
    exchange then rejects its replacement, so it goes on working as it was. Halt cancels
    the replacement and, once the replace has resolved, the order itself."""
    exchange = venue.exchange
    body = {"symbol": "SPY", "qty": "1", "side": "buy", "type": "limit",
            "limit_price": "1.00", "time_in_force": "day"}  # fmt: skip
    old = exchange.submit_order({**body, "client_order_id": client_order_id("pr", 0, 1)})
    exchange.advance(2 * ACK)  # acknowledged: `new`
    exchange.reject_next_replaces(1)
    new = exchange.replace_order(
        old["id"],
        {"qty": "1", "limit_price": "1.01", "client_order_id": client_order_id("pr", 0, 2)},
    )
    assert exchange.get_order(old["id"])["status"] == "pending_replace"
    async with time_passes(venue):
        await cancel_open_execd_orders(rest)
    exchange.advance(2 * ACK)  # whatever was sent has landed
    assert exchange.get_order(new["id"])["status"] == "rejected"
    assert exchange.get_order(old["id"])["status"] == "canceled"


def _tape(directory: Path) -> Path:
    """ACME: the bid rests at 50.00 (the passive buy joins it), then jumps at 5 s (the buy
    acknowledged by then even if the daemon started slowly on a loaded machine) so the
    leg re-pegs by PATCH; nothing crosses the buy."""
    quotes = [TapeQuote(i / 4, D("50.00"), D("50.02"), 100, 100) for i in range(20)]
    quotes += [TapeQuote(5 + i / 4, D("50.10"), D("50.30"), 100, 100) for i in range(64)]
    return write_tape(directory / "halt.jsonl", {"ACME": quotes}, start=time(10, 0))


@pytest.mark.slow
async def test_halt_cancels_an_order_caught_in_pending_replace(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    """The whole path in the daemon: the venue acknowledges slowly (1.5 s), so the leg's
    re-peg PATCH leaves its order in `pending_replace` that long, and `execd halt` runs
    then; the exchange then rejects the replacement (§1.7: a 200 is no promise), so the
    old order goes on working. It ends canceled, the replacement rejected, nothing filled.
    (The stopping leg's own confirm timer also cancels it, so this passed with the
    allow-list too: the reproduction is the test above, where no leg owns the order.)"""
    config = SimConfig(
        scenario="calm",
        tape=_tape(tmp_path),
        seed=1,
        start=time(10, 0),
        start_date=date(2026, 3, 4),
        partial_fill_rate=0.0,
        ack_latency_s=ACK,
    )
    async with SimVenue(config) as venue:
        d = await start_daemon(
            venue=venue,
            ladder={"repeg_method": "replace"},
            better_orders={"normal_timeout_seconds": 60.0},
        )
        await venue.reject_next_replaces(1)
        await d.submit(PLAN)

        async def replace_pending() -> bool:
            return any(o["order"]["status"] == "pending_replace" for o in await d.orders("pr"))

        await d.wait_until(replace_pending, "the leg's order caught in pending_replace")
        await d.daemon.engine.halt()

        async def nothing_working() -> bool:
            orders = await d.orders("pr")
            return all(o["order"]["status"] in TERMINAL for o in orders)

        await d.wait_until(nothing_working, "every order of the halted plan ended")
        old, new = (o["order"] for o in await d.orders("pr"))
        assert new["replaces"] == old["id"]
        assert (old["status"], new["status"]) == ("canceled", "rejected")
        assert old["filled_qty"] == "0"
        await d.check()
        await d.stop()  # while this test's venue still runs


def _caught_in_pending_replace(venue: SimVenue) -> tuple[dict[str, Any], dict[str, Any]]:
    """An execd order in `pending_replace` whose replacement the exchange will reject (so
    it goes on working once the replace resolves), on the manual clock: it stays
    `pending_replace` until the test moves venue time."""
    exchange = venue.exchange
    body = {"symbol": "SPY", "qty": "1", "side": "buy", "type": "limit",
            "limit_price": "1.00", "time_in_force": "day"}  # fmt: skip
    old = exchange.submit_order({**body, "client_order_id": client_order_id("slow", 0, 1)})
    exchange.advance(2 * ACK)  # acknowledged: `new`
    exchange.reject_next_replaces(1)
    new = exchange.replace_order(
        old["id"],
        {"qty": "1", "limit_price": "1.01", "client_order_id": client_order_id("slow", 0, 2)},
    )
    assert exchange.get_order(old["id"])["status"] == "pending_replace"
    return old, new


async def test_halt_outwaits_a_replace_slower_than_its_retry_seconds(
    venue: SimVenue, rest: RestGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Halt defect B: the venue leaves the order in `pending_replace` (refusing its cancel,
    §1.7) for longer than `HALT_RETRY_SECONDS` (made short here: the defect is the same at
    5 s). Halt gave up then (`halt_cancels_refused`) and the order, once its replacement
    was rejected, went on working. Within the halt's deadline it keeps trying while the
    order is live but unsettled, and cancels it once the replace resolves."""
    monkeypatch.setattr(venue_reads, "HALT_RETRY_SECONDS", 0.2)
    old, new = _caught_in_pending_replace(venue)
    loop = asyncio.get_running_loop()
    sweep = asyncio.create_task(cancel_open_execd_orders(rest, until=loop.time() + DEADLINE))

    async def refused_twice() -> bool:
        return venue.services.requests[f"DELETE /v2/orders/{old['id']}"] >= 2

    await _wait(refused_twice, "halt sent the refused cancel again")
    # The venue is slow: past the retry seconds, nothing has settled yet.
    await asyncio.sleep(0.5)  # the slow venue itself (venue time stands still meanwhile)
    assert not sweep.done(), "halt gave up while the replace was still pending"
    assert venue.exchange.get_order(old["id"])["status"] == "pending_replace"
    async with time_passes(venue):
        await sweep
    venue.exchange.advance(2 * ACK)  # whatever was sent has landed
    assert venue.exchange.get_order(new["id"])["status"] == "rejected"
    assert venue.exchange.get_order(old["id"])["status"] == "canceled"


async def test_halt_names_the_orders_it_could_not_cancel_by_its_deadline(
    venue: SimVenue, rest: RestGateway
) -> None:
    """The replace never resolves (venue time stands still): halt does not wait forever.
    At its deadline it ends and names, at error, the order it could not cancel and why."""
    old, _ = _caught_in_pending_replace(venue)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with capture_logs() as logs:
        await cancel_open_execd_orders(rest, until=started + 1.0)
    assert loop.time() - started < DEADLINE
    refused = [e for e in logs if e["event"] == "halt_cancels_refused"]
    assert len(refused) == 1
    assert refused[0]["log_level"] == "error"
    assert refused[0]["orders"] == {old["client_order_id"]: "pending_replace"}
    assert venue.exchange.get_order(old["id"])["status"] == "pending_replace"


async def _wait(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `predicate` (yielding to the loop) until true, or fail at `DEADLINE`."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not await predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
