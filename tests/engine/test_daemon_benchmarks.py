"""Issue 13 item 1: benchmarks captured live by the real daemon, as the journal keeps them.

The runaway tape makes the leg place, re-peg twice and fall back, so every kind of
decision is journaled; the venue's own order history is the reference for the limits.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from execd.adapters.journal_reads import JournalReader
from execd.cli.main import main
from execd.domain import display
from tests.engine.conftest import StartDaemon
from tests.engine.test_daemon_ladder import _runaway_tape

pytestmark = pytest.mark.slow


async def test_runaway_leg_journals_nbbo_at_fills_and_every_decision(
    start_daemon: StartDaemon, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Each place/replace is journaled with the venue's limit, the NBBO, spread and quote
    age at that moment; each fill with the NBBO the cache held; the feed and the fallback."""
    d = await start_daemon(
        sim=_runaway_tape(tmp_path_factory.mktemp("tape")),
        execution={"max_repegs_per_order": 2},
        better_orders={"normal_timeout_seconds": 0.5},
    )
    status = await d.run(
        {"plan_id": "bench", "legs": [{"symbol": "ACME", "side": "buy", "qty": "100"}]}
    )
    assert status.state == "completed", status.reason
    venue_orders = await d.orders("bench", 0)
    venue_limits = [
        Decimal(o["order"]["limit_price"]) if o["order"]["limit_price"] else None
        for o in venue_orders
    ]
    # a re-peg is a PATCH (replace) or a cancel and a new order, per ladder.repeg_method
    venue_kinds = ["replace" if o["order"]["replaces"] else "place" for o in venue_orders]
    with JournalReader.open(d.directory / "journal.db") as reader:
        history = reader.plan("bench")
    assert history is not None
    [leg] = history.legs
    bench = leg.benchmarks
    assert bench is not None
    assert bench.feed == "iex"
    assert bench.fallback_fired
    assert bench.leg_arrival is not None
    assert bench.leg_arrival.bid < bench.leg_arrival.ask
    # the NBBO at acceptance: ACME was not streamed yet, so the plan subscribed it at once
    assert bench.plan_arrival is not None
    assert bench.plan_arrival.at <= bench.leg_arrival.at + timedelta(seconds=1)
    orders = [x for x in bench.decisions if x.kind in ("place", "replace")]
    assert [x.limit_price for x in orders] == venue_limits
    assert [x.kind for x in orders] == venue_kinds
    assert len(orders) >= 3  # the first limit, re-pegs, the fallback
    for decision in orders:
        assert decision.quote is not None
        assert decision.quote.spread > 0
        assert 0 <= decision.quote.age_seconds < 5
    quotes = [x for x in bench.decisions if x.kind == "quote"]
    assert len(quotes) >= 3
    assert [q.at for q in quotes] == sorted(q.at for q in quotes)
    assert leg.fills
    assert all(f.quote is not None for f in leg.fills)
    # The fill at the market fallback is judged against the NBBO of its moment, which has
    # run away from the arrival quote: the benchmarks are not one stale snapshot.
    last = leg.fills[-1].quote
    assert last is not None
    assert last.ask > bench.leg_arrival.ask


async def test_report_of_a_sim_run_matches_the_venues_fill_prices(
    start_daemon: StartDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    """`execd report --json` on the daemon's own journal: the average fill is the venue's
    (from its order history), and the slippage is that average against the arrival mid
    the report shows, computed by hand here."""
    d = await start_daemon()
    status = await d.run(
        {"plan_id": "known", "legs": [{"symbol": "TQQQ", "side": "buy", "qty": "25"}]}
    )
    assert status.state == "completed", status.reason
    qty = notional = Decimal(0)
    for entry in await d.orders("known", 0):
        order = entry["order"]
        if order["filled_qty"] and Decimal(order["filled_qty"]):
            qty += Decimal(order["filled_qty"])
            notional += Decimal(order["filled_qty"]) * Decimal(order["filled_avg_price"])
    assert qty == 25
    capsys.readouterr()
    code = main(["report", "known", "--json", "--journal", str(d.directory / "journal.db")])
    out = capsys.readouterr().out
    assert code == 0
    [leg] = json.loads(out)["legs"]
    avg = notional / qty
    assert leg["avg_fill_price"] == display.derived_price(avg)
    mid = (Decimal(leg["arrival_bid"]) + Decimal(leg["arrival_ask"])) / 2
    assert leg["vs_arrival_mid_bps"] == display.bps((avg - mid) / mid * 10_000)
    assert leg["saving_vs_market_usd"] == display.usd((Decimal(leg["arrival_ask"]) - avg) * qty)
    assert leg["feed"] == "iex"
    assert leg["completed_at"] == "step 2 limit"
