"""A recovered plan whose symbol was delisted while execd was down (issue 14 sixth round,
edges lane).

The venue runs in the test and outlives each daemon; between the two daemons the venue
takes the symbol off its asset list (`Exchange.delist`: the list omits it, new orders and
replaces in it are refused, open orders stay open). Before the fix the restart only logged
`recovered_symbol_unknown`: a leg that had an order kept working a symbol the venue no
longer lists, and a buy not yet started crashed the plan's buy release on
`ctx.assets[symbol]` (`KeyError`), failing its siblings with it.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.engine.conftest import StartDaemon
from tests.engine.test_daemon_restart import (
    LEAVE,
    PATIENT,
    RESTING_AAPL,
    _wait_resting,
    outside_venue,
)

pytestmark = pytest.mark.slow

RESTING_SPY = {"symbol": "SPY", "side": "buy", "qty": "1", "limit_price": "400.00"}


def _unknown(logs: list[MutableMapping[str, Any]]) -> list[tuple[str, str]]:
    return [(e["symbol"], e["log_level"]) for e in logs if e["event"] == "leg_symbol_unknown"]


async def test_a_resumed_leg_of_a_delisted_symbol_cancels_its_order_and_ends(
    start_daemon: StartDaemon,
) -> None:
    """AAPL's leg had an order resting when execd stopped; AAPL is delisted meanwhile. After
    the restart that leg cancels its order at the venue (reconciled, not abandoned) and ends
    `symbol_unknown`, logged at error; its sibling SPY leg keeps its adopted order working."""
    async with outside_venue() as venue:
        first = await start_daemon(venue=venue, **LEAVE, **PATIENT)
        await first.submit({"plan_id": "gone", "legs": [RESTING_AAPL, RESTING_SPY]})
        await _wait_resting(first, "gone")

        async def both_resting() -> bool:
            live = [e for e in await first.orders("gone") if e["order"]["status"] == "new"]
            return len(live) == 2

        await first.wait_until(both_resting, "both legs resting")
        await first.stop()
        venue.exchange.delist("AAPL")

        with capture_logs() as logs:
            second = await start_daemon(venue=venue, directory=first.directory, **PATIENT)
            second.plans.append("gone")
            engine = second.daemon.engine

            async def aapl_ended() -> bool:
                return (await engine.status("gone")).legs[0].finished_at is not None

            await second.wait_until(aapl_ended, "the AAPL leg to end")
        status = await engine.status("gone")
        aapl, spy = status.legs
        assert aapl.reason is not None
        assert aapl.reason.startswith("symbol_unknown"), aapl
        assert (aapl.state, aapl.filled_qty) == ("canceled", Decimal(0))  # its order's fate
        assert _unknown(logs) == [("AAPL", "error")]
        aapl_orders = await second.orders("gone", 0)
        assert [e["order"]["status"] for e in aapl_orders] == ["canceled"]
        assert spy.finished_at is None
        spy_orders = await second.orders("gone", 1)
        assert [e["order"]["status"] for e in spy_orders] == ["new"]  # adopted, not re-placed
        canceled = await engine.cancel("gone")
        assert canceled.state == "canceled"
        assert venue.exchange.list_orders(status="open", limit=50) == []
        await second.stop()


async def test_a_buy_not_started_of_a_delisted_symbol_ends_and_its_sibling_trades(
    start_daemon: StartDaemon,
) -> None:
    """A plan held until later (nothing sent yet) recovers after AAPL was delisted: its AAPL
    buy ends `symbol_unknown` with nothing sent, and its SPY buy still fills (before: the
    buy release crashed on the unknown symbol and failed both)."""
    async with outside_venue() as venue:
        first = await start_daemon(venue=venue, **LEAVE)
        start = venue.clock.now() + timedelta(seconds=3)  # past the restart, not much more
        plan = {
            "plan_id": "held",
            "not_before": start.isoformat(),
            "legs": [
                {"symbol": "AAPL", "side": "buy", "qty": "1"},
                {"symbol": "SPY", "side": "buy", "qty": "1"},
            ],
        }
        assert (await first.submit(plan)).state == "scheduled"
        await first.stop()
        venue.exchange.delist("AAPL")

        with capture_logs() as logs:
            second = await start_daemon(venue=venue, directory=first.directory)
            second.plans.append("held")
            done = await second.finish("held", scripted=second.until_venue_time(start))
        aapl, spy = done.legs
        assert aapl.state == "failed", aapl
        assert aapl.reason is not None
        assert aapl.reason.startswith("symbol_unknown"), aapl
        assert spy.state == "filled", spy
        assert done.state == "partial", done
        assert _unknown(logs) == [("AAPL", "error")]
        assert await second.orders("held", 0) == []  # nothing sent for AAPL
        await second.stop()
