"""Review 7 (adversarial, intake lane): the asset list is read once a venue day, and a
symbol it did not have at that read is refused all day, before any read of the venue.

A listing (an IPO, a spin-off, a ticker change) or an asset made fractionable during the
day is on the venue's `GET /v2/assets` (and `GET /v2/assets/{symbol}`) at once; execd's
cached list says "unknown symbol" / "not fractionable" until the next venue day, and the
cheap refusals (spam lane) now answer it without ever asking the venue. A valid plan is
refused for the whole session; the user's only way out is a restart.

The listing is modelled on the simulator as what the venue's asset list answers: the
symbol is out of it when execd loads the list and in it afterwards (a new listing).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from execd.control.protocol import ControlError, ErrorCode
from tests.engine.conftest import StartDaemon


@pytest.mark.xfail(
    strict=True,
    reason="a symbol listed after the day's asset-list read is refused 'unknown symbol' all day",
)
async def test_a_symbol_listed_after_the_asset_list_was_read_is_accepted(
    start_daemon: StartDaemon,
) -> None:
    d = await start_daemon()
    specs = d.venue.exchange._specs
    listed = specs.pop("AAPL")  # not on the venue's list when execd first reads it
    plan = {"plan_id": "ipo", "legs": [{"symbol": "AAPL", "side": "buy", "qty": "1"}]}
    with pytest.raises(ControlError) as before:
        await d.submit(plan)
    assert "unknown symbol AAPL" in str(before.value), before.value
    specs["AAPL"] = listed  # listed now: GET /v2/assets and /v2/assets/AAPL have it
    assert any(a["symbol"] == "AAPL" for a in d.venue.exchange.assets())

    status = await d.submit(plan)  # refused from the cache: "unknown symbol AAPL"
    final = await d.finish(status.plan_id)
    assert final.state == "completed", final
    assert final.legs[0].filled_qty == Decimal(1)


@pytest.mark.xfail(
    strict=True,
    reason="an asset made fractionable after the day's asset-list read refuses fractional qty",
)
async def test_an_asset_made_fractionable_after_the_read_takes_a_fractional_qty(
    start_daemon: StartDaemon,
) -> None:
    d = await start_daemon()
    specs = d.venue.exchange._specs
    whole = specs["AAPL"]
    specs["AAPL"] = replace(whole, fractionable=False)
    with pytest.raises(ControlError) as before:
        await d.submit({"plan_id": "w", "legs": [{"symbol": "AAPL", "side": "buy", "qty": "1.5"}]})
    assert before.value.code == ErrorCode.INVALID_PLAN
    assert "not fractionable" in str(before.value), before.value
    specs["AAPL"] = whole  # the venue made it fractionable: its asset list says so
    assert d.venue.exchange.asset("AAPL")["fractionable"] is True

    plan = {"plan_id": "f", "legs": [{"symbol": "AAPL", "side": "buy", "qty": "1.5"}]}
    status = await d.submit(plan)  # refused from the cache: "not fractionable"
    final = await d.finish(status.plan_id)
    assert final.state == "completed", final
    assert final.legs[0].filled_qty == Decimal("1.5")
