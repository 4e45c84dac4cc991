"""`make demo`: the daemon, the simulated venue and a sample plan, exactly as a user runs them.

It starts `execd run --venue sim` as a real subprocess (the simulated venue runs inside it
on a loopback port, seeded with positions to sell), submits `config/sample-plan.json` with
`execd submit --follow`, prints `execd report` (execution quality against a plain market
order), then stops the daemon with SIGTERM as systemd would. Nothing here is special to
the demo except the temporary socket and log paths, and its journal: a file of its own
that is *kept* (``$XDG_STATE_HOME/execd/demo-journal.db``, or ``EXECD_DEMO_JOURNAL``), so
every demo run adds a plan (``sample-rebalance-<UTC time>``) that
``execd report --since DATE --journal PATH`` aggregates.

Exit status: 0 when the plan ran to an end with fills (completed or partial) and the daemon
stopped cleanly; 1 otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from execd.domain.calendar import EASTERN

REPO = Path(__file__).resolve().parents[1]
PLAN = REPO / "config" / "sample-plan.json"
STARTUP_SECONDS = 60.0
PLAN_SECONDS = 150.0

# What the simulated account holds before the plan: the sells need shares to sell.
DEMO_ENV = {
    "VENUE__KIND": "sim",
    "SIM__SCENARIO": "mixed",
    "SIM__SEED": "7",
    "SIM__START": "10:15:00",
    "SIM__POSITIONS": json.dumps({"TQQQ": "300", "AAPL": "50"}),
    "LOG__FORMAT": "json",
    "LOG__LEVEL": "info",
}


def _execd(*args: str) -> list[str]:
    return [sys.executable, "-m", "execd", *args]


def _say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def _wait_ready(socket: Path, daemon: subprocess.Popen[bytes], env: dict[str, str]) -> bool:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            return False
        if socket.exists():
            probe = subprocess.run(
                _execd("health", "--socket", str(socket), "--json"),
                env=env,
                capture_output=True,
                check=False,
            )
            if probe.returncode in (0, 1):  # 1 = answered but degraded
                return True
        time.sleep(0.2)
    return False


def demo_journal() -> Path:
    """Where the demo keeps its journal between runs (never the daemon's own journal)."""
    override = os.environ.get("EXECD_DEMO_JOURNAL")
    if override:
        return Path(override)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "execd" / "demo-journal.db"


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="execd-demo-", dir="/tmp"))
    socket = workdir / "execd.sock"
    log_path = workdir / "daemon.log"
    journal = demo_journal()
    started = datetime.now(UTC)
    plan_id = f"sample-rebalance-{started:%Y%m%dT%H%M%SZ}"
    plan_file = workdir / "plan.json"
    plan_file.write_text(json.dumps({**json.loads(PLAN.read_text()), "plan_id": plan_id}))
    env = {
        **os.environ,
        **DEMO_ENV,
        # The simulator's ids (orders, executions) follow its seed: a kept journal refuses
        # a second execution with the id of one it holds, so each run takes the next seed.
        "SIM__SEED": str(int(DEMO_ENV["SIM__SEED"]) + _plans_in(journal)),
        "API__SOCKET_PATH": str(socket),
        "JOURNAL__PATH": str(journal),
    }
    _say("starting the daemon against the built-in simulated venue")
    print(f"   logs (JSON lines): {log_path}")
    with log_path.open("wb") as log:
        daemon = subprocess.Popen(
            _execd("run", "--venue", "sim"), env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        if not _wait_ready(socket, daemon, env):
            print("execd: the daemon did not become ready; last log lines:", file=sys.stderr)
            print(_tail(log_path), file=sys.stderr)
            return 1
        _say(f"submitting {PLAN.relative_to(REPO)} as {plan_id} and following it")
        print(plan_file.read_text().strip())
        submit = subprocess.run(
            _execd("submit", str(plan_file), "--follow", "--socket", str(socket)),
            env=env,
            timeout=PLAN_SECONDS,
            check=False,
        )
        _say("execution quality (execd report, read from the journal)")
        subprocess.run(_execd("report", plan_id, "--journal", str(journal)), env=env, check=False)
        status = subprocess.run(
            _execd("status", plan_id, "--json", "--socket", str(socket)),
            env=env,
            capture_output=True,
            check=False,
        )
        state = json.loads(status.stdout or b"{}").get("state", "unknown")
    finally:
        _say("stopping the daemon (SIGTERM, as systemd does)")
        daemon.send_signal(signal.SIGTERM)
        try:
            code = daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            code = daemon.wait()
    print(f"   daemon exited with {code}; plan state: {state}; submit exited {submit.returncode}")
    print(_summaries(log_path))
    day = _plan_day(journal, plan_id) or started.astimezone(EASTERN).date().isoformat()
    print(f"   journal kept: {journal} — every demo run adds its plan; report on all of them:")
    print(f"   .venv/bin/execd report --since {day} --journal {journal}")
    print(f"   .venv/bin/execd report --since {day} --journal {journal} --html demo-report.html")
    ok = code == 0 and state in ("completed", "partial")
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"   kept {workdir} for inspection", file=sys.stderr)
    return 0 if ok else 1


def _plans_in(journal: Path) -> int:
    """How many plans earlier demo runs left in the kept journal (0 without one)."""
    from execd.adapters.journal_reads import JournalReader
    from execd.adapters.journal_rows import JournalError

    try:
        with JournalReader.open(journal) as reader:
            return len(reader.plan_ids())
    except JournalError:
        return 0


def _plan_day(journal: Path, plan_id: str) -> str | None:
    """The venue-clock day the plan was submitted (the simulator's day, not today's)."""
    from execd.adapters.journal_reads import JournalReader
    from execd.adapters.journal_rows import JournalError

    try:
        with JournalReader.open(journal) as reader:
            history = reader.plan(plan_id)
    except JournalError:
        return None
    return (
        None
        if history is None
        else history.plan.submitted_at.astimezone(EASTERN).date().isoformat()
    )


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _summaries(path: Path) -> str:
    """The one `leg_finished` line per leg that the logs promise, shortened for a terminal."""
    keys = (
        "symbol",
        "side",
        "state",
        "style",
        "filled_qty",
        "avg_fill_price",
        "slippage_vs_arrival_mid_bps",
        "saving_vs_market_bps",
        "repegs",
        "fallback_fired",
    )
    out = ["   leg_finished log lines:"]
    for line in path.read_text(errors="replace").splitlines():
        if '"event":"leg_finished"' not in line.replace(" ", ""):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "outcome" in record:
            out.append("   " + " ".join(f"{k}={record.get(k)}" for k in keys))
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
