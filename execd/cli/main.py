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

_EPILOG = """\
exit codes: 0 ok; 1 the daemon refused, a plan did not fill completely, or a
stream is down (health); 2 bad arguments, plan file or configuration; 3 the
daemon is not running or cannot be reached; 130 interrupted.

The socket is --socket, else api.socket_path from the configuration
(--config, else $EXECD_CONFIG, else config/execd.toml)."""


def _client_options() -> argparse.ArgumentParser:
    """Options every socket command takes."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--socket",
        metavar="PATH",
        help="control socket of the daemon (default: api.socket_path from the config)",
    )
    parent.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file, used to find the socket (default: $EXECD_CONFIG)",
    )
    return parent


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
        return sub.add_parser(
            name,
            help=summary,
            description=description,
            parents=list(parents),
            epilog=_EPILOG,
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
        "Send PLAN.json to the daemon. Submitting a plan_id that exists returns that plan and "
        "sends no order. With --follow, show each leg's progress live (step, filled/qty, "
        "working price, slippage), then the result table; the exit code is 0 only when every "
        "leg filled.",
        client,
        as_json,
    )
    submit.add_argument("plan", metavar="PLAN.json", help="the plan file, or - for stdin")
    submit.add_argument("--follow", "-f", action="store_true", help="follow the plan until it ends")
    submit.set_defaults(func=commands.cmd_submit)

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
