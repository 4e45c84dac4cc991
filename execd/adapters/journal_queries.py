"""The journal's reads: plans, legs, orders, fills and events as the daemon looks them up.

Split out of `journal.py`, which keeps the thread, the lifecycle and the writes (the
rules that make a restart safe: intent before request, fills exactly once). What is
here changes nothing: each method hands the journal's thread one SELECT (a closure
over a connection) through `Journal._call` and decodes the rows with `journal_rows`.
A read queued after a write sees it: the thread carries calls out in order.
`journal_reads` is the other reader, for `execd report`: its own read-only connection,
no daemon.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from execd.adapters.journal_rows import (
    FILL_COLS,
    LEG_COLS,
    ORDER_COLS,
    PLAN_COLS,
    TERMINAL,
    EventRow,
    FillRow,
    JournalSettings,
    LegRow,
    OrderRow,
    PlanRow,
    UnfinishedPlan,
    event_row,
    fill_row,
    leg_row,
    order_row,
    plan_row,
    sql_list,
)

__all__ = ["JournalQueries"]

_T = TypeVar("_T")


class JournalQueries:
    """The read half of `Journal`; `Journal` supplies the thread (`_call`) and `_path`."""

    _path: Path

    async def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `fn` on the journal's thread and return its result (`Journal._call`)."""
        raise NotImplementedError

    async def get_plan(self, plan_id: str) -> PlanRow | None:
        """One plan, or None."""

        def fn(conn: sqlite3.Connection) -> PlanRow | None:
            r = conn.execute(
                f"SELECT {PLAN_COLS} FROM plans WHERE plan_id = ?", (plan_id,)
            ).fetchone()
            return None if r is None else plan_row(r)

        return await self._call(fn)

    async def plans(self, limit: int = 50) -> tuple[PlanRow, ...]:
        """The most recently submitted plans, newest first."""

        def fn(conn: sqlite3.Connection) -> tuple[PlanRow, ...]:
            rows = conn.execute(
                f"SELECT {PLAN_COLS} FROM plans ORDER BY submitted_at DESC, plan_id LIMIT ?",
                (limit,),
            )
            return tuple(plan_row(r) for r in rows)

        return await self._call(fn)

    async def legs(self, plan_id: str) -> tuple[LegRow, ...]:
        """A plan's legs in index order (empty for an unknown plan)."""

        def fn(conn: sqlite3.Connection) -> tuple[LegRow, ...]:
            return _legs(conn, plan_id)

        return await self._call(fn)

    async def unfinished_plans(self) -> tuple[UnfinishedPlan, ...]:
        """Plans without `finished_at`, oldest first, each with its legs: a restart's work."""

        def fn(conn: sqlite3.Connection) -> tuple[UnfinishedPlan, ...]:
            rows = conn.execute(
                f"SELECT {PLAN_COLS} FROM plans WHERE finished_at IS NULL"
                " ORDER BY submitted_at, plan_id"
            ).fetchall()
            return tuple(UnfinishedPlan(plan_row(r), _legs(conn, r["plan_id"])) for r in rows)

        return await self._call(fn)

    async def get_order(self, client_order_id: str) -> OrderRow | None:
        """One order attempt by client order id, or None."""

        def fn(conn: sqlite3.Connection) -> OrderRow | None:
            r = conn.execute(
                f"SELECT {ORDER_COLS} FROM orders WHERE client_order_id = ?",
                (client_order_id,),
            ).fetchone()
            return None if r is None else order_row(r)

        return await self._call(fn)

    async def orders_for_leg(self, plan_id: str, leg_index: int) -> tuple[OrderRow, ...]:
        """Every order attempt of a leg, by attempt number."""

        def fn(conn: sqlite3.Connection) -> tuple[OrderRow, ...]:
            rows = conn.execute(
                f"SELECT {ORDER_COLS} FROM orders WHERE plan_id = ? AND leg_index = ?"
                " ORDER BY attempt",
                (plan_id, leg_index),
            )
            return tuple(order_row(r) for r in rows)

        return await self._call(fn)

    async def open_orders(self) -> tuple[OrderRow, ...]:
        """Orders whose last known status is not terminal, oldest intent first.

        This includes intents never acknowledged (``pending_submit``): the
        request may or may not have reached the venue, so a restart must look
        each one up by client order id before doing anything else.
        """

        def fn(conn: sqlite3.Connection) -> tuple[OrderRow, ...]:
            rows = conn.execute(
                f"SELECT {ORDER_COLS} FROM orders WHERE status NOT IN ({sql_list(TERMINAL)})"
                " ORDER BY intent_at, client_order_id"
            )
            return tuple(order_row(r) for r in rows)

        return await self._call(fn)

    async def fills_for_leg(self, plan_id: str, leg_index: int) -> tuple[FillRow, ...]:
        """Every execution of every order of a leg, in time order."""

        def fn(conn: sqlite3.Connection) -> tuple[FillRow, ...]:
            return _fills_for_leg(conn, plan_id, leg_index)

        return await self._call(fn)

    async def filled_qty_for_leg(self, plan_id: str, leg_index: int) -> Decimal:
        """The leg's filled quantity from its recorded executions (summed exactly, not in SQL).

        SQL's ``sum()`` would turn the TEXT decimals into floats.
        """

        def fn(conn: sqlite3.Connection) -> Decimal:
            return sum((f.qty for f in _fills_for_leg(conn, plan_id, leg_index)), Decimal(0))

        return await self._call(fn)

    async def orphan_fills(self) -> tuple[FillRow, ...]:
        """Fills whose client order id has no order row, in time order.

        They are kept rather than refused (a fill is never lost), and this is
        where reconciliation finds them; normally it is empty.
        """

        def fn(conn: sqlite3.Connection) -> tuple[FillRow, ...]:
            rows = conn.execute(
                f"SELECT {FILL_COLS} FROM fills AS f WHERE NOT EXISTS"
                " (SELECT 1 FROM orders AS o WHERE o.client_order_id = f.client_order_id)"
                " ORDER BY f.at, f.execution_id"
            )
            return tuple(fill_row(r) for r in rows)

        return await self._call(fn)

    async def events_for_order(self, client_order_id: str) -> tuple[EventRow, ...]:
        """The venue events recorded for one order, in the order they were recorded."""

        def fn(conn: sqlite3.Connection) -> tuple[EventRow, ...]:
            rows = conn.execute(
                "SELECT id, client_order_id, order_id, event, at, raw FROM events"
                " WHERE client_order_id = ? ORDER BY id",
                (client_order_id,),
            )
            return tuple(event_row(r) for r in rows)

        return await self._call(fn)

    async def settings(self) -> JournalSettings:
        """The pragmas the connection really runs with."""
        path = self._path

        def fn(conn: sqlite3.Connection) -> JournalSettings:
            def pragma(name: str) -> Any:
                return conn.execute(f"PRAGMA {name}").fetchone()[0]

            sync_names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
            return JournalSettings(
                path=path,
                schema_version=int(pragma("user_version")),
                journal_mode=str(pragma("journal_mode")),
                synchronous=sync_names.get(int(pragma("synchronous")), "?"),
                foreign_keys=bool(pragma("foreign_keys")),
                busy_timeout_ms=int(pragma("busy_timeout")),
            )

        return await self._call(fn)


def _legs(conn: sqlite3.Connection, plan_id: str) -> tuple[LegRow, ...]:
    rows = conn.execute(
        f"SELECT {LEG_COLS} FROM legs WHERE plan_id = ? ORDER BY leg_index", (plan_id,)
    )
    return tuple(leg_row(r) for r in rows)


def _fills_for_leg(conn: sqlite3.Connection, plan_id: str, leg_index: int) -> tuple[FillRow, ...]:
    rows = conn.execute(
        f"SELECT {FILL_COLS} FROM fills AS f JOIN orders AS o"
        " ON o.client_order_id = f.client_order_id"
        " WHERE o.plan_id = ? AND o.leg_index = ? ORDER BY f.at, f.execution_id",
        (plan_id, leg_index),
    )
    return tuple(fill_row(r) for r in rows)
