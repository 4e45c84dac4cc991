"""Adversarial review (issue 11): buys spend cash, not margin, across plans."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.engine.conftest import StartDaemon

pytestmark = pytest.mark.slow


async def test_two_plans_do_not_spend_margin_together(start_daemon: StartDaemon) -> None:
    d = await start_daemon(sim={"cash": "20000", "positions": {}, "start": "09:29:56"})
    # $13.0k and $11.4k: each fits the $20k of cash, together they do not.
    spy = {"symbol": "SPY", "side": "buy", "qty": "25", "urgency": "high"}
    aapl = {"symbol": "AAPL", "side": "buy", "qty": "60", "urgency": "high"}
    a, b = await asyncio.gather(
        d.submit({"plan_id": "cash-a", "legs": [spy]}),
        d.submit({"plan_id": "cash-b", "legs": [aapl]}),
    )
    sa, sb = await d.finish(a.plan_id), await d.finish(b.plan_id)
    account = d.venue.exchange.account()
    cash = Decimal(account["cash"])
    assert cash >= 0, (cash, sa.legs[0].state, sa.legs[0].reason, sb.legs[0].state)
