"""Adversarial review: a notional buy that waits for a sell's cash is sized when it is
released, from a fresh quote — not from the quote of its first sizing wave."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.engine.conftest import StartDaemon, TapeQuote, write_tape

pytestmark = pytest.mark.slow


async def test_a_waiting_notional_buy_is_resized_at_release(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    acme = [TapeQuote(i * 0.2, Decimal("40.00"), Decimal("40.02")) for i in range(15)] + [
        TapeQuote(3 + i * 0.2, Decimal("80.00"), Decimal("80.02")) for i in range(200)
    ]
    beta = [TapeQuote(i * 0.2, Decimal("20.00"), Decimal("20.02")) for i in range(30)] + [
        TapeQuote(6 + i * 0.2, Decimal("21.00"), Decimal("21.02")) for i in range(200)
    ]
    tape = write_tape(tmp_path / "t.jsonl", {"ACME": acme, "BETA": beta}, start=time(10, 0))
    d = await start_daemon(
        sim={"tape": str(tape), "cash": "9000", "positions": {"BETA": "1000"}},
        plans={"overlap_buys": True},
    )
    await d.submit(
        {
            "plan_id": "notional-wait",
            "legs": [
                {
                    "symbol": "BETA",
                    "side": "sell",
                    "qty": "1000",
                    "limit_price": "20.90",
                    "urgency": "high",
                },
                {"symbol": "ACME", "side": "buy", "notional": "10000", "urgency": "high"},
            ],
        }
    )

    async def buy_placed() -> bool:
        return bool(await d.orders("notional-wait", leg=1))

    await d.wait_until(buy_placed, "the ACME buy's first order")
    order = (await d.orders("notional-wait", leg=1))[0]["order"]
    cost = Decimal(order["qty"]) * Decimal(order["limit_price"])
    await d.daemon.engine.cancel("notional-wait")
    # ACME is at $80 when the buy is released: a $10k notional is ~125 shares, not ~250.
    assert cost <= Decimal("10100"), f"a $10,000 notional buy sent {order['qty']} ACME ({cost:.2f})"
