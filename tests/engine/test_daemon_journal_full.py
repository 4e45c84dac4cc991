"""Issue 11 §5: a journal that cannot be written is a final state, not a guess.

The journal's disk fills mid-plan (SQLite's ``PRAGMA max_page_count`` on the daemon's own
connection: a full disk without root). Before: `status` said `partial` while the journal
said `accepted`, `health` stayed fine, and after a restart the plan resumed and bought
again. Now: the daemon stops sending, cancels its working order, says why in `health`
and the plan's status, and a restart (space back) reconciles but stays halted.
"""

from __future__ import annotations

import sqlite3
from datetime import time
from pathlib import Path

import pytest

from execd.cli.render import healthy
from execd.control.protocol import ControlError, ErrorCode
from tests.engine.conftest import StartDaemon, runaway, write_tape
from tests.engine.test_daemon_restart import outside_venue

pytestmark = pytest.mark.slow

PLAN = {"plan_id": "full", "legs": [{"symbol": "ACME", "side": "buy", "qty": "100"}]}


async def test_full_journal_stops_trading_and_a_restart_stays_halted(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """A runaway quote keeps the leg re-pegging (a journal write per re-peg); the disk
    fills: the plan ends `halted` naming the journal, its order is cancelled at the venue,
    health reports the failure; after a restart nothing new is sent and the plan stays
    halted until the user decides."""
    tape = write_tape(
        tmp_path / "runaway.jsonl",
        {"ACME": runaway("50.00", spread="0.03", step="0.01", every=0.5, seconds=60.0)},
        start=time(10, 0),
    )
    async with outside_venue(tape=str(tape)) as venue:
        d = await start_daemon(
            venue=venue,
            execution={"max_repegs_per_order": 50},
            better_orders={"normal_timeout_seconds": 0.3},
        )
        await d.submit(PLAN)

        async def resting() -> bool:
            return any(o["order"]["status"] == "new" for o in await d.orders("full"))

        await d.wait_until(resting, "the leg's first order to rest")

        def fill_the_disk(conn: sqlite3.Connection) -> None:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")

        await d.daemon.journal._call(fill_the_disk)
        status = await d.finish("full")
        assert status.state == "halted", status
        assert status.reason is not None
        assert "journal unwritable" in status.reason
        health = await d.daemon.engine.health()
        assert health.journal_error is not None
        assert "full" in health.journal_error
        assert health.halted
        assert not healthy(health)
        with pytest.raises(ControlError) as refused:
            await d.daemon.engine.resume()
        assert refused.value.code == ErrorCode.HALTED

        async def nothing_working() -> bool:
            return all(
                o["order"]["status"] not in ("new", "accepted") for o in await d.orders("full")
            )

        await d.wait_until(nothing_working, "the working order to be cancelled")
        await d.check()
        await d.stop()

        before = {o["order"]["id"] for o in (await venue.history())["orders"]}
        again = await start_daemon(venue=venue, directory=d.directory)
        assert (await again.daemon.engine.health()).halted
        # the recovered plan is stopped at once, but ends on the loop: wait for its end
        after = await again.finish("full")
        assert after.state == "halted", after
        assert {o["order"]["id"] for o in (await venue.history())["orders"]} == before
        with pytest.raises(ControlError):
            await again.submit({**PLAN, "plan_id": "full-2"})
        await again.stop()
