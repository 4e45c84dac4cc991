"""Recovery meets a fill the venue reports before its price exists (LESSONS).

A resting buy fills while no daemon runs, and the venue's order still shows
`filled_avg_price: null` when the next daemon starts (the simulator's `price_lag` fault).
Recovery must record that fill once, at the venue's price, never a guessed one. It used
to refuse the start at once (`RecoveryError`, systemd restarting it in a loop until the
price appeared); now it re-reads the order for a bounded time, then refuses naming it.
"""

from __future__ import annotations

import asyncio
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from execd.engine import recovery
from execd.engine.recovery import RecoveryError
from execd.sim.venue import SimVenue
from tests.engine.conftest import DEADLINE, Harness, StartDaemon, TapeQuote, write_tape
from tests.engine.test_daemon_restart import (
    LEAVE,
    PATIENT,
    _journal_fills,
    _wait_resting,
    outside_venue,
)

pytestmark = pytest.mark.slow

PLAN = {
    "plan_id": "unpriced",
    "legs": [{"symbol": "ACME", "side": "buy", "qty": "20", "limit_price": "50.00"}],
}


def _tape(tmp_path: Path) -> Path:
    """The ask falls through the buy's limit 3 s in (time for the first daemon to rest it)."""
    return write_tape(
        tmp_path / "drop.jsonl",
        {
            "ACME": [TapeQuote(t / 5, Decimal("50.10"), Decimal("50.12")) for t in range(15)]
            + [TapeQuote(3 + t / 5, Decimal("49.90"), Decimal("49.95")) for t in range(100)]
        },
        start=time(10, 0),
    )


async def _filled_unpriced_while_down(start_daemon: StartDaemon, venue: SimVenue) -> Harness:
    """The plan's buy rests, the daemon stops leaving it, it fills with its price hidden."""
    await venue.set_avg_price_lag(3600.0)
    first = await start_daemon(venue=venue, **LEAVE, **PATIENT)
    await first.submit(PLAN)
    await _wait_resting(first, "unpriced")
    await first.stop()

    async def filled_unpriced() -> bool:
        orders = [e["order"] for e in await first.orders("unpriced")]
        return [(o["status"], o["filled_avg_price"]) for o in orders] == [("filled", None)]

    await first.wait_until(filled_unpriced, "the buy to fill, unpriced, while no daemon runs")
    return first


async def _venue_price(d: Harness) -> Decimal:
    [entry] = await d.orders("unpriced")
    return Decimal(entry["order"]["filled_avg_price"])


async def test_recovery_waits_for_the_fill_price_then_records_the_fill_once(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """The next start finds the fill unpriced: it says so (`fill_price_pending`, naming the
    order), re-reads the order until the venue prices it, records the fill once at that
    price, and completes the plan without sending anything."""
    async with outside_venue(tape=str(_tape(tmp_path))) as venue:
        first = await _filled_unpriced_while_down(start_daemon, venue)
        [order] = [e["order"] for e in await first.orders("unpriced")]
        with capture_logs() as logs:
            starting: asyncio.Future[Harness] = asyncio.ensure_future(
                start_daemon(venue=venue, directory=first.directory, **PATIENT)
            )

            async def pending() -> bool:
                return starting.done() or any(e["event"] == "fill_price_pending" for e in logs)

            await first.wait_until(pending, "recovery to wait for the fill price")
            assert not starting.done()
            await venue.set_avg_price_lag(0.0)  # the venue prices the fill
            second = await asyncio.wait_for(starting, DEADLINE)
        [waiting] = [e for e in logs if e["event"] == "fill_price_pending"]
        assert waiting["client_order_id"] == order["client_order_id"]
        assert waiting["log_level"] == "warning"
        second.plans.append("unpriced")
        status = await second.finish("unpriced")
        assert status.state == "completed", status.reason
        assert status.legs[0].filled_qty == Decimal(20)
        orders = await second.orders("unpriced")
        assert [e["order"]["client_order_id"] for e in orders] == [order["client_order_id"]]
        price = await _venue_price(second)
        await second.check()
        await second.stop()
        fills = await _journal_fills_priced(first.directory)
        assert fills == [(Decimal(20), price)]


async def test_a_price_that_never_comes_refuses_the_start_naming_the_order(
    start_daemon: StartDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Still unpriced after the bounded wait: the start is refused with the order's ids in
    the message, nothing recorded; once the venue prices it the next start records the
    fill once."""
    monkeypatch.setattr(recovery, "PRICE_WAIT_SECONDS", 0.6)
    async with outside_venue(tape=str(_tape(tmp_path))) as venue:
        first = await _filled_unpriced_while_down(start_daemon, venue)
        [order] = [e["order"] for e in await first.orders("unpriced")]
        with pytest.raises(Exception) as refused:
            await start_daemon(venue=venue, directory=first.directory, **PATIENT)
        error = _recovery_error(refused.value)
        assert order["client_order_id"] in str(error)
        assert order["id"] in str(error)
        assert "filled_avg_price" in str(error)
        assert await _journal_fills(first.directory, "unpriced", 0) == []

        await venue.set_avg_price_lag(0.0)
        third = await start_daemon(venue=venue, directory=first.directory, **PATIENT)
        third.plans.append("unpriced")
        status = await third.finish("unpriced")
        assert status.state == "completed", status.reason
        price = await _venue_price(third)
        await third.check()
        await third.stop()
        assert await _journal_fills_priced(first.directory) == [(Decimal(20), price)]


def _recovery_error(exc: BaseException) -> RecoveryError:
    """The `RecoveryError` in what the daemon raised (a task group wraps it)."""
    if isinstance(exc, RecoveryError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            try:
                return _recovery_error(inner)
            except AssertionError:
                continue
    cause: Any = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc:
        return _recovery_error(cause)
    raise AssertionError(f"no RecoveryError in {exc!r}")


async def _journal_fills_priced(directory: Path) -> list[tuple[Decimal, Decimal]]:
    from execd.adapters.journal import Journal

    async with await Journal.open(directory / "journal.db") as journal:
        return [(f.qty, f.price) for f in await journal.fills_for_leg("unpriced", 0)]
