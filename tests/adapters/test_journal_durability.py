"""The journal under stress: a SIGKILL mid-write, and a thousand writers beside a live loop."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from execd.adapters.journal import Journal
from execd.domain.ids import client_order_id
from execd.domain.order_state import OrderStatus
from execd.domain.types import Side

from .conftest import DEADLINE
from .test_journal import FakeLeg

T0 = datetime(2026, 5, 11, 13, 30, tzinfo=UTC)

# The victim: records intents from eight coroutines at once (so the kill can land
# inside a group commit) and prints each client order id only after its
# record_intent returned, i.e. after the journal said it was durable.
CHILD = r"""
import asyncio, sys
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

from execd.adapters.journal import Journal
from execd.domain.ids import client_order_id
from execd.domain.types import Side, Urgency

LEG = SimpleNamespace(index=0, symbol="TQQQ", side=Side.SELL, qty=Decimal(1), notional=None,
                      limit_price=None, urgency=Urgency.NORMAL)

async def intend(journal, attempt):
    cid = client_order_id("crash", 0, attempt)
    await journal.record_intent(
        cid, plan_id="crash", leg_index=0, attempt=attempt, kind="place", order_type="limit",
        side=Side.SELL, qty=Decimal("1.5"), limit_price=Decimal("50.01"), at=datetime.now(UTC))
    sys.stdout.write(cid + "\n")
    sys.stdout.flush()

async def main(path):
    journal = await Journal.open(path)
    await journal.record_plan("crash", datetime.now(UTC), "{}", legs=[LEG])
    for start in range(0, 999_000, 8):
        await asyncio.gather(*(intend(journal, a) for a in range(start, start + 8)))

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.slow
async def test_sigkill_mid_write_loses_no_committed_intent(tmp_path: Path) -> None:
    """SIGKILL a process writing intents: every intent it saw committed is there, file sound."""
    path = tmp_path / "journal.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    acknowledged: list[str] = []
    try:
        async with asyncio.timeout(DEADLINE * 4):
            while len(acknowledged) < 200:
                line = await proc.stdout.readline()
                if not line:
                    error = await proc.stderr.read()
                    pytest.fail(f"the writer died before it was killed: {error.decode()}")
                acknowledged.append(line.decode().strip())
    finally:
        proc.kill()  # SIGKILL: no atexit, no close(), no flush
        rest = await proc.stdout.read()
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    acknowledged += rest.decode().split()

    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        check.close()
    async with await Journal.open(path) as j:
        orders = {o.client_order_id: o for o in await j.open_orders()}
    missing = [cid for cid in acknowledged if cid not in orders]
    assert not missing, f"{len(missing)} acknowledged intents lost, first {missing[0]}"
    assert all(orders[cid].qty == Decimal("1.5") for cid in acknowledged)
    assert all(o.status is OrderStatus.PENDING_SUBMIT for o in orders.values())


async def test_thousand_writes_never_block_the_loop(tmp_path: Path) -> None:
    """A heartbeat keeps ticking while 1,000 writes wait on the journal thread, then all land.

    An outside connection holds SQLite's write lock, so the journal thread is stuck
    in its busy wait for as long as the test likes: if any of that waiting happened
    on the event loop, the heartbeat could not tick and the test would time out (or the
    write would give up at the busy timeout and be done before the lock is released).

    Judged by order, not by the machine's speed: every write is queued before the first
    beat (tasks start in creation order), the beats happen while the lock is held (it is
    released only after them), and no write is done until then. (It used to also require
    every beat gap under 0.25 s; the first gap timed the loop starting the 1,000 writes,
    0.44 s on a loaded machine — the CI flake.)
    """
    path = tmp_path / "journal.db"
    async with await Journal.open(path) as j:
        await j.record_plan("p", T0, "{}", legs=[FakeLeg(0, "TQQQ", Side.SELL, qty=Decimal(1))])
        await j.record_intent(
            cid := client_order_id("p", 0, 0),
            plan_id="p",
            leg_index=0,
            attempt=0,
            kind="place",
            order_type="market",
            side=Side.SELL,
            qty=Decimal(1),
            limit_price=None,
            at=T0,
        )
        ticks = 0
        ticked_enough = asyncio.Event()

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)  # the beat being counted, not a wait
                ticks += 1
                if ticks == 50:
                    ticked_enough.set()

        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")
        try:
            async with asyncio.TaskGroup() as tg:
                writes = [
                    tg.create_task(
                        j.record_fill(f"ex-{i}", cid, Decimal("0.001"), Decimal("10"), T0)
                        if i % 2
                        else j.record_event(cid, "v", "partial_fill", T0, {"i": i})
                    )
                    for i in range(1000)
                ]
                # Started after every write handed its call to the journal thread.
                beat = tg.create_task(heartbeat())
                async with asyncio.timeout(DEADLINE):
                    await ticked_enough.wait()
                assert not any(w.done() for w in writes)  # all still behind the lock
                locker.execute("COMMIT")
                async with asyncio.timeout(DEADLINE):
                    await asyncio.gather(*writes)
                beat.cancel()
        finally:
            if locker.in_transaction:
                locker.execute("ROLLBACK")
            locker.close()
        assert all(w.result() for w in writes[1::2])
        assert await j.filled_qty_for_leg("p", 0) == Decimal("0.500")
        assert len(await j.events_for_order(cid)) == 500
