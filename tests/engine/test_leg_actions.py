"""The order in which a leg performs one decision's actions (issue 14 item 2)."""

from __future__ import annotations

from decimal import Decimal

from execd.domain.ladder_types import CancelOrder, Note, OrderType, PlaceOrder
from execd.domain.types import Side
from execd.engine.leg_actions import cancel_first


def _note(event: str) -> Note:
    return Note(event, {})


def test_a_cancel_goes_out_before_the_notes_of_its_decision() -> None:
    """A re-peg decides [leg_market_moved, leg_repegged, CancelOrder]: the cancel of a
    known order needs nothing on disk first, so it is sent before the two log lines, which
    follow it (none is dropped)."""
    moved, repegged = _note("leg_market_moved"), _note("leg_repegged")
    cancel = CancelOrder("xd-abc-0-1")
    assert cancel_first([moved, repegged, cancel]) == [cancel, moved, repegged]
    assert cancel_first([cancel, moved]) == [cancel, moved]


def test_a_place_keeps_the_ladder_order() -> None:
    """Only a cancel moves: a place waits for its intent on disk whatever the notes, and
    the actions after the first request keep their order."""
    note = _note("leg_fallback_collared")
    place = PlaceOrder(
        client_order_id="xd-abc-0-2",
        symbol="SPY",
        order_type=OrderType.LIMIT,
        side=Side.BUY,
        qty=Decimal(1),
        limit_price=Decimal("1.00"),
        step=4,
    )
    assert cancel_first([note, place]) == [note, place]
    cancel = CancelOrder("xd-abc-0-1")
    assert cancel_first([note, place, cancel]) == [note, place, cancel]
    assert cancel_first([note]) == [note]
