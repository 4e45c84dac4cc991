"""Item 3 — scale: the daemon's start-up, idle memory and imports (real processes), and 2,000 legs.

- ``startup_ready_ms``: spawn of `execd run` (against `execd sim` running as its own process)
  to the daemon's ``READY=1``; baseline ``import_daemon_ms``, what importing the daemon's
  modules alone costs in a fresh interpreter (so the ratio shows how much of start-up is
  imports).
- ``idle_rss_mb``: that daemon's RSS two seconds after ready, no plans; baseline
  ``import_daemon_rss_mb`` (a fresh interpreter that only imported the daemon).
- ``import_alpaca_marginal_ms`` / ``import_alpaca_marginal_mb``: what ``import alpaca.trading``
  (the package alpaca-py's models live in; its ``__init__`` pulls the sync client, requests and
  pandas) adds on top of the daemon's other dependencies — what a lean path (msgspec structs for
  the REST bodies, verified against alpaca-py's models in tests) would save at start-up and in
  memory. Not switched to: alpaca-py's models stay the wire format (DESIGN.md).

Rounds are interleaved (import probes and daemon starts alternate); medians are reported.
"""

from __future__ import annotations

import statistics

from execd.bench.processes import daemon_start, import_cost, sim_process
from execd.bench.results import Figure, Target

ROUNDS = 3
DAEMON = "execd.engine.daemon"
# What the daemon imports anyway, besides alpaca-py: the marginal cost of alpaca is on top.
OTHER_DEPS = (
    "pydantic",
    "pydantic_settings",
    "aiohttp",
    "websockets.asyncio.client",
    "msgspec",
    "structlog",
    "uvloop",
    "sqlite3",
)


def run_processes() -> list[Figure]:
    """Start-up, idle RSS and import costs."""
    ready: list[float] = []
    idle: list[float] = []
    daemon_ms: list[float] = []
    daemon_mb: list[float] = []
    alpaca_ms: list[float] = []
    alpaca_mb: list[float] = []
    with sim_process("--scenario", "calm", "--date", "2026-03-04", "--start", "10:00:00") as urls:
        for _ in range(ROUNDS):
            d = import_cost(DAEMON)
            daemon_ms.append(d["ms"])
            daemon_mb.append(d["rss"])
            a = import_cost("alpaca.trading", OTHER_DEPS)
            alpaca_ms.append(a["ms"])
            alpaca_mb.append(a["delta"])
            ms, mb = daemon_start(urls)
            ready.append(ms)
            idle.append(mb)
    med = statistics.median
    note = f"{ROUNDS} interleaved rounds, median"
    return [
        Figure(
            "3 scale",
            "startup_ready_ms",
            med(ready),
            "ms",
            "import_daemon_ms",
            med(daemon_ms),
            (Target("max", 1500),),
            note,
        ),
        Figure(
            "3 scale",
            "idle_rss_mb",
            med(idle),
            "MB",
            "import_daemon_rss_mb",
            med(daemon_mb),
            (Target("max", 100),),
            note,
        ),
        Figure(
            "3 scale",
            "import_alpaca_marginal_ms",
            med(alpaca_ms),
            "ms",
            "import_daemon_ms",
            med(daemon_ms),
            note="what a lean path (no alpaca-py import) would save at start-up",
        ),
        Figure(
            "3 scale",
            "import_alpaca_marginal_mb",
            med(alpaca_mb),
            "MB",
            "idle_rss_mb",
            med(idle),
            note="what a lean path would save in RSS",
        ),
    ]


def run(legs: int) -> list[Figure]:
    """Measure item 3."""
    return run_processes()
