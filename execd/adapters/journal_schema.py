"""The journal's schema as an ordered list of migrations, pure data.

`PRAGMA user_version` holds the number of migrations applied. `Journal.open`
applies every migration above it, each in its own transaction together with
the new `user_version`, so a crash mid-migration leaves the file at the old
version, never half-way. A file whose version is above `SCHEMA_VERSION` was
written by a newer execd and is refused: an older daemon cannot know what the
newer columns mean, and guessing with real money is not an option.

Rules for whoever adds a migration:

- A shipped migration is never edited; add a new one at the end. The tests
  build a v1 file from a frozen copy of v1 and migrate it.
- Statements run one by one inside the migration's transaction (never
  `executescript`, which commits on its own). Foreign keys are on during
  migrations, so a table rebuild must copy its rows before dropping the old table.
- Money and quantities are TEXT holding a plain decimal (``"12.34"``), never
  REAL; times are RFC 3339 UTC text (``2026-05-11T13:30:00.000000Z``), which
  sorts in time order as text.
- Avoid features newer than SQLite 3.31 (no STRICT tables, no RETURNING): the
  journal must stay readable by the `sqlite3` shell of an older distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

#: `PRAGMA application_id` of an execd journal ("xdj1"), so that open() refuses
#: to migrate some other SQLite file that happens to sit at the configured path.
APPLICATION_ID = 0x78646A31


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: `version` is the `user_version` after it is applied."""

    version: int
    description: str
    statements: tuple[str, ...]


_V1 = Migration(
    1,
    "base schema: plans, legs, orders, events, fills",
    (
        f"PRAGMA application_id = {APPLICATION_ID}",
        # One row per submitted plan. `plan_json` is the plan exactly as accepted;
        # `finished_at IS NULL` is what makes a plan unfinished after a restart.
        """
        CREATE TABLE plans (
            plan_id      TEXT PRIMARY KEY NOT NULL,
            submitted_at TEXT NOT NULL,
            state        TEXT NOT NULL,
            reason       TEXT,
            finished_at  TEXT,
            plan_json    TEXT NOT NULL
        )
        """,
        "CREATE INDEX plans_by_submitted_at ON plans (submitted_at)",
        # One row per leg; the leg coroutine keeps state/step/filled_qty current.
        """
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
        )
        """,
        # One row per order attempt, written as an *intent* before the request
        # leaves (status pending_submit, no order_id), completed by the ack.
        """
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
        )
        """,
        "CREATE INDEX orders_by_order_id ON orders (order_id)",
        # Every venue event verbatim. No foreign key: the venue's word is kept
        # even for an order the journal does not know (that is itself a finding).
        """
        CREATE TABLE events (
            id              INTEGER PRIMARY KEY AUTOINCREMENT,
            client_order_id TEXT,
            order_id        TEXT,
            event           TEXT NOT NULL,
            at              TEXT NOT NULL,
            raw             TEXT NOT NULL
        )
        """,
        # Every execution exactly once (the primary key is the dedup). No foreign
        # key either: a fill must never be lost because its order row is missing.
        """
        CREATE TABLE fills (
            execution_id    TEXT PRIMARY KEY NOT NULL,
            client_order_id TEXT NOT NULL,
            qty             TEXT NOT NULL,
            price           TEXT NOT NULL,
            at              TEXT NOT NULL
        )
        """,
    ),
)

_V2 = Migration(
    2,
    "legs.reason and legs.report; look-ups of fills and events by order",
    (
        # Why a leg ended (e.g. "re-pegs exhausted, urgency low") and its post-fill
        # TCA report as JSON (DESIGN.md ladder step 5: "kept in the journal").
        "ALTER TABLE legs ADD COLUMN reason TEXT",
        "ALTER TABLE legs ADD COLUMN report TEXT",
        # fills_for_leg / filled_qty_for_leg and per-order event history would
        # otherwise scan both tables, which grow with every order ever placed.
        "CREATE INDEX fills_by_client_order_id ON fills (client_order_id)",
        "CREATE INDEX events_by_client_order_id ON events (client_order_id, id)",
    ),
)

_V3 = Migration(
    3,
    "orders.filled_qty (cumulative, for fill dedup); daemon_state (the journaled halt)",
    (
        # The venue's cumulative filled quantity of each order as far as the journal has
        # counted it (issue 11 §11). A fill learned over REST has no execution id, so the
        # execution-id key cannot see that a later stream event carries the same shares;
        # the cumulative quantity can. NULL (orders from before v3): the sum of its fills.
        "ALTER TABLE orders ADD COLUMN filled_qty TEXT",
        # Daemon-wide facts that must survive a restart, one row per key. `halted`: the
        # kill switch (issue 11 §8) — a restarted daemon stays halted until `resume`.
        """
        CREATE TABLE daemon_state (
            key   TEXT PRIMARY KEY NOT NULL,
            value TEXT NOT NULL,
            at    TEXT NOT NULL
        )
        """,
    ),
)

_V4 = Migration(
    4,
    "post-trade benchmarks: the NBBO at each fill; leg_benchmarks (issue 13)",
    (
        # The NBBO the quote cache held when the fill event arrived (seed 003 step 5,
        # "vs NBBO"). NULL when the cache had none (or for fills recorded before v4).
        "ALTER TABLE fills ADD COLUMN bid TEXT",
        "ALTER TABLE fills ADD COLUMN ask TEXT",
        "ALTER TABLE fills ADD COLUMN bid_size TEXT",
        "ALTER TABLE fills ADD COLUMN ask_size TEXT",
        "ALTER TABLE fills ADD COLUMN quote_time TEXT",
        # What a leg saw of the market, written once when it ends: the feed, the
        # arrival NBBO at plan acceptance and at leg start, the interval VWAP, and
        # the decisions (quote, spread and quote age at each; the limit of each
        # order) as JSON (`execd.domain.benchmarks.LegBenchmarks`). The plain
        # columns are the ones `execd report --since` groups and filters on.
        """
        CREATE TABLE leg_benchmarks (
            plan_id        TEXT NOT NULL,
            leg_index      INTEGER NOT NULL,
            feed           TEXT NOT NULL,
            interval_vwap  TEXT,
            fallback_fired INTEGER NOT NULL DEFAULT 0 CHECK (fallback_fired IN (0, 1)),
            benchmarks     TEXT NOT NULL,
            PRIMARY KEY (plan_id, leg_index),
            FOREIGN KEY (plan_id, leg_index) REFERENCES legs (plan_id, leg_index)
        )
        """,
    ),
)

#: Every migration in order; `MIGRATIONS[i].version == i + 1`.
MIGRATIONS: tuple[Migration, ...] = (_V1, _V2, _V3, _V4)

#: The version a journal has once `Journal.open` returns.
SCHEMA_VERSION = MIGRATIONS[-1].version
