"""Adversarial review: two plans selling the same shares never sell more than the position
(the second becomes a short sale once the first has filled)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from execd.control.protocol import ControlError
from tests.engine.conftest import StartDaemon

pytestmark = pytest.mark.slow


async def test_a_second_plan_cannot_sell_the_same_shares(start_daemon: StartDaemon) -> None:
    d = await start_daemon(sim={"positions": {"TQQQ": "300"}})
    sell = {"symbol": "TQQQ", "side": "sell", "qty": "300", "urgency": "high"}
    await d.submit({"plan_id": "sell-a", "legs": [sell]})
    with pytest.raises(ControlError) as refused:
        await d.submit({"plan_id": "sell-b", "legs": [sell], "not_before": "10:00:04"})
    message = str(refused.value)
    assert "selling 300 TQQQ" in message, message
    assert "sell-a" in message, message
    await d.finish("sell-a")
    assert await d.orders("sell-b") == []
    # Once plan A is over, its shares are gone: a new plan selling them is refused too.
    with pytest.raises(ControlError, match="position is 0"):
        await d.submit({"plan_id": "sell-c", "legs": [sell]})


async def test_a_sell_is_capped_by_the_position_when_it_starts(start_daemon: StartDaemon) -> None:
    """The backstop behind the submit check: shares sold elsewhere while a plan was
    scheduled are re-read when its sell starts, and it sells only what is left."""
    d = await start_daemon(sim={"positions": {"TQQQ": "300"}})
    sell = {"symbol": "TQQQ", "side": "sell", "qty": "300", "urgency": "high"}
    await d.submit({"plan_id": "sell-late", "legs": [sell], "not_before": "10:00:04"})
    d.venue.exchange.close_position("TQQQ", Decimal(200))  # a manual sale meanwhile

    async def sold_elsewhere() -> bool:
        return Decimal(str(d.venue.exchange.position("TQQQ")["qty"])) == 100

    await d.wait_until(sold_elsewhere, "the manual sale of 200 TQQQ")
    status = await d.finish("sell-late")
    sold = sum(
        (Decimal(str(e["order"].get("filled_qty") or 0)) for e in await d.orders("sell-late")),
        Decimal(0),
    )
    assert sold == Decimal(100), (sold, status.legs[0].state, status.legs[0].reason)
    assert "capped from 300 to 100" in (status.legs[0].reason or "")
    assert "TQQQ" not in {p["symbol"] for p in d.venue.exchange.positions()}
