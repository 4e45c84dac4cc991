"""``execd sim``: run the simulated venue alone until SIGINT/SIGTERM.

Prints exactly one JSON line with the venue's URLs, under the daemon's venue-config key names::

    {"trading_url": "http://127.0.0.1:P", "trading_stream_url": "ws://127.0.0.1:P/stream",
     "data_url": "http://127.0.0.1:P", "data_stream_url": "ws://127.0.0.1:P/v2/iex",
     "admin_url": "http://127.0.0.1:P/sim"}

and one line for people on stderr with the API key and secret it accepts (``--key`` /
``--secret``, default ``SIMKEY`` / ``SIMSECRET``), as the daemon's environment wants them::

    execd sim: accepting APCA_API_KEY_ID=SIMKEY APCA_API_SECRET_KEY=SIMSECRET

then serves until a signal arrives and exits 0. Bad arguments print one line
(``execd sim: error: ...``) on stderr and exit 2; a venue that cannot start (port taken) exits 1.
``python -m execd.sim.cli`` runs it without the ``execd`` front end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from datetime import date, time
from decimal import Decimal
from pathlib import Path
from typing import NoReturn

from execd.sim.config import SCENARIOS, SimConfig
from execd.sim.rules import decimal_text
from execd.sim.server import ServerOptions
from execd.sim.venue import SimVenue

__all__ = ["build_parser", "config_from_args", "sim_main"]

PROG = "execd sim"


class UsageError(Exception):
    """A bad command-line argument (exit 2, one line)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line and raise instead of exiting mid-parse."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _start_time(text: str) -> time:
    try:
        parsed = time.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid time {text!r}, expected HH:MM[:SS]") from exc
    if parsed.tzinfo is not None:
        raise argparse.ArgumentTypeError("--start is Eastern wall time; give no offset")
    return parsed


def _start_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid date {text!r}, expected YYYY-MM-DD") from exc


def _decimal(text: str) -> Decimal:
    value = decimal_text(text)  # ASCII digits only, finite
    if value is None:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from exc
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from exc
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from exc
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {value}")
    return value


def _symbols(text: str) -> tuple[str, ...]:
    names = tuple(s.strip().upper() for s in text.split(",") if s.strip())
    if not names:
        raise argparse.ArgumentTypeError("--symbols needs at least one symbol")
    return names


def _positions(text: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for item in (p.strip() for p in text.split(",") if p.strip()):
        symbol, sep, qty = item.partition("=")
        if not sep or not symbol.strip():
            raise argparse.ArgumentTypeError(f"invalid position {item!r}, expected SYM=QTY")
        out[symbol.strip().upper()] = _decimal(qty.strip())
    return out


def build_parser() -> argparse.ArgumentParser:
    """The ``execd sim`` argument parser."""
    parser = _Parser(prog=PROG, description="Run the Alpaca-compatible simulated venue.")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=0, help="listen port (0: a free port)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--scenario", choices=SCENARIOS, help="synthetic market scenario")
    source.add_argument("--tape", type=Path, help="replay a recorded tape file")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--start", type=_start_time, help="venue start time, Eastern HH:MM[:SS]")
    parser.add_argument("--date", type=_start_date, help="venue start date YYYY-MM-DD")
    parser.add_argument("--speed", type=_positive_float, default=1.0, help="venue s per real s")
    parser.add_argument("--symbols", type=_symbols, help="comma-separated symbols")
    parser.add_argument("--cash", type=_decimal, help="starting cash (default 100000)")
    parser.add_argument("--positions", type=_positions, help="starting positions SYM=QTY,...")
    parser.add_argument(
        "--partial-fill-rate",
        type=_rate,
        help="share of eligible fills split at random, as paper does (default 0.1)",
    )
    parser.add_argument("--key", help="API key id the venue accepts")
    parser.add_argument("--secret", help="API secret key the venue accepts")
    parser.add_argument(
        "--rate-limit", type=int, default=200, help="trading requests per minute (default 200)"
    )
    parser.add_argument(
        "--data-rate-limit",
        type=int,
        default=200,
        help="market-data REST requests per minute (default 200, the free plan; 10000: paid)",
    )
    parser.add_argument(
        "--data-symbol-limit",
        type=int,
        default=30,
        help="symbols one market-data stream may subscribe (default 30, the free IEX plan;"
        " 0: unlimited, as a paid plan)",
    )
    return parser


def config_from_args(argv: Sequence[str]) -> tuple[SimConfig, argparse.Namespace]:
    """Parse ``argv`` into a :class:`SimConfig`; raises :class:`UsageError`."""
    args = build_parser().parse_args(list(argv))
    if (args.key is None) != (args.secret is None):
        raise UsageError("--key and --secret go together")
    if args.tape is not None and not args.tape.is_file():
        raise UsageError(f"tape file not found: {args.tape}")
    if args.cash is not None and args.cash < 0:
        raise UsageError("--cash must be >= 0")
    if args.rate_limit < 1:
        raise UsageError("--rate-limit must be >= 1")
    if args.data_rate_limit < 1:
        raise UsageError("--data-rate-limit must be >= 1")
    if args.data_symbol_limit < 0:
        raise UsageError("--data-symbol-limit must be >= 0 (0: unlimited)")
    fields: dict[str, object] = {"seed": args.seed, "speed": args.speed}
    optional = {
        "scenario": args.scenario,
        "tape": args.tape,
        "start": args.start,
        "start_date": args.date,
        "symbols": args.symbols,
        "cash": args.cash,
        "positions": args.positions,
        "partial_fill_rate": args.partial_fill_rate,
        "key_id": args.key,
        "secret_key": args.secret,
    }
    fields.update({name: value for name, value in optional.items() if value is not None})
    try:
        config = SimConfig(**fields)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    return config, args


def server_options(args: argparse.Namespace) -> ServerOptions:
    """The protocol limits the command line sets (Alpaca's plans: ALPACA.md §0.4)."""
    return ServerOptions(
        rate_limit=args.rate_limit,
        data_rate_limit=args.data_rate_limit,
        data_symbol_limit=args.data_symbol_limit or None,
    )


async def _serve(config: SimConfig, host: str, port: int, options: ServerOptions) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with SimVenue(config, host=host, port=port, options=options) as venue:
            print(json.dumps(venue.urls()), flush=True)
            print(
                f"{PROG}: accepting APCA_API_KEY_ID={venue.key_id}"
                f" APCA_API_SECRET_KEY={venue.secret_key}",
                file=sys.stderr,
                flush=True,
            )
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def sim_main(argv: list[str] | None = None) -> int:
    """Run ``execd sim``; returns the exit status (0 after a signal, 2 bad usage, 1 no start)."""
    try:
        config, args = config_from_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config, args.host, args.port, server_options(args)))
    except OSError as exc:
        print(f"{PROG}: error: cannot start the venue: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(sim_main())
