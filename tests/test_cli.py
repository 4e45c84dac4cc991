"""The `execd` CLI end to end against a real control socket served from a fake engine.

The CLI runs `asyncio.run` itself, so each command runs in a worker thread while the
server runs on the test's loop: the same bytes cross the same socket as in production.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from rich.console import Console

from execd.cli import commands
from execd.cli.main import main
from execd.control.protocol import HaltState, WorkingOrder
from execd.logs import configure_logging
from tests.control.fakes import FakeEngine, plan_doc, running_server, short_tmpdir


class Run:
    """The outcome of one `execd` invocation."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code = code
        self.out = out
        self.err = err

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines()]


async def execd(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    """Run `execd ARGV...` in a thread (it owns its own event loop) and capture its output."""
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return Run(code, out, err)


def run_sync(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    """Run a command that needs no daemon, catching argparse's SystemExit."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return Run(code, out, err)


@pytest.fixture
def plan_file() -> Iterator[Path]:
    """A PLAN.json with two legs on disk."""
    with short_tmpdir() as tmp:
        path = tmp / "plan.json"
        path.write_text(json.dumps(plan_doc("rebal-1", legs=2)))
        yield path


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's $EXECD_CONFIG must not leak into these tests."""
    monkeypatch.delenv("EXECD_CONFIG", raising=False)


@pytest.fixture(autouse=True)
def _daemon_logs_elsewhere() -> Iterator[io.StringIO]:
    """The in-test server logs to a buffer, so stdout holds only what the CLI printed."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    configure_logging("info", "json", buffer)
    yield buffer
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


# --- help, version, local commands ----------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`execd --version` prints the version and exits 0."""
    run = run_sync(capsys, "--version")
    assert run.code == 0
    assert run.out.startswith("execd 0.")


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`execd --help` names every command with what it does, and the exit codes."""
    run = run_sync(capsys, "--help")
    assert run.code == 0
    for name in ("run", "sim", "config", "submit", "status", "cancel", "halt", "resume"):
        assert f"    {name}" in run.out
    assert "health" in run.out
    assert "report" in run.out
    assert "exit codes" in run.out


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("run", "--venue"),
        ("config", "secrets masked"),
        ("submit", "--follow"),
        ("status", "PLAN_ID"),
        ("cancel", "Cancel a plan"),
        ("halt", "refuse new plans"),
        ("resume", "Accept plans again"),
        ("health", "request budget"),
        ("report", "market order"),
    ],
)
def test_each_command_has_help(
    capsys: pytest.CaptureFixture[str], command: str, words: str
) -> None:
    """Every subcommand's --help says what it does."""
    run = run_sync(capsys, command, "--help")
    assert run.code == 0
    assert words in run.out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A typo'd command exits 2 with argparse's message."""
    run = run_sync(capsys, "stauts")
    assert run.code == 2
    assert "invalid choice" in run.err


def test_sim_passes_every_argument_through(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`execd sim ...` hands the rest of argv, --help included, to the simulator untouched."""
    import execd.sim.cli

    seen: list[list[str] | None] = []

    def fake_sim_main(argv: list[str] | None = None) -> int:
        seen.append(argv)
        return 7

    monkeypatch.setattr(execd.sim.cli, "sim_main", fake_sim_main)
    assert main(["sim", "--help", "--port", "0"]) == 7
    assert seen == [["--help", "--port", "0"]]


def test_config_prints_toml(capsys: pytest.CaptureFixture[str]) -> None:
    """`execd config` prints the effective configuration as TOML."""
    with short_tmpdir() as tmp:
        path = tmp / "execd.toml"
        path.write_text('[api]\nsocket_path = "/tmp/elsewhere.sock"\n')
        run = run_sync(capsys, "config", "--config", str(path))
    assert run.code == 0
    assert "[api]" in run.out
    assert "/tmp/elsewhere.sock" in run.out


def test_bad_config_is_one_line_per_problem_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid config prints its problems on stderr, no traceback, and exits 2."""
    with short_tmpdir() as tmp:
        path = tmp / "execd.toml"
        path.write_text("[execution]\nmax_spread_percent = -1\n")
        run = run_sync(capsys, "config", "--config", str(path))
    assert run.code == 2
    assert run.out == ""
    assert "max_spread_percent" in run.err
    assert "Traceback" not in run.err
    assert all(line.startswith("execd: config: ") for line in run.err.splitlines())


def test_missing_config_file_via_env(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """$EXECD_CONFIG naming a missing file is a config error, for client commands too."""
    monkeypatch.setenv("EXECD_CONFIG", "/tmp/no-such-execd.toml")
    for argv in (["config"], ["status"]):
        run = run_sync(capsys, *argv)
        assert run.code == 2
        assert "config file not found" in run.err


def test_run_configures_logging_and_starts_the_daemon(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`execd run --venue sim` loads settings, sets up JSON logs and calls the daemon's main."""
    calls: list[tuple[Any, str | None]] = []
    fake = types.ModuleType("execd.engine.daemon")

    def daemon_main(settings: Any, venue: str | None) -> int:
        calls.append((settings, venue))
        structlog.get_logger().info("daemon_started")
        return 0

    fake.main = daemon_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "execd.engine.daemon", fake)
    with short_tmpdir() as tmp:
        path = tmp / "execd.toml"
        path.write_text('[log]\nformat = "json"\n')
        run = run_sync(capsys, "run", "--venue", "sim", "--config", str(path))
    assert run.code == 0
    assert calls[0][1] == "sim"
    line = json.loads(run.out.splitlines()[-1])
    assert line["event"] == "daemon_started"


# --- client commands against the socket -----------------------------------------------------


async def test_not_running_says_so_and_how_to_start(capsys: pytest.CaptureFixture[str]) -> None:
    """Every client command on a missing socket: one stderr line, `execd run`, exit 3."""
    with short_tmpdir() as tmp:
        sock = str(tmp / "execd.sock")
        for argv in (["status"], ["health", "--json"], ["halt"], ["cancel", "p"]):
            run = await execd(capsys, *argv, "--socket", sock)
            assert run.code == 3
            assert run.out == ""
            assert len(run.err.splitlines()) == 1
            assert "execd is not running" in run.err
            assert "execd run" in run.err


async def test_report_with_a_socket_of_no_daemon(capsys: pytest.CaptureFixture[str]) -> None:
    """`report --socket` asks the daemon for its journal: none there, one line naming the
    way out (--journal), exit 3."""
    with short_tmpdir() as tmp:
        run = await execd(capsys, "report", "p", "--socket", str(tmp / "execd.sock"))
    assert run.code == 3
    assert run.out == ""
    assert len(run.err.strip().splitlines()) == 1
    assert "--journal" in run.err


async def test_socket_comes_from_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --socket, the client uses api.socket_path from --config."""
    async with running_server() as (server, _):
        with short_tmpdir() as tmp:
            path = tmp / "execd.toml"
            path.write_text(f'[api]\nsocket_path = "{server.path}"\n')
            run = await execd(capsys, "health", "--json", "--config", str(path))
    assert run.code == 0
    assert run.json_lines()[0]["request_budget_left"] == 187


async def test_submit_json_prints_the_accepted_plan_only(
    capsys: pytest.CaptureFixture[str], plan_file: Path
) -> None:
    """`submit --json` prints exactly one JSON document: the accepted plan."""
    async with running_server() as (server, engine):
        run = await execd(capsys, "submit", str(plan_file), "--json", "--socket", str(server.path))
    assert run.code == 0
    (plan,) = run.json_lines()
    assert plan["plan_id"] == "rebal-1"
    assert plan["state"] == "accepted"
    assert plan["legs"][0]["qty"] == "10"
    assert engine.submitted == ["rebal-1"]


async def test_submit_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`execd submit -` reads the plan from stdin."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(plan_doc("from-stdin"))))
    async with running_server() as (server, engine):
        run = await execd(capsys, "submit", "-", "--socket", str(server.path))
    assert run.code == 0
    assert "from-stdin" in run.out
    assert engine.submitted == ["from-stdin"]


@pytest.mark.parametrize(
    ("content", "words"),
    [("{not json", "not valid JSON"), ("[1, 2]", "must be a JSON object")],
)
async def test_unreadable_plan_file_is_exit_2(
    capsys: pytest.CaptureFixture[str], content: str, words: str
) -> None:
    """A plan file that is not a JSON object never reaches the daemon: one line, exit 2."""
    with short_tmpdir() as tmp:
        path = tmp / "plan.json"
        path.write_text(content)
        run = await execd(capsys, "submit", str(path), "--socket", str(tmp / "x.sock"))
    assert run.code == 2
    assert words in run.err
    assert len(run.err.splitlines()) == 1


async def test_invalid_plan_file_is_exit_2_before_anything_is_sent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A plan file that breaks the schema is refused offline, one line naming the field,
    exit 2 (`--help`'s contract), and the daemon never sees it."""
    with short_tmpdir() as tmp:
        path = tmp / "plan.json"
        path.write_text('{"plan_id": "p", "legs": []}')
        async with running_server() as (server, engine):
            run = await execd(capsys, "submit", str(path), "--socket", str(server.path))
            assert await engine.list_plans() == []
    assert run.code == 2
    assert run.out == ""
    assert run.err == f"execd: {path}: legs: must contain at least 1 leg\n"


async def test_submit_follow_exits_1_when_a_leg_did_not_fill(
    capsys: pytest.CaptureFixture[str], plan_file: Path
) -> None:
    """A plan that ends partial makes `--follow` exit 1, with the leg's reason shown."""
    async with running_server(FakeEngine(outcome="unfilled")) as (server, _):
        run = await execd(
            capsys, "submit", str(plan_file), "--follow", "--socket", str(server.path)
        )
    assert run.code == 1
    assert "partial, 1/2 legs filled" in run.out
    assert "re-pegs exhausted" in run.out


async def test_submit_follow_live_view_on_a_terminal(
    capsys: pytest.CaptureFixture[str], plan_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal `--follow` draws the live per-leg table, then prints the result table."""
    screen = io.StringIO()

    def terminal() -> Console:
        return Console(file=screen, force_terminal=True, width=160, color_system=None)

    monkeypatch.setattr(commands, "console", terminal)
    async with running_server() as (server, _):
        run = await execd(
            capsys, "submit", str(plan_file), "--follow", "--socket", str(server.path)
        )
    assert run.code == 0
    text = screen.getvalue()
    assert "working px" in text
    assert "result — plan rebal-1: completed" in text


async def test_status_all_one_and_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    """`status` lists plans, `status ID` shows one, an unknown id is one line and exit 1."""
    engine = FakeEngine()
    await engine.submit(plan_doc("a"))
    await engine.submit(plan_doc("b"))
    async with running_server(engine) as (server, _):
        sock = ("--socket", str(server.path))
        table = await execd(capsys, "status", *sock)
        listed = await execd(capsys, "status", "--json", *sock)
        one = await execd(capsys, "status", "b", "--json", *sock)
        ghost = await execd(capsys, "status", "ghost", *sock)
    assert table.code == 0
    assert "a" in table.out
    assert "accepted" in table.out
    assert [p["plan_id"] for p in listed.json_lines()[0]] == ["a", "b"]
    assert one.json_lines()[0]["plan_id"] == "b"
    assert ghost.code == 1
    assert ghost.err == "execd: no plan 'ghost' [not_found]\n"


async def test_status_json_carries_every_leg_field(capsys: pytest.CaptureFixture[str]) -> None:
    """`status --json` prints the issue's plan and leg fields, decimals as strings."""
    engine = FakeEngine()
    await engine.submit(plan_doc("a", legs=1))
    async with running_server(engine) as (server, _):
        run = await execd(capsys, "status", "a", "--json", "--socket", str(server.path))
    (plan,) = run.json_lines()
    assert {"plan_id", "state", "submitted_at", "legs"} <= set(plan)
    leg = plan["legs"][0]
    required = {
        *("index", "symbol", "side", "qty", "notional", "urgency", "state", "step"),
        *("filled_qty", "avg_fill_price", "arrival_mid", "slippage_bps", "repegs"),
        *("client_order_ids", "started_at", "finished_at", "reason"),
    }
    assert required <= set(leg)
    assert leg["filled_qty"] == "0"


@pytest.mark.parametrize(
    ("answer", "printed"),
    [
        (
            HaltState(
                halted=True,
                still_working=(WorkingOrder(client_order_id="ex-a-0-1", status="new"),),
            ),
            "ex-a-0-1 (new)",
        ),
        (HaltState(halted=True, listing_failed=True), "could not list the venue's orders"),
    ],
)
async def test_a_halt_that_left_orders_working_says_which_and_exits_1(
    capsys: pytest.CaptureFixture[str], answer: HaltState, printed: str
) -> None:
    """Review 10: "0 working order(s) canceled" and exit 0 read as a clean halt; a halt
    that left an order working, or could not look, must say so and exit FAILED."""
    engine = FakeEngine(halt_answer=answer)
    async with running_server(engine) as (server, _):
        halted = await execd(capsys, "halt", "--socket", str(server.path))
        as_json = await execd(capsys, "halt", "--json", "--socket", str(server.path))
    assert halted.code == commands.ExitCode.FAILED
    assert printed in halted.out
    assert "check the venue" in halted.out or "still working" in halted.out
    assert as_json.code == commands.ExitCode.FAILED
    assert as_json.json_lines()[0]["halted"] is True


async def test_a_resume_a_later_halt_overrode_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """A resume that waited for a halt's pass while a second halt came answers halted."""
    refused = "a later `execd halt` came while this resume waited: still halted"
    engine = FakeEngine(resume_answer=HaltState(halted=True, refused=refused))
    async with running_server(engine) as (server, _):
        resumed = await execd(capsys, "resume", "--socket", str(server.path))
    assert resumed.code == commands.ExitCode.FAILED
    assert "not resumed" in resumed.out


async def test_cancel_halt_resume(capsys: pytest.CaptureFixture[str]) -> None:
    """cancel, halt and resume print one line each; a halted daemon refuses submits."""
    engine = FakeEngine()
    await engine.submit(plan_doc("a"))
    with short_tmpdir() as tmp:
        plan = tmp / "plan.json"
        plan.write_text(json.dumps(plan_doc("b")))
        async with running_server(engine) as (server, _):
            sock = ("--socket", str(server.path))
            canceled = await execd(capsys, "cancel", "a", *sock)
            halted = await execd(capsys, "halt", *sock)
            refused = await execd(capsys, "submit", str(plan), *sock)
            resumed = await execd(capsys, "resume", "--json", *sock)
    assert canceled.code == 0
    assert canceled.out.startswith("plan a: canceled")
    assert halted.code == 0
    assert "3 working order(s) canceled" in halted.out
    assert refused.code == 1
    assert "[halted]" in refused.err
    assert resumed.json_lines() == [
        {
            "halted": False,
            "canceled_orders": 0,
            "still_working": [],
            "listing_failed": False,
            "refused": None,
        }
    ]


async def test_health_table_json_and_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    """`health` shows streams, budget and quote ages; a stream down exits 1."""
    async with running_server() as (server, _):
        table = await execd(capsys, "health", "--socket", str(server.path))
        as_json = await execd(capsys, "health", "--json", "--socket", str(server.path))
    assert table.code == 0
    assert "request budget left" in table.out
    assert "187/200" in table.out
    assert "quote age TQQQ" in table.out
    assert as_json.json_lines()[0]["quote_age_seconds"] == {"TQQQ": 0.12, "SQQQ": 1.5}
    async with running_server(FakeEngine(streams_up=False)) as (server, _):
        down = await execd(capsys, "health", "--socket", str(server.path))
    assert down.code == 1
    assert "DOWN" in down.out


def test_halt_waits_for_an_answer_longer_than_its_own_deadline() -> None:
    """`execd halt` may work for 3 x confirm_timeout_seconds (30 s by default) before it
    answers with the orders it could not cancel; waiting the generic 30 s, the user read
    "did not answer" instead. `--timeout` still wins."""
    from execd.cli.main import build_parser

    parser = build_parser()
    for command in ("halt", "resume"):
        assert commands.answer_timeout(parser.parse_args([command])) == 90.0
        assert commands.answer_timeout(parser.parse_args([command, "--timeout", "5"])) == 5.0
    assert commands.answer_timeout(parser.parse_args(["status"])) == 30.0
    assert commands.answer_timeout(parser.parse_args(["status", "--timeout", "7"])) == 7.0
