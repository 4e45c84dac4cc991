"""Buys spend cash, not margin (DESIGN.md "Decisions that several parts share"), on the venue's
margin account (issue 12: the simulator is a paper margin account, buying power 2× cash)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.engine.conftest import StartDaemon

pytestmark = pytest.mark.slow


async def test_a_buy_never_spends_margin_on_a_margin_account(start_daemon: StartDaemon) -> None:
    """$20k of cash and ~$38k of AAPL on a Reg-T account (buying power ~$78k): a $30k SPY buy
    never spends more than the cash, whatever the sizing rules then decide (shrink or end)."""
    d = await start_daemon(
        sim={"cash": "20000", "scenario": "calm", "positions": {"AAPL": "200"}},
    )
    status = await d.run(
        {"plan_id": "cash-only", "legs": [{"symbol": "SPY", "side": "buy", "qty": "58"}]}
    )
    leg = status.legs[0]
    spent = leg.filled_qty * (leg.avg_fill_price or Decimal(0))
    assert spent <= Decimal("20000")
    assert leg.filled_qty < 58
