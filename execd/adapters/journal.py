"""The journal: execd's durable memory of plans, legs, orders, venue events and fills.

A restarted daemon (after `kill -9`, an OOM or a reboot) reads the journal to
resume or reconcile instead of re-ordering. Two rules make that safe:

- **Intent before request.** `record_intent` commits the client order id,
  side, qty and price of an order *before* the request leaves; the caller
  awaits it, then sends. After a crash every order that may exist at the venue
  has a row, so it is looked up by client order id, never re-sent blind.
  `open_orders()` lists the ones whose outcome is not known to be final.
- **Fills exactly once.** `fills.execution_id` is the primary key:
  `record_fill` of an execution already recorded changes nothing and returns
  False, so a redelivered stream event or a REST reconciliation that sees the
  same execution can never count shares twice.

Shape: embedded SQLite in WAL mode with ``synchronous=FULL`` (a commit is on
disk when the await returns), foreign keys on, a busy timeout for the odd
outside reader (``sqlite3`` shell). The schema is versioned with
``PRAGMA user_version`` and migrated at open (`journal_schema`).

Threading: SQLite calls block, and the event loop must never block
(LESSONS.md). So ONE dedicated thread owns the connection (sqlite3's
``check_same_thread`` enforces it) and runs every read and write; the async
methods hand it a small closure and await a future. The thread commits in
groups: it drains whatever is queued (up to `MAX_BATCH` calls) into one
transaction, each call in its own savepoint so one failure rolls back only
itself, then commits once and resolves the futures. Under a burst that turns
a thousand fsyncs into a handful without weakening anything: no future
resolves before the commit holding its write. Calls are carried out in the
order they were made, so a read sees every write awaited before it.

A write that has been called is carried out even if the awaiting task is then
cancelled: a fill or venue event is the venue's truth and must not be lost in
a shutdown, and an intent without a request is harmless (the lookup finds no
order). Values are validated in the caller's task before anything is queued,
so a bad argument raises at once and never reaches the file.

Storage conventions, errors and row types live in `journal_rows` (re-exported here);
the reads (`get_plan`, `open_orders`, `fills_for_leg`, ...) in `journal_queries`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar, Unpack

import msgspec

from execd.adapters.journal_queries import JournalQueries
from execd.adapters.journal_rows import (
    LEG_FIELDS,
    TERMINAL,
    DuplicateIntent,
    EventRow,
    FillRow,
    JournalClosed,
    JournalError,
    JournalSettings,
    JournalUnwritable,
    JournalVersionError,
    JsonInput,
    LegRow,
    LegSpec,
    LegUpdate,
    NotAJournal,
    OrderKind,
    OrderRow,
    PlanRow,
    RecordConflict,
    UnfinishedPlan,
    UnknownRecord,
    dec_text,
    dec_text_opt,
    json_text,
    positive,
    sql_list,
    ts_text,
    ts_text_opt,
)
from execd.adapters.journal_worker import BUSY_TIMEOUT_MS, Worker
from execd.domain.benchmarks import LegBenchmarks
from execd.domain.ids import parse_client_order_id, plan_key
from execd.domain.order_state import OrderStatus
from execd.domain.quotes import Quote
from execd.domain.types import Side, Urgency

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DuplicateIntent",
    "EventRow",
    "FillRow",
    "Journal",
    "JournalClosed",
    "JournalError",
    "JournalSettings",
    "JournalUnwritable",
    "JournalVersionError",
    "JsonInput",
    "LegRow",
    "LegSpec",
    "LegUpdate",
    "NotAJournal",
    "OrderKind",
    "OrderRow",
    "PlanRow",
    "RecordConflict",
    "UnfinishedPlan",
    "UnknownRecord",
]


_T = TypeVar("_T")


# --- the journal -----------------------------------------------------------------------------


class Journal(JournalQueries):
    """The async face of the journal; every method awaits the journal thread.

    The writes are here; the reads are inherited from `JournalQueries`.

    Open with ``journal = await Journal.open(path)`` or
    ``async with await Journal.open(path) as journal:``. The journal belongs to
    the event loop that opened it.
    """

    def __init__(self, path: Path, worker: Worker) -> None:
        """Use `Journal.open`; this only wires an already started worker."""
        self._path = path
        self._worker = worker
        self._closed = False

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> Journal:
        """Open (creating and migrating as needed) the journal at `path`.

        Missing parent directories are created 0700 and a new file 0600.
        Raises `JournalVersionError` for a journal from a newer execd and
        `NotAJournal` for any other SQLite file.
        """
        resolved = Path(path)
        worker = Worker(resolved, asyncio.get_running_loop())
        await worker.start()
        return cls(resolved, worker)

    @property
    def path(self) -> Path:
        """The journal file."""
        return self._path

    @property
    def closed(self) -> bool:
        """True once `close` was called."""
        return self._closed

    @property
    def unwritable(self) -> str | None:
        """Why the storage refused a write (the first time), or None."""
        return self._worker.unwritable

    async def wait_unwritable(self) -> str:
        """Return (with the reason) once a write failed for the storage's sake."""
        await self._worker.unwritable_event.wait()
        reason = self._worker.unwritable
        assert reason is not None
        return reason

    async def close(self) -> None:
        """Finish every call already made, then close the file. Idempotent."""
        if self._closed:
            await self._worker.stop()  # a second close still waits for the first
            return
        self._closed = True
        await self._worker.stop()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def observe_commits(self, callback: Callable[[float, bool], None] | None) -> None:
        """Call `callback(seconds, committed)` after every transaction, on the journal's
        thread (so it must be thread-safe and quick): the metrics' write latency."""
        self._worker.on_commit = callback

    async def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._closed:
            raise JournalClosed(f"journal {self._path} is closed")
        return await self._worker.submit(fn)

    # --- plans and legs ---------------------------------------------------------------------

    async def record_plan(
        self,
        plan_id: str,
        submitted_at: datetime,
        plan_json: JsonInput,
        *,
        state: str = "accepted",
        legs: Sequence[LegSpec] = (),
    ) -> bool:
        """Record a submitted plan (and, atomically with it, its legs).

        Returns False when `plan_id` is already in the journal: a resubmitted
        plan must send nothing new, and the journal is not changed.
        """
        row = (plan_id, ts_text(submitted_at), state, json_text(plan_json))
        leg_rows = [_leg_insert_row(plan_id, leg) for leg in legs]

        def fn(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT OR IGNORE INTO plans (plan_id, submitted_at, state, plan_json)"
                " VALUES (?, ?, ?, ?)",
                row,
            )
            if cur.rowcount == 0:
                return False
            _insert_legs(conn, leg_rows)
            return True

        return await self._call(fn)

    async def record_legs(self, plan_id: str, legs: Sequence[LegSpec]) -> None:
        """Record the legs of a recorded plan, state ``pending``, all or none."""
        leg_rows = [_leg_insert_row(plan_id, leg) for leg in legs]

        def fn(conn: sqlite3.Connection) -> None:
            _require(conn, "SELECT 1 FROM plans WHERE plan_id = ?", (plan_id,), f"plan {plan_id}")
            try:
                _insert_legs(conn, leg_rows)
            except sqlite3.IntegrityError as exc:
                raise RecordConflict(f"plan {plan_id}: legs already recorded ({exc})") from exc

        await self._call(fn)

    async def update_plan(
        self,
        plan_id: str,
        state: str,
        reason: str | None = None,
        finished_at: datetime | None = None,
    ) -> None:
        """Set a plan's state; `reason` and `finished_at` are changed only when given."""
        args = (state, reason, ts_text_opt(finished_at), plan_id)

        def fn(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE plans SET state = ?, reason = coalesce(?, reason),"
                " finished_at = coalesce(?, finished_at) WHERE plan_id = ?",
                args,
            )
            if cur.rowcount == 0:
                raise UnknownRecord(f"no plan {plan_id} in the journal")

        await self._call(fn)

    async def update_leg(
        self,
        plan_id: str,
        leg_index: int,
        *,
        benchmarks: LegBenchmarks | None = None,
        **fields: Unpack[LegUpdate],
    ) -> None:
        """Change some fields of a leg (see `LegUpdate`); others are left as they are.

        `benchmarks` (a leg that ended) are kept in the same transaction, so ending a
        leg stays one journal round trip."""
        columns: list[str] = []
        values: list[object] = []
        for name, value in fields.items():
            encode = LEG_FIELDS.get(name)
            if encode is None:
                raise ValueError(f"update_leg: unknown field {name!r}")
            columns.append(f"{name} = ?")  # `name` is from the whitelist above
            values.append(encode(value))
        if not columns and benchmarks is None:
            return
        sql = f"UPDATE legs SET {', '.join(columns)} WHERE plan_id = ? AND leg_index = ?"
        args = (*values, plan_id, leg_index)
        bench = None if benchmarks is None else _benchmark_row(plan_id, leg_index, benchmarks)

        def fn(conn: sqlite3.Connection) -> None:
            if columns and conn.execute(sql, args).rowcount == 0:
                raise UnknownRecord(f"no leg {plan_id}/{leg_index} in the journal")
            if bench is not None:
                _insert_benchmarks(conn, bench)

        await self._call(fn)

    # --- orders, events, fills --------------------------------------------------------------

    async def record_intent(
        self,
        client_order_id: str,
        *,
        plan_id: str,
        leg_index: int,
        attempt: int,
        kind: OrderKind,
        order_type: str,
        side: Side,
        qty: Decimal,
        limit_price: Decimal | None,
        at: datetime,
        replaces_client_order_id: str | None = None,
    ) -> None:
        """Commit the intent to send an order; await this, *then* send the request.

        When this returns the intent is on disk (WAL, ``synchronous=FULL``), so
        whatever happens to the process next, a restart finds the order among
        `open_orders()` and looks it up by client order id. Raises
        `DuplicateIntent` when the id was already intended (the order may exist:
        reconcile, never resend) and `UnknownRecord` when the leg is unknown.
        """
        parts = parse_client_order_id(client_order_id)
        if parts is None or (parts.plan_key, parts.leg_index, parts.attempt) != (
            plan_key(plan_id),
            leg_index,
            attempt,
        ):
            raise ValueError(
                f"client order id {client_order_id!r} is not the id of "
                f"plan {plan_id!r} leg {leg_index} attempt {attempt}"
            )
        if kind not in ("place", "replace"):
            raise ValueError(f"order kind must be place or replace, got {kind!r}")
        if (kind == "replace") != (replaces_client_order_id is not None):
            raise ValueError("a replace names the order it replaces; a place names none")
        row = (
            client_order_id,
            plan_id,
            leg_index,
            attempt,
            kind,
            order_type,
            Side(side).value,
            positive("qty", qty),
            None if limit_price is None else positive("limit_price", limit_price),
            replaces_client_order_id,
            ts_text(at),
            OrderStatus.PENDING_SUBMIT.value,
        )

        def fn(conn: sqlite3.Connection) -> None:
            if conn.execute(
                "SELECT 1 FROM orders WHERE client_order_id = ?", (client_order_id,)
            ).fetchone():
                raise DuplicateIntent(
                    f"order {client_order_id} was already intended: look it up, never resend"
                )
            _require(
                conn,
                "SELECT 1 FROM legs WHERE plan_id = ? AND leg_index = ?",
                (plan_id, leg_index),
                f"leg {plan_id}/{leg_index}",
            )
            if replaces_client_order_id is not None:
                _require(
                    conn,
                    "SELECT 1 FROM orders WHERE client_order_id = ?",
                    (replaces_client_order_id,),
                    f"order {replaces_client_order_id} (replaced)",
                )
            conn.execute(
                "INSERT INTO orders (client_order_id, plan_id, leg_index, attempt, kind,"
                " order_type, side, qty, limit_price, replaces_client_order_id, intent_at, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )

        await self._call(fn)

    async def record_ack(
        self, client_order_id: str, order_id: str, status: OrderStatus | str, at: datetime
    ) -> None:
        """Record the venue's answer to a place or replace (its order id and status).

        The status is taken only while the order is still ``pending_submit``:
        the stream often reports the order before the REST answer arrives, and
        a later `new` must not overwrite the `filled` the stream already gave.
        """
        args = (order_id, OrderStatus(status).value, ts_text(at))

        def fn(conn: sqlite3.Connection) -> None:
            current = conn.execute(
                "SELECT order_id FROM orders WHERE client_order_id = ?", (client_order_id,)
            ).fetchone()
            if current is None:
                raise UnknownRecord(f"no order {client_order_id} in the journal")
            if current["order_id"] not in (None, order_id):
                raise RecordConflict(
                    f"order {client_order_id}: venue order id {order_id} differs from "
                    f"{current['order_id']} recorded before"
                )
            conn.execute(
                "UPDATE orders SET order_id = ?1,"
                " status = CASE status WHEN 'pending_submit' THEN ?2 ELSE status END,"
                " acked_at = coalesce(acked_at, ?3),"
                " last_event_at = max(coalesce(last_event_at, ?3), ?3)"
                " WHERE client_order_id = ?4",
                (*args, client_order_id),
            )

        await self._call(fn)

    async def record_event(
        self,
        client_order_id: str | None,
        order_id: str | None,
        event: str,
        at: datetime,
        raw: JsonInput,
        *,
        status: OrderStatus | str | None = None,
    ) -> int:
        """Keep a venue event verbatim; returns its id.

        `status`, when given, is the order's status after the event as the
        order state machine computed it (`order_state.apply_event`); the
        journal stores it unless the order is already terminal (terminal
        states absorb). An event for an order the journal does not know is
        still kept: the venue's word is never dropped.
        """
        at_text = ts_text(at)
        status_text = None if status is None else OrderStatus(status).value
        row = (client_order_id, order_id, event, at_text, json_text(raw))

        def fn(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO events (client_order_id, order_id, event, at, raw)"
                " VALUES (?, ?, ?, ?, ?)",
                row,
            )
            if client_order_id is not None:
                conn.execute(
                    "UPDATE orders SET"
                    " order_id = coalesce(order_id, ?1),"
                    " last_event_at = max(coalesce(last_event_at, ?2), ?2),"
                    f" status = CASE WHEN ?3 IS NULL OR status IN ({sql_list(TERMINAL)})"
                    " THEN status ELSE ?3 END"
                    " WHERE client_order_id = ?4",
                    (order_id, at_text, status_text, client_order_id),
                )
            return int(cur.lastrowid or 0)

        return await self._call(fn)

    async def record_fill(
        self,
        execution_id: str,
        client_order_id: str,
        qty: Decimal,
        price: Decimal,
        at: datetime,
        *,
        cumulative: Decimal | None = None,
        quote: Quote | None = None,
    ) -> bool:
        """Record one execution; False when it is already recorded.

        Two keys keep every share in the journal exactly once. The execution id is the
        primary key, so a redelivered event is recorded once; the same id reported with
        another qty, price or order raises `RecordConflict` (the first account is kept):
        that is not a redelivery, and hiding it would hide real shares. And
        `cumulative`, the venue's filled quantity of the order *after* this execution,
        is compared with the order's cumulative quantity counted so far
        (``orders.filled_qty``): at or below it, these shares are already in the
        journal under another id (a fill learned over REST during recovery is recorded
        under a made-up ``reconciled:`` id, and the stream may report the same shares
        later with the venue's id), so nothing is written and False is returned.

        `quote` is the NBBO the quote cache held when the fill arrived (the "vs NBBO"
        benchmark of issue 13), kept with the fill.
        """
        row = (execution_id, client_order_id, positive("qty", qty), positive("price", price))
        at_text = ts_text(at)
        if cumulative is not None and not (cumulative.is_finite() and cumulative >= qty):
            raise ValueError(f"cumulative {cumulative} below this execution's qty {qty}")
        nbbo: tuple[str | None, ...] = (None,) * 5
        if quote is not None:
            nbbo = (
                dec_text(quote.bid),
                dec_text(quote.ask),
                dec_text(quote.bid_size),
                dec_text(quote.ask_size),
                ts_text(quote.venue_time),
            )

        def fn(conn: sqlite3.Connection) -> bool:
            counted = _order_filled_qty(conn, client_order_id)
            if cumulative is not None and counted is not None and cumulative <= counted:
                known = conn.execute(
                    "SELECT 1 FROM fills WHERE execution_id = ?", (execution_id,)
                ).fetchone()
                if known is None:
                    return False  # the same shares, already counted under another id
            cur = conn.execute(
                "INSERT OR IGNORE INTO fills (execution_id, client_order_id, qty, price, at,"
                " bid, ask, bid_size, ask_size, quote_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*row, at_text, *nbbo),
            )
            if cur.rowcount == 1:
                after = (counted or Decimal(0)) + qty
                if cumulative is not None:
                    after = max(after, cumulative)
                conn.execute(
                    "UPDATE orders SET filled_qty = ? WHERE client_order_id = ?",
                    (dec_text(after), client_order_id),
                )
                return True
            old = conn.execute(
                "SELECT client_order_id, qty, price FROM fills WHERE execution_id = ?",
                (execution_id,),
            ).fetchone()
            if (old["client_order_id"], Decimal(old["qty"]), Decimal(old["price"])) != (
                client_order_id,
                qty,
                price,
            ):
                raise RecordConflict(
                    f"execution {execution_id}: {qty} @ {price} for {client_order_id} differs "
                    f"from {old['qty']} @ {old['price']} for {old['client_order_id']} recorded"
                )
            return False

        return await self._call(fn)

    async def order_filled_qty(self, client_order_id: str) -> Decimal | None:
        """The order's cumulative filled quantity as counted in the journal (None: no
        such order row)."""

        def fn(conn: sqlite3.Connection) -> Decimal | None:
            return _order_filled_qty(conn, client_order_id)

        return await self._call(fn)

    # --- daemon state -----------------------------------------------------------------------

    async def set_halted(self, halted: bool, at: datetime, reason: str = "") -> None:
        """Journal the kill switch: a restarted daemon reads it back with `halted`."""
        value = json_text({"halted": halted, "reason": reason})

        def fn(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO daemon_state (key, value, at) VALUES ('halted', ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value, at = excluded.at",
                (value, ts_text(at)),
            )

        await self._call(fn)

    async def halted(self) -> str | None:
        """The journaled halt's reason ("" when none was given), or None: not halted."""

        def fn(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM daemon_state WHERE key = 'halted'").fetchone()
            if row is None:
                return None
            state = json.loads(row["value"])
            return str(state.get("reason", "")) if state.get("halted") else None

        return await self._call(fn)

    # --- post-trade benchmarks --------------------------------------------------------------

    async def record_benchmarks(
        self, plan_id: str, leg_index: int, benchmarks: LegBenchmarks
    ) -> None:
        """Keep what a leg saw of the market (a rewrite replaces it); `update_leg` takes
        them too, to write them with the leg's end in one transaction."""
        row = _benchmark_row(plan_id, leg_index, benchmarks)

        def fn(conn: sqlite3.Connection) -> None:
            _insert_benchmarks(conn, row)

        await self._call(fn)


# --- helpers run on the journal thread ---------------------------------------------------


def _require(conn: sqlite3.Connection, sql: str, args: tuple[object, ...], what: str) -> None:
    if conn.execute(sql, args).fetchone() is None:
        raise UnknownRecord(f"no {what} in the journal")


def _leg_insert_row(plan_id: str, leg: LegSpec) -> tuple[object, ...]:
    if (leg.qty is None) == (leg.notional is None):
        raise ValueError(f"leg {leg.index}: exactly one of qty and notional must be set")
    return (
        plan_id,
        leg.index,
        leg.symbol,
        Side(leg.side).value,
        None if leg.qty is None else positive("qty", leg.qty),
        None if leg.notional is None else positive("notional", leg.notional),
        None if leg.limit_price is None else positive("limit_price", leg.limit_price),
        Urgency(leg.urgency).value,
        "pending",
    )


def _insert_legs(conn: sqlite3.Connection, rows: Sequence[tuple[object, ...]]) -> None:
    conn.executemany(
        "INSERT INTO legs (plan_id, leg_index, symbol, side, qty, notional, limit_price,"
        " urgency, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def _benchmark_row(plan_id: str, leg_index: int, b: LegBenchmarks) -> tuple[object, ...]:
    return (
        plan_id,
        leg_index,
        b.feed,
        dec_text_opt(b.interval_vwap),
        int(b.fallback_fired),
        msgspec.json.encode(b).decode(),
    )


def _insert_benchmarks(conn: sqlite3.Connection, row: tuple[object, ...]) -> None:
    plan_id, leg_index = row[0], row[1]
    _require(
        conn,
        "SELECT 1 FROM legs WHERE plan_id = ? AND leg_index = ?",
        (plan_id, leg_index),
        f"leg {plan_id}/{leg_index}",
    )
    conn.execute(
        "INSERT OR REPLACE INTO leg_benchmarks (plan_id, leg_index, feed, interval_vwap,"
        " fallback_fired, benchmarks) VALUES (?, ?, ?, ?, ?, ?)",
        row,
    )


def _order_filled_qty(conn: sqlite3.Connection, client_order_id: str) -> Decimal | None:
    """``orders.filled_qty``, else (a row from before schema v3) the sum of its fills;
    None when the journal has no such order."""
    row = conn.execute(
        "SELECT filled_qty FROM orders WHERE client_order_id = ?", (client_order_id,)
    ).fetchone()
    if row is None:
        return None
    if row["filled_qty"] is not None:
        return Decimal(row["filled_qty"])
    fills = conn.execute(
        "SELECT qty FROM fills WHERE client_order_id = ?", (client_order_id,)
    ).fetchall()
    return sum((Decimal(f["qty"]) for f in fills), Decimal(0))
