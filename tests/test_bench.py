"""The benchmark package's own logic: target verdicts, the JSON names, the virtual-time harness.

No speed is asserted here (speed targets live in `make bench`); these tests check that the
benchmarks measure what they say they measure.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from execd.bench.harness import run_ladder, run_market
from execd.bench.quality import Case, cost_bps, fresh_venue, run_case
from execd.bench.results import Figure, Results, Target, render
from execd.config import load_settings
from execd.domain.ladder_types import LegSpec
from execd.domain.types import Side, Urgency
from execd.engine.params import ladder_params


def test_target_verdicts_say_by_how_much() -> None:
    """A missed target reports its shortfall; ratios are judged against the same-run baseline."""
    fast = Figure(
        "1", "ingest_quotes_per_s", 300.0, "q/s", "sdk", 100.0, (Target("min", 20, "ratio"),)
    )
    assert fast.ratio == 3.0
    assert fast.met is False
    (_, ok, why) = fast.verdicts()[0]
    assert ok is False
    assert "0.15x" in why
    lag = Figure("3", "lag", 5.0, "ms", targets=(Target("max", 10),))
    assert lag.met is True
    nan = Figure("3", "x", math.nan, "ms", targets=(Target("max", 10),))
    assert nan.met is None
    assert "MISSED" in render([fast])
    assert "met" in render([lag])


def test_results_json_holds_every_figure_and_baseline_by_name(tmp_path: Path) -> None:
    """`.bench/results.json` maps each figure's name (and its baseline's) to its value."""
    results = Results("quick")
    results.add(Figure("1", "ingest_quotes_per_s", 2.0, "q/s", "ingest_sdk_quotes_per_s", 1.0))
    results.add(Figure("5", "log_lines_per_s", 3.0, "lines/s"))
    path = tmp_path / ".bench" / "results.json"
    results.write(path)
    data = json.loads(path.read_text())
    assert data["figures"] == {
        "ingest_quotes_per_s": 2.0,
        "ingest_sdk_quotes_per_s": 1.0,
        "log_lines_per_s": 3.0,
    }
    assert data["details"][0]["ratio"] == 2.0


def test_harness_market_order_fills_on_a_fresh_venue() -> None:
    """The baseline market order fills completely, and its cost is measured against the mid."""
    case = Case("calm", None, 1, "AAPL", Side.BUY, 1)
    exchange, clock = fresh_venue(case)
    result = run_market(exchange, clock, "AAPL", Side.BUY, Decimal(100))
    assert result.complete
    assert result.filled == Decimal(100)
    assert result.avg_price is not None
    cost = cost_bps(result, Side.BUY, Decimal("189.60"))
    assert cost is not None


def test_harness_runs_the_real_ladder_to_its_finish() -> None:
    """The ladder, driven in virtual time against the sim's exchange, ends a leg without ever
    filling more than its quantity, at every urgency."""
    params = ladder_params(load_settings(None))
    case = Case("calm", None, 1, "TQQQ", Side.SELL, 1)
    for urgency in (Urgency.LOW, Urgency.NORMAL, Urgency.HIGH):
        exchange, clock = fresh_venue(case)
        spec = LegSpec("bench", 0, "TQQQ", Side.SELL, Decimal(200), urgency)
        result = run_ladder(exchange, clock, spec, params, limit=timedelta(minutes=2))
        assert result.outcome, result
        assert result.filled <= Decimal(200)


def test_quality_case_compares_ladder_and_market_on_identical_venues() -> None:
    """One case: every urgency and the market order ran, from the same arrival quote."""
    params = ladder_params(load_settings(None))
    outcome = run_case(Case("calm", None, 1, "AAPL", Side.BUY, 1), params)
    assert set(outcome.ladder) == {Urgency.LOW, Urgency.NORMAL, Urgency.HIGH}
    assert outcome.market.complete
    assert outcome.arrival_mid > 0
    assert outcome.ladder[Urgency.NORMAL].complete


async def test_the_paced_feed_sends_no_faster_than_its_rate() -> None:
    """Item 2's background load: feed.py paced at `rate` quotes/s keeps to its schedule
    (frame n no earlier than n × 100 / rate after it began) instead of blasting, and keeps
    sending past its cycle of frames. Slowness cannot fail this; only a feed too fast can."""
    import msgspec.msgpack
    from websockets.asyncio.client import connect

    from execd.bench.feed import QUOTES_PER_FRAME, FeedServer

    rate = 2_000.0  # 20 frames/s
    with FeedServer(200, 5, rate=rate) as feed:  # a cycle of 2 frames
        async with connect(
            feed.url, additional_headers={"Content-Type": "application/msgpack"}
        ) as ws:
            encode = msgspec.msgpack.encode
            await ws.recv()
            await ws.send(encode({"action": "auth", "key": "k", "secret": "s"}))
            await ws.recv()
            await ws.send(encode({"action": "subscribe", "quotes": ["S000"]}))
            await ws.recv()
            frames = 0
            while frames < 6:
                quotes = msgspec.msgpack.decode(await asyncio.wait_for(ws.recv(decode=False), 30))
                assert len(quotes) == QUOTES_PER_FRAME
                frames += 1
            seen = time.monotonic()
        began = await asyncio.to_thread(feed.started_at)
    assert frames <= 1 + (seen - began) * rate / QUOTES_PER_FRAME
