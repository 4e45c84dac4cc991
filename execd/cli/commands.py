"""The client commands: each talks to the daemon over the control socket and prints.

Output contract: with ``--json`` stdout carries JSON only (one document per line);
everything for people goes through rich. Any failure is one line on stderr and a
non-zero exit code (see `ExitCode`), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from execd.cli import render
from execd.control.client import (
    DEFAULT_TIMEOUT,
    ControlClient,
    ControlConnectionError,
    DaemonNotRunning,
)
from execd.control.protocol import ControlError, LegStatus, PlanStatus, WatchEvent

ACCOUNT_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SUBMIT_ATTEMPTS = 3
"""`submit` resends the same named document this many times when the daemon did not
answer (a timeout, a dropped connection): the name makes a resend harmless."""


class ExitCode(IntEnum):
    """What `execd` exits with; scripts (and systemd) rely on these."""

    OK = 0
    FAILED = 1
    """The daemon refused, or the plan did not fill completely, or health is degraded, or a
    halt left execd orders working (or could not list them), or a later halt overrode a
    resume."""
    USAGE = 2
    """Bad arguments, an unreadable plan file or an invalid configuration."""
    UNAVAILABLE = 3
    """The daemon is not running or cannot be reached."""
    INTERRUPTED = 130


class CommandError(Exception):
    """A failure the CLI reports as one line on stderr with its exit code."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


def error(message: str) -> None:
    """One clear line on stderr (a config error has one line per problem)."""
    for line in message.splitlines() or [""]:
        print(f"execd: {line}", file=sys.stderr)


def console() -> Console:
    """A console on stdout; wide when piped, so tables stay readable in logs and files."""
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(file=sys.stdout, width=200 if wide else None, highlight=False)


def print_json(value: Any) -> None:
    """One JSON document on one line of stdout."""
    sys.stdout.write(render.to_json(value) + "\n")
    sys.stdout.flush()


def config_error_message(exc: Exception) -> str:
    """A ConfigError's problems, one line each, prefixed so the source is clear."""
    return "\n".join(f"config: {line}" for line in str(exc).splitlines())


RUNTIME_ROOT_ENV = "EXECD_RUNTIME_ROOT"
"""Where `--account NAME` looks for sockets (default /run/execd, the template unit's)."""


def account_socket(account: str) -> Path:
    """The socket of the `execd@ACCOUNT` systemd instance: ``/run/execd/ACCOUNT/execd.sock``."""
    if not ACCOUNT_PATTERN.fullmatch(account):
        raise CommandError(
            f"--account {account!r}: letters, digits, '-' and '_' only", ExitCode.USAGE
        )
    return Path(os.environ.get(RUNTIME_ROOT_ENV) or "/run/execd") / account / "execd.sock"


def socket_path(args: argparse.Namespace) -> Path:
    """``--socket``, else ``--account``'s socket, else ``api.socket_path`` from the config
    (``--config``/``$EXECD_CONFIG``)."""
    if args.socket:
        return Path(args.socket)
    if getattr(args, "account", None):
        return account_socket(args.account)
    from execd.config import ConfigError, load_settings

    try:
        return load_settings(args.config).api.socket_path
    except ConfigError as exc:
        raise CommandError(config_error_message(exc), ExitCode.USAGE) from exc


HALT_ANSWER_SECONDS = 90.0
"""How long `execd halt` and `execd resume` wait for the answer unless `--timeout` says. A
halt may work for its whole deadline (3 x `execution.confirm_timeout_seconds`, 30 s by
default) before it answers with the orders it could not cancel, and a resume waits for a
running halt: with the generic 30 s the user read "no answer" instead of that list."""


def answer_timeout(args: argparse.Namespace) -> float:
    """Seconds to wait for each answer: `--timeout`, else the command's default."""
    given: float | None = getattr(args, "timeout", None)
    if given is not None:
        return given
    if getattr(args, "command", None) in ("halt", "resume"):
        return HALT_ANSWER_SECONDS
    return DEFAULT_TIMEOUT


def run_client(
    args: argparse.Namespace, body: Callable[[ControlClient], Awaitable[ExitCode]]
) -> int:
    """Connect, run `body`, and turn every failure into one stderr line and an exit code."""
    try:
        path = socket_path(args)

        timeout = answer_timeout(args)

        async def session() -> ExitCode:
            async with ControlClient(path, timeout=timeout) as client:
                return await body(client)

        return int(asyncio.run(session()))
    except CommandError as exc:
        error(str(exc))
        return int(exc.code)
    except ControlConnectionError as exc:
        # DaemonNotRunning included; its message already starts "execd is not running".
        print(exc, file=sys.stderr)
        return int(ExitCode.UNAVAILABLE)
    except ControlError as exc:
        error(f"{exc.message} [{exc.code}]")
        return int(ExitCode.FAILED)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)


# --- commands ---------------------------------------------------------------------------------


def read_plan(source: str) -> dict[str, Any]:
    """PLAN.json or PLAN.csv (or ``-`` for JSON on stdin), validated offline (the plan's
    schema and static rules) into its document, or a `CommandError` (exit 2) naming each
    problem."""
    from execd.domain.plan_csv import parse_plan_csv
    from execd.domain.plans import PlanError, decode_json, parse_document

    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise CommandError(f"cannot read plan {source}: {reason}", ExitCode.USAGE) from exc
    try:
        if source.lower().endswith(".csv"):
            document: object = parse_plan_csv(text, Path(source).name)
        else:
            document = decode_json(text)
            if not isinstance(document, dict):
                raise PlanError(["plan: must be a JSON object"])
            parse_document(document)
    except PlanError as exc:
        raise CommandError("\n".join(f"{source}: {e}" for e in exc.errors), ExitCode.USAGE) from exc
    plain: dict[str, Any] = json.loads(json.dumps(document, default=str))  # Decimals as text
    return plain


def trading_day(now: datetime) -> date:
    """The session a plan submitted at `now` is for: today until the close, else the next
    session (NYSE rules; the daemon's venue calendar decides when it really runs)."""
    from execd.domain.calendar import next_session, session_on
    from execd.domain.market_time import eastern_date

    today = eastern_date(now)
    session = session_on(today)
    if session is not None and now < session.close:
        return today
    return next_session(today).date


def name_submission(document: dict[str, Any], new_id: bool, now: datetime) -> dict[str, Any]:
    """DESIGN.md "A plan's identity": the document with its plan_id — its own, else a hash
    of the document and its trading day (``--new-id``: a fresh one, for a deliberate second
    run)."""
    from execd.domain.plans import parse_document, submission_id, with_plan_id

    if document.get("plan_id") is not None:
        if new_id:
            raise CommandError(
                "--new-id: the plan names its own plan_id; change or remove it instead",
                ExitCode.USAGE,
            )
        return document
    day = trading_day(now)
    if new_id:
        return with_plan_id(document, f"p-{day:%Y%m%d}-{uuid.uuid4().hex[:12]}")
    return with_plan_id(document, submission_id(parse_document(document), day))


async def submit_named(
    client: ControlClient, plan: dict[str, Any], *, dry_run: bool = False
) -> PlanStatus:
    """Submit, resending the same named plan when the daemon did not answer: the daemon
    answers a resend with "already submitted", so nothing runs twice."""
    for attempt in range(1, SUBMIT_ATTEMPTS + 1):
        try:
            return await client.submit(plan, dry_run=dry_run)
        except DaemonNotRunning:
            raise
        except ControlConnectionError as exc:
            if attempt == SUBMIT_ATTEMPTS:
                raise
            error(f"{exc}; sending plan {plan['plan_id']} again (attempt {attempt + 1})")
    raise AssertionError("unreachable")  # pragma: no cover


def cmd_validate(args: argparse.Namespace) -> int:
    """`execd validate PLAN`: schema and static rules, offline (no daemon)."""
    try:
        document = read_plan(args.plan)
    except CommandError as exc:
        error(str(exc))
        return int(exc.code)
    if args.json:
        print_json({"ok": True, "plan": document})
    elif "targets" in document:
        console().print(
            f"{args.plan}: valid targets plan, {len(document['targets'])} symbols"
            " (the daemon computes the legs at submit)",
            markup=False,
        )
    else:
        console().print(f"{args.plan}: valid plan, {len(document['legs'])} legs", markup=False)
    return int(ExitCode.OK)


def cmd_submit(args: argparse.Namespace) -> int:
    """`execd submit PLAN [--follow] [--dry-run] [--new-id] [--json]`."""
    try:
        plan = name_submission(read_plan(args.plan), args.new_id, datetime.now(UTC))
    except CommandError as exc:
        error(str(exc))
        return int(exc.code)
    plan_id = str(plan["plan_id"])

    async def body(client: ControlClient) -> ExitCode:
        if args.dry_run:
            preview = await submit_named(client, plan, dry_run=True)
            for warning in preview.warnings:
                error(f"warning: {warning}")
            if args.json:
                print_json(preview)
            else:
                console().print(render.dry_run_table(preview))
            return ExitCode.OK
        accepted = await submit_named(client, plan)
        if accepted.already_submitted:
            error(f"plan {plan_id} already submitted, nothing sent")
        for warning in accepted.warnings:
            error(f"warning: {warning}")
        if not args.follow:
            if args.json:
                print_json(accepted)
            else:
                console().print(render.legs_table(accepted))
            return ExitCode.OK
        if args.json:
            print_json(accepted)
        final = await _follow_live(client, accepted, args)
        if args.json:
            print_json(final)
        else:
            console().print(
                render.legs_table(final, title=f"result — {render.plan_headline(final)}")
            )
        return ExitCode.OK if render.all_legs_filled(final) else ExitCode.FAILED

    code = run_client(args, body)
    if code == ExitCode.INTERRUPTED:
        error(f"stopped following; plan {plan_id} keeps running (`execd status {plan_id}`)")
    return code


REFRESH_SECONDS = 1.0
"""How often the live view re-reads the plan's status for the NBBO and elapsed times."""


async def follow(
    client: ControlClient,
    accepted: PlanStatus,
    *,
    as_json: bool,
    refresh: Callable[[], Awaitable[PlanStatus]] | None = None,
) -> PlanStatus:
    """Show a plan's progress until it ends; return its final status.

    On a terminal: a live per-leg table, redrawn on every event and, with `refresh`
    (a second connection's status read), every `REFRESH_SECONDS` so the NBBO, its age
    and the elapsed times move while nothing happens. Piped: one line per event.
    ``--json``: the events as JSON lines.
    """
    legs: dict[int, LegStatus] = {leg.index: leg for leg in accepted.legs}
    out = console()
    live_view = not as_json and out.is_terminal
    state = accepted.state
    # The venue clock as last heard from the daemon, advanced by our monotonic clock.
    heard: tuple[datetime, float] | None = None

    def venue_now() -> datetime | None:
        if heard is None:
            return None
        return heard[0] + timedelta(seconds=time.monotonic() - heard[1])

    def table() -> Any:
        return render.live_table(
            accepted.plan_id, state, [legs[i] for i in sorted(legs)], venue_now()
        )

    live = Live(table(), console=out, transient=True, auto_refresh=False) if live_view else None

    async def refresher() -> None:
        nonlocal state
        assert refresh is not None
        assert live is not None
        while True:
            await asyncio.sleep(REFRESH_SECONDS)  # a display cadence, not synchronisation
            status = await refresh()
            state = status.state
            for leg in status.legs:
                legs[leg.index] = leg
            live.update(table(), refresh=True)

    if live is not None:
        live.start()
    ticker = asyncio.create_task(refresher()) if live is not None and refresh else None
    try:
        async for item in client.watch(accepted.plan_id):
            if isinstance(item, PlanStatus):
                return item
            assert isinstance(item, WatchEvent)
            heard = (item.at, time.monotonic())
            state = item.plan_state
            if item.leg is not None:
                legs[item.leg.index] = item.leg
            if as_json:
                print_json(item)
            elif live is not None:
                live.update(table(), refresh=True)
            else:
                out.print(render.event_line(item), markup=False)
    finally:
        if ticker is not None:
            ticker.cancel()
            # A refresh that failed only stopped refreshing; the watch reports the rest.
            with contextlib.suppress(
                asyncio.CancelledError, ControlError, ControlConnectionError, OSError
            ):
                await ticker
        if live is not None:
            live.stop()
    raise ControlConnectionError("the watch ended without the plan's final status")


def _json_flag(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def cmd_status(args: argparse.Namespace) -> int:
    """`execd status [PLAN_ID] [--json] [--follow]`."""
    if args.follow and not args.plan_id:
        error("--follow needs a PLAN_ID")
        return int(ExitCode.USAGE)

    async def body(client: ControlClient) -> ExitCode:
        if args.plan_id and args.follow:
            return await _follow_status(client, args)
        if args.plan_id:
            plan = await client.status(args.plan_id)
            if args.json:
                print_json(plan)
            else:
                console().print(render.legs_table(plan))
            return ExitCode.OK
        plans = await client.plans()
        if args.json:
            print_json(plans)
        elif plans:
            console().print(render.plans_table(plans))
        else:
            console().print("no plans")
        return ExitCode.OK

    code = run_client(args, body)
    if code == ExitCode.INTERRUPTED and args.follow:
        error(f"stopped following; plan {args.plan_id} keeps running")
    return code


async def _follow_live(
    client: ControlClient, plan: PlanStatus, args: argparse.Namespace
) -> PlanStatus:
    """`follow` with a refresh over a second connection, so that elapsed times and quote
    ages keep ticking between events (`submit --follow` and `status --follow` alike)."""
    async with ControlClient(socket_path(args)) as poller:

        async def refresh() -> PlanStatus:
            return await poller.status(plan.plan_id)

        return await follow(client, plan, as_json=args.json, refresh=refresh)


async def _follow_status(client: ControlClient, args: argparse.Namespace) -> ExitCode:
    """Re-attach to a plan: the live view until it ends, then the result table. A plan
    already over prints its result at once. Exit 0 only if every leg filled."""
    plan = await client.status(args.plan_id)
    if not render.is_finished(plan):
        plan = await _follow_live(client, plan, args)
    if args.json:
        print_json(plan)
    else:
        console().print(render.legs_table(plan, title=f"result — {render.plan_headline(plan)}"))
    return ExitCode.OK if render.all_legs_filled(plan) else ExitCode.FAILED


def _print_result(args: argparse.Namespace, value: Any, line: str) -> None:
    """A one-line answer: the JSON result with --json, else the line for a human."""
    if _json_flag(args):
        print_json(value)
    else:
        console().print(line, markup=False)


def cmd_cancel(args: argparse.Namespace) -> int:
    """`execd cancel PLAN_ID`."""

    async def body(client: ControlClient) -> ExitCode:
        plan = await client.cancel(args.plan_id)
        _print_result(args, plan, render.plan_headline(plan))
        return ExitCode.OK

    return run_client(args, body)


def cmd_halt(args: argparse.Namespace) -> int:
    """`execd halt`."""

    async def body(client: ControlClient) -> ExitCode:
        state = await client.halt()
        _print_result(args, state, render.halt_line(state))
        # Halted either way; FAILED when orders may still be working (the user must act).
        return ExitCode.OK if state.clean else ExitCode.FAILED

    return run_client(args, body)


def cmd_resume(args: argparse.Namespace) -> int:
    """`execd resume`."""

    async def body(client: ControlClient) -> ExitCode:
        state = await client.resume()
        _print_result(args, state, render.halt_line(state))
        return ExitCode.FAILED if state.halted else ExitCode.OK  # a later halt overrode it

    return run_client(args, body)


def cmd_health(args: argparse.Namespace) -> int:
    """`execd health [--json]`: exit 1 when a stream is down."""

    async def body(client: ControlClient) -> ExitCode:
        health = await client.health()
        if args.json:
            print_json(health)
        else:
            console().print(render.health_table(health))
        return ExitCode.OK if render.healthy(health) else ExitCode.FAILED

    return run_client(args, body)


# --- local commands (no socket) ---------------------------------------------------------------


def cmd_config(args: argparse.Namespace) -> int:
    """`execd config`: the effective configuration as TOML, secrets masked."""
    from execd.config import ConfigError, load_settings, render_toml

    try:
        text = render_toml(load_settings(args.config))
    except ConfigError as exc:
        error(config_error_message(exc))
        return int(ExitCode.USAGE)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return int(ExitCode.OK)


def cmd_run(args: argparse.Namespace) -> int:
    """`execd run`: the daemon, in the foreground."""
    from execd.config import ConfigError, load_settings
    from execd.logs import configure_logging

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        error(config_error_message(exc))
        return int(ExitCode.USAGE)
    # Configured once, before the engine is imported and before any line: loggers are kept.
    configure_logging(settings.log.level, settings.log.format, once=True)
    # Imported by name: the engine is the heaviest import and this is its only caller.
    daemon = importlib.import_module("execd.engine.daemon")
    code: int = daemon.main(settings, args.venue)
    return code


def cmd_sim(argv: list[str]) -> int:
    """`execd sim ...`: the simulated venue alone; its own options."""
    from execd.sim.cli import sim_main

    return sim_main(argv)
