"""Adversarial review: a targets plan is never sized from a stale quote (DESIGN.md "Fresh
quote": nothing is priced, sized or re-pegged from a stale quote)."""

from __future__ import annotations

import asyncio
from datetime import time
from decimal import Decimal
from pathlib import Path

import pytest

from execd.control.protocol import ControlError
from tests.engine.conftest import StartDaemon, TapeQuote, write_tape

pytestmark = pytest.mark.slow


async def test_targets_are_not_sized_from_a_stale_quote(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    early = [TapeQuote(i * 0.2, Decimal("40.00"), Decimal("40.05")) for i in range(5)]
    later = [TapeQuote(10 + i * 0.2, Decimal("80.00"), Decimal("80.05")) for i in range(100)]
    tape = write_tape(tmp_path / "gap.jsonl", {"ACME": early + later}, start=time(10, 0))
    d = await start_daemon(sim={"tape": str(tape), "positions": {}})
    await asyncio.sleep(7)  # ACME's last quote is now ~6 s old: stale
    try:
        status = await d.submit({"plan_id": "t-stale", "targets": {"ACME": "0.10"}})
    except ControlError as exc:
        refusal = str(exc)
    else:
        leg = status.legs[0]
        # 10% of $100k at ACME's current price must be about 125 shares, never 250.
        assert leg.qty is None or leg.qty <= Decimal(130), f"sized {leg.qty} ACME from a stale $40"
        await d.daemon.engine.cancel("t-stale")
        return
    # Waited for a fresh quote and found none: refused, naming the symbol and its age.
    assert "targets.ACME: cannot size it: ACME's latest quote is" in refusal, refusal
    assert "s old" in refusal, refusal
    assert not (await d.history())["orders"], "nothing is sent"


async def test_the_plan_cap_is_not_valued_from_a_stale_quote(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    early = [TapeQuote(i * 0.2, Decimal("40.00"), Decimal("40.05")) for i in range(5)]
    later = [TapeQuote(10 + i * 0.2, Decimal("80.00"), Decimal("80.05")) for i in range(100)]
    tape = write_tape(tmp_path / "gap.jsonl", {"ACME": early + later}, start=time(10, 0))
    caps = {
        "max_plan_notional": "100000",
        "max_order_notional": None,
        "max_order_equity_multiple": None,
        "max_plan_equity_multiple": None,
    }
    d = await start_daemon(sim={"tape": str(tape), "positions": {}, "cash": "300000"}, risk=caps)
    await asyncio.sleep(7)  # ACME's last quote is now ~6 s old: stale
    plan = {"plan_id": "cap-stale", "legs": [{"symbol": "ACME", "side": "buy", "qty": "2400"}]}
    with pytest.raises(ControlError) as refused:
        await d.submit(plan)  # 2,400 x $80 = $192k: beyond the $100k plan cap
    # Either valued at a fresh $80, or (no fresh quote in time) not valued at all: with no
    # order cap to bound its orders, the leg cannot pass the plan cap.
    assert "max_plan_notional" in str(refused.value), refused.value
    assert "$96,120" not in str(refused.value), "valued from the stale $40 quote"


async def test_targets_wait_for_a_fresh_quote(start_daemon: StartDaemon, tmp_path: Path) -> None:
    """ACME's $40 quote is stale at submit and trades again at $80 within
    `ladder.quote_wait_seconds` (2 s here) of it, or just before: sized from the $80 quote
    either way (10% of $100k = about 124 shares), never from the $40 one (about 249)."""
    early = [TapeQuote(i * 0.2, Decimal("40.00"), Decimal("40.05")) for i in range(5)]
    later = [TapeQuote(8.5 + i * 0.2, Decimal("80.00"), Decimal("80.05")) for i in range(100)]
    tape = write_tape(tmp_path / "gap.jsonl", {"ACME": early + later}, start=time(10, 0))
    d = await start_daemon(sim={"tape": str(tape), "positions": {}})
    await asyncio.sleep(7)  # ACME's last quote is now ~6 s old: stale
    status = await d.submit({"plan_id": "t-wait", "targets": {"ACME": "0.10"}})
    qty = status.legs[0].qty
    assert qty is not None
    assert Decimal(115) <= qty <= Decimal(130), f"sized {qty} ACME, not from the $80 quote"
    await d.daemon.engine.cancel("t-wait")
