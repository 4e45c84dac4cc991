"""The benchmark collector rides along with a leg and must never be able to stop it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

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


def test_wait_reason_names_halts_holds_and_gates() -> None:
    """Why a leg waits, from the ladder's own state: a halt wins, then a stale-quote
    hold, a gate wait, the open phases; a leg working an order is not waiting."""
    import dataclasses

    from execd.domain.ladder_types import LegPhase, LegSpec
    from execd.domain.ladder_types import LegState as LadderState
    from execd.domain.types import Side
    from execd.engine.benchmarks import wait_reason

    plan = parse_plan(
        {"plan_id": "p", "legs": [{"symbol": "X", "side": "buy", "qty": "1"}]},
        lambda: "unused",
        Urgency.NORMAL,
    )
    record = LegRecord(plan.legs[0])
    spec = LegSpec(
        plan_id="p",
        leg_index=0,
        symbol="X",
        side=Side.BUY,
        qty=Decimal(1),
        urgency=Urgency.NORMAL,
    )
    base = LadderState.new(spec)
    assert wait_reason(dataclasses.replace(base, phase=LegPhase.OPEN_WAIT), record) == (
        "open delay / wide spread at the open"
    )
    assert wait_reason(dataclasses.replace(base, halted="T1 halt"), record) == (
        "symbol halted (T1 halt)"
    )
    assert wait_reason(dataclasses.replace(base, stale_since=AT), record) == (
        "stale quote (holding)"
    )
    gate = dataclasses.replace(base, phase=LegPhase.AWAIT_QUOTE, gate_since=AT)
    assert "gates" in (wait_reason(gate, record) or "")
