"""Adversarial review (issue 11 §3): one daemon per journal, whatever the path's spelling."""

from __future__ import annotations

from pathlib import Path

import pytest

from execd.adapters.journal_lock import JournalLocked, journal_lock


@pytest.mark.xfail(
    strict=True,
    reason="journal_lock.py lock_path: the lock is named after the path as given, not the"
    " file; a symlink to the same journal takes a second, different lock",
)
def test_a_symlinked_journal_is_locked_too(tmp_path: Path) -> None:
    real = tmp_path / "a" / "journal.db"
    real.parent.mkdir()
    real.touch()
    other = tmp_path / "b"
    other.mkdir()
    link = other / "journal.db"
    link.symlink_to(real)
    with journal_lock(real), pytest.raises(JournalLocked), journal_lock(link):
        pass
