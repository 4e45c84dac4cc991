"""Issue 5 §7: risk caps and the fallback collar, through the real daemon.

A breach refuses the plan at submit or ends the leg with the breach as its reason; nothing
is clipped and the venue never sees the refused order.
"""

from __future__ import annotations

from datetime import time
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import pytest

from execd.control.protocol import ControlError, ErrorCode
from tests.engine.conftest import StartDaemon, runaway, write_tape

pytestmark = pytest.mark.slow


def _runaway_tape(directory: Path) -> dict[str, Any]:
    """ACME (passive style) climbs 2¢ every 0.2 s from 50.00 × 50.03 for 30 s."""
    tape = write_tape(
        directory / "runaway.jsonl",
        {"ACME": runaway("50.00", spread="0.03", step="0.02")},
        start=time(10, 0),
    )
    return {"tape": str(tape)}


async def test_plan_over_the_plan_notional_cap_is_refused(start_daemon: StartDaemon) -> None:
    """`risk.max_plan_notional`: a plan whose value exceeds it is refused at submit with a
    reason naming the cap; the venue sees nothing. A plan under it runs."""
    d = await start_daemon(risk={"max_plan_notional": "2000"})
    with pytest.raises(ControlError) as refused:
        await d.submit(
            {"plan_id": "too-big", "legs": [{"symbol": "AAPL", "side": "buy", "qty": "20"}]}
        )
    assert refused.value.code == ErrorCode.INVALID_PLAN
    assert "risk.max_plan_notional" in refused.value.message
    assert (await d.history())["orders"] == []
    small = await d.run(
        {"plan_id": "small", "legs": [{"symbol": "TQQQ", "side": "buy", "qty": "2"}]}
    )
    assert small.state == "completed", small.reason


async def test_leg_over_the_order_notional_cap_is_refused(start_daemon: StartDaemon) -> None:
    """`risk.max_order_notional`: a leg that could only be sent as one bigger order is
    refused at submit (never clipped to the cap)."""
    d = await start_daemon(risk={"max_order_notional": "1000"})
    with pytest.raises(ControlError) as refused:
        await d.submit(
            {"plan_id": "big-leg", "legs": [{"symbol": "AAPL", "side": "buy", "notional": "5000"}]}
        )
    assert "risk.max_order_notional" in refused.value.message
    assert (await d.history())["orders"] == []


async def test_order_rate_cap_ends_the_leg_with_its_reason(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """`risk.max_orders_per_minute = 2`: a runaway quote makes the leg re-peg; the third
    order in the minute is refused before it is sent, the working order is cancelled, and
    the leg ends with the cap as its reason. The venue saw exactly two orders."""
    d = await start_daemon(
        sim=_runaway_tape(tmp_path),
        risk={"max_orders_per_minute": 2},
        execution={"max_repegs_per_order": 5},
    )
    status = await d.run(
        {"plan_id": "rate", "legs": [{"symbol": "ACME", "side": "buy", "qty": "100"}]}
    )
    leg = status.legs[0]
    assert leg.state in ("rejected", "unfilled"), leg
    assert leg.reason is not None
    assert "risk.max_orders_per_minute" in leg.reason
    orders = await d.orders("rate", 0)
    assert len(orders) == 2
    assert all(e["order"]["status"] in ("replaced", "canceled") for e in orders)


async def test_collared_fallback_is_a_limit_beyond_the_far_side(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """`execution.fallback_collar_bps = 50`: when the re-pegs run out, the fallback is a
    limit order 50 bps above the ask (rounded down to the cent), not a market order, and
    it fills against the runaway book."""
    d = await start_daemon(
        sim=_runaway_tape(tmp_path),
        execution={"max_repegs_per_order": 1, "fallback_collar_bps": "50"},
    )
    status = await d.run(
        {"plan_id": "collar", "legs": [{"symbol": "ACME", "side": "buy", "qty": "100"}]}
    )
    assert status.state == "completed", status.reason
    orders = await d.orders("collar", 0)
    assert {e["order"]["type"] for e in orders} == {"limit"}
    fallback = orders[-1]["order"]
    limit = Decimal(fallback["limit_price"])
    # The ask when it was priced is unknown here, but the collar bounds the fill: the
    # price paid is at most the limit, and the limit is within 50 bps of some ask ≥ 50.03.
    assert Decimal(fallback["filled_avg_price"]) <= limit
    assert limit == limit.quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    assert status.legs[0].filled_qty == 100


async def test_legacy_mode_ignores_the_collar(start_daemon: StartDaemon) -> None:
    """Legacy mode always sends a plain market order, collar or not."""
    d = await start_daemon(execution={"enable_smart_execution": False, "fallback_collar_bps": "50"})
    status = await d.run(
        {"plan_id": "legacy", "legs": [{"symbol": "TQQQ", "side": "buy", "qty": "3"}]}
    )
    assert status.state == "completed", status.reason
    orders = await d.orders("legacy", 0)
    assert [e["order"]["type"] for e in orders] == ["market"]


async def test_fat_finger_plan_is_refused_by_default(start_daemon: StartDaemon) -> None:
    """Issue 11 §1: with the shipped caps, a billion TQQQ on the sim's $100k account is
    refused at submit, naming the cap and the numbers; the venue sees nothing (before,
    it was accepted and shrunk to buying power)."""
    d = await start_daemon(sim={"positions": {}})  # cash only: equity is the $100k
    with pytest.raises(ControlError) as refused:
        await d.submit(
            {"plan_id": "fat", "legs": [{"symbol": "TQQQ", "side": "buy", "qty": "1000000000"}]}
        )
    assert refused.value.code == ErrorCode.INVALID_PLAN
    message = refused.value.message
    assert "risk.max_order_equity_multiple 1 x equity $100,000.00" in message
    assert "risk.max_plan_equity_multiple 2 x equity $100,000.00 = $200,000.00" in message
    assert (await d.history())["orders"] == []
    ok = await d.run({"plan_id": "fine", "legs": [{"symbol": "TQQQ", "side": "buy", "qty": "2"}]})
    assert ok.state == "completed", ok.reason
