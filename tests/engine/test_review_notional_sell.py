"""Adversarial review: a notional sell never opens a short (a qty sell beyond the position
is refused at submit; a notional one is not checked at all)."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from pathlib import Path

import pytest

from execd.control.protocol import ControlError
from tests.engine.conftest import StartDaemon, TapeQuote, write_tape

pytestmark = pytest.mark.slow


async def test_a_notional_sell_without_a_position_does_not_short(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    quiet = [TapeQuote(i * 0.2, Decimal("40.00"), Decimal("40.05")) for i in range(300)]
    tape = write_tape(tmp_path / "quiet.jsonl", {"ACME": quiet}, start=time(10, 0))
    d = await start_daemon(sim={"tape": str(tape), "positions": {"AAPL": "10"}})
    plan = {
        "plan_id": "notional-short",
        "legs": [{"symbol": "ACME", "side": "sell", "notional": "400", "urgency": "high"}],
    }
    try:
        await d.submit(plan)
    except ControlError:
        return  # refused at submit: nothing sent

    async def placed() -> bool:
        return bool(await d.orders("notional-short"))

    await d.wait_until(placed, "the notional sell's first order")
    orders = await d.orders("notional-short")
    shorts = [e["order"] for e in orders if e["order"]["status"] != "rejected"]
    # The venue took a 10-share sell of a symbol the account does not hold: a short.
    assert shorts == [], f"a short sale was sent: {shorts[0]['qty']} ACME with none held"
    await d.daemon.engine.cancel("notional-short")


async def test_a_notional_sell_beyond_the_position_sells_only_the_position(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """$400 of ACME at $40 is 10 shares; with 5 held the leg sells 5, never short."""
    quiet = [TapeQuote(i * 0.2, Decimal("40.00"), Decimal("40.05")) for i in range(300)]
    tape = write_tape(tmp_path / "quiet.jsonl", {"ACME": quiet}, start=time(10, 0))
    d = await start_daemon(sim={"tape": str(tape), "positions": {"ACME": "5"}})
    plan = {
        "plan_id": "notional-capped",
        "legs": [{"symbol": "ACME", "side": "sell", "notional": "400", "urgency": "high"}],
    }
    await d.submit(plan)

    async def placed() -> bool:
        return bool(await d.orders("notional-capped"))

    await d.wait_until(placed, "the notional sell's first order")
    sent = [e["order"] for e in await d.orders("notional-capped")]
    status = await d.daemon.engine.status("notional-capped")
    await d.daemon.engine.cancel("notional-capped")
    assert all(Decimal(o["qty"]) == 5 for o in sent), sent
    assert status.legs[0].qty == Decimal(5), (status.legs[0].qty, status.legs[0].reason)
    assert "capped from 10" in (status.legs[0].reason or "")
