"""`replace` for the ladder's modules: `dataclasses.replace`, but cheap for `LegState`.

Every step of `decide` returns a new `LegState` (a frozen value of 41 fields), ~14 copies
per re-peg. `dataclasses.replace` walks the class's fields in Python, builds a keyword
dict and calls the generated `__init__`, which sets each of the 41 fields with its own
`object.__setattr__` call: ≈ 12 µs a copy on the bench machine — in the 2,000-leg run,
~8 % of the loop's on-CPU stall samples (execd/bench/README.md §3, session 6).

`LegState` therefore keeps its fields in an instance `__dict__` (no `slots=True`), and a
copy is a new dict of the old instance's fields with the changes laid over them, built in
C and set on a bare instance — the same fields, values and class, without `__init__`
(≈ 1 µs; ~540 bytes more per retained state than the slotted class). That is
exactly what `dataclasses.replace` makes as long as `__init__` only stores its arguments:
no `__post_init__`, no `InitVar`, no `init=False` field — checked below at import, so a
change to `LegState` that breaks it fails loudly instead of skipping a check.
`tests/domain/test_ladder_replace.py` compares both for arbitrary field sets.

For mypy the name *is* `dataclasses.replace`, so its dataclass plugin still checks every
call's field names and types; any other dataclass goes to `dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar

from execd.domain.ladder_types import LegState

__all__ = ["replace"]

_T = TypeVar("_T")

_FIELDS = frozenset(f.name for f in dataclasses.fields(LegState))


def _copyable_in_c(cls: type) -> bool:
    """Whether a copy of the instance dict is what `cls`'s `__init__` would make."""
    fields = dataclasses.fields(cls)
    declared = vars(cls)
    return (
        not hasattr(cls, "__slots__")
        and not hasattr(cls, "__post_init__")
        and declared["__dataclass_params__"].frozen
        and all(f.init for f in fields)
        and len(fields) == len(declared["__dataclass_fields__"])  # no InitVar, no ClassVar
    )


if not _copyable_in_c(LegState):  # pragma: no cover - a change to LegState, caught at import
    raise TypeError("LegState's fast replace needs a plain frozen dataclass without slots")


def _replace_leg(obj: _T, /, **changes: Any) -> _T:
    """`dataclasses.replace` for a `LegState` (any other object goes to it as is)."""
    if type(obj) is not LegState:
        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    if not changes.keys() <= _FIELDS:
        unknown = ", ".join(sorted(changes.keys() - _FIELDS))
        raise TypeError(f"LegState has no field(s) {unknown}")
    # A new dict built from both is compact (~830 bytes for 41 fields; `__init__`'s
    # dict and its `.copy()` take ~1,580) and, from a compact one, the fastest copy.
    values = {**obj.__dict__, **changes}
    new = object.__new__(LegState)
    object.__setattr__(new, "__dict__", values)
    return new  # type: ignore[return-value]


if TYPE_CHECKING:
    from dataclasses import replace as replace
else:
    replace = _replace_leg
