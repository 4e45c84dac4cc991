"""One daemon per journal: the lock file beside the journal (issue 11 §3)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from execd.adapters.journal import JournalError
from execd.adapters.journal_lock import JournalLocked, journal_lock, lock_path


def test_second_holder_is_refused_naming_journal_and_pid(tmp_path: Path) -> None:
    """While held, a second lock fails at once with the journal and the holder's pid."""
    journal = tmp_path / "state" / "journal.db"
    with journal_lock(journal) as lock:
        assert lock.path == lock_path(journal) == tmp_path / "state" / "journal.db.lock"
        with pytest.raises(JournalLocked) as refused, journal_lock(journal):
            pass  # pragma: no cover - never entered
        assert refused.value.holder_pid == os.getpid()
        assert str(journal) in str(refused.value)
        assert f"pid {os.getpid()}" in str(refused.value)


def test_released_lock_can_be_taken_again(tmp_path: Path) -> None:
    """A stale lock file (the holder gone) never blocks: only the flock counts."""
    journal = tmp_path / "journal.db"
    with journal_lock(journal):
        pass
    assert lock_path(journal).exists()
    with journal_lock(journal):
        pass


def test_uncreatable_lock_is_one_journal_error(tmp_path: Path) -> None:
    """A directory that cannot exist (a file in the way) is a `JournalError` naming it."""
    (tmp_path / "file").write_text("", encoding="utf-8")
    with (
        pytest.raises(JournalError, match="journal lock"),
        journal_lock(tmp_path / "file" / "journal.db"),
    ):
        pass  # pragma: no cover


def test_failure_mark_survives_until_cleared(tmp_path: Path) -> None:
    """A journal failure marked by one daemon is read by the next ones until cleared."""
    journal = tmp_path / "journal.db"
    with journal_lock(journal) as lock:
        assert lock.previous_failure is None
        lock.mark("journal transaction failed: database or disk is full")
    with journal_lock(journal) as lock:
        assert lock.previous_failure == "journal transaction failed: database or disk is full"
    with journal_lock(journal) as lock:
        assert lock.previous_failure is not None
        lock.clear()
    with journal_lock(journal) as lock:
        assert lock.previous_failure is None
