"""The leg deadline: the plan's, else the session's close, else a configured maximum."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from execd.domain.calendar import session_on
from execd.domain.deadline import close_margin, last_send, leg_deadline, send_window

_SESSION = session_on(date(2024, 3, 5))
assert _SESSION is not None
SESSION = _SESSION
NOW = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)


def test_plan_deadline_wins() -> None:
    """The plan's own deadline comes first (before the close)."""
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


MARGIN = close_margin(1.5, 1.0)
CUTOFF = SESSION.close - timedelta(seconds=2.5)
TICK = timedelta(microseconds=1)


def test_close_margin_is_the_clock_uncertainty_plus_the_guard() -> None:
    assert close_margin(1.5, 1.0).total_seconds() == 2.5
    assert last_send(SESSION, MARGIN) == CUTOFF
    assert last_send(None, MARGIN) is None


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.001])
def test_close_margin_refuses_a_guard_that_could_let_an_order_through(bad: float) -> None:
    """NaN compares false with everything: a NaN guard would be no guard at all."""
    with pytest.raises(ValueError, match="finite number >= 0"):
        close_margin(bad, 1.0)
    with pytest.raises(ValueError, match="finite number >= 0"):
        close_margin(0.0, bad)


def test_the_leg_ends_the_margin_before_the_close() -> None:
    assert leg_deadline(None, SESSION, NOW, 3600, MARGIN) == CUTOFF


def test_a_plan_deadline_past_the_last_send_is_cut_to_it() -> None:
    """Past the close a day order is queued for the next day: the plan's deadline does not
    keep a leg sending after the session's last send."""
    assert leg_deadline(SESSION.close + timedelta(hours=1), SESSION, NOW, 3600, MARGIN) == CUTOFF
    assert leg_deadline(CUTOFF + TICK, SESSION, NOW, 3600, MARGIN) == CUTOFF
    assert leg_deadline(CUTOFF - TICK, SESSION, NOW, 3600, MARGIN) == CUTOFF - TICK


def test_send_window_edges_at_the_last_send() -> None:
    """Just inside the guard the write may go (a window left); at the cutoff, or past it,
    the window is spent: the gateway sends nothing (`SendExpired`, tests/adapters)."""
    assert send_window(CUTOFF - TICK, None, CUTOFF) == pytest.approx(1e-6)
    assert send_window(CUTOFF, None, CUTOFF) == 0.0
    window = send_window(CUTOFF + TICK, None, CUTOFF)
    assert window is not None
    assert window < 0


def test_send_window_is_the_earlier_of_the_quote_and_the_close() -> None:
    fresh_until = CUTOFF - timedelta(seconds=3)
    assert send_window(CUTOFF - timedelta(seconds=10), fresh_until, CUTOFF) == 7.0
    assert send_window(CUTOFF - timedelta(seconds=1), CUTOFF + timedelta(seconds=9), CUTOFF) == 1.0
    assert send_window(NOW, None, None) is None
    assert send_window(NOW, NOW + timedelta(seconds=4), None) == 4.0
