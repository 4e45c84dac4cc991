"""The market-data API's own request budget (DESIGN.md "Fresh quote"; ALPACA.md §0.4)."""

from __future__ import annotations

import pytest

from tests.engine.conftest import StartDaemon

pytestmark = pytest.mark.slow


async def test_the_daemons_quote_reads_spend_the_configured_data_budget(
    start_daemon: StartDaemon,
) -> None:
    """`gateway.data_requests_per_minute` sizes the budget the daemon's latest-quote reads
    spend, and those reads leave the trading budget (orders, cancels) untouched."""
    d = await start_daemon(gateway={"data_requests_per_minute": 37})
    rest = d.daemon.engine._ports.rest
    trading_before = rest.budget.statistics().remaining
    quotes = await rest.latest_quotes(["AAPL", "TQQQ"])
    assert set(quotes) == {"AAPL", "TQQQ"}
    data = rest.data_budget.statistics()
    assert (data.limit, data.remaining) == (37, 36)
    assert rest.budget.statistics().remaining == trading_before
