"""Journal schema versions: old files are migrated with their data, newer ones refused."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from execd.adapters import journal_worker as journal_module
from execd.adapters.journal import Journal, JournalError, JournalVersionError, NotAJournal
from execd.adapters.journal_schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, Migration
from execd.domain.ids import client_order_id
from execd.domain.order_state import OrderStatus
from execd.domain.types import Side

T0 = datetime(2026, 5, 11, 13, 30, tzinfo=UTC)

# The v1 schema exactly as it shipped. A frozen copy, not an import: the point is to
# migrate the file an old execd really wrote, and to notice if v1 is ever edited.
V1_DDL = """
CREATE TABLE plans (
    plan_id      TEXT PRIMARY KEY NOT NULL,
    submitted_at TEXT NOT NULL,
    state        TEXT NOT NULL,
    reason       TEXT,
    finished_at  TEXT,
    plan_json    TEXT NOT NULL
);
CREATE INDEX plans_by_submitted_at ON plans (submitted_at);
CREATE TABLE legs (
    plan_id        TEXT NOT NULL REFERENCES plans (plan_id),
    leg_index      INTEGER NOT NULL CHECK (leg_index >= 0),
    symbol         TEXT NOT NULL,
    side           TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    qty            TEXT,
    notional       TEXT,
    limit_price    TEXT,
    urgency        TEXT NOT NULL CHECK (urgency IN ('low', 'normal', 'high')),
    state          TEXT NOT NULL,
    step           TEXT,
    filled_qty     TEXT NOT NULL DEFAULT '0',
    avg_fill_price TEXT,
    started_at     TEXT,
    finished_at    TEXT,
    PRIMARY KEY (plan_id, leg_index)
);
CREATE TABLE orders (
    client_order_id          TEXT PRIMARY KEY NOT NULL,
    plan_id                  TEXT NOT NULL,
    leg_index                INTEGER NOT NULL,
    attempt                  INTEGER NOT NULL CHECK (attempt >= 0),
    kind                     TEXT NOT NULL CHECK (kind IN ('place', 'replace')),
    order_type               TEXT NOT NULL,
    side                     TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    qty                      TEXT NOT NULL,
    limit_price              TEXT,
    replaces_client_order_id TEXT REFERENCES orders (client_order_id),
    intent_at                TEXT NOT NULL,
    order_id                 TEXT,
    status                   TEXT NOT NULL DEFAULT 'pending_submit',
    acked_at                 TEXT,
    last_event_at            TEXT,
    FOREIGN KEY (plan_id, leg_index) REFERENCES legs (plan_id, leg_index),
    UNIQUE (plan_id, leg_index, attempt)
);
CREATE INDEX orders_by_order_id ON orders (order_id);
CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    client_order_id TEXT,
    order_id        TEXT,
    event           TEXT NOT NULL,
    at              TEXT NOT NULL,
    raw             TEXT NOT NULL
);
CREATE TABLE fills (
    execution_id    TEXT PRIMARY KEY NOT NULL,
    client_order_id TEXT NOT NULL,
    qty             TEXT NOT NULL,
    price           TEXT NOT NULL,
    at              TEXT NOT NULL
);
"""

CID = client_order_id("old-plan", 0, 0)


def _normalise(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).replace("( ", "(").replace(" )", ")").strip()


def build_v1_file(path: Path) -> None:
    """Write a journal the way execd with schema v1 left it, with one plan's history."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(V1_DDL)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
        conn.execute(
            "INSERT INTO plans VALUES ('old-plan', '2026-05-11T13:30:00.000000Z', 'running',"
            ' NULL, NULL, \'{"plan_id":"old-plan"}\')'
        )
        conn.execute(
            "INSERT INTO legs (plan_id, leg_index, symbol, side, qty, urgency, state, filled_qty)"
            " VALUES ('old-plan', 0, 'TQQQ', 'sell', '10', 'normal', 'working', '4')"
        )
        conn.execute(
            "INSERT INTO orders (client_order_id, plan_id, leg_index, attempt, kind, order_type,"
            " side, qty, limit_price, intent_at, order_id, status)"
            f" VALUES ('{CID}', 'old-plan', 0, 0, 'place', 'limit', 'sell', '10', '50.01',"
            " '2026-05-11T13:30:01.000000Z', 'venue-1', 'partially_filled')"
        )
        conn.execute(
            "INSERT INTO events (client_order_id, order_id, event, at, raw) VALUES"
            f" ('{CID}', 'venue-1', 'partial_fill', '2026-05-11T13:30:02.000000Z', '{{}}')"
        )
        conn.execute(
            "INSERT INTO fills VALUES"
            f" ('ex-1', '{CID}', '4', '50.01', '2026-05-11T13:30:02.000000Z')"
        )
    finally:
        conn.close()


def user_version(path: Path) -> int:
    """Read the schema version straight from the file."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def test_migrations_are_numbered_in_order() -> None:
    """MIGRATIONS[i] leads to version i + 1; SCHEMA_VERSION is the last one."""
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert SCHEMA_VERSION == len(MIGRATIONS) >= 2


def test_shipped_v1_was_never_edited() -> None:
    """The v1 migration still creates exactly the frozen v1 schema above."""
    shipped = [_normalise(s) for s in MIGRATIONS[0].statements if not s.startswith("PRAGMA")]
    frozen = [_normalise(s) for s in V1_DDL.split(";") if s.strip()]
    assert shipped == frozen


async def test_v1_journal_is_migrated_with_its_data(tmp_path: Path) -> None:
    """A v1 file opens at the current version with every row intact and v2's columns usable."""
    path = tmp_path / "journal.db"
    build_v1_file(path)
    async with await Journal.open(path) as j:
        assert (await j.settings()).schema_version == SCHEMA_VERSION
        unfinished = await j.unfinished_plans()
        assert [u.plan.plan_id for u in unfinished] == ["old-plan"]
        leg = unfinished[0].legs[0]
        assert (leg.symbol, leg.side, leg.filled_qty) == ("TQQQ", Side.SELL, Decimal("4"))
        assert (leg.reason, leg.report) == (None, None)
        [order] = await j.open_orders()
        assert (order.client_order_id, order.status) == (CID, OrderStatus.PARTIALLY_FILLED)
        assert await j.filled_qty_for_leg("old-plan", 0) == Decimal("4")
        assert not await j.record_fill("ex-1", CID, Decimal("4"), Decimal("50.01"), T0)
        assert [e.event for e in await j.events_for_order(CID)] == ["partial_fill"]
        await j.update_leg("old-plan", 0, reason="resumed", report={"bps": "1"})
        assert (await j.legs("old-plan"))[0].reason == "resumed"
    conn = sqlite3.connect(path)
    try:
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    finally:
        conn.close()
    assert {"fills_by_client_order_id", "events_by_client_order_id"} <= indexes


async def test_newer_journal_is_refused_untouched(tmp_path: Path) -> None:
    """A file from a newer execd raises a clear error and is left exactly as it was."""
    path = tmp_path / "journal.db"
    async with await Journal.open(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(JournalVersionError, match=f"schema version {SCHEMA_VERSION + 1}.*newer"):
        await Journal.open(path)
    assert user_version(path) == SCHEMA_VERSION + 1


async def test_other_sqlite_file_is_refused(tmp_path: Path) -> None:
    """A database that is not a journal is never migrated into one."""
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(NotAJournal):
        await Journal.open(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    with pytest.raises(NotAJournal, match="application_id"):
        await Journal.open(path)


async def test_failed_migration_leaves_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each migration is one transaction: a failure half-way changes nothing."""
    path = tmp_path / "journal.db"
    async with await Journal.open(path) as j:
        assert await j.record_plan("p", T0, "{}")
    broken = Migration(
        SCHEMA_VERSION + 1,
        "broken",
        ("CREATE TABLE extra (x TEXT)", "ALTER TABLE no_such_table ADD COLUMN y TEXT"),
    )
    monkeypatch.setattr(journal_module, "MIGRATIONS", (*MIGRATIONS, broken))
    monkeypatch.setattr(journal_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(JournalError, match=f"migration to v{SCHEMA_VERSION + 1} .*no_such_table"):
        await Journal.open(path)
    monkeypatch.undo()
    assert user_version(path) == SCHEMA_VERSION
    async with await Journal.open(path) as j:
        assert await j.get_plan("p") is not None
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert "extra" not in tables


async def test_reopening_a_current_journal_keeps_everything(tmp_path: Path) -> None:
    """Opening twice is not a migration: the version and the rows stay."""
    path = tmp_path / "journal.db"
    async with await Journal.open(path) as j:
        assert await j.record_plan("p", T0, "{}")
    async with await Journal.open(path) as j:
        assert not await j.record_plan("p", T0, "{}")
    assert user_version(path) == SCHEMA_VERSION
    assert issubclass(JournalVersionError, JournalError)
