"""Buys spend cash, not margin (DESIGN.md "Decisions that several parts share"), on the venue's
margin account (issue 12: the simulator is a paper margin account, buying power 2× cash)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.engine.conftest import StartDaemon

pytestmark = pytest.mark.slow


async def test_a_buy_is_sized_against_cash_on_a_margin_account(start_daemon: StartDaemon) -> None:
    """$20k of cash on a Reg-T account ($40k of buying power): a $30k SPY buy, which margin
    would pay for, is refused for want of cash (far beyond the shrink tolerance) and nothing
    is sent. The submit-time fat-finger caps, which would refuse it first, are lifted so that
    the runner's sizing is what is tested."""
    no_caps = dict.fromkeys(
        (
            "max_order_notional",
            "max_plan_notional",
            "max_order_equity_multiple",
            "max_plan_equity_multiple",
        )
    )
    d = await start_daemon(sim={"cash": "20000", "scenario": "calm"}, risk=no_caps)
    account = d.venue.exchange.account()
    assert Decimal(account["buying_power"]) >= Decimal("40000"), "not a margin account"
    status = await d.run(
        {"plan_id": "cash-only", "legs": [{"symbol": "SPY", "side": "buy", "qty": "58"}]}
    )
    leg = status.legs[0]
    assert leg.state == "rejected", leg
    assert leg.reason is not None
    assert "insufficient cash" in leg.reason
    assert await d.orders("cash-only") == []
