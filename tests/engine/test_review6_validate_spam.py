"""Review 6: a plan submit's validation reads (`Priority.VALIDATE`) go before new orders.

Lane leg made them pass the backlog of new orders (a user waits at the socket). But they
are paid for every submit, refused ones too (the calendar and the positions are read
before the document's symbols are checked), and nothing bounds how often a client may
submit. A client that retries a refused plan in a loop (a cron job, a script's retry)
then holds every grant of the budget: the running plan's legs, waiting for new-order
grants, place nothing while it lasts — a silent stall of money that was meant to trade.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from execd.control.protocol import ControlError
from tests.engine.conftest import StartDaemon
from tests.engine.test_daemon_cancel_backlog import _backlogged
from tests.engine.test_leg_withdrawn import B_SYMBOLS, _buys, _two_plans

pytestmark = pytest.mark.slow

SPAM_SECONDS = 4.0
"""Each window's length: at 60 requests a minute (one a second) plan B places ~4."""


async def test_a_client_retrying_a_refused_submit_does_not_stall_running_legs(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    d = await start_daemon(**_two_plans(tmp_path))
    b = (await d.submit(_buys("b", B_SYMBOLS))).plan_id
    await _backlogged(d, b)
    refused = {"plan_id": "bad", "legs": [{"symbol": "NOPE", "side": "buy", "qty": "1"}]}
    stop = asyncio.Event()
    refusals = 0

    async def retry_loop() -> None:
        nonlocal refusals
        while not stop.is_set():
            with contextlib.suppress(ControlError):
                await d.daemon.engine.submit(refused)
            refusals += 1

    quiet_start = len(await d.orders(b))
    await asyncio.sleep(SPAM_SECONDS)  # the baseline window, side by side with the spam's
    quiet = len(await d.orders(b)) - quiet_start
    before = len(await d.orders(b))
    spammers = [asyncio.create_task(retry_loop()) for _ in range(4)]
    try:
        await asyncio.sleep(SPAM_SECONDS)  # the spam's duration is the scenario, not a sync
    finally:
        stop.set()
        await asyncio.gather(*spammers)
    placed = len(await d.orders(b)) - before
    assert refusals > 0
    await d.daemon.engine.cancel(b)
    assert quiet >= 3, f"no backlog to starve: plan B placed {quiet} in the quiet window"
    assert placed * 2 >= quiet, (
        f"plan B placed {placed} orders in {SPAM_SECONDS:g} s while {refusals} refused "
        f"submits were retried; {quiet} in the same time without them"
    )


FAT_FINGER = {"plan_id": "fat", "legs": [{"symbol": "B000", "side": "buy", "qty": "100000"}]}
"""A plan the risk caps refuse, but only after the venue was read (the positions, and the
account's equity for the equity-relative caps): each retry spends validation reads."""


@pytest.mark.xfail(
    strict=True,
    reason="spam lane: with validation reads always waiting, a running plan's background"
    " reads (its buys' release account read) are never granted: plan B places nothing",
)
async def test_plan_b_places_orders_while_the_spam_runs(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    """Stricter than the test above: plan B is counted while the spammers still run (they
    are cancelled at once after), not once they were gathered (which let B place in the
    seconds their last submits took); and B is accepted while the spam runs, so that every
    request B needs — its buys' release read of the account too — meets the spam's reads."""
    d = await start_daemon(**_two_plans(tmp_path))
    attempts = 0

    async def retry_loop() -> None:
        nonlocal attempts
        while True:
            attempts += 1
            with contextlib.suppress(ControlError):
                await d.daemon.engine.submit(FAT_FINGER)

    spammers = [asyncio.create_task(retry_loop()) for _ in range(4)]
    try:
        b = (await d.submit(_buys("b", B_SYMBOLS))).plan_id
        await asyncio.sleep(SPAM_SECONDS)  # the spam's duration is the scenario, not a sync
        placed = len(await d.orders(b))  # counted while the spam still runs
    finally:
        for task in spammers:
            task.cancel()
        await asyncio.gather(*spammers, return_exceptions=True)
    assert attempts > len(spammers), "the spam's submits did not go round"
    quiet_start = len(await d.orders(b))
    await asyncio.sleep(SPAM_SECONDS)  # the baseline window, side by side with the spam's
    quiet = len(await d.orders(b)) - quiet_start
    await d.daemon.engine.cancel(b)
    assert quiet >= 3, f"no backlog to starve: plan B placed {quiet} in the quiet window"
    assert placed * 2 >= quiet, (
        f"plan B placed {placed} orders in {SPAM_SECONDS:g} s while {attempts} refused "
        f"submits were retried; {quiet} in the same time without them"
    )
