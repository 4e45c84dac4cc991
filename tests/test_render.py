"""How the CLI shows a leg to people (issue 15 §8): named steps, rounded quantities."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from execd.cli.render import human, step_name
from execd.control.protocol import LegStatus
from execd.domain.types import Side, Urgency


def _leg(**fields: Any) -> LegStatus:
    base: dict[str, Any] = {
        "index": 0,
        "symbol": "SPY",
        "side": Side.BUY,
        "qty": Decimal(10),
        "notional": None,
        "urgency": Urgency.NORMAL,
        "state": "working",
        "step": 2,
    }
    return LegStatus(**{**base, **fields})


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"state": "pending", "step": 0}, "—"),
        ({"state": "waiting", "step": 0}, "pre-check"),
        ({"state": "waiting", "step": 1}, "open wait"),
        ({"step": 2}, "limit"),
        ({"step": 3, "repegs": 2, "max_repegs": 5}, "re-peg 2/5"),
        ({"step": 3, "repegs": 1}, "re-peg 1"),
        ({"step": 4}, "fallback"),
        ({"state": "filled", "step": 5}, "done"),
        ({"state": "canceled", "step": 1, "finished_at": datetime.now(UTC)}, "done"),
    ],
)
def test_step_names(fields: dict[str, Any], name: str) -> None:
    """The step column names the step; a re-peg shows n/max once the style is known."""
    assert step_name(_leg(**fields)) == name


def test_quantities_are_rounded_for_people() -> None:
    """At most 4 decimals, no trailing zeros; whole numbers stay whole."""
    assert human(Decimal("12.345678912")) == "12.3457"
    assert human(Decimal("150")) == "150"
    assert human(Decimal("1.5000")) == "1.5"
    assert human(Decimal("1E+2")) == "100"
    assert human(None) == "—"
