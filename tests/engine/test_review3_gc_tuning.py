"""Review (issue 14, third pass): `tuned_gc` (engine/gc_tuning.py) when two daemons share one
process — the tests, the bench, an in-process restart that starts the next daemon before the
last one's `finally` ran. Strict xfails are defects found: they XPASS once fixed."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from execd.engine.gc_tuning import GcTuning, tuned_gc


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    """Whatever a test leaves, the process's collector goes back as it was."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


_TUNED = GcTuning(freeze=True, thresholds=(10_000, 20, 20))


def test_review3_overlapping_tunings_give_back_the_original_thresholds() -> None:
    original = gc.get_threshold()
    first, second = tuned_gc(_TUNED), tuned_gc(_TUNED)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first daemon stops while the second runs
    second.__exit__(None, None, None)
    assert gc.get_threshold() == original


def test_review3_a_daemon_stopping_keeps_the_other_daemons_tuning() -> None:
    first, second = tuned_gc(_TUNED), tuned_gc(_TUNED)
    first.__enter__()
    second.__enter__()
    try:
        first.__exit__(None, None, None)
        # the second daemon still runs: its collector settings must still hold
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == _TUNED.thresholds
    finally:
        second.__exit__(None, None, None)


def test_review3_nested_tunings_unwound_in_order_restore_everything() -> None:
    """Regression guard: the well-nested case (stop in reverse start order) is sound."""
    original = gc.get_threshold()
    with tuned_gc(_TUNED):
        with tuned_gc(GcTuning(freeze=False, thresholds=(5_000, 10, 10))):
            assert gc.get_threshold() == (5_000, 10, 10)
        assert gc.get_threshold() == _TUNED.thresholds
    assert gc.get_threshold() == original
    assert gc.get_freeze_count() == 0


def test_review3_tunings_from_threads_in_any_order_give_back_the_original() -> None:
    """Four daemons started from four threads at once, all in force together, stopped in
    whatever order the threads run (the count is locked): while any runs, the thresholds
    are one of theirs; once the last stops, the original ones are back, nothing frozen."""
    original = gc.get_threshold()
    youngs = [1_000 + n for n in range(4)]
    all_in = threading.Barrier(len(youngs))
    failures: list[str] = []

    def daemon(young: int) -> None:
        for _ in range(10):
            with tuned_gc(GcTuning(freeze=young % 2 == 0, thresholds=(young, 10, 10))):
                all_in.wait()
                if gc.get_threshold()[0] not in youngs:
                    failures.append(f"untuned under a running daemon: {gc.get_threshold()}")
            all_in.wait()  # everyone is out before the next round

    threads = [threading.Thread(target=daemon, args=(young,)) for young in youngs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert gc.get_threshold() == original
    assert gc.get_freeze_count() == 0
