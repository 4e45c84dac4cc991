"""The bench runner's wall-time report: each item against its budget, the total, and a
line that says when the quick profile's 5 minutes are exceeded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from execd.bench.__main__ import main
from execd.bench.profiles import FULL, QUICK
from execd.bench.results import Results, render_timings


def test_timings_say_which_item_and_the_total_are_over() -> None:
    """An item over its budget is marked; a total over the limit gets its own line."""
    text = render_timings({"ingest": 10.0, "budget": 70.0}, {"ingest": 15, "budget": 65}, 60)
    lines = text.splitlines()
    assert lines[1].split() == ["ingest", "10.0", "s", "(budget", "15", "s)"]
    assert "OVER" in lines[2]
    assert "budget" in lines[2]
    assert lines[3].split()[:3] == ["total", "80.0", "s"]
    assert lines[4].startswith("TOTAL OVER BUDGET: 80 s > 60 s")


def test_timings_within_budget_have_no_over_line() -> None:
    """Within every budget nothing says OVER; without budgets (FULL) only times are shown."""
    within = render_timings({"logging": 4.0}, QUICK.item_budget_s, QUICK.total_budget_s)
    assert "OVER" not in within
    full = render_timings({"logging": 400.0}, FULL.item_budget_s, FULL.total_budget_s)
    assert "OVER" not in full
    assert "budget" not in full


def test_quick_profile_budgets_fit_the_five_minutes() -> None:
    """Issue 14's per-item budgets cover every item and add up to at most 5 minutes."""
    assert QUICK.total_budget_s == 300
    assert set(QUICK.item_budget_s) == {
        "ingest",
        "reaction",
        "scale",
        "budget",
        "logging",
        "quality",
    }
    assert sum(QUICK.item_budget_s.values()) <= QUICK.total_budget_s


def test_results_json_holds_wall_times(tmp_path: Path) -> None:
    """`.bench/results.json` records each item's wall time and the total."""
    results = Results("quick", wall_s={"ingest": 1.5, "quality": 2.0})
    path = tmp_path / "r.json"
    results.write(path)
    assert json.loads(path.read_text())["wall_s"] == {"ingest": 1.5, "quality": 2.0, "total": 3.5}


def test_an_unknown_item_is_refused() -> None:
    """A typo in an item name fails at once instead of running nothing for minutes."""
    with pytest.raises(SystemExit) as exc:
        main(["ingset"])
    assert exc.value.code == 2
