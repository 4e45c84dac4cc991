"""A place the leg took as refused (lane ghost) that lands late after all.

Its write's answer was lost and every look-up said 404, so the leg gave it up and placed
the remainder anew. Then the first copy lands: its events must not be ignored (the order
was held REJECTED: a fill was "impossible" and its shares went uncounted). The ladder
counts its shares, cancels it at once, and shrinks what it works to what is left.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from execd.domain.ladder_types import CancelOrder, LegPhase, PlaceFailed, PlaceOrder, Start
from execd.domain.order_state import OrderEventKind as K
from execd.domain.order_state import OrderStatus
from tests.domain.test_ladder import OPEN, Leg, cid, leg, notes, of


def _given_up() -> Leg:
    """A passive buy of 100 whose first place was lost, then given up on a 404 at its
    re-peg's cancel; the remainder is placed anew (attempt 1) and rests."""
    lg = leg(repeg_method="cancel_and_place", symbol="AAPL", at=OPEN + timedelta(minutes=10))
    lg.quote("100.00", "100.05")
    lg.send(Start())
    lg.send(PlaceFailed(cid(0), 599, "outcome unknown"))
    assert of(lg.quote("100.50", "100.55"), CancelOrder) == [CancelOrder(cid(0))]
    (again,) = of(lg.send(PlaceFailed(cid(0), 404, "order not found")), PlaceOrder)
    assert isinstance(again, PlaceOrder)
    assert (again.client_order_id, again.qty) == (cid(1), Decimal(100))
    lg.update(1, K.NEW)
    assert lg.state.order(cid(0)).status is OrderStatus.REJECTED  # type: ignore[union-attr]
    return lg


def test_a_late_copy_of_a_refused_place_is_cancelled_at_once() -> None:
    lg = _given_up()
    acts = lg.update(0, K.NEW)
    assert of(acts, CancelOrder) == [CancelOrder(cid(0))]
    assert "leg_order_landed_after_refusal" in notes(acts)


def test_a_late_copys_fills_are_counted_and_the_rest_is_resized() -> None:
    """40 shares fill on the late copy: they count, it is cancelled, and the order
    working 100 is now oversized (only 60 left): it is cancelled too — never 140."""
    lg = _given_up()
    lg.update(0, K.NEW)
    acts = lg.fill(0, "40", "late-1")
    assert lg.state.remaining == Decimal(60)
    assert set(of(acts, CancelOrder)) == {CancelOrder(cid(0)), CancelOrder(cid(1))}
    assert lg.state.phase is LegPhase.CANCELING
    # A duplicate delivery of the same execution is not counted twice.
    lg.fill(0, "40", "late-1")
    assert lg.state.remaining == Decimal(60)


def test_a_late_copy_that_fills_whole_ends_nothing_early() -> None:
    """A final fill of all 100 on the late copy: the leg is done; the other order goes."""
    lg = _given_up()
    acts = lg.fill(0, "100", "late-all", final=True)
    assert lg.state.remaining == Decimal(0)
    assert CancelOrder(cid(1)) in of(acts, CancelOrder)
    assert CancelOrder(cid(0)) not in of(acts, CancelOrder)  # filled: nothing to cancel
