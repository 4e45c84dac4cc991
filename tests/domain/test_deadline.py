"""The leg deadline: the plan's, else the session's close, else a configured maximum."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from execd.domain.calendar import session_on
from execd.domain.deadline import leg_deadline

SESSION = session_on(date(2024, 3, 5))
NOW = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)


def test_plan_deadline_wins() -> None:
    """The plan's own deadline comes first, even past the close."""
    plan = NOW + timedelta(minutes=10)
    assert leg_deadline(plan, SESSION, NOW, 3600) == plan


def test_session_close_when_no_plan_deadline() -> None:
    """No plan deadline: the session's close."""
    assert SESSION is not None
    assert leg_deadline(None, SESSION, NOW, 3600) == SESSION.close


def test_configured_maximum_when_nothing_else() -> None:
    """No plan deadline, no session: now + the configured maximum."""
    assert leg_deadline(None, None, NOW, 90.0) == NOW + timedelta(seconds=90)


def test_naive_or_nonpositive_inputs_are_refused() -> None:
    """A naive deadline has no venue meaning; a non-positive maximum is no bound."""
    with pytest.raises(ValueError, match="aware"):
        leg_deadline(datetime(2024, 3, 5, 15, 0), None, NOW, 60)
    with pytest.raises(ValueError, match="positive"):
        leg_deadline(None, None, NOW, 0)
