"""How much each item measures: the quick profile (`make bench`) and the long one (FULL=1)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Profile:
    """Sizes per item; the quick profile must finish under 5 minutes on 2 shared cores."""

    name: str
    #: quotes a round for the daemon and the floor, and for the (~20x slower) SDK
    ingest_quotes: int
    ingest_sdk_quotes: int
    ingest_rounds: int
    reaction_events: int
    scale_legs: int
    scale_limit_s: float
    budget_legs: int
    budget_limit_s: float
    log_lines: int
    quality_seeds: int
    quality_sizes: tuple[int, ...]
    #: wall-time budget per item and for the whole run, seconds (None: no limit). The
    #: runner prints each item's time against its budget and says when the total is over.
    item_budget_s: Mapping[str, float] = field(default_factory=dict)
    total_budget_s: float | None = None


QUICK = Profile(
    name="quick",
    ingest_quotes=500_000,
    ingest_sdk_quotes=50_000,
    ingest_rounds=5,
    reaction_events=500,
    scale_legs=2_000,
    scale_limit_s=45,
    budget_legs=50,
    budget_limit_s=45,
    log_lines=50_000,
    quality_seeds=1,
    quality_sizes=(1, 5),
    # Issue 14: `make bench` under 5 minutes on 2 cores, all items together.
    item_budget_s={
        "ingest": 15,
        "reaction": 60,
        "scale": 75,
        "budget": 65,
        "logging": 6,
        "quality": 45,
    },
    total_budget_s=300,
)

FULL = Profile(
    name="full",
    ingest_quotes=1_000_000,
    ingest_sdk_quotes=200_000,
    ingest_rounds=5,
    reaction_events=2_000,
    scale_legs=2_000,
    scale_limit_s=900,
    budget_legs=300,
    budget_limit_s=600,
    log_lines=500_000,
    quality_seeds=5,
    quality_sizes=(1, 5, 20),
)
