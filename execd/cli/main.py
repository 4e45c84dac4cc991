"""Entry point of the `execd` command: argument parsing and dispatch.

Commands import what they need lazily, so ``execd status`` does not pay for the
engine's imports, and a command works even while another part is being built.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from execd import __version__
from execd.cli import commands
from execd.cli.report_cmd import add_report_parser

_DESCRIPTION = """\
execd executes rebalance plans on Alpaca with a smart order ladder and reports
how well it did. `execd run` is the daemon (systemd runs it); the other commands
talk to it over its control socket."""

_CODES = """\
exit codes: 0 ok; 1 the daemon refused, a plan did not fill completely, or a
stream is down (health); 2 bad arguments, plan file or configuration; 3 the
daemon is not running or cannot be reached; 130 interrupted."""

_EPILOG = (
    _CODES
    + """

The socket is --socket, else /run/execd/NAME/execd.sock for --account NAME (the
execd@NAME systemd instance), else api.socket_path from the configuration
(--config, else $EXECD_CONFIG, else config/execd.toml)."""
)

_LOCAL_EPILOG = (
    _CODES
    + """

The configuration is --config, else $EXECD_CONFIG, else config/execd.toml."""
)


def _client_options() -> argparse.ArgumentParser:
    """Options every socket command takes."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--socket",
        metavar="PATH",
        help="control socket of the daemon (default: api.socket_path from the config)",
    )
    parent.add_argument(
        "--account",
        metavar="NAME",
        help="the execd@NAME systemd instance: its socket /run/execd/NAME/execd.sock",
    )
    parent.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file, used to find the socket (default: $EXECD_CONFIG)",
    )
    parent.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds,
        default=None,  # per command: commands.answer_timeout
        help="wait this long for each answer (default 30, 90 for halt and resume; `submit` "
        "then resends the same named plan, which the daemon never runs twice)",
    )
    return parent


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 3600 seconds, got {text!r}")
    return value


def _json_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--json", action="store_true", help="print machine-readable JSON only (one per line)"
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, with a help text for every command."""
    parser = argparse.ArgumentParser(
        prog="execd",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"execd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    client = _client_options()
    as_json = _json_option()

    def add(
        name: str, summary: str, description: str, *parents: argparse.ArgumentParser
    ) -> argparse.ArgumentParser:
        # Only the socket commands mention the socket in their help (client in parents).
        return sub.add_parser(
            name,
            help=summary,
            description=description,
            parents=list(parents),
            epilog=_EPILOG if client in parents else _LOCAL_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    run = add(
        "run",
        "run the daemon in the foreground",
        "Run the execd daemon in the foreground: venue connections, the control socket and "
        "the plan runner. systemd runs this (Type=notify); logs are JSON lines on stdout.",
    )
    run.add_argument(
        "--venue",
        choices=("sim", "paper", "live"),
        help="where to trade: the in-process simulated venue, Alpaca paper, or Alpaca live "
        "(default: venue.kind from the config)",
    )
    run.add_argument("--config", metavar="PATH", help="configuration file (default: $EXECD_CONFIG)")
    run.set_defaults(func=commands.cmd_run)

    add(
        "sim",
        "run the Alpaca-compatible simulated venue alone",
        "Run the simulated venue on its own, for integration work. Every argument after "
        "`sim` is the simulator's own: see `execd sim --help`.",
    )

    config = add(
        "config",
        "print the effective configuration",
        "Print the effective configuration (file + environment + defaults) as TOML, "
        "secrets masked. An invalid configuration prints one line per problem and exits 2.",
    )
    config.add_argument(
        "--config", metavar="PATH", help="configuration file (default: $EXECD_CONFIG)"
    )
    config.set_defaults(func=commands.cmd_config)

    submit = add(
        "submit",
        "submit a plan to the daemon",
        "Send a plan (JSON, or CSV: symbol,side,qty|notional[,urgency,limit_price] or "
        "symbol,weight) to the daemon. Every submission is named before it is sent: its "
        "plan_id, else a hash of the document and its trading day, so submitting the same file "
        "again (or a retry after a timeout) answers 'already submitted, nothing sent'; a "
        "different document under an existing plan_id is refused. A plan submitted after the "
        "close is scheduled for the next session. With --follow, show each leg's progress "
        "live (step, filled/qty, working price, slippage), then the result table; the exit "
        "code is 0 only when every leg filled. An invalid plan file exits 2 before anything "
        "is sent; a plan the daemon refuses exits 1.",
        client,
        as_json,
    )
    submit.add_argument(
        "plan", metavar="PLAN", help="the plan file (.json or .csv), or - for JSON on stdin"
    )
    submit.add_argument("--follow", "-f", action="store_true", help="follow the plan until it ends")
    submit.add_argument(
        "--dry-run",
        action="store_true",
        help="validate against the live venue, compute the legs, check the risk caps and show "
        "each leg's style and first price; send nothing, keep nothing",
    )
    submit.add_argument(
        "--new-id",
        action="store_true",
        help="a fresh plan_id: run the same document a second time, deliberately",
    )
    submit.set_defaults(func=commands.cmd_submit)

    validate = add(
        "validate",
        "check a plan file offline",
        "Check PLAN (.json or .csv) against the plan schema and its static rules, offline: no "
        "daemon needed. Exits 0 when valid, 2 with one line per problem (naming the leg, or "
        "the CSV line and column). The venue's rules (symbols, positions, risk caps) need "
        "`execd submit --dry-run`.",
        as_json,
    )
    validate.add_argument("plan", metavar="PLAN", help="the plan file (.json or .csv), or -")
    validate.set_defaults(func=commands.cmd_validate)

    status = add(
        "status",
        "show one plan, or every plan",
        "Show a plan's legs (state, ladder step, fills, slippage, why each ended), or with no "
        "PLAN_ID every plan the daemon knows.",
        client,
        as_json,
    )
    status.add_argument("plan_id", metavar="PLAN_ID", nargs="?", help="the plan (default: all)")
    status.add_argument(
        "--follow",
        action="store_true",
        help="re-attach to a running plan: a live view (elapsed time, NBBO, working limit "
        "and its distance from the touch, why a leg waits, slippage) until it ends; exit 0 "
        "only if every leg filled",
    )
    status.set_defaults(func=commands.cmd_status)

    cancel = add(
        "cancel",
        "cancel a plan's working legs",
        "Cancel a plan: its working orders are canceled and its unfinished legs end.",
        client,
        as_json,
    )
    cancel.add_argument("plan_id", metavar="PLAN_ID")
    cancel.set_defaults(func=commands.cmd_cancel)

    halt = add(
        "halt",
        "cancel every working execd order and refuse new plans",
        "Emergency stop: cancel every working order execd placed (never anyone else's) and "
        "refuse new plans until `execd resume`.",
        client,
        as_json,
    )
    halt.set_defaults(func=commands.cmd_halt)

    resume = add(
        "resume",
        "accept plans again after a halt",
        "Accept plans again after `execd halt`.",
        client,
        as_json,
    )
    resume.set_defaults(func=commands.cmd_resume)

    health = add(
        "health",
        "show streams, quote ages, request budget",
        "Show whether the market-data and trade-update streams are connected, the age of the "
        "newest quote per symbol, the REST request budget left and whether execd is halted. "
        "Exits 1 when a stream is down.",
        client,
        as_json,
    )
    health.set_defaults(func=commands.cmd_health)

    config_only = argparse.ArgumentParser(add_help=False)
    config_only.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file, used to find the journal (default: $EXECD_CONFIG)",
    )
    add_report_parser(add, config_only)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the execd command line; return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["sim"]:
        # The simulator parses its own options (including --help): pass them through untouched.
        return commands.cmd_sim(args[1:])
    parsed = build_parser().parse_args(args)
    code: int = parsed.func(parsed)
    return code


if __name__ == "__main__":
    sys.exit(main())
