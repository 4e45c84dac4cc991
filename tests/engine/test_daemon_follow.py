"""Issue 13 item 4: `execd status PLAN_ID --follow` re-attaches to a running plan.

The real daemon works a passive leg on a runaway tape (it re-pegs, then falls back), and
the CLI — a separate client on the socket, started after the plan — follows it to the end.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import pytest

from execd.cli.main import main
from execd.cli.render import live_table, touch_distance
from execd.control.protocol import LegStatus
from execd.domain.types import Side, Urgency
from tests.engine.conftest import StartDaemon
from tests.engine.test_daemon_ladder import _runaway_tape

pytestmark = pytest.mark.slow


async def test_status_follow_reattaches_and_shows_the_nbbo(
    start_daemon: StartDaemon,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Events carry the NBBO and the working limit while the leg works; the command ends
    with the final plan and exits 0 (every leg filled)."""
    d = await start_daemon(
        sim=_runaway_tape(tmp_path_factory.mktemp("tape")),
        execution={"max_repegs_per_order": 2},
        better_orders={"normal_timeout_seconds": 0.5},
    )
    await d.submit({"plan_id": "follow", "legs": [{"symbol": "ACME", "side": "buy", "qty": "100"}]})
    socket = str(d.directory / "s")
    capsys.readouterr()
    argv = ["status", "follow", "--follow", "--json", "--socket", socket]
    code = await asyncio.to_thread(main, argv)
    # stdout also carries the in-process daemon's log lines (console format): skip them
    out = capsys.readouterr().out.splitlines()
    lines = [json.loads(line) for line in out if line.startswith("{")]
    assert code == 0
    events, final = lines[:-1], lines[-1]
    assert final["state"] == "completed"
    working = [e["leg"] for e in events if e.get("leg") and e["leg"]["limit_price"]]
    assert working, events
    assert all(w["bid"] is not None and w["ask"] is not None for w in working)
    assert all(Decimal(w["bid"]) < Decimal(w["ask"]) for w in working)
    assert all(w["quote_age_seconds"] is not None for w in working)
    assert final["legs"][0]["bid"] is None  # a finished leg shows no live quote
    # A finished plan: --follow prints the result at once, and the same exit code.
    again = await asyncio.to_thread(main, ["status", "follow", "--follow", "--socket", socket])
    assert again == 0
    assert "result — plan follow: completed" in capsys.readouterr().out


def test_follow_needs_a_plan_id(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`status --follow` without a plan is a usage error, before any connection."""
    assert main(["status", "--follow", "--socket", str(tmp_path / "none")]) == 2
    assert "--follow needs a PLAN_ID" in capsys.readouterr().err


def test_live_table_shows_distance_from_touch_and_why_it_waits() -> None:
    """A buy limit one cent through the ask reads +0.01; a waiting leg says why."""
    working = LegStatus(
        index=0,
        symbol="TQQQ",
        side=Side.BUY,
        qty=Decimal(10),
        notional=None,
        urgency=Urgency.NORMAL,
        state="working",
        step=2,
        limit_price=Decimal("50.03"),
        bid=Decimal("50.00"),
        ask=Decimal("50.02"),
        quote_age_seconds=0.4,
    )
    assert touch_distance(working) == Decimal("0.01")
    sell = LegStatus(
        index=1,
        symbol="SQQQ",
        side=Side.SELL,
        qty=Decimal(10),
        notional=None,
        urgency=Urgency.NORMAL,
        state="working",
        step=2,
        limit_price=Decimal("20.01"),
        bid=Decimal("20.00"),
        ask=Decimal("20.02"),
    )
    assert touch_distance(sell) == Decimal("-0.01")  # resting above the bid
    waiting = LegStatus(
        index=2,
        symbol="AAPL",
        side=Side.BUY,
        qty=Decimal(1),
        notional=None,
        urgency=Urgency.NORMAL,
        state="waiting",
        step=1,
        waiting="open delay / wide spread at the open",
    )
    from rich.console import Console

    console = Console(width=250, record=True)
    console.print(live_table("p", "working", [working, sell, waiting]))
    text = console.export_text()
    assert "50.00 × 50.02 (0.4s)" in text
    assert "+0.01" in text
    assert "open delay" in text


def test_running_leg_reports_slippage_of_its_fills_so_far() -> None:
    """Before the step-5 report exists, a partly filled leg's status shows the slippage of
    its average fill against the arrival mid (positive = cost)."""
    from execd.domain.plans import parse_plan
    from execd.engine.records import LegRecord

    plan = parse_plan(
        {"plan_id": "p", "legs": [{"symbol": "X", "side": "sell", "qty": "10"}]},
        lambda: "unused",
        Urgency.NORMAL,
    )
    leg = LegRecord(plan.legs[0], state="working")
    assert leg.to_status().slippage_bps is None
    leg.arrival_mid = Decimal("20.00")
    leg.avg_fill_price = Decimal("19.99")
    leg.filled_qty = Decimal(4)
    assert leg.to_status().slippage_bps == Decimal(5)  # sold 1¢ below a $20 mid
