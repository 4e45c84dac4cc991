"""The cyclic garbage collector's settings for the daemon's life (`[runtime]`, issue 14 item 2).

Why: CPython's cyclic collector stops the event loop while it runs. Its oldest generation
holds everything the daemon imported and built at start — alpaca-py's and pydantic's models,
aiohttp, structlog, the settings — ~73,000 tracked containers (measured at `daemon_ready`)
that never become garbage, and a full collection walks them all and everything they reach:
20–60 ms with the loop stopped on a loaded 2-core machine, a quote frame or a cancel waiting
behind it (the reaction benchmark's tail). Two interpreter-level settings, as
long-running Python servers use them (Instagram's `gc.freeze` at fork, 2017):

* `gc.freeze()` once the daemon is ready: the objects alive at that moment move to the
  permanent generation, which no collection walks. They are still freed by reference
  counting when they die; only a reference *cycle* among them that dies later is kept
  (start-up objects that live as long as the daemon do not). A full collection first, so
  no garbage is frozen.
* Higher generation thresholds: a young-generation collection every `thresholds[0]`
  allocations instead of Python's 700, so a burst of quote handling and re-pegs is not
  interrupted every few hundred objects; the older generations follow their ratios.

Memory: a higher threshold lets at most that many more young objects wait for their
collection (a few MB at 10,000); frozen objects cost nothing extra. Both are undone when the
daemon stops (`gc.unfreeze`, the previous thresholds), so a process that runs daemons one
after the other — the tests — does not accumulate frozen objects.

The collector is one per process, and daemons in one process may overlap (the tests, the
bench, an in-process restart that starts the next daemon before the last one's `finally`
ran) and stop in any order. So the tunings in force are counted process-wide: the first
entry saves the original thresholds, the newest tuning still in force sets them, the
permanent generation stays frozen while any freezing tuning is in force, and the last exit
restores the original thresholds. Each tuning restoring what it saw on entry instead would
leave the process tuned for good, or untune a daemon still running.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import structlog

_log = structlog.get_logger("execd.daemon")


@dataclass(frozen=True, slots=True)
class GcTuning:
    """What to do with the collector while the daemon runs (`[runtime]` in the config)."""

    freeze: bool
    #: generation thresholds (young, middle, old), as `gc.set_threshold` takes them.
    thresholds: tuple[int, int, int]


class _InForce:
    """The tunings in force in this process (entry order) and the thresholds before them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: (entry token, tuning): two equal tunings in force are still two entries.
        self.tunings: list[tuple[object, GcTuning]] = []
        self.original: tuple[int, int, int] = (0, 0, 0)


_IN_FORCE = _InForce()


@contextmanager
def tuned_gc(tuning: GcTuning) -> Iterator[int]:
    """Apply `tuning` for the body; yields how many objects are frozen (0: no freeze).

    Undone on exit, whatever the body raised, as far as no other tuning is still in force
    (see the module docstring): the last one out gives back the original thresholds.
    """
    state = _IN_FORCE
    with state.lock:
        if not state.tunings:
            state.original = _thresholds()
        previous = _thresholds()
        entry = object()
        state.tunings.append((entry, tuning))
        gc.set_threshold(*tuning.thresholds)
        frozen = 0
        if tuning.freeze:
            gc.collect()  # nothing that is already garbage goes into the permanent generation
            gc.freeze()
            frozen = gc.get_freeze_count()
    _log.info(
        "gc_tuned",
        frozen_objects=frozen,
        thresholds=list(tuning.thresholds),
        previous_thresholds=list(previous),
    )
    try:
        yield frozen
    finally:
        with state.lock:
            state.tunings = [(e, t) for e, t in state.tunings if e is not entry]
            if tuning.freeze and not any(t.freeze for _, t in state.tunings):
                gc.unfreeze()
            if state.tunings:
                gc.set_threshold(*state.tunings[-1][1].thresholds)
            else:
                gc.set_threshold(*state.original)


def _thresholds() -> tuple[int, int, int]:
    young, middle, old = gc.get_threshold()
    return young, middle, old
