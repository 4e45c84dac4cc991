"""The benchmark collector rides along with a leg and must never be able to stop it."""

from __future__ import annotations

from datetime import UTC, datetime

from execd.domain.ladder_types import Wake
from execd.domain.plans import parse_plan
from execd.domain.types import Urgency
from execd.engine.benchmarks import BenchmarkCollector
from execd.engine.records import LegRecord

AT = datetime(2026, 5, 11, 14, 0, tzinfo=UTC)


def test_a_capture_failure_is_swallowed_and_the_rest_still_reads() -> None:
    """A bug in capture (here: a ladder state it cannot read, a quote cache that fails)
    is logged, never raised into the leg; the benchmarks kept so far still come out."""
    plan = parse_plan(
        {"plan_id": "p", "legs": [{"symbol": "X", "side": "buy", "qty": "1"}]},
        lambda: "unused",
        Urgency.NORMAL,
    )
    calls = {"n": 0}

    def failing_cache() -> None:
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("cache gone")

    record = LegRecord(plan.legs[0])
    collector = BenchmarkCollector("iex", failing_cache, lambda: AT, record)
    for _ in range(3):
        collector.observe(Wake(), [], object())  # type: ignore[arg-type]
    bench = collector.result(None, None)
    assert (bench.feed, bench.leg_arrival, bench.decisions) == ("iex", None, ())
