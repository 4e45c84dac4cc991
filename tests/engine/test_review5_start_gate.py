"""Review 5: the engine's start gate (`engine.start_gate`, 16 leg starts a loop turn),
attacked on the real daemon: a halt while hundreds of released buys wait in it.

A leg waiting in the gate has sent nothing; after the halt it must end with nothing sent,
its ledger reservation released (no cash held for a leg that never runs, none counted
twice), and the gate must drain. The venue's own order log is the judge of what was sent.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from tests.engine.conftest import Harness, StartDaemon

pytestmark = pytest.mark.slow

UNIVERSE = [f"G{i:04d}" for i in range(250)]


async def _created_after(d: Harness, plan_id: str, at: datetime) -> list[str]:
    return [
        o["order"]["client_order_id"]
        for o in await d.orders(plan_id)
        if datetime.fromisoformat(o["order"]["created_at"]) >= at
    ]


async def test_a_halt_while_250_buys_wait_in_the_start_gate(start_daemon: StartDaemon) -> None:
    """250 one-share buys are released in one wave and queue at the gate; the halt lands
    while most of them still wait. Every leg ends (none left `pending`/`working`), a leg
    with no order at the venue ends `canceled`, nothing is created at the venue after the
    halt, nothing is left working, the ledger holds no buy, and the gate is empty."""
    d = await start_daemon(sim={"symbols": UNIVERSE, "positions": {}})
    engine = d.daemon.engine
    ctx = engine._ctx
    plan_id = "gate-halt"
    await d.submit(
        {"plan_id": plan_id, "legs": [{"symbol": s, "side": "buy", "qty": "1"} for s in UNIVERSE]}
    )
    loop = asyncio.get_running_loop()
    end = loop.time() + 20.0
    while ctx.starts.waiting < 100:  # the wave is in the gate (polled every turn)
        assert loop.time() < end, "the release wave never queued at the gate"
        await asyncio.sleep(0)
    await engine.halt()
    halted_at = d.venue.clock.now()

    async def ended() -> bool:
        return (await engine.status(plan_id)).finished_at is not None

    await d.wait_until(ended, "the halted plan's end")
    status = await engine.status(plan_id)
    assert status.state == "halted", status.state
    placed = {int(o["order"]["client_order_id"].split("-")[2]) for o in await d.orders(plan_id)}
    states = {leg.index: leg.state for leg in status.legs}
    assert not [i for i, s in states.items() if s in ("pending", "working")], states
    unsent = {i: s for i, s in states.items() if i not in placed and s != "canceled"}
    assert unsent == {}, f"legs with no order ended other than canceled: {unsent}"
    assert len(placed) < len(UNIVERSE), "the halt came after every leg placed"
    await asyncio.sleep(0.3)  # anything in flight lands (then it is judged)
    assert await _created_after(d, plan_id, halted_at) == []
    assert ctx.ledger.all_buys() == {}
    assert ctx.ledger.cash() == {}
    assert ctx.starts.waiting == 0
    await engine.resume()
