"""Which step a fresh quote is for, pure: `QuotePurpose` → the ladder's `Step`.

A leg that waited for a quote (`LegState.awaiting`) resumes the step it asked for when the
quote arrives (`ladder`), after a halt ends, or when its QUOTE timer finds the one in hand
still fresh; a write that was never sent re-prices its own step (`ladder_events`). The steps
themselves pass their continuation to `request_quote` directly (`ladder_quotes`).
"""

from __future__ import annotations

from typing import assert_never

from execd.domain.ladder_fallback import fallback_from_quote
from execd.domain.ladder_place import place_again, place_first
from execd.domain.ladder_quotes import Step
from execd.domain.ladder_repeg import repeg
from execd.domain.ladder_types import QuotePurpose

__all__ = ["step_for"]


def step_for(purpose: QuotePurpose) -> Step:
    """The step that a quote requested for `purpose` prices."""
    match purpose:
        case QuotePurpose.ASSESS:
            return place_first
        case QuotePurpose.REPRICE:
            return place_again
        case QuotePurpose.REPEG:
            return repeg
        case QuotePurpose.FALLBACK:
            return fallback_from_quote
        case _:
            assert_never(purpose)
