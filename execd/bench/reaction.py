"""Item 2 — reaction latency: not built yet (see execd/bench/README.md)."""

from __future__ import annotations

from execd.bench.results import Figure


def run(size: int) -> list[Figure]:
    """Not built yet: says so instead of printing a made-up figure."""
    raise NotImplementedError("item 2 — reaction latency is not built yet")
