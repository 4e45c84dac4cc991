"""Two halts at once send one cancel pass, not two.

`execd halt` typed twice (or once from the CLI while the journal-unwritable stop runs) ran
two kill switches side by side: each listed execd's open orders and sent a DELETE for every
order the other had not yet seen cancelled — a duplicate cancel per order, each one out of
the request budget the cancels share. A second halt now joins the one running: it waits for
it and answers what it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from execd.control.protocol import HaltState
from tests.engine.conftest import Harness, StartDaemon
from tests.engine.test_daemon_streams import wait_resting

pytestmark = pytest.mark.slow

HOLD = 1.0
"""Seconds the venue holds each DELETE before acting on it: the first halt's cancel is still
in flight (the order still listed `new`) when the second halt lists."""


def _plan(plan_id: str) -> dict[str, Any]:
    return {
        "plan_id": plan_id,
        "legs": [{"symbol": "SPY", "side": "buy", "qty": "1", "limit_price": "1.00"}],
    }


async def _deletes_per_order(d: Harness, plan_id: str) -> dict[str, int]:
    """The DELETEs the venue received for each of the plan's orders."""
    requests = d.venue.services.requests
    return {
        o["order"]["client_order_id"]: requests[f"DELETE /v2/orders/{o['order']['id']}"]
        for o in await d.orders(plan_id)
    }


async def _halted_with_deletes_held(
    d: Harness, plan_id: str, halts: Callable[[], Awaitable[list[HaltState | None]]]
) -> tuple[list[HaltState | None], dict[str, int]]:
    """A resting limit; the venue holds every DELETE `HOLD` s; `halts` runs; then the
    DELETEs each order received, once the plan has ended."""
    await d.submit(_plan(plan_id))
    await wait_resting(d, plan_id)
    await d.venue.fail_next_requests(100, delay=HOLD, method="DELETE", path="/v2/orders")
    answers = await halts()

    async def ended() -> bool:
        return (await d.daemon.engine.status(plan_id)).finished_at is not None

    await d.wait_until(ended, f"{plan_id} ended after the halt")
    await d.venue.clear_faults()
    return answers, await _deletes_per_order(d, plan_id)


async def test_a_second_halt_joins_the_first(start_daemon: StartDaemon) -> None:
    """One halt, then (after `resume`) two at once, the second a moment after the first:
    the two together send each order no more DELETEs than one halt alone, and both callers
    are told the same thing."""
    d = await start_daemon()
    engine = d.daemon.engine

    async def one() -> list[HaltState | None]:
        return [await engine.halt()]

    _, alone = await _halted_with_deletes_held(d, "once", one)
    await engine.resume()

    async def two() -> list[HaltState | None]:
        first = asyncio.create_task(engine.halt())
        await asyncio.sleep(0)  # the first halt is under way
        second = asyncio.create_task(engine.halt())
        return list(await asyncio.gather(first, second))

    answers, twice = await _halted_with_deletes_held(d, "twice", two)
    assert max(twice.values()) <= max(alone.values()), (alone, twice)
    first, second = answers
    assert first == second  # the second caller is told what the first is
    assert isinstance(first, HaltState)
    assert first.halted
    await engine.resume()
    await d.check()


async def test_a_halt_during_the_journal_failure_stop_joins_it(start_daemon: StartDaemon) -> None:
    """The journal-unwritable stop is running its cancel pass when `execd halt` comes: the
    halt waits for it instead of sending its own cancels (each daemon's plan: the journal
    stop alone, then the stop and a halt)."""
    alone_daemon = await start_daemon()

    async def stop_alone() -> list[HaltState | None]:
        await alone_daemon.daemon.engine.on_journal_unwritable("disk full (test)")
        return [None]

    _, alone = await _halted_with_deletes_held(alone_daemon, "alone", stop_alone)
    d = await start_daemon()
    engine = d.daemon.engine

    async def both() -> list[HaltState | None]:
        stop = asyncio.create_task(engine.on_journal_unwritable("disk full (test)"))
        await asyncio.sleep(0)  # the journal stop is under way
        halt = asyncio.create_task(engine.halt())
        await stop
        return [None, await halt]

    answers, joined = await _halted_with_deletes_held(d, "joined", both)
    assert max(joined.values()) <= max(alone.values()), (alone, joined)
    assert isinstance(answers[1], HaltState)
    assert answers[1].halted


async def test_resume_waits_for_a_halt_whose_client_hung_up(start_daemon: StartDaemon) -> None:
    """The client of `execd halt` hangs up while the venue holds the cancels: the halt goes
    on (a kill switch does not stop half way), and a `resume` right after waits for it to
    end, so its listing never meets a plan submitted after the resume."""
    d = await start_daemon()
    engine = d.daemon.engine
    await d.submit(_plan("hung"))
    await wait_resting(d, "hung")
    await d.venue.fail_next_requests(100, delay=HOLD, method="DELETE", path="/v2/orders")
    halt = asyncio.create_task(engine.halt())

    async def cancel_sent() -> bool:
        return any(k.startswith("DELETE ") for k in d.venue.services.requests)

    await d.wait_until(cancel_sent, "a cancel reached the venue")
    halt.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await halt
    await engine.resume()
    status = await engine.status("hung")
    assert status.state == "halted"
    assert [o["order"]["status"] for o in await d.orders("hung")] == ["canceled"]
    await d.venue.clear_faults()
    await d.check()
