"""The venue-history checker every daemon test ends with must itself be able to fail.

Hand-built histories in the venue's `history()` shape: a replacement overlapping the order
it replaces is one live order; a second order sent while the first is live, a leg filled
beyond its quantity, and a finished plan with an order still open are each caught.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from execd.domain.ids import client_order_id
from tests.engine.conftest import check_venue_history

PLAN = "checker-plan"
LEG_QTY = {(PLAN, 0): Decimal(10)}


def _order(
    n: int,
    created: str,
    ended: str | None,
    *,
    qty: str = "10",
    filled: str = "0",
    status: str = "canceled",
    replaces: str | None = None,
) -> dict[str, Any]:
    events = [{"event": "new", "timestamp": created, "status": "new"}]
    if ended is not None:
        events.append({"event": status, "timestamp": ended, "status": status})
    return {
        "order": {
            "id": f"id-{n}",
            "client_order_id": client_order_id(PLAN, 0, n),
            "created_at": created,
            "qty": qty,
            "filled_qty": filled,
            "status": status if ended is not None else "new",
            "replaces": replaces,
        },
        "events": events,
    }


def _fills(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"order_id": order_id, "qty": qty} for order_id, qty in pairs]


T0, T1, T2, T3 = (f"2026-03-04T15:00:0{i}.000000Z" for i in range(4))


def test_sequential_orders_and_replacements_pass() -> None:
    """Cancel-then-place, and a replacement created while its original is pending_replace,
    are one live order at a time."""
    history = {
        "orders": [
            _order(0, T0, T1, status="canceled", filled="4", qty="10"),
            _order(1, T1, T3, status="replaced", qty="6", filled="1"),
            _order(2, T2, T3, status="filled", qty="5", filled="5", replaces="id-1"),
        ],
        "fills": _fills(("id-0", "4"), ("id-1", "1"), ("id-2", "5")),
    }
    check_venue_history(history, LEG_QTY, finished_plans=[PLAN])


def test_second_live_order_is_caught() -> None:
    """An order sent while an earlier one (not the one it replaces) is still live fails."""
    history = {
        "orders": [_order(0, T0, T2), _order(1, T1, T3)],
        "fills": [],
    }
    with pytest.raises(AssertionError, match="was live"):
        check_venue_history(history, LEG_QTY)


def test_overfilled_leg_is_caught() -> None:
    """Fills over all of a leg's orders beyond its quantity fail."""
    history = {
        "orders": [
            _order(0, T0, T1, filled="6", status="canceled"),
            _order(1, T1, T2, filled="6", status="filled", qty="6"),
        ],
        "fills": _fills(("id-0", "6"), ("id-1", "6")),
    }
    with pytest.raises(AssertionError, match="filled 12 of 10"):
        check_venue_history(history, LEG_QTY)


def test_open_order_of_a_finished_plan_is_caught() -> None:
    """A plan that has ended must leave nothing working at the venue."""
    history = {"orders": [_order(0, T0, None)], "fills": []}
    check_venue_history(history, LEG_QTY)  # still running: fine
    with pytest.raises(AssertionError, match="left"):
        check_venue_history(history, LEG_QTY, finished_plans=[PLAN])
