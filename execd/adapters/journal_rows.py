"""The journal's vocabulary: its errors, its row types, and how values are stored.

Split out of `journal.py` (which keeps the thread, the migrations and the async
methods) so that readers that never write — `journal_reads` behind `execd report` —
share the exact encoding and decoding without pulling in the writer. Everything here
is pure: no connection is opened, nothing blocks.

Storage conventions: `Decimal` as plain TEXT (``"12.34"``, never REAL, never
exponent notation); datetimes tz-aware in, RFC 3339 UTC text stored
(``2026-05-11T13:30:00.000000Z``), tz-aware UTC out; JSON as TEXT.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol, TypedDict

import msgspec

from execd.domain.order_state import TERMINAL_STATUSES, OrderStatus
from execd.domain.types import Side, Urgency

OrderKind = Literal["place", "replace"]
#: JSON as text or bytes (stored as given once checked to parse) or a value to encode.
JsonInput = str | bytes | Mapping[str, Any] | Sequence[Any]

# --- errors -------------------------------------------------------------------------------


class JournalError(Exception):
    """Base of every error the journal raises on purpose.

    The tree::

        JournalError
        ├── JournalVersionError  the file was written by a newer execd: refused at open.
        ├── NotAJournal          the file is some other SQLite database: refused at open.
        ├── JournalClosed        a call after close().
        ├── DuplicateIntent      this client order id was already intended: reconcile it
        │                        by lookup, never send it again.
        ├── UnknownRecord        the plan, leg or order named is not in the journal.
        ├── RecordConflict       the same execution id (or order) reported two different
        │                        ways: the first record is kept, the second is refused.
        └── JournalUnwritable    the storage refused a write (disk full, I/O error,
                                 read-only): nothing of that transaction is durable.
    """


class JournalVersionError(JournalError):
    """The journal's schema is newer than this execd understands."""


class NotAJournal(JournalError):
    """The file at the journal path is not an execd journal."""


class JournalClosed(JournalError):
    """The journal was closed; nothing more can be read or written."""


class DuplicateIntent(JournalError):
    """An intent for this client order id is already recorded.

    The order may already be at the venue: the caller must look it up by its
    client order id, never send it again.
    """


class UnknownRecord(JournalError):
    """The plan, leg or order named does not exist in the journal."""


class RecordConflict(JournalError):
    """A second, different account of something already recorded (kept as first seen)."""


class JournalUnwritable(JournalError):
    """The storage refused a write. Issue 11 §5: the journal is execd's memory, so the
    first such failure is reported to `Journal.wait_unwritable` and the engine stops
    trading; retrying blindly would trade on a journal that no longer records it."""


# --- rows -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlanRow:
    """One submitted plan. `finished_at is None` means the plan still needs work."""

    plan_id: str
    submitted_at: datetime
    state: str
    reason: str | None
    finished_at: datetime | None
    plan_json: str


@dataclass(frozen=True, slots=True)
class LegRow:
    """One leg of a plan, as its coroutine last reported it."""

    plan_id: str
    leg_index: int
    symbol: str
    side: Side
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    urgency: Urgency
    state: str
    step: str | None
    filled_qty: Decimal
    avg_fill_price: Decimal | None
    reason: str | None
    started_at: datetime | None
    finished_at: datetime | None
    report: str | None


@dataclass(frozen=True, slots=True)
class OrderRow:
    """One order attempt: the intent, then what the venue said about it."""

    client_order_id: str
    plan_id: str
    leg_index: int
    attempt: int
    kind: OrderKind
    order_type: str
    side: Side
    qty: Decimal
    limit_price: Decimal | None
    replaces_client_order_id: str | None
    intent_at: datetime
    order_id: str | None
    status: OrderStatus
    acked_at: datetime | None
    last_event_at: datetime | None

    @property
    def is_open(self) -> bool:
        """Not known to be final: it may still be working (or may exist) at the venue."""
        return not self.status.is_terminal


@dataclass(frozen=True, slots=True)
class EventRow:
    """One venue event, verbatim; `id` orders events as they were recorded."""

    id: int
    client_order_id: str | None
    order_id: str | None
    event: str
    at: datetime
    raw: str


@dataclass(frozen=True, slots=True)
class FillRow:
    """One execution, recorded once."""

    execution_id: str
    client_order_id: str
    qty: Decimal
    price: Decimal
    at: datetime


@dataclass(frozen=True, slots=True)
class UnfinishedPlan:
    """A plan a restarted daemon must resume or reconcile, with its legs in index order."""

    plan: PlanRow
    legs: tuple[LegRow, ...]


@dataclass(frozen=True, slots=True)
class JournalSettings:
    """What the connection really runs with (for the health report and the tests)."""

    path: Path
    schema_version: int
    journal_mode: str
    synchronous: str
    foreign_keys: bool
    busy_timeout_ms: int


class LegSpec(Protocol):
    """What `record_legs` needs of a leg; `execd.domain.plans.Leg` fits."""

    @property
    def index(self) -> int: ...
    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> Side: ...
    @property
    def qty(self) -> Decimal | None: ...
    @property
    def notional(self) -> Decimal | None: ...
    @property
    def limit_price(self) -> Decimal | None: ...
    @property
    def urgency(self) -> Urgency: ...


class LegUpdate(TypedDict, total=False):
    """The leg fields `update_leg` may change; a field left out is left as it is."""

    state: str
    step: str | None
    filled_qty: Decimal
    avg_fill_price: Decimal | None
    reason: str | None
    started_at: datetime | None
    finished_at: datetime | None
    report: JsonInput | None


# --- encoding -------------------------------------------------------------------------------


def dec_text(value: Decimal) -> str:
    """Plain decimal text: exact, and readable in the sqlite3 shell (no ``1E+2``)."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"expected a finite Decimal, got {value!r}")
    return format(value, "f")


def dec_text_opt(value: Decimal | None) -> str | None:
    return None if value is None else dec_text(value)


def positive(name: str, value: Decimal) -> str:
    text = dec_text(value)
    if value <= 0:
        raise ValueError(f"{name} must be positive: {value}")
    return text


def ts_text(value: datetime) -> str:
    """RFC 3339 UTC with fixed microseconds, so text order is time order."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValueError(f"expected a tz-aware datetime, got {value!r}")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def ts_text_opt(value: datetime | None) -> str | None:
    return None if value is None else ts_text(value)


def json_text(value: JsonInput) -> str:
    """JSON text; text or bytes given are checked to parse, so every stored row reads back."""
    if isinstance(value, bytes | str):
        raw = value.encode() if isinstance(value, str) else value
        try:
            msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from exc
        return raw.decode()
    return msgspec.json.encode(value).decode()


def json_text_opt(value: JsonInput | None) -> str | None:
    return None if value is None else json_text(value)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def parse_time_opt(text: str | None) -> datetime | None:
    return None if text is None else parse_time(text)


def decimal_opt(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


# Column encoders for update_leg; the keys double as the whitelist of column names.
LEG_FIELDS: Mapping[str, Callable[[Any], object]] = {
    "state": str,
    "step": lambda v: None if v is None else str(v),
    "filled_qty": dec_text,
    "avg_fill_price": dec_text_opt,
    "reason": lambda v: None if v is None else str(v),
    "started_at": ts_text_opt,
    "finished_at": ts_text_opt,
    "report": json_text_opt,
}

TERMINAL = tuple(sorted(s.value for s in TERMINAL_STATUSES))


def sql_list(values: Sequence[str]) -> str:
    """An SQL list of constant strings (our own enum values, never user input)."""
    return ", ".join(f"'{v}'" for v in values)


# --- row decoding (runs on the journal thread) -------------------------------------------

PLAN_COLS = "plan_id, submitted_at, state, reason, finished_at, plan_json"
LEG_COLS = (
    "plan_id, leg_index, symbol, side, qty, notional, limit_price, urgency, state, step,"
    " filled_qty, avg_fill_price, reason, started_at, finished_at, report"
)
ORDER_COLS = (
    "client_order_id, plan_id, leg_index, attempt, kind, order_type, side, qty, limit_price,"
    " replaces_client_order_id, intent_at, order_id, status, acked_at, last_event_at"
)
FILL_COLS = "f.execution_id, f.client_order_id, f.qty, f.price, f.at"


def plan_row(r: sqlite3.Row) -> PlanRow:
    return PlanRow(
        plan_id=r["plan_id"],
        submitted_at=parse_time(r["submitted_at"]),
        state=r["state"],
        reason=r["reason"],
        finished_at=parse_time_opt(r["finished_at"]),
        plan_json=r["plan_json"],
    )


def leg_row(r: sqlite3.Row) -> LegRow:
    return LegRow(
        plan_id=r["plan_id"],
        leg_index=r["leg_index"],
        symbol=r["symbol"],
        side=Side(r["side"]),
        qty=decimal_opt(r["qty"]),
        notional=decimal_opt(r["notional"]),
        limit_price=decimal_opt(r["limit_price"]),
        urgency=Urgency(r["urgency"]),
        state=r["state"],
        step=r["step"],
        filled_qty=Decimal(r["filled_qty"]),
        avg_fill_price=decimal_opt(r["avg_fill_price"]),
        reason=r["reason"],
        started_at=parse_time_opt(r["started_at"]),
        finished_at=parse_time_opt(r["finished_at"]),
        report=r["report"],
    )


def order_row(r: sqlite3.Row) -> OrderRow:
    kind: OrderKind = "replace" if r["kind"] == "replace" else "place"
    return OrderRow(
        client_order_id=r["client_order_id"],
        plan_id=r["plan_id"],
        leg_index=r["leg_index"],
        attempt=r["attempt"],
        kind=kind,
        order_type=r["order_type"],
        side=Side(r["side"]),
        qty=Decimal(r["qty"]),
        limit_price=decimal_opt(r["limit_price"]),
        replaces_client_order_id=r["replaces_client_order_id"],
        intent_at=parse_time(r["intent_at"]),
        order_id=r["order_id"],
        status=OrderStatus(r["status"]),
        acked_at=parse_time_opt(r["acked_at"]),
        last_event_at=parse_time_opt(r["last_event_at"]),
    )


def fill_row(r: sqlite3.Row) -> FillRow:
    return FillRow(
        execution_id=r["execution_id"],
        client_order_id=r["client_order_id"],
        qty=Decimal(r["qty"]),
        price=Decimal(r["price"]),
        at=parse_time(r["at"]),
    )


def event_row(r: sqlite3.Row) -> EventRow:
    return EventRow(
        id=r["id"],
        client_order_id=r["client_order_id"],
        order_id=r["order_id"],
        event=r["event"],
        at=parse_time(r["at"]),
        raw=r["raw"],
    )
