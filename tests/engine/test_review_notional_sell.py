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


@pytest.mark.xfail(
    strict=True,
    reason="intake.leg_errors checks only qty sells against the position, and runner._run_leg"
    " sizes a notional sell from the bid with no position check: $400 of ACME with none"
    " held sells 10 ACME short",
)
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
