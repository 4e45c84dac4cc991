"""Adversarial review (issue 11): buys spend cash, not margin, across plans."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from execd.domain.calendar import EASTERN
from tests.engine.conftest import StartDaemon

pytestmark = pytest.mark.slow


async def test_two_plans_do_not_spend_margin_together(start_daemon: StartDaemon) -> None:
    """Two plans whose buys each fit the cash, submitted at once: the account's cash never
    goes negative (one waits or is refused; the shared cash ledger, `engine/ledger.py`)."""
    d = await start_daemon(sim={"cash": "20000", "positions": {}, "start": "09:29:56"})
    # $13.0k and $11.4k: each fits the $20k of cash, together they do not.
    spy = {"symbol": "SPY", "side": "buy", "qty": "25", "urgency": "high"}
    aapl = {"symbol": "AAPL", "side": "buy", "qty": "60", "urgency": "high"}
    a, b = await asyncio.gather(
        d.submit({"plan_id": "cash-a", "legs": [spy]}),
        d.submit({"plan_id": "cash-b", "legs": [aapl]}),
    )
    # Scripted venue time, on top of DEADLINE's bound on the machine's work: the wait for
    # the open, then high urgency's passive patience before the fallback.
    opens = (
        d.venue.clock.now().astimezone(EASTERN).replace(hour=9, minute=30, second=0, microsecond=0)
    )
    patience = d.daemon.settings.ladder.passive_patience_high_seconds
    scripted = d.until_venue_time(opens) + patience
    sa = await d.finish(a.plan_id, scripted=scripted)
    sb = await d.finish(b.plan_id, scripted=scripted)
    account = d.venue.exchange.account()
    cash = Decimal(account["cash"])
    assert cash >= 0, (cash, sa.legs[0].state, sa.legs[0].reason, sb.legs[0].state)
