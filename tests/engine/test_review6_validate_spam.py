"""Review 6: a plan submit's validation reads (`Priority.VALIDATE`) go before new orders.

Lane leg made them pass the backlog of new orders (a user waits at the socket). But they
are paid for every submit, refused ones too (the positions, and the account for the
equity-relative risk caps, are read before the caps refuse), and nothing bounds how often
a client may submit. A client that retries a refused plan in a loop (a cron job, a
script's retry) then holds every grant of the budget: the running plan's legs, waiting for
new-order grants, place nothing while it lasts — a silent stall of money that was meant to
trade. The budget bounds the reads' lead over the running plans' requests (new orders and
background reads alike: a plan's buys start on one account read at `Priority.READ`, which
a line of validation reads kept back for as long as the spam lasted).

Plan B's orders are counted at the venue at the end of each window, while the spammers
still run (they are cancelled at once after). The budget is 240 requests a minute with a
burst of 4 (~4 grants a second), so a window of `WINDOW` seconds holds a dozen grants: the
reads' lead (2) is a small part of it, and the windows stay short.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import time
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from execd.adapters.budget import Priority
from execd.control.protocol import ControlError
from tests.engine.conftest import Harness, StartDaemon, TapeQuote, write_tape
from tests.engine.test_daemon_cancel_backlog import _budget

pytestmark = pytest.mark.slow

WINDOW = 3.0
"""Each window's length: at ~4 grants a second, plan B places ~12 in a quiet one."""

SPAMMERS = 8
"""Enough that a validation read always waits (each spammer has one in line or in flight)."""

SYMBOLS = [f"S{i:03d}" for i in range(28)]
"""Plan B's buys: more than two windows of grants, so that B's backlog lasts the test (and
within the data stream's 30 symbols, ALPACA.md §0.4)."""

FAT_FINGER = {"plan_id": "fat", "legs": [{"symbol": "S000", "side": "buy", "qty": "100000"}]}
"""A plan the risk caps refuse, but only after the venue was read (the positions, and the
account's equity for the equity-relative caps): each retry spends validation reads. Its
symbol is one plan B trades, the same side: its quote is fresh (no quote wait), and the
wash check lets it through to the caps."""


def _settings(directory: Path) -> dict[str, dict[str, Any]]:
    """A fast budget (240 a minute, 4 at once, ~4 a second after), and a tape on which no
    passive buy ever fills (bid 50.00, ask 50.02 all along) nor re-pegs within the test."""
    steady = [TapeQuote(i * 0.25, D("50.00"), D("50.02")) for i in range(240)]
    tape = write_tape(directory / "steady.jsonl", dict.fromkeys(SYMBOLS, steady), time(10))
    return {
        "gateway": {"requests_per_minute": 240, "cancel_reserve": 4, "request_burst": 4},
        "sim": {"tape": str(tape), "partial_fill_rate": 0.0, "positions": {}},
        "better_orders": {"normal_timeout_seconds": 60.0},
    }


def _plan_b() -> dict[str, Any]:
    return {"plan_id": "b", "legs": [{"symbol": s, "side": "buy", "qty": "1"} for s in SYMBOLS]}


async def _backlogged(d: Harness) -> None:
    async def ready() -> bool:
        waiting = _budget(d).statistics().waiting[Priority.NEW_ORDER]
        return waiting >= 10 and len(await d.orders("b")) >= 1

    await d.wait_until(ready, "a backlog of plan B's new orders")


async def _window(d: Harness) -> int:
    """Plan B's orders placed in one `WINDOW` (the window's length is the scenario)."""
    before = len(await d.orders("b"))
    await asyncio.sleep(WINDOW)
    return len(await d.orders("b")) - before


async def _while_spammed(d: Harness, body: Callable[[], Awaitable[int]]) -> tuple[int, int]:
    """`body`'s result, measured while `SPAMMERS` clients retry `FAT_FINGER` in a loop,
    and how many submits they made; the spammers are cancelled as soon as it returns."""
    attempts = 0

    async def retry_loop() -> None:
        nonlocal attempts
        while True:
            attempts += 1
            with contextlib.suppress(ControlError):
                await d.daemon.engine.submit(FAT_FINGER)

    spammers = [asyncio.create_task(retry_loop()) for _ in range(SPAMMERS)]
    try:
        result = await body()
    finally:
        for task in spammers:
            task.cancel()
        await asyncio.gather(*spammers, return_exceptions=True)
    return result, attempts


def _check(placed: int, quiet: int, attempts: int) -> None:
    """B keeps at least a third of its quiet pace: the reads take at most their lead (2)
    and one grant in three beyond it (`BudgetLedger.validate_lead`/`validate_refill`)."""
    assert attempts >= SPAMMERS, "the spam did not start"
    assert quiet >= 8, f"no backlog to starve: plan B placed {quiet} in the quiet window"
    assert placed * 3 >= quiet, (
        f"plan B placed {placed} orders in {WINDOW:g} s while {attempts} refused submits"
        f" were retried; {quiet} in the same time without them"
    )


async def test_a_client_retrying_a_refused_submit_does_not_stall_running_legs(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    """Plan B is running, its buys waiting for new-order grants; then the spam starts."""
    d = await start_daemon(**_settings(tmp_path))
    await d.submit(_plan_b())
    await _backlogged(d)
    quiet = await _window(d)  # the baseline, side by side with the spam's window
    placed, attempts = await _while_spammed(d, lambda: _window(d))
    await d.daemon.engine.cancel("b")
    _check(placed, quiet, attempts)


async def test_a_plan_accepted_during_the_spam_starts_its_legs(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    """Plan B is submitted while the spam runs: its buys start on one account read (a
    background read), which a line of validation reads kept back for as long as the spam
    lasted — B placed nothing (review 6, spam lane)."""
    d = await start_daemon(**_settings(tmp_path))

    async def accept_then_count() -> int:
        await d.submit(_plan_b())
        return await _window(d)

    placed, attempts = await _while_spammed(d, accept_then_count)
    await _backlogged(d)
    quiet = await _window(d)
    await d.daemon.engine.cancel("b")
    _check(placed, quiet, attempts)
