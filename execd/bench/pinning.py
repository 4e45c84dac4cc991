"""A bench condition for item 2: the venue's side on one core, the measured client on the other.

A real venue is on another machine: its work (writing frames, parsing requests, the background
feed) never takes the CPU the daemon needs. On a shared 2-core machine the scheduler otherwise
runs them on whichever core is free, and a reaction's request can wait behind the venue's own
turn on the daemon's core. Pinning (`os.sched_setaffinity`) keeps the two apart, the same way
for the daemon and for the SDK baseline. Where the process may use fewer than two CPUs (or the
platform has no affinity call) every function here is a no-op.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["pin", "pinned_process", "split_cores"]


def split_cores() -> tuple[set[int], set[int]] | None:
    """(the venue's CPUs, the client's CPUs) — the allowed CPUs halved — or None with < 2."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    if len(cpus) < 2:
        return None
    half = len(cpus) // 2
    return set(cpus[:half]), set(cpus[half:])


def pin(pid: int, cpus: set[int] | None) -> bool:
    """Restrict process (or thread) `pid` to `cpus`; False when it could not be done."""
    if not cpus:
        return False
    try:
        os.sched_setaffinity(pid, cpus)
    except (AttributeError, OSError):
        return False
    return True


def _threads() -> list[int]:
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


@contextlib.contextmanager
def pinned_process(cpus: set[int] | None) -> Iterator[None]:
    """Every thread of this process on `cpus` for the block (threads started in it inherit
    it), then back to what each had (a no-op without `cpus`)."""
    if not cpus:
        yield
        return
    before: dict[int, set[int]] = {}
    for tid in _threads():
        with contextlib.suppress(AttributeError, OSError):
            before[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, cpus)
    try:
        yield
    finally:
        for tid, allowed in before.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, allowed)
