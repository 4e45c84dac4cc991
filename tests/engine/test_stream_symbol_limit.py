"""The free IEX feed's 30-symbol limit (ALPACA.md §0.4) on the real daemon against the
simulated venue: a plan with more symbols than the stream may carry is accepted with a
warning that says how many legs will be priced from REST quote reads, every leg still
trades, and the stream never asks the venue for more than the limit."""

from __future__ import annotations

from datetime import date, time
from typing import Any

from structlog.testing import capture_logs

from execd.sim.config import SimConfig
from execd.sim.server import ServerOptions
from execd.sim.venue import SimVenue
from tests.engine.conftest import StartDaemon

SYMBOLS = [f"L{i:03d}" for i in range(6)]


def _buys(plan_id: str) -> dict[str, Any]:
    return {"plan_id": plan_id, "legs": [{"symbol": s, "side": "buy", "qty": "1"} for s in SYMBOLS]}


async def test_a_plan_over_the_limit_is_warned_and_every_leg_trades(
    start_daemon: StartDaemon,
) -> None:
    """Told the feed streams four symbols, a six-leg plan is accepted with one warning in the
    submit answer and one `quote_stream_symbol_limit` line (two legs from REST reads); all
    six legs fill, and the venue never refused a subscribe (execd stayed within four)."""
    d = await start_daemon(
        sim={"symbols": SYMBOLS, "positions": {}}, venue_settings={"stream_symbol_limit": 4}
    )
    with capture_logs() as logs:
        accepted = await d.submit(_buys("limited"))
        final = await d.finish(accepted.plan_id)
    assert len(accepted.warnings) == 1
    assert "up to 2 of its legs will be priced from REST" in accepted.warnings[0]
    lines = [e for e in logs if e["event"] == "quote_stream_symbol_limit"]
    assert [(e["limit"], e["rest_priced_legs"], e["log_level"]) for e in lines] == [
        (4, 2, "warning")
    ]
    assert [leg.state for leg in final.legs] == ["filled"] * len(SYMBOLS)
    stats = d.daemon.engine.quotes.statistics()
    assert (stats.symbol_limit, stats.refused_by_limit) == (4, 0)


async def test_a_plan_within_the_limit_has_no_warning(start_daemon: StartDaemon) -> None:
    """The default iex limit (30) and six symbols: no warning, nothing logged."""
    d = await start_daemon(sim={"symbols": SYMBOLS, "positions": {}})
    with capture_logs() as logs:
        accepted = await d.submit(_buys("roomy"))
        await d.finish(accepted.plan_id)
    assert accepted.warnings == ()
    assert not [e for e in logs if e["event"] == "quote_stream_symbol_limit"]
    assert d.daemon.engine.quotes.symbol_limit == 30


async def test_a_venue_limit_below_the_configured_one_keeps_the_stream(
    start_daemon: StartDaemon,
) -> None:
    """The venue streams three symbols while execd believes thirty (a wrong
    `stream_symbol_limit`): its 405 refuses one subscribe, execd learns three, the three
    symbols streamed keep their quotes, and every leg still fills (the others from REST)."""
    config = SimConfig(
        scenario="calm", seed=1, start=time(10, 0), start_date=date(2026, 3, 4),
        symbols=tuple(SYMBOLS), positions={},
    )  # fmt: skip
    options = ServerOptions(data_symbol_limit=3)
    async with SimVenue(config, options=options) as venue:
        d = await start_daemon(venue=venue)
        accepted = await d.submit(_buys("learned"))
        final = await d.finish(accepted.plan_id)
        quotes = d.daemon.engine.quotes
        assert quotes.symbol_limit == 3
        assert quotes.statistics().refused_by_limit >= 1
        assert [leg.state for leg in final.legs] == ["filled"] * len(SYMBOLS)
        await d.stop()
