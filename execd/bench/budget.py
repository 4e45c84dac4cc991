"""Item 4 — the request budget under Alpaca's real limit (200 trading requests/min).

The real daemon (in-process venue, the venue's default 200/min limit, the daemon's default
budget) runs plans of passive buys on item 2's scripted tape — every symbol steps 0.2 % every
0.5 s, so every working order is re-pegged — until the profile's leg count or time limit.

- ``budget_http_429``: trading requests the venue refused with 429 (counted at the venue's
  limiter). Target 0.
- ``budget_utilisation``: trading requests the venue received per second while anything
  waited for the budget, over Alpaca's 200/min (counted at the venue's trading limiter: a
  grant given back unsent, its pricing quote stale in line, is no request).
  Target ≥ 0.9. With the defaults the ceiling is 0.90 by construction: a backlog is paced
  at `requests_per_minute - cancel_reserve` (190 - 10) a minute so that the cancels' slots
  stay free; the note prints the ceiling.
- ``budget_cancel_wait_p99_ms``: how long a cancel waited for its grant (p99); the plans are
  cancelled at the time limit, while the budget is backlogged. Target ≤ 1,000.

The venue's `RateLimiter.hit` is wrapped to count refusals, and the daemon's
`RequestBudget.slot` (class level, this process only) to time each
wait by priority and to find the budget to sample (class level, restored after); nothing
else is changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from execd.adapters.budget import Priority, QueuePlace, RequestBudget, Slot, Withdrawal
from execd.adapters.errors import SendExpired
from execd.bench.reaction import CASH, symbols, write_tape
from execd.bench.results import Figure, Target
from execd.config import load_settings
from execd.engine.daemon import running_daemon
from execd.sim.ratelimit import RateDecision, RateLimiter

ALPACA_PER_S = 200 / 60
MIN_WINDOWS = 3
WIND_DOWN_S = 8.0
"""After the limit the plans are cancelled; the run goes on this long for their cancels.

The cancels a user's `execd cancel` causes are granted within milliseconds (the figure).
Legs queued for a new-order grant when the plan was cancelled used to notice the stop only
at their grant (`plan_cancel_unconfirmed` after the 30 s grace); a stop now withdraws them
at once, so the wind-down is the cancels alone. How many plans were still running at the
end is in the note."""


class _Meter:
    """Waits per priority, grant times, and the budget's backlog over time."""

    def __init__(self) -> None:
        self.waits: dict[Priority, list[float]] = defaultdict(list)
        self.grants: list[float] = []
        self.given_back = 0
        self.expired_in_line = 0
        self.original_unused: Any = Slot.unused
        self.budgets: list[RequestBudget] = []

    def install(self) -> Any:
        original = RequestBudget.slot
        original_unused = Slot.unused
        meter = self

        def unused(self: Slot) -> None:
            if not self._done:
                meter.given_back += 1
            original_unused(self)

        Slot.unused = unused  # type: ignore[method-assign]
        self.original_unused = original_unused

        @contextlib.asynccontextmanager
        async def slot(
            self: RequestBudget,
            priority: Priority,
            withdraw: Withdrawal | None = None,
            place: QueuePlace | None = None,
            send_by: float | None = None,
        ) -> AsyncIterator[Slot]:
            if self not in meter.budgets:
                meter.budgets.append(self)
            began = time.monotonic()
            entered = False
            try:
                async with original(self, priority, withdraw, place, send_by) as granted:
                    entered = True
                    now = time.monotonic()
                    meter.waits[priority].append(now - began)
                    meter.grants.append(now)
                    yield granted
            except SendExpired:
                if not entered:  # its quote went stale in line: the grant went straight back
                    meter.expired_in_line += 1
                raise

        RequestBudget.slot = slot  # type: ignore[method-assign]
        return original


async def _measure(tape: Path, legs: int, limit_s: float) -> dict[str, Any]:
    meter = _Meter()
    original = meter.install()
    hit = RateLimiter.hit
    refused = 0
    trading_hits: list[float] = []
    backlogged_at_cancel: bool | None = None
    running = 0
    backlog: list[tuple[float, bool]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="xb", dir="/tmp") as tmp:
            workdir = Path(tmp)
            config = workdir / "execd.toml"
            config.write_text("", encoding="utf-8")
            settings = load_settings(
                config,
                venue={"kind": "sim"},
                sim={"tape": str(tape), "start": "10:00:00", "cash": str(CASH)},
                api={"socket_path": str(workdir / "s")},
                journal={"path": str(workdir / "journal.db")},
                # The venue dies with the run: cancelling at shutdown would only wait for budget.
                shutdown={"working_orders": "leave"},
            )
            async with running_daemon(settings) as daemon:
                venue = daemon.venue
                assert venue is not None
                limiter = venue.services.trading_limiter

                def counted(self: RateLimiter, key: str, now: float) -> RateDecision:
                    nonlocal refused
                    decision = hit(self, key, now)
                    if self is limiter:
                        trading_hits.append(time.monotonic())
                        if not decision.allowed:
                            refused += 1
                    return decision

                RateLimiter.hit = counted  # type: ignore[method-assign]
                names = symbols()
                deadline = time.monotonic() + limit_s
                plans: list[str] = []
                for n in range(0, legs, len(names)):
                    count = min(len(names), legs - n)
                    plan = {
                        "plan_id": f"budget-{n}",
                        "urgency": "normal",
                        "legs": [{"symbol": s, "side": "buy", "qty": "100"} for s in names[:count]],
                    }
                    plans.append((await daemon.engine.submit(plan)).plan_id)
                cancel_tasks: list[asyncio.Task[Any]] = []
                wind_down_until = float("inf")
                while time.monotonic() < wind_down_until:
                    waiting = any(sum(b.statistics().waiting.values()) > 0 for b in meter.budgets)
                    backlog.append((time.monotonic(), waiting))
                    statuses = [await daemon.engine.status(p) for p in plans]
                    running = sum(s.finished_at is None for s in statuses)
                    if running == 0:
                        break
                    if not cancel_tasks and time.monotonic() >= deadline:
                        # The user cancels while the budget is backlogged: the cancels'
                        # waits are the figure (they must not queue behind new orders).
                        # What the figure needs: new orders or replaces queued for the budget,
                        # which a cancel must not wait behind.
                        backlogged_at_cancel = any(
                            b.statistics().waiting.get(Priority.NEW_ORDER, 0)
                            + b.statistics().waiting.get(Priority.REPLACE, 0)
                            > 0
                            for b in meter.budgets
                        )
                        wind_down_until = time.monotonic() + WIND_DOWN_S
                        cancel_tasks = [
                            asyncio.ensure_future(daemon.engine.cancel(plan_id))
                            for plan_id in plans
                        ]
                    await asyncio.sleep(0.25)
                for task in cancel_tasks:
                    task.cancel()
                await asyncio.gather(*cancel_tasks, return_exceptions=True)
                await daemon.shutdown()
    finally:
        RequestBudget.slot = original  # type: ignore[method-assign]
        Slot.unused = meter.original_unused  # type: ignore[method-assign]
        RateLimiter.hit = hit  # type: ignore[method-assign]
    busy = 0.0
    granted = 0
    for (t0, waiting), (t1, _) in itertools.pairwise(backlog):
        if waiting:
            busy += t1 - t0
            granted += sum(1 for g in trading_hits if t0 <= g < t1)
    cancels = sorted(meter.waits.get(Priority.CANCEL, []))
    return {
        "refused": refused,
        "utilisation": granted / (busy * ALPACA_PER_S) if busy > 0 else float("nan"),
        "backlogged_s": busy,
        "cancel_p99_ms": (
            statistics.quantiles(cancels, n=100, method="inclusive")[98] * 1000
            if len(cancels) > 1
            else (cancels[0] * 1000 if cancels else float("nan"))
        ),
        "cancels": len(cancels),
        "requests": len(meter.grants),
        "given_back": meter.given_back,
        "expired_in_line": meter.expired_in_line,
        "trading_requests": len(trading_hits),
        "backlogged_at_cancel": backlogged_at_cancel,
        "pace_ceiling": (settings.gateway.requests_per_minute - settings.gateway.cancel_reserve)
        / (ALPACA_PER_S * 60),
        "running_after": running,
    }


def run(legs: int, limit_s: float = 60.0) -> list[Figure]:
    """Measure item 4."""
    import uvloop

    with tempfile.TemporaryDirectory(prefix="xb") as tmp:
        # Quotes keep moving for the whole run (the wind-down too): a tape shorter than
        # the run left the legs without fresh quotes, holding, halfway through FULL=1.
        tape = write_tape(Path(tmp) / "budget.jsonl", seconds=limit_s + WIND_DOWN_S + 60)
        r = uvloop.run(_measure(tape, legs, limit_s))
    note = (
        f"{legs} legs, {r['requests']} budget grants ({r['trading_requests']} trading requests"
        f" at the venue, {r['given_back']} given back unsent; {r['expired_in_line']} writes"
        " went stale in line and were priced again), backlogged"
        f" {r['backlogged_s']:.0f} s "
        f"of a {limit_s:.0f} s limit, {r['cancels']} cancels"
    )
    backlogged = r["backlogged_at_cancel"]
    cancel_note = (
        "cancelled at the limit with the budget "
        + {
            True: "backlogged (new orders or replaces queued)",
            False: "NOT backlogged (nothing queued: the figure is weak)",
            None: "— the plans ended before the limit (nothing measured)",
        }[backlogged]
        + f"; {r['running_after']} plans still winding down {WIND_DOWN_S:.0f} s later"
    )
    utilisation = r["utilisation"]
    use_note = (
        f"{note}; the daemon paces a backlog at {r['pace_ceiling']:.2f} of Alpaca's 200/min"
        " (requests_per_minute - cancel_reserve: the cancels' slots stay free), the ceiling"
    )
    if limit_s < MIN_WINDOWS * 60:
        # A run shorter than a few 60 s windows measures the first burst and the wait for
        # the window to roll, not the steady rate: not a utilisation figure.
        use_note = (
            f"NOT MEASURED in a {limit_s:.0f} s run (needs ≥ {MIN_WINDOWS} budget windows: FULL=1)"
        )
        utilisation = float("nan")
    return [
        Figure("4 budget", "budget_http_429", float(r["refused"]), "", targets=(Target("max", 0),),
               note=note),
        Figure("4 budget", "budget_utilisation", utilisation, "",
               targets=(Target("min", 0.9),), note=use_note),
        Figure("4 budget", "budget_cancel_wait_p99_ms", r["cancel_p99_ms"], "ms",
               targets=(Target("max", 1000),), note=cancel_note),
    ]  # fmt: skip
