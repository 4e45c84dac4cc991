"""Review 10: the kill switch after the core split (engine/kill_switch.py, venue_reads.py).

Each test here is a defect found by trying to break the halt: it failed (strict xfail) on the
code it was written against, and passes since fixhalt.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from execd.cli import render
from execd.control.protocol import ControlError, ErrorCode, HaltState
from tests.engine.conftest import StartDaemon
from tests.engine.test_daemon_restart import LEAVE, outside_venue
from tests.engine.test_daemon_streams import wait_resting
from tests.engine.test_halt_twice import _deletes_per_order

pytestmark = pytest.mark.slow

HOLD = 1.0
"""Seconds the venue holds each matching request: the first halt is still running."""


def _plan(plan_id: str) -> dict[str, Any]:
    return {
        "plan_id": plan_id,
        "legs": [{"symbol": "SPY", "side": "buy", "qty": "1", "limit_price": "1.00"}],
    }


async def test_a_halt_after_a_queued_resume_leaves_the_daemon_halted(
    start_daemon: StartDaemon,
) -> None:
    """halt #1 is cancelling (the venue holds its DELETEs); `execd resume` comes and waits
    for it (as it must); then `execd halt` #2 comes, joins halt #1 and is answered
    `halted=True`. When the pass ends, the resume queued first goes on and un-halts the
    daemon: the user's last word was "halt", the daemon told them "halted", and it now
    accepts (and trades) new plans. The later halt must win (or the resume be refused)."""
    d = await start_daemon()
    engine = d.daemon.engine
    await d.submit(_plan("first"))
    await wait_resting(d, "first")
    await d.venue.fail_next_requests(100, delay=HOLD, method="DELETE", path="/v2/orders")
    halt1 = asyncio.create_task(engine.halt())

    async def cancel_sent() -> bool:
        return any(k.startswith("DELETE ") for k in d.venue.services.requests)

    await d.wait_until(cancel_sent, "halt #1's cancel reached the venue")
    resume = asyncio.create_task(engine.resume())
    await asyncio.sleep(0)  # the resume is waiting for halt #1
    halt2 = asyncio.create_task(engine.halt())
    first, _, second = await asyncio.gather(halt1, resume, halt2)
    await d.venue.clear_faults()
    assert isinstance(first, HaltState)
    assert isinstance(second, HaltState)
    assert second.halted  # the user was told: halted
    assert (await engine.health()).halted, "halt #2 said halted, the daemon is not"
    with pytest.raises(ControlError) as refused:
        await d.submit(_plan("after"))
    assert refused.value.code == ErrorCode.HALTED  # `code` is a plain str (ControlError)


async def test_a_halt_at_a_leave_orders_shutdown_cancels_or_is_refused(
    start_daemon: StartDaemon,
) -> None:
    """`execd halt` and a stop with `[shutdown] working_orders = "leave"` (a routine
    `systemctl restart`) come together. `_abandon` cancels the tasks tracked when it starts;
    the halt's pass starts a moment later, is never cancelled nor waited for, and runs on
    after the daemon closed its REST gateway: it crashes (`halt_crashed`, RuntimeError
    "RestGateway used outside `async with`"), the user's halt gets an internal error, and
    the order the user halted is left working. Either the halt is refused as
    `shutting_down` (the user knows to act), or it cancels the order before the gateway
    closes."""
    async with outside_venue() as venue:
        d = await start_daemon(venue=venue, **LEAVE)
        engine = d.daemon.engine
        await d.submit(_plan("halted"))
        resting = await wait_resting(d, "halted")
        halt = asyncio.create_task(engine.halt())
        await d.stop()
        try:
            answer: object = await halt
        except Exception as exc:
            answer = exc
        order = venue.exchange.get_order(resting["order"]["id"])
        if isinstance(answer, ControlError):
            assert answer.code == ErrorCode.SHUTTING_DOWN, answer
        else:
            assert isinstance(answer, HaltState), f"the halt answered {answer!r}"
            assert order["status"] == "canceled", "the halted order is still working"


async def test_a_halt_that_could_not_cancel_says_which_orders_still_work(
    start_daemon: StartDaemon,
) -> None:
    """The venue answers 500 to every DELETE. The halt logs `halt_cancels_refused` with the
    order's id, but its answer is a plain `HaltState(halted=True, canceled_orders=0)`:
    `execd halt` prints "execd halted: 0 working order(s) canceled" and exits 0 while the
    order works on (the CLI's own comment says the halt "answers with the orders it could
    not cancel"; it does not). The user at the terminal must be told which order is left."""
    # The halt's deadline is 3 x confirm_timeout: 3 s, not 9 s, of refused cancels.
    d = await start_daemon(ladder={"confirm_timeout_seconds": 1.0})
    engine = d.daemon.engine
    await d.submit(_plan("stuck"))
    resting = await wait_resting(d, "stuck")
    client_order_id = resting["order"]["client_order_id"]
    await d.venue.fail_next_requests(1000, status=500, method="DELETE", path="/v2/orders")
    state = await engine.halt()
    still = d.venue.exchange.get_order(resting["order"]["id"])
    await d.venue.clear_faults()
    assert still is not None
    assert still["status"] == "new"  # the premise: the order is still working
    assert client_order_id in render.halt_line(state), render.halt_line(state)


async def test_a_halt_sends_each_working_order_one_cancel(start_daemon: StartDaemon) -> None:
    """Three legs resting; one `execd halt`. `stop_unfinished` stops every leg, and each
    stopped leg DELETEs its own order, while the halt's listing (a moment later, the order
    still `new`) DELETEs the same order again: two cancels per order out of the request
    budget the halt's cancels share (the very waste `halt_joined` removed between two
    halts). With hundreds of working orders the halt takes twice the minutes it needs at
    200 requests a minute, and the CLI stops waiting at 90 s. Measured: 2 per order."""
    d = await start_daemon()
    legs = [
        {"symbol": symbol, "side": "buy", "qty": "1", "limit_price": "1.00"}
        for symbol in ("SPY", "AAPL", "MSFT")
    ]
    await d.submit({"plan_id": "three", "legs": legs})

    async def resting() -> bool:
        live = [o for o in await d.orders("three") if o["order"]["status"] == "new"]
        return len(live) == len(legs)

    await d.wait_until(resting, "three orders resting")
    await d.daemon.engine.halt()

    async def ended() -> bool:
        return (await d.daemon.engine.status("three")).finished_at is not None

    await d.wait_until(ended, "the plan ended")
    deletes = await _deletes_per_order(d, "three")
    assert len(deletes) == len(legs)
    assert max(deletes.values()) == 1, deletes


async def test_a_halt_that_could_not_list_the_venue_does_not_answer_like_a_clean_one(
    start_daemon: StartDaemon,
) -> None:
    """The venue answers 500 to every `GET /v2/orders`: the halt's three listings all fail
    (`halt_listing_incomplete` at error, "execd orders may still be working: check the
    venue"), yet its answer is `HaltState(halted=True, canceled_orders=0)` — the very
    answer of a halt that listed the venue and found nothing working. `execd halt` prints
    "0 working order(s) canceled" and exits 0: the user cannot tell "nothing was working"
    from "could not look" (an order of a leg already ended, a POST in flight, is only ever
    found by that listing)."""
    d = await start_daemon()
    engine = d.daemon.engine
    clean = await engine.halt()
    await engine.resume()
    await d.venue.fail_next_requests(1000, status=500, method="GET", path="/v2/orders")
    blind = await engine.halt()
    await d.venue.clear_faults()
    assert blind.halted
    assert render.halt_line(blind) != render.halt_line(clean), render.halt_line(blind)


async def test_a_halt_running_when_a_leave_orders_shutdown_starts_ends_before_the_gateway(
    start_daemon: StartDaemon,
) -> None:
    """The other order of the race above: the halt's pass is already cancelling (the venue
    holds its DELETEs) when a `working_orders = "leave"` stop begins. The shutdown waits
    for the pass (it is the user's later word) instead of cancelling it half way: the halt
    answers, and the order it halted is cancelled, not left working."""
    async with outside_venue() as venue:
        d = await start_daemon(venue=venue, **LEAVE)
        engine = d.daemon.engine
        await d.submit(_plan("halted"))
        resting = await wait_resting(d, "halted")
        await venue.fail_next_requests(100, delay=HOLD, method="DELETE", path="/v2/orders")
        halt = asyncio.create_task(engine.halt())

        async def cancel_sent() -> bool:
            return any(k.startswith("DELETE ") for k in venue.services.requests)

        await d.wait_until(cancel_sent, "the halt's cancel reached the venue")
        await d.stop()
        answer = await halt
        await venue.clear_faults()
        assert isinstance(answer, HaltState)
        assert answer.halted
        assert answer.clean, answer
        order = venue.exchange.get_order(resting["order"]["id"])
        assert order["status"] == "canceled", "the halted order is still working"
