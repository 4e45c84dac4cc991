"""Adversarial review (issue 11 §3): one daemon per journal, whatever the path's spelling."""

from __future__ import annotations

from pathlib import Path

import pytest

from execd.adapters.journal_lock import JournalLocked, journal_lock


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


def test_a_symlinked_directory_and_a_relative_spelling_share_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directory above the journal is a symlink, and the journal (not created yet) is
    named relative to the working directory: still one lock."""
    real_dir = tmp_path / "state"
    real_dir.mkdir()
    (tmp_path / "alias").symlink_to(real_dir, target_is_directory=True)
    monkeypatch.chdir(tmp_path / "alias")
    with journal_lock(real_dir / "journal.db") as lock:
        assert lock.path == real_dir / "journal.db.lock"
        with pytest.raises(JournalLocked), journal_lock(Path("journal.db")):
            pass
        with pytest.raises(JournalLocked), journal_lock(tmp_path / "alias" / "journal.db"):
            pass
