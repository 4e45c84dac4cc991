"""The ladder's cheap `replace` makes what `dataclasses.replace` makes (ladder_replace.py)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.domain.ladder_replace import _copyable_in_c, replace
from execd.domain.ladder_types import LegPhase, LegSpec, LegState
from execd.domain.order_state import OrderState
from execd.domain.types import Side, Urgency

NAMES = [f.name for f in dataclasses.fields(LegState)]
SPEC = LegSpec("plan-1", 0, "AAPL", Side.BUY, Decimal(100), Urgency.NORMAL, None, None)

# The copy never looks at a value, so any value will do: a mix of kinds, shared or not.
values = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=5),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.sampled_from(list(LegPhase)),
    st.tuples(st.integers()),
)
changes = st.dictionaries(st.sampled_from(NAMES), values, max_size=len(NAMES))


@given(before=changes, after=changes)
def test_replace_equals_dataclasses_replace(before: dict[str, Any], after: dict[str, Any]) -> None:
    """For any state and any set of changed fields: the same class, the same field values
    (the very objects), a new instance, the original untouched, still frozen."""
    state = dataclasses.replace(LegState.new(SPEC), **before)
    snapshot = {name: getattr(state, name) for name in NAMES}
    fast = replace(state, **after)
    slow = dataclasses.replace(state, **after)
    assert type(fast) is LegState
    assert fast == slow
    assert all(getattr(fast, name) is getattr(slow, name) for name in NAMES)
    assert fast is not state
    assert fast.__dict__ is not state.__dict__
    assert {name: getattr(state, name) for name in NAMES} == snapshot
    assert set(vars(fast)) == set(NAMES)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.attempt = 1  # type: ignore[misc]


def test_replace_of_nothing_is_an_equal_copy() -> None:
    """No changes: an equal, distinct instance, as `dataclasses.replace` returns."""
    state = LegState.new(SPEC)
    copy = replace(state)
    assert copy == state
    assert copy is not state


def test_an_unknown_field_is_refused_like_dataclasses_replace() -> None:
    """A misspelt field is a TypeError, never a silently added attribute."""
    state = LegState.new(SPEC)
    with pytest.raises(TypeError):
        dataclasses.replace(state, no_such_field=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="no_such_field"):
        replace(state, no_such_field=1)  # type: ignore[call-arg]


def test_other_dataclasses_go_through_their_init() -> None:
    """An OrderState's __post_init__ still refuses a non-positive qty."""
    order = OrderState("c-1", Decimal(5))
    assert replace(order, qty=Decimal(7)).qty == Decimal(7)
    with pytest.raises(ValueError, match="positive"):
        replace(order, qty=Decimal(0))


def test_the_fast_copy_is_refused_for_a_class_whose_init_does_more() -> None:
    """The import-time guard: a copy of the dict is __init__'s work only for a plain,
    frozen dataclass without slots, __post_init__ or init=False fields."""

    @dataclasses.dataclass(frozen=True)
    class Plain:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Slotted:
        a: int

    @dataclasses.dataclass(frozen=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            assert self.a >= 0

    @dataclasses.dataclass(frozen=True)
    class Derived:
        a: int
        b: int = dataclasses.field(init=False, default=0)

    @dataclasses.dataclass
    class Mutable:
        a: int

    assert _copyable_in_c(LegState)
    assert _copyable_in_c(Plain)
    for cls in (Slotted, Checked, Derived, Mutable):
        assert not _copyable_in_c(cls), cls
