"""The order poll's snapshot (`engine.order_poll.read_snapshot`) reads every page of
``GET /v2/orders?status=all`` since the oldest working plan: execd runs up to 2,000 legs,
and one 500-order page left the older legs' orders (their fills, their states) out of
the snapshot. A listing it cannot finish is no snapshot at all (None: the legs read
their orders one by one). Against the simulator over loopback, orders placed through its
exchange directly as in `test_open_orders_paging`."""

from __future__ import annotations

from datetime import datetime

import pytest
from structlog.testing import capture_logs

from execd.adapters.rest import RestGateway
from execd.engine import order_poll
from execd.engine.order_poll import Snapshot, read_snapshot
from execd.sim.venue import SimVenue
from tests.engine.test_open_orders_paging import _execd, _place, rest, venue

__all__ = ["rest", "venue"]  # the fixtures


class Working:
    """The engine's answer to "since when do plans work" (`WorkingLegs`), fixed."""

    def __init__(self, since: datetime) -> None:
        self.since = since

    def running_legs(self) -> int:
        return 1

    def working_since(self) -> datetime | None:
        return self.since

    def reconcile_legs(self, snapshot: Snapshot | None) -> None:
        raise AssertionError("read_snapshot reconciles nothing")


def _history(venue: SimVenue, count: int) -> tuple[datetime, set[str]]:
    """Two old execd orders (of a plan long done), then `count` execd orders of the
    working plan, a third of them cancelled, one foreign order in the middle; every
    third order shares its predecessor's instant. Returns (the plan's start, its cids)."""
    _place(venue, _execd(90_000))
    _place(venue, _execd(90_001))
    venue.exchange.advance(600.0)
    since = venue.clock.now()
    cids: set[str] = set()
    for n in range(count):
        order_id = _place(venue, _execd(n), advance=0.0 if n % 3 else 0.001)
        cids.add(_execd(n))
        if n % 3 == 1:
            venue.exchange.cancel_order(order_id)
        if n == count // 2:
            _place(venue, "foreign-middle")
    venue.exchange.advance(1.0)
    return since, cids


@pytest.mark.parametrize("count", [499, 501, 1_001])
async def test_the_snapshot_holds_every_order_of_the_working_plans(
    venue: SimVenue, rest: RestGateway, count: int
) -> None:
    since, cids = _history(venue, count)
    snapshot = await read_snapshot(rest, Working(since), "test")
    assert snapshot is not None
    assert set(snapshot) == cids  # none missed, no foreign one, none of the old plan
    statuses = {str(order.status.value) for order in snapshot.values()}
    assert "canceled" in statuses


async def test_a_listing_that_cannot_finish_is_no_snapshot(
    venue: SimVenue, rest: RestGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    since, _ = _history(venue, 1_001)
    monkeypatch.setattr(order_poll, "MAX_PAGES", 2)
    with capture_logs() as logs:
        assert await read_snapshot(rest, Working(since), "test") is None
    assert any(e["log_level"] == "error" for e in logs)
