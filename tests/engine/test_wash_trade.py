"""Wash trades across plans (issue 11 §10): the second plan is refused at submit.

Alpaca refuses an order that could trade with an opposite-side order of the same account
("potential wash trade detected", ALPACA.md §7), and the simulated venue enforces it the
same way. Two plans, one buying and one selling a symbol, used to both be accepted and the
venue refused one mid-run. Now the second plan is refused at submit, naming the first;
once the first has ended, the second runs.
"""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from pathlib import Path

import pytest

from execd.control.protocol import ControlError, ErrorCode
from tests.engine.conftest import StartDaemon, TapeQuote, write_tape

pytestmark = pytest.mark.slow


async def test_opposite_plan_is_refused_while_the_first_works(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """Plan A rests a capped buy of ACME; plan B selling ACME is refused at submit naming
    A, and the venue sees none of B's orders; after A is cancelled, B runs and completes
    with no order of either plan rejected."""
    quiet = [TapeQuote(i * 0.2, Decimal("40.00"), Decimal("40.05")) for i in range(300)]
    tape = write_tape(tmp_path / "quiet.jsonl", {"ACME": quiet}, start=time(10, 0))
    d = await start_daemon(
        sim={"tape": str(tape), "positions": {"ACME": "50"}},
        execution={"max_repegs_per_order": 0, "fallback_order": "market"},
        # A's step-4 limit rests 15 s; the passive style's 10 s re-check (A's first limit)
        # and 7 s high-urgency patience (B's) are not what is judged: 1 s each.
        ladder={
            "fallback_timeout_seconds": 15.0,
            "passive_timeout_seconds": 1.0,
            "passive_patience_high_seconds": 1.0,
        },
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
    plan_b = {
        "plan_id": "wash-b",
        "urgency": "high",
        "legs": [{"symbol": "ACME", "side": "sell", "qty": "5"}],
    }
    with pytest.raises(ControlError) as refused:
        await d.submit(plan_b)
    assert refused.value.code == ErrorCode.INVALID_PLAN
    assert "plan wash-a legs[0] is still buying it (potential wash trade)" in (
        refused.value.message
    )
    assert await d.orders("wash-b") == []
    await d.daemon.engine.cancel(resting.plan_id)
    await d.finish(resting.plan_id)
    selling = await d.run(plan_b)
    assert selling.state == "completed", selling.reason
    history = (await d.history())["orders"]
    assert all(e["order"]["status"] != "rejected" for e in history)
