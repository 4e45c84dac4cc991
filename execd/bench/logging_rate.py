"""Item 5 — logging: the daemon's own structlog pipeline writing JSON lines to a file.

``log_lines_per_s``: `execd.logs.configure_logging("info", "json", file, once=True)` (as
`execd run` configures it) and a leg's context bound with `bind_leg`, logging the kind of
line a re-peg writes (`leg_repegged` with prices as `Decimal`) from a coroutine on a uvloop
event loop, as the daemon's legs do: `BURST` lines per loop turn, the writer's flush at the
start of the next turn, the last one inside the timing. Baseline ``log_floor_lines_per_s``:
the same dict with a timestamp encoded by msgspec and written to the same kind of file,
buffered — the cost of the bytes alone. Interleaved rounds.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import msgspec
import structlog

from execd.bench.results import Figure, Target
from execd.config import RuntimeConfig
from execd.engine.gc_tuning import GcTuning, tuned_gc
from execd.logs import bind_leg, configure_logging, flush_logs

ROUNDS = 3
BURST = 10
"""Lines per loop turn: about what one re-peg logs (the reaction bench counts ≈ 9 lines per
replace). Fewer per turn means more writes: `per_line_us` measures the worst case, one."""
FIELDS: dict[str, object] = {
    "old_limit": Decimal("62.43"),
    "new_limit": Decimal("62.47"),
    "trigger": "timeout",
    "repegs": 1,
    "remaining": Decimal(300),
}


def _pipeline(path: Path, lines: int, burst: int = BURST) -> float:
    """Lines per second of the daemon's pipeline, `burst` lines per loop turn."""
    import uvloop

    return uvloop.run(_on_loop(path, lines, burst))


async def _on_loop(path: Path, lines: int, burst: int) -> float:
    with path.open("w", encoding="utf-8") as out:
        # As `execd run` configures it (`once`: module loggers are kept after their first line).
        configure_logging("info", "json", out, once=True)
        log = structlog.get_logger("execd.engine.leg")
        turns = max(1, lines // burst)
        with bind_leg(plan_id="p-bench", leg=3, symbol="TQQQ", side="buy", client_order_id="x"):
            began = time.perf_counter()
            for _ in range(turns):
                for _ in range(burst):
                    log.info("leg_repegged", **FIELDS)
                await asyncio.sleep(0)  # the loop turn ends; the writer's flush runs
            flush_logs()
            elapsed = time.perf_counter() - began
        # What a loop turn costs without a line, to take out of the one-line-per-turn figure.
        began = time.perf_counter()
        for _ in range(turns):
            await asyncio.sleep(0)
        idle = time.perf_counter() - began
        _pipeline_idle.append(idle / turns)
        return turns * burst / elapsed


_pipeline_idle: list[float] = []
"""Seconds per empty loop turn, measured after each `_on_loop` run (for `per_line_us`)."""


def _floor(path: Path, lines: int) -> float:
    encode = msgspec.json.encode
    context = {"plan_id": "p-bench", "leg": 3, "symbol": "TQQQ", "side": "buy"}
    with path.open("wb") as out:
        began = time.perf_counter()
        for _ in range(lines):
            line = {
                "timestamp": datetime.now(UTC).isoformat(),
                "level": "info",
                "event": "leg_repegged",
                **context,
                **FIELDS,
            }
            out.write(encode(line) + b"\n")
        out.flush()
        return lines / (time.perf_counter() - began)


def per_line_us(lines: int = 20_000) -> float:
    """Microseconds of the event loop's time per line of the daemon's pipeline (for the
    reaction path's share): one line per loop turn, so every line pays its own flush and
    write(2) — the most a line costs — and the cost of an empty loop turn taken out."""
    with tempfile.TemporaryDirectory(prefix="execd-bench-") as tmp:
        try:
            rate = _pipeline(Path(tmp) / "log.jsonl", lines, burst=1)
            return max(0.0, 1e6 / rate - 1e6 * _pipeline_idle[-1])
        finally:
            configure_logging("error", "json")


def run(lines: int) -> list[Figure]:
    """Measure item 5."""
    ours: list[float] = []
    floor: list[float] = []
    runtime = RuntimeConfig()
    daemon_gc = GcTuning(freeze=runtime.gc_freeze, thresholds=runtime.gc_thresholds)
    # The pipeline runs in the daemon under its `[runtime]` collector settings (its start-up
    # heap frozen, young collections every 10,000 objects): measured without them, after
    # `make bench`'s earlier items, both figures swung with whatever heap those items left
    # (the floor alike: 147-272k lines/s, ours 70-126k, the ratio steady at 0.40-0.57).
    with tempfile.TemporaryDirectory(prefix="execd-bench-") as tmp, tuned_gc(daemon_gc):
        path = Path(tmp) / "log.jsonl"
        try:
            for _ in range(ROUNDS):
                ours.append(_pipeline(path, lines))
                floor.append(_floor(path, lines))
        finally:
            configure_logging("error", "json")
    return [
        Figure(
            "5 logging",
            "log_lines_per_s",
            statistics.median(ours),
            "lines/s",
            "log_floor_lines_per_s",
            statistics.median(floor),
            (Target("min", 100_000),),
            f"{ROUNDS} interleaved rounds of {lines:,} lines, median, logged on a uvloop loop"
            f" {BURST} per turn (≈ a re-peg's lines), both under the daemon's default [runtime] GC"
            " settings; the writer writes a turn's lines in one"
            " write(2) at the start of the next turn (a kill -9 loses at most the current"
            " turn's, ≤ 64 KiB), the floor writes buffered; per-line costs and the"
            " one-line-per-turn case in execd/bench/README.md section 5",
        )
    ]
