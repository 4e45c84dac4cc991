"""Item 3's 2,000 legs: the real daemon (in this process) against `execd sim` (its own process).

Run as ``python -m execd.bench.legs URLS_JSON LEGS LIMIT_S [caps|nocaps]`` by `scale.run`, so
that its RSS is the daemon's, not the benchmark runner's; prints one JSON object:

- ``submit_ms``: `Engine.submit` of the plans (500 legs each, the plan limit), summed; a
  plan refused at submit is listed in ``refused`` and the run goes on with the others
  (``legs`` says how many run);
- ``release_s``: first submit until no leg is ``pending`` (every leg released);
- ``wall_s``: first submit until every plan has ended;
- ``lag_p99_ms``: event-loop lag p99 — a task asks to wake every 10 ms and records how late
  it woke, for the whole run;
- ``rss_peak_mb``: the largest ``VmRSS`` sampled (every 100 ms).

The plans are buys of one share of each symbol of the venue's universe (`SIM_SYMBOLS`),
urgency normal, with the production ladder settings; the daemon's request budget is raised
to its maximum (10,000/min) as the sim's rate limits are (a paid data plan: every symbol
streamed), so the figure is about the daemon, not Alpaca's limits.
Status is polled every 0.5 s for the release and end times (that polling is part of the load).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from execd.bench.processes import rss_mb
from execd.config import load_settings
from execd.engine.daemon import running_daemon
from execd.logs import configure_logging

PLAN_LEGS = 500
NO_CAPS = {
    "max_order_notional": None,
    "max_plan_notional": None,
    "max_order_equity_multiple": None,
    "max_plan_equity_multiple": None,
}
"""The second run when submit with the default caps fails: their validation reads a latest
quote per symbol over the data API."""
SAMPLE_S = 0.010
SIM_SYMBOLS = 2_000
"""The issue's 2,000-symbol universe: each plan of 500 legs trades its own 500 symbols, all
streaming (calm, ~2 quotes/s each: ~4,000 quotes/s). Until the generator picked its next
tick from a heap, one process could not serve it (``GET /v2/clock`` took 20 s+) and the run
used 500 symbols shared by the four plans."""


def universe(count: int) -> list[str]:
    """The made-up symbols of the 2,000-symbol universe."""
    return [f"U{i:04d}" for i in range(count)]


def _plan_symbols(names: list[str], first: int, count: int) -> list[str]:
    """The symbols of the plan starting at leg `first`: its own slice of the universe, or,
    in a universe smaller than the legs, the universe again from its start."""
    return [names[(first + i) % len(names)] for i in range(count)]


async def _sampler(lags: list[float], peak: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    last_rss = 0.0
    pid = os.getpid()
    while not stop.is_set():
        expected = loop.time() + SAMPLE_S
        await asyncio.sleep(SAMPLE_S)
        lags.append(max(0.0, loop.time() - expected))
        if loop.time() - last_rss >= 0.1:
            last_rss = loop.time()
            peak[0] = max(peak[0], rss_mb(pid))


async def measure(
    urls: dict[str, str], legs: int, limit_s: float, caps: bool = True
) -> dict[str, Any]:
    """Run the plans through the daemon for at most `limit_s`; the figures as a dict.

    When the limit ends the run first, ``released``/``finished`` say how far it got, and
    ``release_s`` is extrapolated from the release rate so far (``release_extrapolated``).
    """
    with tempfile.TemporaryDirectory(prefix="xl", dir="/tmp") as tmp:
        workdir = Path(tmp)
        config = workdir / "execd.toml"
        config.write_text("", encoding="utf-8")
        settings = load_settings(
            config,
            venue={
                "kind": "sim",
                "trading_url": urls["trading_url"],
                "trading_stream_url": urls["trading_stream_url"],
                "data_url": urls["data_url"],
                "data_stream_url": urls["data_stream_url"],
                # the venue models a paid plan (`--data-symbol-limit 0`): every symbol streams
                "stream_symbol_limit": 1_000_000,
            },
            api={"socket_path": str(workdir / "s")},
            journal={"path": str(workdir / "journal.db")},
            # The venue dies with the run: cancelling at shutdown would only wait for budget.
            shutdown={"working_orders": "leave"},
            gateway={"requests_per_minute": 10_000},
            **({} if caps else {"risk": NO_CAPS}),
        )
        lags: list[float] = []
        peak = [0.0]
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sampler(lags, peak, stop))
        async with running_daemon(settings) as daemon:
            engine = daemon.engine
            names = universe(min(legs, SIM_SYMBOLS))
            plans: list[str] = []
            refused: list[str] = []
            running = 0
            submit_s = 0.0
            first = time.monotonic()
            for n in range(0, legs, PLAN_LEGS):
                plan = {
                    "plan_id": f"scale-{n // PLAN_LEGS}",
                    "urgency": "normal",
                    "legs": [
                        {"symbol": s, "side": "buy", "qty": "1"}
                        for s in _plan_symbols(names, n, min(PLAN_LEGS, legs - n))
                    ],
                }
                began = time.monotonic()
                try:
                    status = await engine.submit(plan)
                except Exception as exc:  # the figure is "submit failed, because …"
                    failed = f"submit of plan {n // PLAN_LEGS + 1} failed after "
                    refused.append(f"{failed}{time.monotonic() - began:.1f} s: {exc}"[:400])
                    continue  # the other plans still run: one run, within the time budget
                submit_s += time.monotonic() - began
                plans.append(status.plan_id)
                running += len(status.legs)
            if not plans:
                await daemon.shutdown()
                stop.set()
                await sampler
                return {"error": "; ".join(refused)}
            released: float | None = None
            deadline = first + limit_s
            count = 0
            while True:
                statuses = [await engine.status(p) for p in plans]
                count = sum(leg.state != "pending" for s in statuses for leg in s.legs)
                if released is None and count == running:
                    released = time.monotonic() - first
                if all(s.finished_at is not None for s in statuses):
                    break
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.5)
            wall = time.monotonic() - first
            finished = all(s.finished_at is not None for s in statuses)
            states: dict[str, int] = {}
            failures: dict[str, int] = {}
            for s in statuses:
                for leg in s.legs:
                    states[leg.state] = states.get(leg.state, 0) + 1
                    if leg.state == "failed":
                        why = (leg.reason or "?")[:60]
                        failures[why] = failures.get(why, 0) + 1
            await daemon.shutdown()
        stop.set()
        await sampler
    lags_ms = sorted(x * 1000 for x in lags)
    extrapolated = released is None
    if released is None:
        released = wall * running / count if count else float("inf")
    return {
        "legs": running,
        "refused": refused,
        "submit_ms": submit_s * 1000,
        "release_s": released,
        "release_extrapolated": extrapolated,
        "released": count,
        "finished": finished,
        "wall_s": wall,
        "lag_p99_ms": statistics.quantiles(lags_ms, n=100)[98] if len(lags_ms) > 1 else 0.0,
        "rss_peak_mb": peak[0],
        "states": states,
        "failures": dict(sorted(failures.items(), key=lambda kv: -kv[1])[:3]),
    }


def main() -> int:
    """Entry point for `scale.run`'s child process."""
    import uvloop

    configure_logging("error", "json", sys.stderr)
    urls = json.loads(sys.argv[1])
    legs = int(sys.argv[2])
    limit_s = float(sys.argv[3])
    caps = sys.argv[4] == "caps" if len(sys.argv) > 4 else True
    print(json.dumps(uvloop.run(measure(urls, legs, limit_s, caps))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
