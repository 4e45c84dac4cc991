"""An in-memory fake of the engine, implementing `ControlHandler`, and socket helpers.

The real plan runner is not needed to test the control API: this fake keeps plans in a
dict, refuses like the engine does (``invalid_plan``, ``not_found``, ``halted``), and
plays a scripted execution when watched, so a test can drive a whole ``submit --follow``
without a venue, a clock or a sleep.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from execd.control.protocol import (
    ControlError,
    ErrorCode,
    HaltState,
    Health,
    LegState,
    LegStatus,
    PlanStatus,
    WatchEvent,
)
from execd.control.server import ControlServer
from execd.domain.types import Side, Urgency

T0 = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)


@contextmanager
def short_tmpdir() -> Iterator[Path]:
    """A fresh directory under /tmp: AF_UNIX paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="xd"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def plan_doc(plan_id: str = "rebal-1", legs: int = 2) -> dict[str, Any]:
    """A PLAN.json-shaped document (the engine's plan format is its own; the fake is lenient)."""
    symbols = ["TQQQ", "SQQQ", "AAPL", "MSFT"]
    return {
        "plan_id": plan_id,
        "legs": [
            {
                "symbol": symbols[i % len(symbols)],
                "side": "sell" if i == 0 else "buy",
                "qty": str(10 * (i + 1)),
                "urgency": "normal",
            }
            for i in range(legs)
        ],
    }


def _leg(index: int, raw: Mapping[str, Any]) -> LegStatus:
    return LegStatus(
        index=index,
        symbol=str(raw["symbol"]),
        side=Side(raw["side"]),
        qty=Decimal(raw["qty"]) if "qty" in raw else None,
        notional=Decimal(raw["notional"]) if "notional" in raw else None,
        urgency=Urgency(raw.get("urgency", "normal")),
        state="pending",
        step=0,
    )


@dataclass
class FakeEngine:
    """A `ControlHandler` that keeps plans in memory and scripts their execution.

    `outcome` decides how a watched plan's legs end: "filled" (all fill) or "unfilled"
    (the last leg ends unfilled). `crash_on` names an op whose handler raises a bug.
    """

    outcome: str = "filled"
    crash_on: set[str] = field(default_factory=set)
    plans: dict[str, PlanStatus] = field(default_factory=dict)
    halted: bool = False
    submitted: list[str] = field(default_factory=list)
    watch_gate: asyncio.Event | None = None
    """When set, `watch` yields its first event and then waits for this gate."""
    watch_closed: asyncio.Event = field(default_factory=asyncio.Event)
    streams_up: bool = True
    starting_answers: int = 0
    """Submissions answered ``starting`` (a daemon still reconciling) before one is taken."""
    halt_answer: HaltState = field(
        default_factory=lambda: HaltState(halted=True, canceled_orders=3)
    )
    """What `halt` answers (a halt that left orders working, one that could not list)."""
    resume_answer: HaltState = field(default_factory=lambda: HaltState(halted=False))

    def _crash(self, op: str) -> None:
        if op in self.crash_on:
            raise RuntimeError(f"fake engine bug in {op}")

    def _get(self, plan_id: str) -> PlanStatus:
        try:
            return self.plans[plan_id]
        except KeyError:
            raise ControlError(ErrorCode.NOT_FOUND, f"no plan {plan_id!r}") from None

    async def submit(self, plan: Mapping[str, Any], *, dry_run: bool = False) -> PlanStatus:
        """Accept a plan with a plan_id and legs; an existing plan_id returns the plan."""
        self._crash("submit")
        if self.starting_answers > 0:
            self.starting_answers -= 1
            raise ControlError(
                ErrorCode.STARTING, "execd is starting: recovering 2 orders, ≈3 s left"
            )
        if self.halted:
            raise ControlError(ErrorCode.HALTED, "execd is halted; `execd resume` to accept plans")
        plan_id = plan.get("plan_id")
        legs = plan.get("legs")
        if not isinstance(plan_id, str) or not plan_id:
            raise ControlError(ErrorCode.INVALID_PLAN, "plan_id: required")
        if not isinstance(legs, list) or not legs:
            raise ControlError(ErrorCode.INVALID_PLAN, "legs: at least one leg is required")
        if plan_id in self.plans:
            return self.plans[plan_id]
        status = PlanStatus(
            plan_id=plan_id,
            state="accepted",
            submitted_at=T0,
            legs=tuple(_leg(i, raw) for i, raw in enumerate(legs)),
        )
        self.plans[plan_id] = status
        self.submitted.append(plan_id)
        return status

    async def status(self, plan_id: str) -> PlanStatus:
        """The stored plan, or not_found."""
        self._crash("status")
        return self._get(plan_id)

    async def list_plans(self) -> list[PlanStatus]:
        """Every stored plan."""
        self._crash("status")
        return list(self.plans.values())

    async def cancel(self, plan_id: str) -> PlanStatus:
        """Mark the plan and its unfinished legs canceled."""
        self._crash("cancel")
        plan = self._get(plan_id)
        legs = tuple(
            msgspec.structs.replace(leg, state="canceled", reason="canceled by request")
            if leg.state not in {"filled", "unfilled"}
            else leg
            for leg in plan.legs
        )
        plan = msgspec.structs.replace(plan, state="canceled", legs=legs, reason="canceled")
        self.plans[plan_id] = plan
        return plan

    async def halt(self) -> HaltState:
        """Refuse new plans."""
        self._crash("halt")
        self.halted = True
        return self.halt_answer

    async def resume(self) -> HaltState:
        """Accept plans again."""
        self._crash("resume")
        self.halted = self.resume_answer.halted
        return self.resume_answer

    async def health(self) -> Health:
        """A healthy daemon with two quotes in its cache."""
        self._crash("health")
        return Health(
            halted=self.halted,
            market_data_connected=self.streams_up,
            trade_updates_connected=True,
            quote_age_seconds={"TQQQ": 0.12, "SQQQ": 1.5},
            request_budget_left=187,
            request_budget_limit=200,
            venue="sim",
            feed="iex",
        )

    async def watch(self, plan_id: str) -> AsyncIterator[WatchEvent]:
        """Play the plan: each leg starts working, then fills (or ends unfilled)."""
        self._crash("watch")
        try:
            plan = self._get(plan_id)
            seq = 0
            if plan.state in {"completed", "partial", "canceled", "failed", "halted"}:
                return
            for leg in plan.legs:
                yield WatchEvent(
                    plan_id=plan_id,
                    seq=seq,
                    at=T0,
                    event="snapshot",
                    plan_state=plan.state,
                    leg=leg,
                )
                seq += 1
            if self.watch_gate is not None:
                await self.watch_gate.wait()
            legs = list(plan.legs)
            for i, leg in enumerate(legs):
                working = msgspec.structs.replace(
                    leg,
                    state="working",
                    step=2,
                    limit_price=Decimal("50.01"),
                    arrival_mid=Decimal("50.00"),
                    client_order_ids=(f"execd-{plan_id}-{i}-0",),
                    started_at=T0,
                    style="marketable",
                )
                yield WatchEvent(
                    plan_id=plan_id,
                    seq=seq,
                    at=T0,
                    event="leg_started",
                    plan_state="working",
                    leg=working,
                )
                seq += 1
                unfilled = self.outcome == "unfilled" and i == len(legs) - 1
                state: LegState = "unfilled" if unfilled else "filled"
                done = msgspec.structs.replace(
                    working,
                    state=state,
                    step=3 if unfilled else 2,
                    filled_qty=Decimal(0) if unfilled else (leg.qty or Decimal(0)),
                    avg_fill_price=None if unfilled else Decimal("50.01"),
                    slippage_bps=None if unfilled else Decimal("2.00"),
                    market_order_price=Decimal("50.02"),
                    saving_vs_market_bps=None if unfilled else Decimal("2.00"),
                    saving_vs_market_usd=None if unfilled else Decimal("0.10"),
                    limit_price=None,
                    finished_at=T0,
                    reason="low urgency: re-pegs exhausted" if unfilled else "filled",
                    repegs=2 if unfilled else 0,
                )
                legs[i] = done
                yield WatchEvent(
                    plan_id=plan_id,
                    seq=seq,
                    at=T0,
                    event="leg_finished",
                    plan_state="working",
                    leg=done,
                )
                seq += 1
            final = "partial" if self.outcome == "unfilled" else "completed"
            self.plans[plan_id] = msgspec.structs.replace(
                plan, state=final, legs=tuple(legs), finished_at=T0
            )
        finally:
            self.watch_closed.set()


@asynccontextmanager
async def running_server(
    engine: FakeEngine | None = None, **options: Any
) -> AsyncIterator[tuple[ControlServer, FakeEngine]]:
    """A control server on a short fresh path, serving `engine`, closed on exit."""
    engine = engine or FakeEngine()
    with short_tmpdir() as tmp:
        async with ControlServer(engine, tmp / "run" / "execd.sock", **options) as server:
            yield server, engine
