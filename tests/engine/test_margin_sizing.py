"""Buys spend cash, not margin (DESIGN.md "Decisions that several parts share"), on the venue's
margin account (issue 12: the simulator is a paper margin account, buying power 2× cash)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.engine.conftest import StartDaemon

pytestmark = pytest.mark.slow


async def test_a_buy_is_sized_against_cash_on_a_margin_account(start_daemon: StartDaemon) -> None:
    """$20k of cash on a Reg-T account ($40k of buying power): a $30k SPY buy is shrunk to what
    the cash pays for, never to what borrowing would allow."""
    d = await start_daemon(sim={"cash": "20000", "scenario": "calm"})
    status = await d.run(
        {"plan_id": "cash-only", "legs": [{"symbol": "SPY", "side": "buy", "qty": "58"}]}
    )
    leg = status.legs[0]
    assert leg.qty is not None
    assert leg.qty < 58
    price = leg.avg_fill_price or Decimal("521")
    assert leg.qty * price <= Decimal("20000")
