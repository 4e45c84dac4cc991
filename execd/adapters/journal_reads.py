"""Read-only access to a journal for `execd report`: no lock, no writes, no thread.

DESIGN.md ("One daemon per journal"): the daemon holds the journal's lock for its
life; readers open it read-only without the lock. A report is a short, synchronous
batch of SELECTs from the CLI process, so this is a plain `sqlite3` connection opened
with ``mode=ro`` (SQLite's WAL lets it read a consistent snapshot while the daemon
writes). It never migrates: a journal older than the benchmark columns (v4) still
reports, with those benchmarks absent; a journal from a newer execd is refused, as
`Journal.open` refuses it.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import msgspec

from execd.adapters.journal_rows import (
    FILL_COLS,
    LEG_COLS,
    ORDER_COLS,
    PLAN_COLS,
    FillRow,
    JournalError,
    JournalVersionError,
    LegRow,
    NotAJournal,
    OrderRow,
    PlanRow,
    fill_row,
    leg_row,
    order_row,
    parse_time,
    plan_row,
    ts_text,
)
from execd.adapters.journal_schema import APPLICATION_ID, SCHEMA_VERSION
from execd.adapters.journal_worker import BUSY_TIMEOUT_MS
from execd.domain.benchmarks import LegBenchmarks
from execd.domain.quotes import Quote

#: The first schema version with the NBBO at each fill and `leg_benchmarks` (v4).
BENCHMARKS_VERSION = 4
#: The oldest schema the reader understands (v2 added legs.reason and legs.report).
_OLDEST_READABLE = 2


@dataclass(frozen=True, slots=True)
class FillWithQuote:
    """A fill and the NBBO the quote cache held when it arrived (None when unknown)."""

    fill: FillRow
    quote: Quote | None


@dataclass(frozen=True, slots=True)
class LegHistory:
    """Everything the journal knows about one leg, for its report."""

    leg: LegRow
    orders: tuple[OrderRow, ...]
    fills: tuple[FillWithQuote, ...]
    benchmarks: LegBenchmarks | None


@dataclass(frozen=True, slots=True)
class PlanHistory:
    """One plan and its legs' histories."""

    plan: PlanRow
    legs: tuple[LegHistory, ...]


class JournalReader:
    """A read-only view of a journal file; use as a context manager."""

    def __init__(self, conn: sqlite3.Connection, path: Path, version: int) -> None:
        """Use `JournalReader.open`."""
        self._conn = conn
        self.path = path
        self.version = version

    @classmethod
    def open(cls, path: str | Path) -> JournalReader:
        """Open `path` read-only. Raises `JournalError` (missing file, not a journal, newer)."""
        resolved = Path(path)
        if not resolved.is_file():
            raise JournalError(f"no journal at {resolved}")
        uri = f"file:{urllib.parse.quote(str(resolved.resolve()))}?mode=ro"
        try:
            conn = sqlite3.connect(
                uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
            conn.row_factory = sqlite3.Row
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read journal {resolved}: {exc}") from exc
        if version == 0 or app_id != APPLICATION_ID:
            conn.close()
            raise NotAJournal(f"{resolved} is not an execd journal")
        if version < _OLDEST_READABLE:
            conn.close()
            raise JournalVersionError(
                f"journal {resolved} has schema version {version}: start the daemon once "
                "(`execd run`) to migrate it, then report"
            )
        if version > SCHEMA_VERSION:
            conn.close()
            raise JournalVersionError(
                f"journal {resolved} has schema version {version}, newer than this execd "
                f"({SCHEMA_VERSION}): report with the execd that wrote it"
            )
        return cls(conn, resolved, version)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def has_benchmarks(self) -> bool:
        """True when the file has the v4 benchmark columns."""
        return self.version >= BENCHMARKS_VERSION

    def plan_ids(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[str, ...]:
        """Plans submitted in [since, until), oldest first."""
        sql = "SELECT plan_id FROM plans WHERE 1 = 1"
        args: list[str] = []
        if since is not None:
            sql += " AND submitted_at >= ?"
            args.append(ts_text(since))
        if until is not None:
            sql += " AND submitted_at < ?"
            args.append(ts_text(until))
        sql += " ORDER BY submitted_at, plan_id"
        with self._reading():
            return tuple(r["plan_id"] for r in self._conn.execute(sql, args))

    def plan(self, plan_id: str) -> PlanHistory | None:
        """One plan with every leg's orders, fills (with their NBBO) and benchmarks."""
        with self._reading():
            r = self._conn.execute(
                f"SELECT {PLAN_COLS} FROM plans WHERE plan_id = ?", (plan_id,)
            ).fetchone()
            if r is None:
                return None
            legs = self._conn.execute(
                f"SELECT {LEG_COLS} FROM legs WHERE plan_id = ? ORDER BY leg_index", (plan_id,)
            ).fetchall()
            return PlanHistory(plan_row(r), tuple(self._leg(leg_row(row)) for row in legs))

    def _leg(self, leg: LegRow) -> LegHistory:
        key = (leg.plan_id, leg.leg_index)
        orders = tuple(
            order_row(r)
            for r in self._conn.execute(
                f"SELECT {ORDER_COLS} FROM orders WHERE plan_id = ? AND leg_index = ?"
                " ORDER BY attempt",
                key,
            )
        )
        quote_cols = ", f.bid, f.ask, f.bid_size, f.ask_size, f.quote_time"
        fills = tuple(
            FillWithQuote(fill_row(r), _fill_quote(leg.symbol, r) if self.has_benchmarks else None)
            for r in self._conn.execute(
                f"SELECT {FILL_COLS}{quote_cols if self.has_benchmarks else ''}"
                " FROM fills AS f JOIN orders AS o ON o.client_order_id = f.client_order_id"
                " WHERE o.plan_id = ? AND o.leg_index = ? ORDER BY f.at, f.execution_id",
                key,
            )
        )
        benchmarks = None
        if self.has_benchmarks:
            row = self._conn.execute(
                "SELECT benchmarks FROM leg_benchmarks WHERE plan_id = ? AND leg_index = ?", key
            ).fetchone()
            if row is not None:
                try:
                    benchmarks = msgspec.json.decode(row[0], type=LegBenchmarks)
                except msgspec.DecodeError:
                    benchmarks = None  # a damaged record must not hide the fills
        return LegHistory(leg, orders, fills, benchmarks)

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """One consistent snapshot per read; SQLite errors become `JournalError`."""
        try:
            self._conn.execute("BEGIN")
            try:
                yield
            finally:
                self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise JournalError(f"reading journal {self.path}: {exc}") from exc


def _fill_quote(symbol: str, r: sqlite3.Row) -> Quote | None:
    if r["bid"] is None or r["ask"] is None or r["quote_time"] is None:
        return None
    at = parse_time(r["quote_time"])
    return Quote(
        symbol=symbol,
        bid=Decimal(r["bid"]),
        ask=Decimal(r["ask"]),
        bid_size=Decimal(r["bid_size"] or "0"),
        ask_size=Decimal(r["ask_size"] or "0"),
        venue_time=at,
        as_of=at,
    )
