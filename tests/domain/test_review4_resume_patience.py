"""Review 4: an adopted passive limit's patience after a restart, attacked.

The resume branch starts an adopted passive limit's patience at the restart, and makes an
unchanged passive re-check free only while a patience runs. Tried here against a resumed
order already partly filled, both re-peg methods, every urgency (low ends, never crosses),
and a leg deadline shorter than the patience.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from execd.domain.ladder_types import (
    Action,
    CancelOrder,
    LegPhase,
    LegState,
    Outcome,
    PlaceOrder,
    PricingStyle,
    ReplaceOrder,
)
from execd.domain.order_state import OrderEventKind as K
from execd.domain.order_state import OrderStatus as S
from execd.domain.types import Urgency
from tests.domain.test_ladder import TIMEOUT_ONLY, Leg, cid, finish, leg, of
from tests.domain.test_ladder_resume import execs, order, resumed

D = Decimal
PATIENCE = {Urgency.LOW: 300, Urgency.NORMAL: 120, Urgency.HIGH: 7}


def _still_until_cancel(lg: Leg, limit_s: int = 2000) -> list[Action]:
    """Wake the leg in a still market (bid 10.00, ask 10.02: the passive price 10.01 never
    moves) until it cancels its order; the actions of that wake."""
    acts: list[Action] = []
    start = lg.now
    while (lg.now - start).total_seconds() < limit_s:
        lg.quote("10.00", "10.02")
        acts = lg.wake()
        if of(acts, CancelOrder) or lg.state.phase is LegPhase.DONE:
            return acts
    raise AssertionError(f"still working {limit_s} s after the restart: {lg.state.phase}")


@pytest.mark.parametrize("method", ["replace", "cancel_and_place"])
@pytest.mark.parametrize("urgency", list(Urgency))
def test_partly_filled_adopted_limit_spends_its_patience_then_only_the_remainder(
    method: str, urgency: Urgency
) -> None:
    """An adopted passive limit of 100 with 40 filled before the restart: it waits one
    patience from the restart (no churn in a still market), then cancels; low urgency ends
    with the 40 (never crosses), normal/high send at most the 60 left, never again the 40."""
    lg = leg(symbol="AAPL", urgency=urgency, repeg_method=method, **TIMEOUT_ONLY)
    resumed_at = lg.now
    resumed(lg, order(0, S.PARTIALLY_FILLED, "100", limit="10.01", fills=execs("40")))
    assert lg.state.style is PricingStyle.PASSIVE
    acts = _still_until_cancel(lg)
    assert of(acts, CancelOrder) == [CancelOrder(cid(0))]
    assert (lg.now - resumed_at).total_seconds() == pytest.approx(PATIENCE[urgency], abs=10)
    assert not of(lg.log, ReplaceOrder)
    acts = lg.update(0, K.CANCELED)
    if urgency is Urgency.LOW:
        done = finish(acts)
        assert (done.outcome, done.filled_qty) == (Outcome.ENDED, D(40))
        assert not of(lg.log, PlaceOrder)
        return
    for _ in range(5):
        if of(lg.log, PlaceOrder):
            break
        lg.quote("10.00", "10.02")
    places = of(lg.log, PlaceOrder)
    assert places, "the remainder was never sent"
    assert all(isinstance(p, PlaceOrder) and p.qty <= D(60) for p in places), places


@pytest.mark.parametrize("urgency", list(Urgency))
def test_deadline_shorter_than_the_patience_ends_the_adopted_limit_at_the_deadline(
    urgency: Urgency,
) -> None:
    """A leg whose deadline comes 5 s after the restart: the adopted passive limit is
    cancelled at the deadline, not after the (longer) patience, and nothing is sent after
    it (no fallback past the deadline)."""
    base = leg(symbol="AAPL", urgency=urgency, **TIMEOUT_ONLY)
    deadline = base.now + timedelta(seconds=5)
    spec = replace(base.state.spec, deadline=deadline)
    lg = Leg(LegState.new(spec), base.now, base.params)
    resumed(lg, order(0, S.NEW, "100", limit="10.01"))
    acts = _still_until_cancel(lg, limit_s=60)
    assert of(acts, CancelOrder) == [CancelOrder(cid(0))]
    assert lg.now <= deadline + timedelta(seconds=1), lg.now - deadline
    lg.update(0, K.CANCELED)
    lg.quote("10.00", "10.02")
    assert not of(lg.log, PlaceOrder), "sent after the deadline"
    assert lg.state.phase is LegPhase.DONE
