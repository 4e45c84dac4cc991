"""Adversarial review of the ladder (issue 10): stale quotes in step 0."""

from __future__ import annotations

from datetime import timedelta

import pytest

from execd.domain.ladder_types import Start
from tests.domain.test_ladder import OPEN, leg, notes


@pytest.mark.xfail(
    strict=True,
    reason="ladder._on_quote/_premarket: in PRE_OPEN any quote is assessed, whatever its age;"
    " last night's quote (12 h old) sets the leg's slippage budget and open wait",
)
def test_premarket_assessment_ignores_a_stale_quote() -> None:
    lg = leg(at=OPEN - timedelta(minutes=30))
    lg.send(Start())
    acts = lg.quote("10.00", "10.30", age=12 * 3600)  # last night's wide book
    assert "leg_premarket_assessed" not in notes(acts)
    assert lg.state.budget_bps is None or lg.state.premarket is None
