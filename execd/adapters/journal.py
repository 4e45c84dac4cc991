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
groups: it drains whatever is queued (up to `_MAX_BATCH` calls) into one
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

Storage conventions: `Decimal` as plain TEXT (``"12.34"``, never REAL, never
exponent notation); datetimes tz-aware in, RFC 3339 UTC text stored
(``2026-05-11T13:30:00.000000Z``), tz-aware UTC out; JSON as TEXT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self, TypedDict, TypeVar, Unpack

import msgspec

from execd.adapters.journal_schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from execd.domain.ids import parse_client_order_id, plan_key
from execd.domain.order_state import TERMINAL_STATUSES, OrderStatus
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

#: How long a write waits for an outside process holding the write lock.
BUSY_TIMEOUT_MS = 5_000
#: Most calls committed together in one transaction (bounds one commit's latency).
_MAX_BATCH = 512

OrderKind = Literal["place", "replace"]
#: JSON as text or bytes (stored as given once checked to parse) or a value to encode.
JsonInput = str | bytes | Mapping[str, Any] | Sequence[Any]

_T = TypeVar("_T")


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


_STORAGE_ERRORS = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_PROTOCOL,
    }
)


def _storage_failure(exc: BaseException) -> bool:
    """Whether SQLite says the storage itself failed (not a constraint or a bug)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and (code & 0xFF) in _STORAGE_ERRORS


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


def _dec(value: Decimal) -> str:
    """Plain decimal text: exact, and readable in the sqlite3 shell (no ``1E+2``)."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"expected a finite Decimal, got {value!r}")
    return format(value, "f")


def _dec_opt(value: Decimal | None) -> str | None:
    return None if value is None else _dec(value)


def _positive(name: str, value: Decimal) -> str:
    text = _dec(value)
    if value <= 0:
        raise ValueError(f"{name} must be positive: {value}")
    return text


def _ts(value: datetime) -> str:
    """RFC 3339 UTC with fixed microseconds, so text order is time order."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValueError(f"expected a tz-aware datetime, got {value!r}")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _ts_opt(value: datetime | None) -> str | None:
    return None if value is None else _ts(value)


def _json(value: JsonInput) -> str:
    """JSON text; text or bytes given are checked to parse, so every stored row reads back."""
    if isinstance(value, bytes | str):
        raw = value.encode() if isinstance(value, str) else value
        try:
            msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from exc
        return raw.decode()
    return msgspec.json.encode(value).decode()


def _json_opt(value: JsonInput | None) -> str | None:
    return None if value is None else _json(value)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _time_opt(text: str | None) -> datetime | None:
    return None if text is None else _time(text)


def _decimal_opt(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


# Column encoders for update_leg; the keys double as the whitelist of column names.
_LEG_FIELDS: Mapping[str, Callable[[Any], object]] = {
    "state": str,
    "step": lambda v: None if v is None else str(v),
    "filled_qty": _dec,
    "avg_fill_price": _dec_opt,
    "reason": lambda v: None if v is None else str(v),
    "started_at": _ts_opt,
    "finished_at": _ts_opt,
    "report": _json_opt,
}

_TERMINAL = tuple(sorted(s.value for s in TERMINAL_STATUSES))


# --- row decoding (runs on the journal thread) -------------------------------------------

_PLAN_COLS = "plan_id, submitted_at, state, reason, finished_at, plan_json"
_LEG_COLS = (
    "plan_id, leg_index, symbol, side, qty, notional, limit_price, urgency, state, step,"
    " filled_qty, avg_fill_price, reason, started_at, finished_at, report"
)
_ORDER_COLS = (
    "client_order_id, plan_id, leg_index, attempt, kind, order_type, side, qty, limit_price,"
    " replaces_client_order_id, intent_at, order_id, status, acked_at, last_event_at"
)
_FILL_COLS = "f.execution_id, f.client_order_id, f.qty, f.price, f.at"


def _plan_row(r: sqlite3.Row) -> PlanRow:
    return PlanRow(
        plan_id=r["plan_id"],
        submitted_at=_time(r["submitted_at"]),
        state=r["state"],
        reason=r["reason"],
        finished_at=_time_opt(r["finished_at"]),
        plan_json=r["plan_json"],
    )


def _leg_row(r: sqlite3.Row) -> LegRow:
    return LegRow(
        plan_id=r["plan_id"],
        leg_index=r["leg_index"],
        symbol=r["symbol"],
        side=Side(r["side"]),
        qty=_decimal_opt(r["qty"]),
        notional=_decimal_opt(r["notional"]),
        limit_price=_decimal_opt(r["limit_price"]),
        urgency=Urgency(r["urgency"]),
        state=r["state"],
        step=r["step"],
        filled_qty=Decimal(r["filled_qty"]),
        avg_fill_price=_decimal_opt(r["avg_fill_price"]),
        reason=r["reason"],
        started_at=_time_opt(r["started_at"]),
        finished_at=_time_opt(r["finished_at"]),
        report=r["report"],
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


def _order_row(r: sqlite3.Row) -> OrderRow:
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
        limit_price=_decimal_opt(r["limit_price"]),
        replaces_client_order_id=r["replaces_client_order_id"],
        intent_at=_time(r["intent_at"]),
        order_id=r["order_id"],
        status=OrderStatus(r["status"]),
        acked_at=_time_opt(r["acked_at"]),
        last_event_at=_time_opt(r["last_event_at"]),
    )


def _fill_row(r: sqlite3.Row) -> FillRow:
    return FillRow(
        execution_id=r["execution_id"],
        client_order_id=r["client_order_id"],
        qty=Decimal(r["qty"]),
        price=Decimal(r["price"]),
        at=_time(r["at"]),
    )


def _event_row(r: sqlite3.Row) -> EventRow:
    return EventRow(
        id=r["id"],
        client_order_id=r["client_order_id"],
        order_id=r["order_id"],
        event=r["event"],
        at=_time(r["at"]),
        raw=r["raw"],
    )


# --- opening and migrating (runs on the journal thread) ----------------------------------


def _make_private_dirs(directory: Path) -> None:
    """Create missing directories 0700 (chmod too: the umask must not widen or narrow it)."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
            os.chmod(path, 0o700)


def _connect(path: Path) -> sqlite3.Connection:
    """Open, configure and migrate; the connection belongs to the calling thread."""
    _make_private_dirs(path.parent)
    # Created 0600 before SQLite sees it: the -wal and -shm files copy its mode,
    # and the journal holds the account's whole trading history.
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise JournalError(f"journal {path}: SQLite refused WAL mode (got {mode!r})")
        # FULL: in WAL mode the WAL is fsynced at every commit, so a commit that
        # returned survives a power cut, not only a process crash.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Apply every missing migration, one transaction each, version read under the lock."""
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
            if version == 0:
                tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if tables:
                    raise NotAJournal(
                        f"{path} is an SQLite database but not an execd journal "
                        "(tables present, no schema version): refusing to touch it"
                    )
            elif app_id != APPLICATION_ID:
                raise NotAJournal(
                    f"{path} is not an execd journal (application_id {app_id:#x}): "
                    "refusing to touch it"
                )
            if version > SCHEMA_VERSION:
                raise JournalVersionError(
                    f"journal {path} has schema version {version}, but this execd knows "
                    f"versions up to {SCHEMA_VERSION}: it was written by a newer execd. "
                    "Run that version, or point journal.path at another file."
                )
            if version == SCHEMA_VERSION:
                conn.execute("COMMIT")
                return
            migration = MIGRATIONS[version]
            try:
                for statement in migration.statements:
                    conn.execute(statement)
            except sqlite3.Error as exc:
                raise JournalError(
                    f"journal {path}: migration to v{migration.version} "
                    f"({migration.description}) failed, file left at v{version}: {exc}"
                ) from exc
            conn.execute(f"PRAGMA user_version = {migration.version}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise


# --- the journal thread -------------------------------------------------------------------


@dataclass(slots=True)
class _Call:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]


_Outcome = tuple[asyncio.Future[Any], BaseException | None, Any]


def _settle(outcomes: list[_Outcome]) -> None:
    """Resolve futures on the loop; a future whose awaiter was cancelled is skipped."""
    for future, error, value in outcomes:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class _Worker:
    """The one thread that owns the connection and runs every call, in order."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        self._path = path
        self._loop = loop
        self.unwritable: str | None = None
        """The first storage failure (set on the loop), None while writes succeed."""
        self.unwritable_event = asyncio.Event()
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._conn: sqlite3.Connection | None = None
        self._opened: asyncio.Future[None] = loop.create_future()
        self._stopped: asyncio.Future[None] = loop.create_future()
        # Daemon: a process that exits without close() must not hang on this
        # thread; SQLite's commit is atomic, so being cut off is like kill -9.
        self._thread = threading.Thread(
            target=self._run, name=f"execd-journal:{path.name}", daemon=True
        )

    async def start(self) -> None:
        self._thread.start()
        try:
            await self._opened
        except asyncio.CancelledError:
            self._queue.put(None)  # the opener gave up: close the file once it is open
            raise

    def submit(self, fn: Callable[[sqlite3.Connection], _T]) -> asyncio.Future[_T]:
        future: asyncio.Future[_T] = self._loop.create_future()
        self._queue.put(_Call(fn, future))
        return future

    async def stop(self) -> None:
        """Run everything queued, close the connection, end the thread."""
        self._queue.put(None)
        await asyncio.shield(self._stopped)

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(callback, *args)

    def _run(self) -> None:
        try:
            self._conn = _connect(self._path)
        except BaseException as exc:
            self._post(_settle, [(self._opened, exc, None)])
            self._post(_settle, [(self._stopped, None, None)])
            return
        self._post(_settle, [(self._opened, None, None)])
        error: BaseException | None = None
        try:
            stopping = False
            while not stopping:
                batch: list[_Call] = []
                item = self._queue.get()
                while item is not None:
                    batch.append(item)
                    if len(batch) >= _MAX_BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                stopping = item is None
                if batch:
                    outcomes = self._run_batch(self._conn, batch)
                    failure = next(
                        (e for _, e, _ in outcomes if isinstance(e, JournalUnwritable)), None
                    )
                    if failure is not None:
                        self._post(self._mark_unwritable, str(failure))
                    self._post(_settle, outcomes)
        except BaseException as exc:  # a bug here must not leave awaiters hanging
            error = exc
        finally:
            self._conn.close()
            leftovers: list[_Outcome] = []
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    leftovers.append((item.future, JournalClosed("journal closed"), None))
            self._post(_settle, leftovers)
            self._post(_settle, [(self._stopped, error, None)])

    def _mark_unwritable(self, reason: str) -> None:
        """On the loop: remember the first storage failure and wake its waiters."""
        if self.unwritable is None:
            self.unwritable = reason
            self.unwritable_event.set()

    @staticmethod
    def _run_batch(conn: sqlite3.Connection, batch: list[_Call]) -> list[_Outcome]:
        """One transaction for the batch, one savepoint per call, one commit."""
        outcomes: list[_Outcome] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for call in batch:
                conn.execute("SAVEPOINT call")
                try:
                    value = call.fn(conn)
                except Exception as exc:
                    if not conn.in_transaction or _storage_failure(exc):
                        raise  # SQLite aborted the whole transaction (disk full, I/O)
                    conn.execute("ROLLBACK TO call")
                    conn.execute("RELEASE call")
                    outcomes.append((call.future, exc, None))
                else:
                    conn.execute("RELEASE call")
                    outcomes.append((call.future, None, value))
            conn.execute("COMMIT")
        except Exception as exc:
            # Nothing of this batch is durable: every call in it fails, reads included.
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.rollback()
            kind = JournalUnwritable if _storage_failure(exc) else JournalError
            failure = kind(f"journal transaction failed: {exc}")
            failure.__cause__ = exc
            return [(call.future, failure, None) for call in batch]
        return outcomes


# --- the journal -----------------------------------------------------------------------------


class Journal:
    """The async face of the journal; every method awaits the journal thread.

    Open with ``journal = await Journal.open(path)`` or
    ``async with await Journal.open(path) as journal:``. The journal belongs to
    the event loop that opened it.
    """

    def __init__(self, path: Path, worker: _Worker) -> None:
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
        worker = _Worker(resolved, asyncio.get_running_loop())
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
        row = (plan_id, _ts(submitted_at), state, _json(plan_json))
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
        args = (state, reason, _ts_opt(finished_at), plan_id)

        def fn(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE plans SET state = ?, reason = coalesce(?, reason),"
                " finished_at = coalesce(?, finished_at) WHERE plan_id = ?",
                args,
            )
            if cur.rowcount == 0:
                raise UnknownRecord(f"no plan {plan_id} in the journal")

        await self._call(fn)

    async def update_leg(self, plan_id: str, leg_index: int, **fields: Unpack[LegUpdate]) -> None:
        """Change some fields of a leg (see `LegUpdate`); others are left as they are."""
        columns: list[str] = []
        values: list[object] = []
        for name, value in fields.items():
            encode = _LEG_FIELDS.get(name)
            if encode is None:
                raise ValueError(f"update_leg: unknown field {name!r}")
            columns.append(f"{name} = ?")  # `name` is from the whitelist above
            values.append(encode(value))
        if not columns:
            return
        sql = f"UPDATE legs SET {', '.join(columns)} WHERE plan_id = ? AND leg_index = ?"
        args = (*values, plan_id, leg_index)

        def fn(conn: sqlite3.Connection) -> None:
            if conn.execute(sql, args).rowcount == 0:
                raise UnknownRecord(f"no leg {plan_id}/{leg_index} in the journal")

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
            _positive("qty", qty),
            None if limit_price is None else _positive("limit_price", limit_price),
            replaces_client_order_id,
            _ts(at),
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
        args = (order_id, OrderStatus(status).value, _ts(at))

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
        at_text = _ts(at)
        status_text = None if status is None else OrderStatus(status).value
        row = (client_order_id, order_id, event, at_text, _json(raw))

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
                    f" status = CASE WHEN ?3 IS NULL OR status IN ({_in_list(_TERMINAL)})"
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
        """
        row = (execution_id, client_order_id, _positive("qty", qty), _positive("price", price))
        at_text = _ts(at)
        if cumulative is not None and not (cumulative.is_finite() and cumulative >= qty):
            raise ValueError(f"cumulative {cumulative} below this execution's qty {qty}")

        def fn(conn: sqlite3.Connection) -> bool:
            counted = _order_filled_qty(conn, client_order_id)
            if cumulative is not None and counted is not None and cumulative <= counted:
                known = conn.execute(
                    "SELECT 1 FROM fills WHERE execution_id = ?", (execution_id,)
                ).fetchone()
                if known is None:
                    return False  # the same shares, already counted under another id
            cur = conn.execute(
                "INSERT OR IGNORE INTO fills (execution_id, client_order_id, qty, price, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (*row, at_text),
            )
            if cur.rowcount == 1:
                after = (counted or Decimal(0)) + qty
                if cumulative is not None:
                    after = max(after, cumulative)
                conn.execute(
                    "UPDATE orders SET filled_qty = ? WHERE client_order_id = ?",
                    (_dec(after), client_order_id),
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
        value = _json({"halted": halted, "reason": reason})

        def fn(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO daemon_state (key, value, at) VALUES ('halted', ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value, at = excluded.at",
                (value, _ts(at)),
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

    # --- reads ------------------------------------------------------------------------------

    async def get_plan(self, plan_id: str) -> PlanRow | None:
        """One plan, or None."""

        def fn(conn: sqlite3.Connection) -> PlanRow | None:
            r = conn.execute(
                f"SELECT {_PLAN_COLS} FROM plans WHERE plan_id = ?", (plan_id,)
            ).fetchone()
            return None if r is None else _plan_row(r)

        return await self._call(fn)

    async def plans(self, limit: int = 50) -> tuple[PlanRow, ...]:
        """The most recently submitted plans, newest first."""

        def fn(conn: sqlite3.Connection) -> tuple[PlanRow, ...]:
            rows = conn.execute(
                f"SELECT {_PLAN_COLS} FROM plans ORDER BY submitted_at DESC, plan_id LIMIT ?",
                (limit,),
            )
            return tuple(_plan_row(r) for r in rows)

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
                f"SELECT {_PLAN_COLS} FROM plans WHERE finished_at IS NULL"
                " ORDER BY submitted_at, plan_id"
            ).fetchall()
            return tuple(UnfinishedPlan(_plan_row(r), _legs(conn, r["plan_id"])) for r in rows)

        return await self._call(fn)

    async def get_order(self, client_order_id: str) -> OrderRow | None:
        """One order attempt by client order id, or None."""

        def fn(conn: sqlite3.Connection) -> OrderRow | None:
            r = conn.execute(
                f"SELECT {_ORDER_COLS} FROM orders WHERE client_order_id = ?",
                (client_order_id,),
            ).fetchone()
            return None if r is None else _order_row(r)

        return await self._call(fn)

    async def orders_for_leg(self, plan_id: str, leg_index: int) -> tuple[OrderRow, ...]:
        """Every order attempt of a leg, by attempt number."""

        def fn(conn: sqlite3.Connection) -> tuple[OrderRow, ...]:
            rows = conn.execute(
                f"SELECT {_ORDER_COLS} FROM orders WHERE plan_id = ? AND leg_index = ?"
                " ORDER BY attempt",
                (plan_id, leg_index),
            )
            return tuple(_order_row(r) for r in rows)

        return await self._call(fn)

    async def open_orders(self) -> tuple[OrderRow, ...]:
        """Orders whose last known status is not terminal, oldest intent first.

        This includes intents never acknowledged (``pending_submit``): the
        request may or may not have reached the venue, so a restart must look
        each one up by client order id before doing anything else.
        """

        def fn(conn: sqlite3.Connection) -> tuple[OrderRow, ...]:
            rows = conn.execute(
                f"SELECT {_ORDER_COLS} FROM orders WHERE status NOT IN ({_in_list(_TERMINAL)})"
                " ORDER BY intent_at, client_order_id"
            )
            return tuple(_order_row(r) for r in rows)

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
                f"SELECT {_FILL_COLS} FROM fills AS f WHERE NOT EXISTS"
                " (SELECT 1 FROM orders AS o WHERE o.client_order_id = f.client_order_id)"
                " ORDER BY f.at, f.execution_id"
            )
            return tuple(_fill_row(r) for r in rows)

        return await self._call(fn)

    async def events_for_order(self, client_order_id: str) -> tuple[EventRow, ...]:
        """The venue events recorded for one order, in the order they were recorded."""

        def fn(conn: sqlite3.Connection) -> tuple[EventRow, ...]:
            rows = conn.execute(
                "SELECT id, client_order_id, order_id, event, at, raw FROM events"
                " WHERE client_order_id = ? ORDER BY id",
                (client_order_id,),
            )
            return tuple(_event_row(r) for r in rows)

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


# --- helpers run on the journal thread ---------------------------------------------------


def _in_list(values: Sequence[str]) -> str:
    """An SQL list of constant strings (our own enum values, never user input)."""
    return ", ".join(f"'{v}'" for v in values)


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
        None if leg.qty is None else _positive("qty", leg.qty),
        None if leg.notional is None else _positive("notional", leg.notional),
        None if leg.limit_price is None else _positive("limit_price", leg.limit_price),
        Urgency(leg.urgency).value,
        "pending",
    )


def _insert_legs(conn: sqlite3.Connection, rows: Sequence[tuple[object, ...]]) -> None:
    conn.executemany(
        "INSERT INTO legs (plan_id, leg_index, symbol, side, qty, notional, limit_price,"
        " urgency, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def _legs(conn: sqlite3.Connection, plan_id: str) -> tuple[LegRow, ...]:
    rows = conn.execute(
        f"SELECT {_LEG_COLS} FROM legs WHERE plan_id = ? ORDER BY leg_index", (plan_id,)
    )
    return tuple(_leg_row(r) for r in rows)


def _fills_for_leg(conn: sqlite3.Connection, plan_id: str, leg_index: int) -> tuple[FillRow, ...]:
    rows = conn.execute(
        f"SELECT {_FILL_COLS} FROM fills AS f JOIN orders AS o"
        " ON o.client_order_id = f.client_order_id"
        " WHERE o.plan_id = ? AND o.leg_index = ? ORDER BY f.at, f.execution_id",
        (plan_id, leg_index),
    )
    return tuple(_fill_row(r) for r in rows)
