"""Item 5 — logging: the daemon's own structlog pipeline writing JSON lines to a file.

``log_lines_per_s``: `execd.logs.configure_logging("info", "json", file)` and a leg's context
bound with `bind_leg`, logging the kind of line a re-peg writes (`leg_repegged` with prices
as `Decimal`). Baseline ``log_floor_lines_per_s``: the same dict with a timestamp encoded by
msgspec and written to the same kind of file — the cost of the bytes alone. Interleaved rounds.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import msgspec
import structlog

from execd.bench.results import Figure, Target
from execd.logs import bind_leg, configure_logging

ROUNDS = 3
FIELDS: dict[str, object] = {
    "old_limit": Decimal("62.43"),
    "new_limit": Decimal("62.47"),
    "trigger": "timeout",
    "repegs": 1,
    "remaining": Decimal(300),
}


def _pipeline(path: Path, lines: int) -> float:
    with path.open("w", encoding="utf-8") as out:
        # As `execd run` configures it (`once`: module loggers are kept after their first line).
        configure_logging("info", "json", out, once=True)
        log = structlog.get_logger("execd.engine.leg")
        with bind_leg(plan_id="p-bench", leg=3, symbol="TQQQ", side="buy", client_order_id="x"):
            began = time.perf_counter()
            for _ in range(lines):
                log.info("leg_repegged", **FIELDS)
            out.flush()
            return lines / (time.perf_counter() - began)


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
    """Microseconds per line of the daemon's pipeline (for the reaction path's share)."""
    with tempfile.TemporaryDirectory(prefix="execd-bench-") as tmp:
        try:
            return 1e6 / _pipeline(Path(tmp) / "log.jsonl", lines)
        finally:
            configure_logging("error", "json")


def run(lines: int) -> list[Figure]:
    """Measure item 5."""
    ours: list[float] = []
    floor: list[float] = []
    with tempfile.TemporaryDirectory(prefix="execd-bench-") as tmp:
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
            f"{ROUNDS} interleaved rounds of {lines:,} lines, median; each line is one write(2)"
            " as it is logged (journald gets it at once, a crash loses none), the floor"
            " writes buffered; per-line costs in execd/bench/README.md section 5",
        )
    ]
