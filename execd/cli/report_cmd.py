"""`execd report`: post-trade analysis straight from the journal, daemon running or not.

The report opens the journal read-only (DESIGN.md "One daemon per journal": readers
take no lock), so it works while the daemon trades, after it stopped, and on a copy of
the journal on another machine. The journal is ``--journal PATH``; else, with
``--socket``, the one the daemon there keeps (asked over the socket); else
``journal.path`` from the configuration. One plan (`PLAN_ID`) or every plan submitted in a
range (`--since DATE [--until DATE]`); for people (tables), machines (`--json`),
spreadsheets (`--csv`) and a browser (`--html FILE`, self-contained).

Dates: ``YYYY-MM-DD`` is a day on the market's clock (US/Eastern); `--until` with a
date includes that whole day. A full ISO 8601 time with an offset is taken as given,
one without an offset as US/Eastern.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path

from execd.adapters.journal_reads import JournalReader
from execd.adapters.journal_rows import JournalError
from execd.cli.commands import CommandError, ExitCode, config_error_message, console, error
from execd.domain.calendar import EASTERN


def parse_when(text: str, *, end_of_day: bool = False) -> datetime:
    """A `--since`/`--until` value as an aware datetime (see the module docstring)."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        start = datetime.combine(day, time(0), tzinfo=EASTERN)
        return start + timedelta(days=1) if end_of_day else start
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(
            f"not a date or time: {text!r} (use YYYY-MM-DD or an ISO 8601 time)", ExitCode.USAGE
        ) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=EASTERN)


def journal_path(args: argparse.Namespace) -> Path:
    """``--journal``; else, with ``--socket``, the journal of the daemon listening there;
    else ``journal.path`` from the config."""
    if args.journal:
        return Path(args.journal)
    if args.socket:
        return _daemon_journal(Path(args.socket))
    from execd.config import ConfigError, load_settings

    try:
        return load_settings(args.config).journal.path
    except ConfigError as exc:
        raise CommandError(config_error_message(exc), ExitCode.USAGE) from exc


def _daemon_journal(socket: Path) -> Path:
    """Ask the daemon at `socket` which journal it keeps (its `health`)."""
    import asyncio

    from execd.control.client import ControlClient, ControlConnectionError
    from execd.control.protocol import ControlError

    async def ask() -> str | None:
        async with ControlClient(socket) as client:
            return (await client.health()).journal_path

    try:
        path = asyncio.run(ask())
    except ControlConnectionError as exc:
        raise CommandError(
            f"{exc}; or read a journal directly: execd report ... --journal PATH",
            ExitCode.UNAVAILABLE,
        ) from exc
    except ControlError as exc:
        raise CommandError(f"{exc.message} [{exc.code}]", ExitCode.FAILED) from exc
    if path is None:
        raise CommandError(
            "the daemon did not say where its journal is (an older execd): use --journal PATH",
            ExitCode.FAILED,
        )
    return Path(path)


def _write_html(path: str, text: str) -> None:
    try:
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}", ExitCode.USAGE) from exc


def cmd_report(args: argparse.Namespace) -> int:
    """`execd report (PLAN_ID | --since DATE [--until DATE]) [--json|--csv] [--html FILE]`."""
    from execd.domain.display import eastern
    from execd.report import formats, html
    from execd.report.build import plan_report, range_report

    try:
        if (args.plan_id is None) == (args.since is None):
            raise CommandError("give a PLAN_ID or --since DATE (not both)", ExitCode.USAGE)
        if args.until is not None and args.since is None:
            raise CommandError("--until needs --since", ExitCode.USAGE)
        since = None if args.since is None else parse_when(args.since)
        until = None if args.until is None else parse_when(args.until, end_of_day=True)
        if since is not None and until is not None and until <= since:
            raise CommandError(
                f"--until ({eastern(until)}) is not after --since ({eastern(since)})",
                ExitCode.USAGE,
            )
        try:
            with JournalReader.open(journal_path(args)) as reader:
                if args.plan_id is not None:
                    history = reader.plan(args.plan_id)
                    if history is None:
                        raise CommandError(
                            f"no plan {args.plan_id} in the journal {reader.path}", ExitCode.FAILED
                        )
                    report = plan_report(history)
                    ranged = None
                else:
                    ranged = range_report(reader, since, until)
        except JournalError as exc:
            raise CommandError(str(exc), ExitCode.UNAVAILABLE) from exc
    except CommandError as exc:
        error(str(exc))
        return int(exc.code)
    if ranged is None and report.finished_at is None:
        error(f"plan {report.plan_id} is still {report.state}: this report is provisional")
    if args.html:
        page = html.plan_html(report) if ranged is None else html.range_html(ranged)
        try:
            _write_html(args.html, page)
        except CommandError as exc:
            error(str(exc))
            return int(exc.code)
    if args.json:
        import json

        doc = formats.plan_dict(report) if ranged is None else formats.range_dict(ranged)
        sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
    elif args.csv:
        sys.stdout.write(formats.csv_text(report.legs if ranged is None else ranged.legs))
    elif not args.html:
        view = formats.plan_view(report) if ranged is None else formats.range_view(ranged)
        console().print(view)
    else:
        console().print(f"wrote {args.html}", markup=False)
    return int(ExitCode.OK)


def add_report_parser(
    add: object, config_option: argparse.ArgumentParser
) -> argparse.ArgumentParser:
    """Declare `execd report`'s arguments on the parser `add(...)` returns."""
    assert callable(add)
    report: argparse.ArgumentParser = add(
        "report",
        "execution quality of a plan, or of every plan in a date range",
        "Post-trade analysis from the journal (read-only; the daemon need not run). Per "
        "leg: the average fill against the arrival mid, the NBBO at each fill and the "
        "interval VWAP; spread capture; the saving against a market order sent at arrival "
        "(positive = execd did better); time to first fill; re-pegs and fallback. Slippage "
        "is positive when it cost. --since aggregates every plan in the range by urgency, "
        "style, symbol, time of day and the step at which legs completed. Times are "
        "US/Eastern. DATE is YYYY-MM-DD (US/Eastern; --until includes that day) or ISO 8601.",
        config_option,
    )
    report.add_argument("plan_id", metavar="PLAN_ID", nargs="?")
    report.add_argument("--since", metavar="DATE", help="every plan submitted from DATE on")
    report.add_argument("--until", metavar="DATE", help="... up to the end of DATE")
    fmt = report.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    fmt.add_argument("--csv", action="store_true", help="one CSV row per leg on stdout")
    report.add_argument(
        "--html", metavar="FILE", help="also write a self-contained HTML report with charts"
    )
    report.add_argument(
        "--journal",
        metavar="PATH",
        help="journal file to read (default: the --socket daemon's, else journal.path "
        "from the config)",
    )
    report.add_argument(
        "--socket",
        metavar="PATH",
        help="read the journal of the daemon listening on this control socket",
    )
    report.set_defaults(func=cmd_report)
    return report
