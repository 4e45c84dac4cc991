"""The real daemon, in-process, against the simulated venue over loopback.

`start_daemon(**overrides)` starts `running_daemon` with a short socket path, an empty
config file (so nothing from the checkout or the environment's TOML leaks in) and fast
ladder timeouts; the overrides are `load_settings` section dicts. At the end of every test
the venue's order history of every daemon the test started goes through
`check_venue_history` — one leg never has two live orders, never fills beyond its quantity,
and a finished plan leaves nothing working — before the daemon shuts down.

Nothing here sleeps to synchronise: plans are followed through the engine's `watch`
stream, and the few venue-side conditions are polled with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from execd.adapters.backoff import BackoffPolicy
from execd.adapters.rest import RestConfig
from execd.config import load_settings
from execd.control.protocol import LegStatus, PlanStatus, WatchEvent
from execd.domain.calendar import EASTERN
from execd.domain.ids import parse_client_order_id, plan_key
from execd.engine.daemon import Daemon, running_daemon
from execd.sim.venue import SimVenue

DEADLINE = 20.0
"""Every wait in these tests is bounded by this many seconds (scale it, never add sleeps).

It bounds the machine's work. A plan scripted to take venue time (a wait for the open, a
ladder's patience) passes that time as `scripted` to `finish`/`events`, which adds it:
otherwise a loaded machine eats the slack the script left, and the test times the machine
(the flake of `test_two_plans_do_not_spend_margin_together`: 11 s of its 20 s scripted)."""

TERMINAL = frozenset({"filled", "canceled", "expired", "replaced", "rejected"})

# Ladder settings every test starts from: seconds, not the seeds' production values.
# The passive style's re-check (10 s) and high-urgency patience (7 s) are among them: a test
# that judges the passive style's timing, or needs a passive limit to keep resting, sets its own.
FAST: dict[str, dict[str, Any]] = {
    "better_orders": {
        "normal_timeout_seconds": 0.5,
        "open_timeout_seconds": 0.5,
        "wide_spread_wait_seconds": 1.0,
    },
    "ladder": {
        "quote_wait_seconds": 2.0,
        "confirm_timeout_seconds": 3.0,
        "fallback_timeout_seconds": 5.0,
        "passive_timeout_seconds": 2.0,
        "passive_patience_high_seconds": 2.0,
    },
}


# ------------------------------------------------------------------------- history checks


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _ended_at(entry: Mapping[str, Any]) -> datetime | None:
    """When the venue put the order in a terminal state (None: still live)."""
    for event in entry["events"]:
        if event["status"] in TERMINAL:
            return _ts(event["timestamp"])
    return None


def check_venue_history(
    history: Mapping[str, Any],
    leg_qty: Mapping[tuple[str, int], Decimal],
    finished_plans: Iterable[str] = (),
) -> None:
    """Fail if any execd leg ever had two live orders, filled beyond its quantity, or if a
    finished plan left an order working.

    `leg_qty` maps (plan_id, leg index) to the leg's quantity. A replacement is the same
    live order continued (Alpaca's PATCH), so it may overlap the order it replaces, and only
    that one. Orders whose client id execd did not generate are ignored.
    """
    keys = {plan_key(plan_id): plan_id for plan_id, _ in leg_qty}
    by_leg: dict[tuple[str, int], list[Mapping[str, Any]]] = defaultdict(list)
    for entry in history["orders"]:
        parts = parse_client_order_id(entry["order"]["client_order_id"])
        if parts is None:
            continue
        plan_id = keys.get(parts.plan_key)
        assert plan_id is not None, f"order of an unknown plan: {entry['order']}"
        by_leg[(plan_id, parts.leg_index)].append(entry)
    fills_by_order: dict[str, Decimal] = defaultdict(Decimal)
    for fill in history["fills"]:
        fills_by_order[fill["order_id"]] += Decimal(fill["qty"])
    finished = set(finished_plans)
    for leg, entries in by_leg.items():
        assert leg in leg_qty, f"orders for a leg the plan does not have: {leg}"
        entries = sorted(entries, key=lambda e: _ts(e["order"]["created_at"]))
        for i, entry in enumerate(entries):
            order = entry["order"]
            created = _ts(order["created_at"])
            for earlier in entries[:i]:
                if order["replaces"] == earlier["order"]["id"]:
                    continue  # the replacement continues this order
                ended = _ended_at(earlier)
                live = ended is None or ended > created
                assert not live, (
                    f"leg {leg}: {order['client_order_id']} sent at {created} while "
                    f"{earlier['order']['client_order_id']} was live (ended {ended})"
                )
            filled = Decimal(order["filled_qty"])
            assert filled == fills_by_order[order["id"]], f"fills disagree for {order}"
            if order["qty"] is not None:
                assert filled <= Decimal(order["qty"]), f"order over-filled: {order}"
            if leg[0] in finished:
                assert order["status"] in TERMINAL, f"finished plan left {order} working"
        total = sum((Decimal(e["order"]["filled_qty"]) for e in entries), Decimal(0))
        assert total <= leg_qty[leg], f"leg {leg} filled {total} of {leg_qty[leg]}"


# ------------------------------------------------------------------------------- tapes


TAPE_DAY = date(2026, 3, 4)
"""A plain Wednesday: tapes recorded on it replay in an open regular session."""


@dataclass(frozen=True, slots=True)
class TapeQuote:
    """One NBBO line of a scripted tape, `at` seconds after the tape's start."""

    at: float
    bid: Decimal
    ask: Decimal
    bid_size: int = 500
    ask_size: int = 500


def write_tape(path: Path, quotes: Mapping[str, Iterable[TapeQuote]], start: time) -> Path:
    """An Alpaca-stream tape (JSON lines of `"T":"q"`) for the venue to replay."""
    origin = datetime.combine(TAPE_DAY, start, tzinfo=EASTERN)
    lines: list[tuple[datetime, str]] = []
    for symbol, series in quotes.items():
        for q in series:
            t = origin + timedelta(seconds=q.at)
            message = {
                "T": "q",
                "S": symbol,
                "bx": "Q",
                "bp": float(q.bid),
                "bs": q.bid_size,
                "ax": "Q",
                "ap": float(q.ask),
                "as": q.ask_size,
                "c": ["R"],
                "z": "C",
                "t": t.isoformat(),
            }
            lines.append((t, json.dumps(message)))
    lines.sort(key=lambda item: item[0])
    path.write_text("".join(line + "\n" for _, line in lines), encoding="utf-8")
    return path


def runaway(
    bid: str,
    *,
    spread: str,
    step: str,
    every: float = 0.2,
    seconds: float = 30.0,
    size: int = 500,
) -> list[TapeQuote]:
    """A market whose quote climbs `step` every `every` seconds for `seconds`."""
    b, gap, move = Decimal(bid), Decimal(spread), Decimal(step)
    count = int(seconds / every)
    return [
        TapeQuote(i * every, b + i * move, b + i * move + gap, size, size) for i in range(count)
    ]


# ----------------------------------------------------------------------------- harness


@dataclass
class Harness:
    """One running daemon and what a test asks of it."""

    daemon: Daemon
    directory: Path
    plans: list[str] = field(default_factory=list)
    external_venue: SimVenue | None = None
    stack: contextlib.AsyncExitStack | None = None

    @property
    def venue(self) -> SimVenue:
        venue = self.external_venue or self.daemon.venue
        assert venue is not None, "the daemon runs no in-process venue"
        return venue

    def until_venue_time(self, at: datetime) -> float:
        """Seconds of venue time from now until `at` (0 if past): a scripted wait."""
        return max(0.0, (at - self.venue.clock.now()).total_seconds())

    async def stop(self) -> None:
        """Shut this daemon down (by its `[shutdown]` config) and leave its context."""
        if self.stack is not None:
            stack, self.stack = self.stack, None
            await stack.aclose()

    async def submit(self, plan: Mapping[str, Any]) -> PlanStatus:
        """Submit through the engine (the control socket's handler)."""
        status = await self.daemon.engine.submit(plan)
        if status.plan_id not in self.plans:
            self.plans.append(status.plan_id)
        return status

    async def events(
        self,
        plan_id: str,
        until: Callable[[WatchEvent], bool] | None = None,
        *,
        scripted: float = 0.0,
    ) -> list[WatchEvent]:
        """The plan's watch events until `until` holds (or the plan ends), within DEADLINE
        plus the `scripted` seconds of venue time the test made the plan wait."""
        seen: list[WatchEvent] = []

        async def follow() -> None:
            async for event in self.daemon.engine.watch(plan_id):
                seen.append(event)
                if until is not None and until(event):
                    return

        await asyncio.wait_for(follow(), DEADLINE + scripted)
        return seen

    async def finish(self, plan_id: str, *, scripted: float = 0.0) -> PlanStatus:
        """Wait for the plan to end (see `events` for `scripted`); its final status."""
        await self.events(plan_id, scripted=scripted)
        status = await self.daemon.engine.status(plan_id)
        assert status.state not in ("accepted", "working"), status
        return status

    async def run(self, plan: Mapping[str, Any]) -> PlanStatus:
        """Submit and wait for the end."""
        status = await self.submit(plan)
        return await self.finish(status.plan_id)

    async def history(self) -> dict[str, Any]:
        return await self.venue.history()

    async def orders(self, plan_id: str, leg: int | None = None) -> list[dict[str, Any]]:
        """The venue's record of a plan's orders (optionally one leg's), oldest first."""
        key = plan_key(plan_id)
        out = []
        for entry in (await self.history())["orders"]:
            parts = parse_client_order_id(entry["order"]["client_order_id"])
            if parts is None or parts.plan_key != key:
                continue
            if leg is None or parts.leg_index == leg:
                out.append(entry)
        return sorted(out, key=lambda e: e["order"]["created_at"])

    async def wait_until(self, predicate: Callable[[], Awaitable[bool]], what: str) -> None:
        """Poll an async predicate (yielding to the loop) until true, or fail at DEADLINE."""
        loop = asyncio.get_running_loop()
        end = loop.time() + DEADLINE
        while not await predicate():
            if loop.time() > end:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)

    async def check(self) -> None:
        """`check_venue_history` over every plan this test submitted."""
        engine = self.daemon.engine
        leg_qty: dict[tuple[str, int], Decimal] = {}
        finished = []
        for plan_id in self.plans:
            status = await engine.status(plan_id)
            for leg in status.legs:
                leg_qty[(plan_id, leg.index)] = _leg_qty(leg)
            if status.finished_at is not None:
                finished.append(plan_id)
        check_venue_history(await self.history(), leg_qty, finished)


def _leg_qty(leg: LegStatus) -> Decimal:
    assert leg.qty is not None, f"leg {leg.index} was never sized"
    return leg.qty


StartDaemon = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def start_daemon() -> AsyncIterator[StartDaemon]:
    """Start daemons with `load_settings`-style overrides; check and stop them afterwards."""
    started: list[Harness] = []
    async with contextlib.AsyncExitStack() as stack:

        async def start(
            *,
            venue: SimVenue | None = None,
            directory: Path | None = None,
            venue_settings: dict[str, Any] | None = None,
            **overrides: dict[str, Any],
        ) -> Harness:
            """`venue`: a venue the test runs (it outlives the daemon); `directory`: an
            earlier daemon's (same journal and socket: a restart); `venue_settings`: the
            `[venue]` section's other keys (`venue` names the venue itself)."""
            if directory is None:
                directory = Path(tempfile.mkdtemp(prefix="xd", dir="/tmp"))
                stack.callback(shutil.rmtree, directory, True)
            config = directory / "execd.toml"
            config.write_text("", encoding="utf-8")
            venue_section: dict[str, Any] = {"kind": "sim"}
            if venue is not None:
                venue_section.update(
                    trading_url=venue.trading_url,
                    trading_stream_url=venue.trading_stream_url,
                    data_url=venue.data_url,
                    data_stream_url=venue.data_stream_url.rsplit("/", 1)[0] + "/iex",
                )
            venue_section.update(venue_settings or {})
            sections: dict[str, dict[str, Any]] = {
                "venue": venue_section,
                "api": {"socket_path": str(directory / "s")},
                "journal": {"path": str(directory / "journal.db")},
                "sim": {"scenario": "calm", "seed": 1, "start": "10:00:00"},
            }
            for section, values in (*FAST.items(), *overrides.items()):
                sections[section] = {**sections.get(section, {}), **values}
            settings = load_settings(config, **sections)
            own = contextlib.AsyncExitStack()
            daemon = await own.enter_async_context(running_daemon(settings))
            own.push_async_callback(daemon.shutdown)
            harness = Harness(daemon, directory, external_venue=venue, stack=own)
            stack.push_async_callback(harness.stop)
            started.append(harness)
            return harness

        yield start
        for harness in started:
            if harness.stack is not None:  # a daemon the test stopped was checked by it
                await harness.check()


def sim_rest_config(venue: SimVenue) -> RestConfig:
    """A gateway config for `venue` with short timeouts and back-off (loopback tests)."""
    return RestConfig(
        trading_url=venue.trading_url,
        data_url=venue.data_url,
        key_id=venue.key_id,
        secret_key=venue.secret_key,
        total_timeout=5.0,
        connect_timeout=1.0,
        backoff=BackoffPolicy(initial=0.01, maximum=0.05),
    )
