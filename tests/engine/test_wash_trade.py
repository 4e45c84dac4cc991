"""Wash trades across plans: a market fallback first cancels execd's own opposite orders.

Alpaca refuses an order that could trade with an opposite-side order of the same account
("potential wash trade detected", ALPACA.md §7), and the simulated venue enforces it the
same way. A plan's buy resting below the market must therefore not make another plan's
market-sell fallback fail: the leg cancels execd's own opposite order first.
"""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.engine.conftest import StartDaemon, TapeQuote, write_tape

pytestmark = pytest.mark.slow


async def test_market_fallback_cancels_own_opposite_order_first(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """Plan A rests a capped buy; plan B's high-urgency sell falls back to a market order,
    which succeeds because A's buy is cancelled first (never a wash-trade refusal)."""
    quiet = [TapeQuote(i * 0.2, Decimal("40.00"), Decimal("40.05")) for i in range(300)]
    tape = write_tape(tmp_path / "quiet.jsonl", {"ACME": quiet}, start=time(10, 0))
    d = await start_daemon(
        sim={"tape": str(tape), "positions": {"ACME": "50"}},
        execution={"max_repegs_per_order": 0, "fallback_order": "market"},
        ladder={"fallback_timeout_seconds": 15.0},
    )
    resting = await d.submit(
        {
            "plan_id": "wash-a",
            "legs": [{"symbol": "ACME", "side": "buy", "qty": "10", "limit_price": "39.00"}],
        }
    )

    async def a_is_resting() -> bool:
        # A's step-4 order (its re-pegs are 0): a limit at its cap that rests 15 s. (Its
        # first limit is cancelled within a timeout, which would race B's fallback.)
        orders = await d.orders(resting.plan_id)
        return len(orders) >= 2 and orders[-1]["order"]["status"] == "new"

    await d.wait_until(a_is_resting, "plan A's capped buy to rest at the venue")
    selling = await d.run(
        {
            "plan_id": "wash-b",
            "urgency": "high",
            "legs": [{"symbol": "ACME", "side": "sell", "qty": "5"}],
        }
    )
    assert selling.state == "completed", selling.reason
    sells = await d.orders("wash-b", 0)
    market = [o for o in sells if o["order"]["type"] == "market"]
    assert market, "the sell should have reached its market fallback"
    assert all(o["order"]["status"] != "rejected" for o in sells)
    buys = await d.orders("wash-a", 0)
    assert buys[0]["order"]["status"] == "canceled"
    canceled_at = max(e["timestamp"] for e in buys[0]["events"] if e["status"] == "canceled")
    assert canceled_at <= market[0]["order"]["created_at"]
    await d.finish(resting.plan_id)
