"""Figures, their baselines and targets; the printed table and `.bench/results.json`.

A `Figure` is one named number (the names are issue 14's, so runs can be compared), with
optionally the baseline it is compared to *from the same run* and a target. The target is
judged here, once, so the table and the JSON agree on what was met and by how much it was
missed.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

Compare = Literal["min", "max"]
"""``min``: the figure must be at least the bound; ``max``: at most."""


@dataclass(frozen=True, slots=True)
class Target:
    """A bound on a figure (``value`` itself) or on its ratio to the baseline (``on="ratio"``)."""

    compare: Compare
    bound: float
    on: Literal["value", "ratio"] = "value"

    def judge(self, value: float, ratio: float | None) -> tuple[bool | None, str]:
        """(met, how far off) — met is None when the figure could not be measured."""
        x = ratio if self.on == "ratio" else value
        if x is None or math.isnan(x):
            return None, "not measured"
        ok = x >= self.bound if self.compare == "min" else x <= self.bound
        if ok:
            return True, ""
        if self.bound == 0:
            return False, f"{x:g} vs {self.bound:g}"
        if self.compare == "min":
            return False, f"at {x / self.bound:.2f}x of the target ({fmt(x)} < {fmt(self.bound)})"
        return False, f"{x / self.bound:.2f}x the target ({fmt(x)} > {fmt(self.bound)})"

    def describe(self) -> str:
        """``≥ 20x`` / ``≤ 1500`` for the table."""
        sign = "≥" if self.compare == "min" else "≤"
        suffix = "x" if self.on == "ratio" else ""
        return f"{sign} {fmt(self.bound)}{suffix}"


@dataclass(slots=True)
class Figure:
    """One measured number, its same-run baseline (if any) and target (if any)."""

    item: str
    name: str
    value: float
    unit: str
    baseline_name: str | None = None
    baseline: float | None = None
    targets: tuple[Target, ...] = ()
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """value / baseline, or None without a baseline."""
        if self.baseline is None or self.baseline == 0 or math.isnan(self.baseline):
            return None
        return self.value / self.baseline

    def verdicts(self) -> list[tuple[Target, bool | None, str]]:
        """Each target with whether it was met and by how much it was missed."""
        return [(t, *t.judge(self.value, self.ratio)) for t in self.targets]

    @property
    def met(self) -> bool | None:
        """True if every target is met, False if one is missed, None without targets."""
        results = [ok for _, ok, _ in self.verdicts()]
        if not results:
            return None
        if any(ok is False for ok in results):
            return False
        if any(ok is None for ok in results):
            return None
        return True


@dataclass(slots=True)
class Results:
    """Everything one `make bench` run measured, in the order it was measured."""

    profile: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: each item's wall time, seconds, in the order run (crashed items too).
    wall_s: dict[str, float] = field(default_factory=dict)

    def add(self, figure: Figure) -> Figure:
        """Record a figure (and return it, for the item's own summary)."""
        self.figures.append(figure)
        return figure

    def extend(self, figures: Iterable[Figure]) -> None:
        """Record several figures."""
        self.figures.extend(figures)

    def to_json(self) -> dict[str, object]:
        """The JSON document: a flat ``figures`` map by name, plus details per figure."""
        flat: dict[str, float] = {}
        details = []
        for f in self.figures:
            flat[f.name] = _finite(f.value)
            if f.baseline_name is not None and f.baseline is not None:
                flat.setdefault(f.baseline_name, _finite(f.baseline))
            entry = asdict(f)
            entry["targets"] = [
                {**asdict(t), "met": ok, "shortfall": why} for t, ok, why in f.verdicts()
            ]
            entry["ratio"] = f.ratio
            entry["met"] = f.met
            details.append(entry)
        return {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "profile": self.profile,
            "machine": {
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "load_avg_1m": os.getloadavg()[0],
            },
            "figures": flat,
            "wall_s": {**self.wall_s, "total": sum(self.wall_s.values())},
            "details": details,
            "notes": self.notes,
        }

    def write(self, path: Path) -> None:
        """Write the JSON document (creating ``.bench/``), replacing the previous run's."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n", encoding="utf-8")
        tmp.replace(path)


def _finite(x: float) -> float:
    return x if math.isfinite(x) else float("nan")


def fmt(x: float | None, unit: str = "") -> str:
    """A compact human number: 1.23M, 45.6k, 0.812, 12."""
    if x is None:
        return "—"
    if math.isnan(x):
        return "n/a"
    a = abs(x)
    if a >= 1e6:
        s = f"{x / 1e6:.2f}M"
    elif a >= 1e4:
        s = f"{x / 1e3:.1f}k"
    elif a >= 100:
        s = f"{x:.0f}"
    elif a >= 10:
        s = f"{x:.1f}"
    else:
        s = f"{x:.3g}"
    return f"{s} {unit}".rstrip()


def render(figures: Sequence[Figure]) -> str:
    """The table `make bench` prints: figure, value, baseline, ratio, target, verdict."""
    rows = [("figure", "value", "baseline (same run)", "ratio", "target", "verdict")]
    for f in figures:
        base = "" if f.baseline_name is None else f"{fmt(f.baseline, f.unit)} {f.baseline_name}"
        ratio = "" if f.ratio is None else f"{f.ratio:.2f}x"
        verdicts = f.verdicts()
        target = ", ".join(t.describe() for t, _, _ in verdicts)
        verdict = "; ".join(
            ("met" if ok else "?" if ok is None else f"MISSED: {why}") for _, ok, why in verdicts
        )
        rows.append((f.name, fmt(f.value, f.unit), base, ratio, target, verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for n, r in enumerate(rows):
        cells = [r[i].ljust(widths[i]) if i == 0 else r[i].rjust(widths[i]) for i in range(5)]
        lines.append("  ".join(cells) + "  " + r[5])
        if n == 0:
            lines.append("-" * (sum(widths) + 2 * 5 + len(r[5])))
    notes = [f"  {f.name}: {f.note}" for f in figures if f.note]
    if notes:
        lines.append("notes:")
        lines.extend(dict.fromkeys(notes))  # a figure listed twice (two baselines): once
    return "\n".join(lines)


def render_timings(
    wall_s: Mapping[str, float], budgets: Mapping[str, float], total_budget: float | None
) -> str:
    """Each item's wall time against its budget, the total, and a line when it is over."""
    lines = ["wall time"]
    width = max((len(name) for name in wall_s), default=5)
    for name, seconds in wall_s.items():
        budget = budgets.get(name)
        verdict = ""
        if budget is not None:
            verdict = f"  (budget {budget:.0f} s{', OVER' if seconds > budget else ''})"
        lines.append(f"  {name.ljust(width)}  {seconds:6.1f} s{verdict}")
    total = sum(wall_s.values())
    limit = "" if total_budget is None else f"  (budget {total_budget:.0f} s)"
    lines.append(f"  {'total'.ljust(width)}  {total:6.1f} s{limit}")
    if total_budget is not None and total > total_budget:
        lines.append(
            f"TOTAL OVER BUDGET: {total:.0f} s > {total_budget:.0f} s "
            f"({total / 60:.1f} min > {total_budget / 60:.1f} min)"
        )
    return "\n".join(lines)
