"""One daemon per journal: an exclusive lock file beside the journal for the daemon's life.

DESIGN.md "One daemon per journal". Two daemons on one journal each adopt the other's live
orders (issue 11 §3: a second `execd run` on another socket re-priced and cancelled the
first one's order). `fcntl.flock` on ``<journal>.lock`` is held from before the journal is
opened until the daemon exits; the kernel drops it when the process dies (kill -9
included), so a stale lock never blocks a restart. The file holds the holder's pid, for the
refusal's message only: the lock, not the file's existence, is what counts.

Readers (`execd report`) open the journal read-only and never take the lock.

The lock file also carries the one fact that must survive a journal that cannot be written
(issue 11 §5): "the journal refused a write while trading". It is written into space
allocated when the lock is taken, so a full disk cannot refuse it, and read back by the next
daemon, which then starts halted instead of resuming plans the journal no longer describes.
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
    """The lock file of `journal`: the same name with ``.lock`` appended, same directory —
    of the file itself, every symlink (of the file or a directory above it) and relative
    spelling resolved first, so that two spellings of one journal take one lock. (Hard
    links are not resolved: a second name of the same file would get its own lock.)"""
    real = journal.resolve()
    return real.with_name(real.name + ".lock")


_SIZE = 4096
"""Bytes allocated in the lock file when it is taken: pid line plus the failure line."""
_FAILURE_AT = 32
_FAILURE_PREFIX = "journal-unwritable: "


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, _FAILURE_AT, 0).decode("ascii", "replace").strip("\0 \n")
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _read_failure(fd: int) -> str | None:
    try:
        raw = os.pread(fd, _SIZE - _FAILURE_AT, _FAILURE_AT)
    except OSError:
        return None
    text = raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip()
    return text.removeprefix(_FAILURE_PREFIX) if text.startswith(_FAILURE_PREFIX) else None


class JournalLock:
    """The held lock: `previous_failure` left by the last daemon, `mark`/`clear` for ours."""

    def __init__(self, path: Path, fd: int, previous_failure: str | None) -> None:
        self.path = path
        self._fd = fd
        self.previous_failure = previous_failure
        """The journal failure a previous daemon recorded and nobody has resumed from."""

    def mark(self, reason: str) -> None:
        """Record that the journal refused a write (into space allocated at lock time)."""
        data = (_FAILURE_PREFIX + reason.replace("\n", " ")).encode("utf-8")[: _SIZE - 64]
        with contextlib.suppress(OSError):
            os.pwrite(self._fd, data.ljust(_SIZE - _FAILURE_AT, b"\0"), _FAILURE_AT)
            os.fsync(self._fd)

    def clear(self) -> None:
        """The user resumed: the next start need not stay halted."""
        self.previous_failure = None
        with contextlib.suppress(OSError):
            os.pwrite(self._fd, b"\0" * (_SIZE - _FAILURE_AT), _FAILURE_AT)
            os.fsync(self._fd)


@contextlib.contextmanager
def journal_lock(journal: Path) -> Iterator[JournalLock]:
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
        failure = _read_failure(fd)
        os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):  # best effort: a full disk must not stop a start
            os.posix_fallocate(fd, 0, _SIZE)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii").ljust(_FAILURE_AT, b"\0"), 0)
        lock = JournalLock(path, fd, failure)
        if failure is not None:
            lock.mark(failure)  # still unresolved: the next start must see it too
        try:
            yield lock
        finally:
            # The pid is emptied before the unlock, so a reader never names a pid that
            # let go; a recorded failure stays for the next daemon.
            with contextlib.suppress(OSError):
                os.pwrite(fd, b"\0" * _FAILURE_AT, 0)
    finally:
        os.close(fd)  # releases the flock
