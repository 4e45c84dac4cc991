"""The synthetic markets' personalities: a few numbers per scenario, nothing tuned to any strategy.

Spreads are in "cents" of a ≥ $1 stock; a sub-dollar stock reads one cent as five $0.0001 ticks.
"""

from __future__ import annotations

from dataclasses import dataclass

from execd.sim.config import SCENARIOS


@dataclass(frozen=True, slots=True)
class ScenarioParams:
    """How one symbol's synthetic market behaves in the regular session."""

    name: str
    rate_hz: float  # quote updates per second (Poisson)
    spread_cents: tuple[int, int]  # uniform range of the NBBO spread
    vol_mult: float  # multiplies the symbol's daily volatility
    trend_per_s: float  # drift as a fraction of the volatility per second (sign flips)
    jump_prob: float  # chance per update of a jump in the mid
    jump_cents: tuple[int, int]
    trade_prob: float  # chance per update of a trade print
    size_mult: float  # multiplies the symbol's displayed lot
    gap_prob: float  # chance that a level behind the NBBO is 2–5 ticks from the previous one
    stale_prob: float  # chance per update of a quote gap
    stale_gap_s: tuple[float, float]
    open_dynamics: bool  # 9:30–9:35 ET: wide spreads collapsing, jumpy quotes


CALM = ScenarioParams("calm", 2.0, (1, 2), 1.0, 0.0, 0.0, (0, 0), 0.5, 1.0, 0.0, 0.0, (0, 0), False)
OPEN = ScenarioParams(
    "open", 3.0, (1, 3), 1.5, 0.0, 0.02, (2, 6), 0.55, 1.0, 0.1, 0.0, (0, 0), True
)
FAST = ScenarioParams(
    "fast", 5.0, (1, 3), 2.5, 0.05, 0.04, (3, 10), 0.6, 0.8, 0.1, 0.0, (0, 0), False
)
THIN = ScenarioParams(
    "thin", 1.5, (2, 5), 1.0, 0.0, 0.01, (2, 5), 0.35, 0.3, 0.6, 0.0, (0, 0), False
)
STALE = ScenarioParams(
    "stale", 2.0, (1, 3), 1.0, 0.0, 0.0, (0, 0), 0.45, 1.0, 0.1, 0.04, (3.0, 8.0), False
)

_BY_NAME = {p.name: p for p in (CALM, OPEN, FAST, THIN, STALE)}
# `mixed` gives each symbol one personality (by position) and everyone a real open.
_MIXED_CYCLE = ("fast", "calm", "thin", "fast", "stale", "calm")


def params_for(scenario: str, index: int) -> ScenarioParams:
    """The parameters of the `index`-th symbol of the venue under `scenario`."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}")
    if scenario == "mixed":
        base = _BY_NAME[_MIXED_CYCLE[index % len(_MIXED_CYCLE)]]
        return ScenarioParams(
            f"mixed/{base.name}",
            base.rate_hz,
            base.spread_cents,
            base.vol_mult,
            base.trend_per_s,
            base.jump_prob,
            base.jump_cents,
            base.trade_prob,
            base.size_mult,
            base.gap_prob,
            base.stale_prob,
            base.stale_gap_s,
            True,
        )
    return _BY_NAME[scenario]
