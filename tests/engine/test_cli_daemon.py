"""The `execd` CLI against the real daemon on the simulated venue (issue 15 §7).

Each test starts the real daemon in-process (`start_daemon`) and runs the CLI as users do,
as a subprocess (`python -m execd ... --socket S`), so the CLI meets the real engine's
answers and events: optional plan ids, validation, the real watch stream and prices.
`tests/control/fakes.py`'s FakeEngine is kept for what a daemon cannot produce on demand
(a crash mid-request, a scripted slow watch, exact figures for the rendering tests).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.engine.conftest import DEADLINE, TAPE_DAY, Harness, StartDaemon

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "sample-plan.json"


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


async def cli(d: Harness, *args: str, stdin: str | None = None, **env: str) -> Run:
    """`execd ARGS --socket <the daemon's socket>`, as a subprocess; its exit and output."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "execd",
        *args,
        *(["--socket", d.daemon.socket_path] if "--account" not in args else []),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200", **env},
    )
    out, err = await asyncio.wait_for(
        proc.communicate(None if stdin is None else stdin.encode()), DEADLINE * 3
    )
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def _plan_file(directory: Path, name: str, plan: dict[str, Any]) -> str:
    path = directory / name
    path.write_text(json.dumps(plan), encoding="utf-8")
    return str(path)


async def test_submit_follow_named_by_hash_then_resubmit_sends_nothing(
    start_daemon: StartDaemon,
) -> None:
    """A plan file without plan_id: the CLI names it (hash + trading day), follows it to the
    end with step names, exits 0; the same file again says "already submitted, nothing
    sent", and the daemon has one plan."""
    d = await start_daemon()
    path = _plan_file(
        d.directory, "p.json", {"legs": [{"symbol": "SPY", "side": "buy", "qty": "2"}]}
    )
    run = await cli(d, "submit", path, "--follow")
    assert run.code == 0, run.err
    assert "completed" in run.out
    assert "done" in run.out  # the step column names the step
    plans = await d.daemon.engine.list_plans()
    assert len(plans) == 1
    plan_id = plans[0].plan_id
    d.plans.append(plan_id)
    assert plan_id.startswith("p-")
    again = await cli(d, "submit", path, "--json")
    assert again.code == 0
    assert f"plan {plan_id} already submitted, nothing sent" in again.err
    assert again.json_lines()[0]["already_submitted"] is True
    assert len(await d.daemon.engine.list_plans()) == 1
    second = await cli(d, "submit", path, "--new-id")
    assert second.code == 0, second.err
    assert len(await d.daemon.engine.list_plans()) == 2
    d.plans.extend(p.plan_id for p in await d.daemon.engine.list_plans() if p.plan_id != plan_id)


async def test_sample_plan_status_and_report(start_daemon: StartDaemon) -> None:
    """The shipped sample plan on the default sim account: follow it, then `status` (one,
    all, JSON) and `report` read the real engine's plan."""
    d = await start_daemon()
    run = await cli(d, "submit", str(SAMPLE), "--follow", "--json")
    d.plans.append("sample-rebalance")
    lines = run.json_lines()
    assert lines[0]["plan_id"] == "sample-rebalance"
    assert lines[-1]["state"] in ("completed", "partial"), run.err
    events = lines[1:-1]
    assert events
    seqs = [e["seq"] for e in events if e["event"] != "snapshot"]
    assert seqs == sorted(seqs)
    assert all(leg["state"] != "working" for leg in lines[-1]["legs"])
    status = await cli(d, "status", "sample-rebalance", "--json")
    assert status.code == 0
    legs = status.json_lines()[0]["legs"]
    assert [leg["symbol"] for leg in legs] == ["TQQQ", "AAPL", "SOXL", "SPY"]
    every = await cli(d, "status")
    assert every.code == 0
    assert "sample-rebalance" in every.out
    report = await cli(d, "report", "sample-rebalance")
    assert report.code == 0, report.err
    assert "TQQQ" in report.out


async def test_refusals_and_exit_codes(start_daemon: StartDaemon) -> None:
    """An invalid file exits 2 (offline, named), a plan the daemon refuses exits 1 with
    one line and its code, a different document under a used plan_id exits 1."""
    d = await start_daemon()
    bad = _plan_file(d.directory, "bad.json", {"legs": [{"symbol": "SPY", "side": "buy"}]})
    invalid = await cli(d, "submit", bad)
    assert invalid.code == 2
    assert "legs[0]: one of qty or notional is required" in invalid.err
    unknown = _plan_file(
        d.directory, "u.json", {"legs": [{"symbol": "ZZZZ", "side": "buy", "qty": "1"}]}
    )
    refused = await cli(d, "submit", unknown)
    assert refused.code == 1
    assert refused.err.strip().endswith("[invalid_plan]")
    assert "unknown symbol ZZZZ" in refused.err
    first = _plan_file(
        d.directory,
        "a.json",
        {
            "plan_id": "mine",
            "urgency": "low",
            "legs": [{"symbol": "SPY", "side": "buy", "qty": "1"}],
        },
    )
    assert (await cli(d, "submit", first)).code == 0
    d.plans.append("mine")
    other = _plan_file(
        d.directory,
        "b.json",
        {"plan_id": "mine", "legs": [{"symbol": "SPY", "side": "buy", "qty": "3"}]},
    )
    conflict = await cli(d, "submit", other)
    assert conflict.code == 1
    assert "[plan_id_conflict]" in conflict.err
    await d.finish("mine")


async def test_dry_run_validate_and_csv(start_daemon: StartDaemon) -> None:
    """`--dry-run` shows style and first price and sends nothing; `validate` needs no
    daemon; a CSV plan runs like JSON, and a bad CSV line is named (exit 2)."""
    d = await start_daemon()
    csv_plan = d.directory / "plan.csv"
    csv_plan.write_text("symbol,side,qty,urgency\nTQQQ,sell,5,high\nSPY,buy,1,high\n")
    dry = await cli(d, "submit", str(csv_plan), "--dry-run")
    assert dry.code == 0, dry.err
    assert "nothing sent" in dry.out
    assert "marketable" in dry.out
    assert "passive" in dry.out
    assert (await d.history())["orders"] == []
    assert await d.daemon.engine.list_plans() == []
    checked = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "execd",
        "validate",
        str(csv_plan),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await checked.communicate()
    assert checked.returncode == 0
    assert b"valid plan, 2 legs" in out
    broken = d.directory / "broken.csv"
    broken.write_text("symbol,side,qty\nTQQQ,sell,5\nSPY,buy,abc\n")
    bad = await cli(d, "submit", str(broken))
    assert bad.code == 2
    assert "broken.csv line 3, column qty: 'abc' is not a number" in bad.err
    run = await cli(d, "submit", str(csv_plan), "--follow", "--json")
    assert run.code == 0, run.err
    d.plans.append(run.json_lines()[0]["plan_id"])


async def test_scheduled_plan_status_and_cancel_with_account(start_daemon: StartDaemon) -> None:
    """After the close: `submit` says scheduled with its start, `status` shows it, `cancel`
    ends it; `--account NAME` finds the instance's socket under the runtime root."""
    d = await start_daemon(sim={"date": TAPE_DAY.isoformat(), "start": "16:30:00"})
    account_dir = d.directory / "acct"
    account_dir.mkdir()
    os.symlink(d.daemon.socket_path, account_dir / "execd.sock")
    env = {"EXECD_RUNTIME_ROOT": str(d.directory)}
    path = _plan_file(
        d.directory,
        "p.json",
        {"plan_id": "tonight", "legs": [{"symbol": "SPY", "side": "buy", "qty": "1"}]},
    )
    run = await cli(d, "submit", path, "--account", "acct", **env)
    assert run.code == 0, run.err
    d.plans.append("tonight")
    assert "scheduled" in run.out
    assert "starts 2026-03-05 09:25:00 ET" in run.out
    status = await cli(d, "status", "--account", "acct", **env)
    assert "starts 2026-03-05 09:25:00 ET" in status.out
    canceled = await cli(d, "cancel", "tonight", "--account", "acct", **env)
    assert canceled.code == 0
    assert "canceled" in canceled.out
    assert (await d.history())["orders"] == []


async def test_halt_refuses_plans_until_resume(start_daemon: StartDaemon) -> None:
    """`halt` answers one line and the daemon then refuses `submit` (exit 1, [halted]);
    `resume --json` accepts plans again."""
    d = await start_daemon()
    path = _plan_file(
        d.directory,
        "p.json",
        {"plan_id": "h", "legs": [{"symbol": "SPY", "side": "buy", "qty": "1"}]},
    )
    halted = await cli(d, "halt")
    assert halted.code == 0, halted.err
    refused = await cli(d, "submit", path)
    assert refused.code == 1
    assert "[halted]" in refused.err
    resumed = await cli(d, "resume", "--json")
    assert resumed.json_lines() == [
        {
            "halted": False,
            "canceled_orders": 0,
            "still_working": [],
            "listing_failed": False,
            "refused": None,
        }
    ]
    run = await cli(d, "submit", path, "--follow")
    d.plans.append("h")
    assert run.code == 0, run.err


async def test_submit_that_times_out_is_resent_under_its_name_and_runs_once(
    start_daemon: StartDaemon,
) -> None:
    """Issue 11 §2: the daemon is slow (the venue takes 3 s to answer its positions read),
    the CLI's answer timeout passes, and it sends the same named plan again: one plan at the
    daemon, one set of orders at the venue, exit 0."""
    d = await start_daemon()
    await d.venue.fail_next_requests(1, delay=3.0, method="GET", path="/v2/positions")
    path = _plan_file(
        d.directory, "p.json", {"legs": [{"symbol": "SPY", "side": "buy", "qty": "1"}]}
    )
    run = await cli(d, "submit", path, "--timeout", "1")
    assert run.code == 0, run.err
    assert "sending plan p-" in run.err
    plans = await d.daemon.engine.list_plans()
    assert len(plans) == 1
    d.plans.append(plans[0].plan_id)
    await d.finish(plans[0].plan_id)
    keys = {o["client_order_id"].rsplit("-", 2)[0] for o in _venue_orders_of(await d.history())}
    assert len(keys) == 1


def _venue_orders_of(history: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry["order"] for entry in history["orders"]]
