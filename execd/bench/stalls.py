"""What a stalled event loop was doing: a diagnostic for item 3's loop lag (not a figure).

A lag figure says *that* the loop was late, not *why*. This samples the loop thread's stack
from a watchdog thread whenever the loop has not beaten for more than a threshold, and says
how much of each stall the loop thread spent on a CPU (``/proc/self/task/<tid>/stat``): a
stall that is mostly off-CPU is the process waiting to run (the machine's other load, the
venue on the same cores), one that is mostly on-CPU is our own long turn, and the stacks say
whose. Collector pauses are timed apart through `gc.callbacks` (they run inside some
unlucky callback's frame and would otherwise be charged to it).

Run as ``python -m execd.bench.stalls [THRESHOLD_MS]``: item 3's 2,000 legs (`legs.measure`,
the real daemon in this process against `execd sim` in its own), quick profile's 45 s. The
sampler costs the loop one timer callback per millisecond; compare its lag only with itself.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

BEAT_S = 0.001
POLL_S = 0.002
FRAMES = 14
"""Innermost frames kept per sample: enough to name the caller of the hot leaf."""


def _thread_cpu_ms(native_id: int) -> float:
    """User + system CPU of one thread of this process, in ms."""
    with open(f"/proc/self/task/{native_id}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


@dataclass
class StallReport:
    """Stalls seen while `watch` ran: wall and on-CPU ms each, sampled stacks, GC pauses."""

    stalls: list[tuple[float, float]] = field(default_factory=list)
    stacks: collections.Counter[tuple[str, ...]] = field(default_factory=collections.Counter)
    gc_pauses_ms: dict[int, list[float]] = field(default_factory=lambda: {0: [], 1: [], 2: []})

    def summary(self, top: int = 40) -> dict[str, Any]:
        """The report as plain data: stall sizes, CPU share, hottest frames, GC pauses."""
        walls = sorted(w for w, _ in self.stalls)
        total = sum(self.stacks.values()) or 1
        frames: collections.Counter[str] = collections.Counter()
        for stack, n in self.stacks.items():
            for frame in set(stack):
                frames[frame] += n
        return {
            "stalls": len(walls),
            "stall_ms_p50_p90_max": (
                [round(walls[len(walls) // 2]), round(walls[int(len(walls) * 0.9)]),
                 round(walls[-1])] if walls else []
            ),
            "cpu_share_in_stalls": round(
                sum(c for _, c in self.stalls) / max(1e-9, sum(w for w, _ in self.stalls)), 2
            ),
            "frames_in_stalls": [
                f"{n / total * 100:5.1f}% {frame}" for frame, n in frames.most_common(top)
            ],
            "gc_pauses": {
                f"gen{g}": {"count": len(p), "max_ms": round(max(p, default=0.0), 1),
                            "sum_ms": round(sum(p), 1)}
                for g, p in self.gc_pauses_ms.items()
            },
        }  # fmt: skip


@contextmanager
def watch(loop: asyncio.AbstractEventLoop, threshold_ms: float) -> Iterator[StallReport]:
    """Sample the stalls of `loop` (running in this thread) while the block runs."""
    report = StallReport()
    beat = [time.monotonic()]
    loop_tid = threading.get_ident()
    native = threading.get_native_id()
    stop = threading.Event()
    gc_start = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if threading.get_ident() != loop_tid:
            return
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            report.gc_pauses_ms[info["generation"]].append(
                (time.perf_counter() - gc_start[0]) * 1000
            )

    def beater() -> None:
        beat[0] = time.monotonic()
        loop.call_later(BEAT_S, beater)

    def watchdog() -> None:
        began = 0.0
        began_cpu: float | None = None
        while not stop.wait(POLL_S):
            now = time.monotonic()
            if (now - beat[0]) * 1000 > threshold_ms:
                if began_cpu is None:
                    began, began_cpu = beat[0], _thread_cpu_ms(native)
                frame = sys._current_frames().get(loop_tid)
                if frame is not None:
                    stack = traceback.extract_stack(frame)[-FRAMES:]
                    report.stacks[
                        tuple(f"{os.path.basename(s.filename)}:{s.name}:{s.lineno}" for s in stack)
                    ] += 1
            elif began_cpu is not None:
                report.stalls.append(((now - began) * 1000, _thread_cpu_ms(native) - began_cpu))
                began_cpu = None

    loop.call_soon(beater)
    gc.callbacks.append(on_gc)
    thread = threading.Thread(target=watchdog, name="stall-watchdog", daemon=True)
    thread.start()
    try:
        yield report
    finally:
        stop.set()
        thread.join()
        gc.callbacks.remove(on_gc)


def main() -> int:
    """Item 3's 2,000 legs under the stall sampler; prints the legs' figures and the report."""
    import uvloop

    from execd.bench.legs import SIM_SYMBOLS, measure, universe
    from execd.bench.processes import sim_process
    from execd.logs import configure_logging

    threshold_ms = float(sys.argv[1]) if len(sys.argv) > 1 else 15.0
    configure_logging("error", "json", sys.stderr)
    venue = ("--scenario", "calm", "--date", "2026-03-04", "--start", "10:00:00")
    limits: tuple[str, ...] = ("--rate-limit", "100000", "--cash", "1000000000")
    limits += ("--data-rate-limit", "10000", "--data-symbol-limit", "0")

    async def run(urls: dict[str, str]) -> dict[str, Any]:
        with watch(asyncio.get_running_loop(), threshold_ms) as report:
            legs = await measure(urls, 2_000, 45.0)
        return {"legs": {k: legs.get(k) for k in ("lag_p99_ms", "legs", "released", "wall_s")},
                **report.summary()}  # fmt: skip

    with sim_process(*venue, "--symbols", ",".join(universe(SIM_SYMBOLS)), *limits) as urls:
        print(json.dumps(uvloop.run(run(urls)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
