"""The benchmark package's own logic: target verdicts, the JSON names, the virtual-time harness.

No speed is asserted here (speed targets live in `make bench`); these tests check that the
benchmarks measure what they say they measure.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from time import monotonic

import pytest

from execd.bench.harness import STEP, run_ladder, run_market
from execd.bench.quality import Case, fresh_venue, leg_spec, run_case
from execd.bench.quality_causes import cost_bps
from execd.bench.results import Figure, Results, Target, render
from execd.config import load_settings
from execd.domain.calendar import EASTERN
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
        spec = leg_spec(case, Decimal(200), urgency, clock)
        result = run_ladder(exchange, clock, spec, params, limit=timedelta(minutes=2))
        # A leg given no session ends at once, unfilled: this must be a real run.
        assert result.orders >= 1, result
        assert result.outcome == "filled", result
        assert result.filled == Decimal(200)


def test_quality_case_compares_ladder_and_market_on_identical_venues() -> None:
    """One case: every urgency and the market order ran, from the same arrival quote."""
    params = ladder_params(load_settings(None))
    outcome = run_case(Case("calm", None, 1, "AAPL", Side.BUY, 1), params)
    assert set(outcome.ladder) == {Urgency.LOW, Urgency.NORMAL, Urgency.HIGH}
    assert outcome.market.complete
    assert outcome.arrival_mid > 0
    assert outcome.ladder[Urgency.NORMAL].complete


def test_harness_prices_the_first_order_from_the_arrival_quote() -> None:
    """The daemon's leg prices from the cached quote when it is fresh (DESIGN.md's fresh-quote
    rule); the harness must hand the ladder the latest quote at the start, not make it wait for
    the next one to be published (on a fast market that one is somewhere else, and the leg's
    cost is then the market's move, not the ladder's pricing)."""
    params = ladder_params(load_settings(None))
    case = Case("fast", None, 1, "TQQQ", Side.SELL, 1)
    exchange, clock = fresh_venue(case)
    start = clock.now()
    arrival = exchange.latest_quotes(["TQQQ"])["TQQQ"]
    spec = leg_spec(case, Decimal(100), Urgency.NORMAL, clock)
    run_ladder(exchange, clock, spec, params, limit=timedelta(minutes=2))
    first = exchange.list_orders(status="all", direction="asc", limit=1)[0]
    # TQQQ prices in the marketable style: a sell at the bid minus one tick.
    assert Decimal(first["limit_price"]) == Decimal(str(arrival["bp"])) - Decimal("0.01")
    # Placed within the harness's first step, not when the next quote came.
    created = datetime.fromisoformat(first["created_at"].replace("Z", "+00:00"))
    assert created - start <= STEP


def test_quality_runs_each_urgency_with_its_own_rules() -> None:
    """Low never crosses with a fallback, normal does: on a leg too large for the marketable
    ladder's re-pegs, low ends short and normal completes (at 1× and 5× the displayed size no
    leg of the grid reaches the fallback, so low and normal coincide there — not a harness bug)."""
    params = ladder_params(load_settings(None))
    case = Case("calm", None, 1, "TQQQ", Side.BUY, 50)
    results = {}
    for urgency in (Urgency.LOW, Urgency.NORMAL):
        exchange, clock = fresh_venue(case)
        qty = Decimal(exchange.latest_quotes(["TQQQ"])["TQQQ"]["as"] * 50)
        spec = leg_spec(case, qty, urgency, clock)
        results[urgency] = run_ladder(exchange, clock, spec, params, limit=timedelta(minutes=2))
    low, normal = results[Urgency.LOW], results[Urgency.NORMAL]
    assert not low.complete
    assert low.reason == "max_repegs_reached"
    assert normal.complete
    assert normal.orders > low.orders


def test_quality_mixed_venue_is_not_a_copy_of_fast() -> None:
    """`mixed` gives each symbol a personality by its position in the venue and everyone a real
    open; a one-symbol venue at 10:30 made every `mixed` case a copy of `fast` (index 0, no
    open), counting `fast` twice. The harness's `mixed` carries the bench's symbols from the
    open, so its AAPL is calm-with-an-open, not fast."""
    fast = Case("fast", None, 1, "AAPL", Side.BUY, 1)
    mixed = Case("mixed", None, 1, "AAPL", Side.BUY, 1)
    fast_venue, _ = fresh_venue(fast)
    mixed_venue, mixed_clock = fresh_venue(mixed)
    assert mixed_venue.latest_quotes(["AAPL"]) != fast_venue.latest_quotes(["AAPL"])
    assert mixed_clock.now().astimezone(EASTERN).time() < time(9, 31)


def test_quality_causes_split_a_legs_cost_into_drift_and_what_it_paid() -> None:
    """A leg's cost vs arrival = the mid's move against it to its last fill + what it paid vs
    the mid then; the excess note names the legs over the target by that split."""
    from datetime import UTC

    from execd.bench.harness import LegResult
    from execd.bench.quality import Outcome
    from execd.bench.quality_causes import drift_bps, excess_note
    from execd.domain.ladder_types import PricingStyle

    at = datetime(2026, 3, 4, 15, 30, tzinfo=UTC)
    waited = LegResult(Decimal(100), Decimal(100), Decimal(10_100), at, at + timedelta(seconds=60))
    waited.mid_at_last_fill = Decimal("100.5")
    assert cost_bps(waited, Side.BUY, Decimal(100)) == 100.0
    assert drift_bps(waited, Side.BUY, Decimal(100)) == 50.0
    assert drift_bps(waited, Side.SELL, Decimal(100)) == -50.0
    market = LegResult(Decimal(100), Decimal(100), Decimal(10_001), at, at)
    case = Case("calm", None, 1, "AAPL", Side.BUY, 1)
    ladder = dict.fromkeys((Urgency.LOW, Urgency.NORMAL, Urgency.HIGH), waited)
    outcome = Outcome(case, Decimal(100), 0.5, at, ladder, market, PricingStyle.PASSIVE)
    note = excess_note([outcome])
    assert "1 of 1 legs over 2 bps" in note
    assert "median 50.0 bps" in note


def test_quality_alternative_runs_high_urgency_marketable_on_its_own_venue() -> None:
    """FULL's alternative runs a passive symbol's high-urgency leg again in the marketable style
    (`apply_to = "all"`), on a fresh venue; a marketable symbol's is the default run itself."""
    params = ladder_params(load_settings(None))
    passive = run_case(Case("calm", None, 1, "AAPL", Side.BUY, 1), params, alternatives=True)
    alt, default = passive.high_marketable, passive.ladder[Urgency.HIGH]
    assert alt is not None
    assert alt is not default
    assert alt.complete
    # The passive limit rested 10 s before its re-check; the marketable one crossed at once.
    alt_s, default_s = alt.seconds(passive.opens), default.seconds(passive.opens)
    assert alt_s is not None
    assert default_s is not None
    assert alt_s < default_s
    etf = run_case(Case("calm", None, 1, "TQQQ", Side.BUY, 1), params, alternatives=True)
    assert etf.high_marketable is etf.ladder[Urgency.HIGH]
    plain = run_case(Case("calm", None, 1, "AAPL", Side.BUY, 1), params)
    assert plain.high_marketable is None


async def test_the_paced_feed_sends_no_faster_than_its_rate() -> None:
    """Item 2's background load: feed.py paced at `rate` quotes/s keeps to its schedule
    (frame n no earlier than n × 100 / rate after it began) instead of blasting, and keeps
    sending past its cycle of frames, each cycle stamped later than the last (a live feed's
    stamps only move forward; repeated ones took the daemon's dropped-old-quote path).
    Slowness cannot fail this; only a feed too fast can."""
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
            stamps: list[datetime] = []
            while frames < 6:
                quotes = msgspec.msgpack.decode(await asyncio.wait_for(ws.recv(decode=False), 30))
                assert len(quotes) == QUOTES_PER_FRAME
                stamps.extend(quote["t"] for quote in quotes)
                frames += 1
            seen = monotonic()
        began = await asyncio.to_thread(feed.started_at)
    assert frames <= 1 + (seen - began) * rate / QUOTES_PER_FRAME
    assert all(a < b for a, b in itertools.pairwise(stamps)), "a stamp went back in time"


def test_gc_pauses_are_recorded_only_while_installed() -> None:
    """Item 2's `reaction_gc_pause_max_ms`: one duration per collection inside the block,
    none after it (the callback is removed)."""
    import gc

    from execd.bench.reaction import GcPauses

    pauses = GcPauses()
    with pauses.installed():
        gc.collect()
    assert len(pauses.pauses) == 1
    assert pauses.pauses[0] >= 0
    assert pauses not in gc.callbacks
    gc.collect()
    assert len(pauses.pauses) == 1


def test_the_feed_frames_decode_as_the_quotes_they_stand_for() -> None:
    """Item 1's feed builds its frames from each quote's encoded content plus its stamp (fast
    enough for 10⁶ quotes): every frame must decode exactly as `msgpack.packb` of the same
    quote messages would — same fields, same values, stamps 1 µs apart in frame order."""
    import msgpack

    from execd.bench.feed import QUOTES_PER_FRAME, build_frames, quote_message, symbols

    quotes, count = 35_050, 50  # past one cycle of the content (50 × 97 × 7), a short last frame
    frames = build_frames(quotes, count)
    assert len(frames) == -(-quotes // QUOTES_PER_FRAME)
    start = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    names = symbols(count)
    got = [m for frame in frames for m in msgpack.unpackb(frame, timestamp=3)]
    assert len(got) == quotes
    for n in (0, 1, 99, 100, 33_949, 33_950, 33_951, quotes - 1):
        assert got[n] == quote_message(names[n % count], n, start + timedelta(microseconds=n))


async def test_a_connection_can_ask_the_feed_for_fewer_quotes() -> None:
    """`quotes_url(url, n)`: the SDK's rounds read the first `n` quotes, then the end marker
    (the reader's end condition), never more and never another connection's frames."""
    import msgspec.msgpack
    from websockets.asyncio.client import connect

    from execd.bench.feed import END_SYMBOL, FeedServer, quotes_url

    with FeedServer(1_000, 5) as feed:
        async with connect(
            quotes_url(feed.url, 300), additional_headers={"Content-Type": "application/msgpack"}
        ) as ws:
            encode = msgspec.msgpack.encode
            await ws.recv()
            await ws.send(encode({"action": "auth", "key": "k", "secret": "s"}))
            await ws.recv()
            await ws.send(encode({"action": "subscribe", "quotes": ["S000"]}))
            await ws.recv()
            seen: list[str] = []
            while END_SYMBOL not in seen:
                frame = await asyncio.wait_for(ws.recv(decode=False), 30)
                seen += [q["S"] for q in msgspec.msgpack.decode(frame)]
    assert len(seen) == 301


def test_the_quality_costs_say_when_the_real_tapes_are_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The tapes live beside the checkout (../shared/tapes): a clone elsewhere ran the
    synthetic scenarios only and printed different averages without a word (session 8:
    normal 0.57x market there, 0.46x with the tapes)."""
    from execd.bench import quality

    monkeypatch.setattr(quality, "TAPES", tmp_path)
    assert "NO TAPES" in quality.tapes_note()
    (tmp_path / "X-2013-10-07-open.jsonl").write_text("", encoding="utf-8")
    assert quality.tapes_note() == ""
