"""Adversarial review of the ladder (issue 10): stale quotes in step 0."""

from __future__ import annotations

from datetime import timedelta

from execd.domain.ladder_types import Start
from tests.domain.test_ladder import OPEN, leg, notes


def test_premarket_assessment_ignores_a_stale_quote() -> None:
    lg = leg(at=OPEN - timedelta(minutes=30))
    lg.send(Start())
    acts = lg.quote("10.00", "10.30", age=12 * 3600)  # last night's wide book
    assert "leg_premarket_assessed" not in notes(acts)
    assert "leg_premarket_quote_stale" in notes(acts)
    assert lg.state.premarket is None
    # A fresh pre-open quote is still assessed ...
    acts = lg.quote("10.00", "10.01", age=1.0)
    assert "leg_premarket_assessed" in notes(acts)
    assert lg.state.premarket is not None


def test_without_a_fresh_preopen_quote_step_0_is_skipped_with_a_note() -> None:
    """Only stale pre-open quotes: at the open the leg goes on without step 0 and says so;
    the slippage budget is the configured one, never one from the stale book."""
    lg = leg(at=OPEN - timedelta(minutes=30))
    lg.send(Start())
    lg.quote("10.00", "10.30", age=12 * 3600)
    acts = lg.wake()
    assert "leg_premarket_skipped" in notes(acts)
    assert lg.state.premarket is None
    assert lg.state.budget_bps in (None, lg.params.max_slippage_bps)
