"""One daemon per journal: an exclusive lock file beside the journal for the daemon's life.

DESIGN.md "One daemon per journal". Two daemons on one journal each adopt the other's live
orders (issue 11 §3: a second `execd run` on another socket re-priced and cancelled the
first one's order). `fcntl.flock` on ``<journal>.lock`` is held from before the journal is
opened until the daemon exits; the kernel drops it when the process dies (kill -9
included), so a stale lock never blocks a restart. The file holds the holder's pid, for the
refusal's message only: the lock, not the file's existence, is what counts.

Readers (`execd report`) open the journal read-only and never take the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from execd.adapters.journal import JournalError


class JournalLocked(JournalError):
    """Another live daemon holds the journal's lock; `holder_pid` when it could be read."""

    def __init__(self, journal: Path, holder_pid: int | None) -> None:
        holder = f"pid {holder_pid}" if holder_pid is not None else "an unknown pid"
        super().__init__(
            f"journal {journal} is in use by another execd daemon ({holder}); "
            "one daemon per journal: stop it, or give this one another journal.path"
        )
        self.journal = journal
        self.holder_pid = holder_pid


def lock_path(journal: Path) -> Path:
    """The lock file of `journal`: the same name with ``.lock`` appended, same directory."""
    return journal.with_name(journal.name + ".lock")


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def journal_lock(journal: Path) -> Iterator[Path]:
    """Hold the journal's lock for the block; raise `JournalLocked` at once when taken.

    Raises `JournalError` (one line naming the path) when the lock file cannot be
    created, e.g. an unwritable directory.
    """
    path = lock_path(journal)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise JournalError(f"cannot create the journal lock {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JournalLocked(journal, _read_pid(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        try:
            yield path
        finally:
            # Emptied before the unlock, so a reader never names a pid that let go.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock
