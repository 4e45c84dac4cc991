"""The journal's thread: it opens (and migrates) the SQLite file and runs every call.

SQLite calls block, and the event loop must never block (LESSONS.md). So ONE
dedicated thread owns the connection (sqlite3's ``check_same_thread`` enforces
it) and runs every read and write; `Journal`'s async methods hand it a small
closure and await a future. The thread commits in groups: it drains whatever is
queued (up to `MAX_BATCH` calls) into one transaction, each call in its own
savepoint so one failure rolls back only itself, then commits once and resolves
the futures. Split out of `journal.py` so that file keeps only the journal's
vocabulary of records.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from execd.adapters.journal_rows import (
    JournalClosed,
    JournalError,
    JournalUnwritable,
    JournalVersionError,
    NotAJournal,
)
from execd.adapters.journal_schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

#: How long a write waits for an outside process holding the write lock.
BUSY_TIMEOUT_MS = 5_000
#: Most calls committed together in one transaction (bounds one commit's latency).
MAX_BATCH = 512

_T = TypeVar("_T")

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


class Worker:
    """The one thread that owns the connection and runs every call, in order."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        self._path = path
        self._loop = loop
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._conn: sqlite3.Connection | None = None
        self.unwritable: str | None = None
        """The first storage failure (set on the loop), None while writes succeed."""
        self.unwritable_event = asyncio.Event()
        #: Called on this thread after each transaction with (seconds, committed).
        self.on_commit: Callable[[float, bool], None] | None = None
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
                    if len(batch) >= MAX_BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                stopping = item is None
                if batch:
                    started = time.perf_counter()
                    outcomes, ok = self._run_batch(self._conn, batch)
                    self._observe(time.perf_counter() - started, ok)
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
    def _run_batch(conn: sqlite3.Connection, batch: list[_Call]) -> tuple[list[_Outcome], bool]:
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
            return [(call.future, failure, None) for call in batch], False
        return outcomes, True

    def _observe(self, seconds: float, ok: bool) -> None:
        """Tell the commit observer (metrics) how long a transaction took; never raises."""
        observer = self.on_commit
        if observer is not None:
            with contextlib.suppress(Exception):  # observing must never break the journal
                observer(seconds, ok)
