"""Item 4 — request budget: not built yet (see execd/bench/README.md)."""

from __future__ import annotations

from execd.bench.results import Figure


def run(size: int) -> list[Figure]:
    """Not built yet: says so instead of printing a made-up figure."""
    raise NotImplementedError("item 4 — request budget is not built yet")
