"""Review 7 (adversarial, state lane): `LegState` lost `slots=True` and is copied by its
instance dict (ladder_replace.py). Regression guards for what the slots used to give and
the dict copy could lose: a mistyped attribute is still refused, a copy shares no dict
with its source, and a state survives pickling and deep copies equal (and hashing the same)
to what `dataclasses.replace` makes."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from execd.domain.ladder_replace import replace
from execd.domain.ladder_types import LegPhase, LegSpec, LegState
from execd.domain.order_state import Execution
from execd.domain.types import Side, Urgency

SPEC = LegSpec("plan-1", 0, "AAPL", Side.BUY, Decimal(100), Urgency.NORMAL, None, None)
AT = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)


def _state() -> LegState:
    stray = (Execution("x1", Decimal("1.50"), Decimal("10"), AT),)
    return replace(LegState.new(SPEC), phase=LegPhase.WORKING, attempt=2, stray_fills=stray)


def test_a_mistyped_attribute_is_refused_on_a_copied_state() -> None:
    state = _state()
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.phse = LegPhase.DONE  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.attempt = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        replace(state, attmpt=3)  # type: ignore[call-arg]
    assert not hasattr(state, "phse")


def test_a_copy_shares_no_dict_and_survives_pickle_and_deepcopy() -> None:
    state = _state()
    fast = replace(state, attempt=3)
    slow = dataclasses.replace(state, attempt=3)
    assert vars(fast) is not vars(state)
    assert state.attempt == 2
    for other in (pickle.loads(pickle.dumps(fast)), copy.deepcopy(fast), copy.copy(fast)):
        assert other == fast == slow
        assert type(other) is LegState
        assert hash(other) == hash(slow)
        assert other.executed_qty == Decimal("1.50")
