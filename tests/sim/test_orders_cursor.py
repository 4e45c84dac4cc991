"""`GET /v2/orders` paged by order id (`after_order_id` / `before_order_id`, ALPACA.md §1.5).

The cursors are exclusive, in the listing's own order (submission time, ties in the order
the venue made them; `desc` its exact reverse), mutually exclusive, and not combined with
`after`/`until`. A cursor order that ended since its page was read still marks its place.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from execd.sim.errors import SimError
from execd.sim.exchange import Exchange
from execd.sim.venue import SimVenue
from tests.sim.test_rules_orders import make, order
from tests.sim.test_server_rest import call


def _ids(listing: list[dict[str, Any]]) -> list[str]:
    return [str(o["id"]) for o in listing]


def _place(ex: Exchange, count: int) -> list[str]:
    """`count` resting orders made at one venue instant, oldest first."""
    return [str(ex.submit_order(order())["id"]) for _ in range(count)]


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_pages_by_cursor_read_every_order_once_at_one_instant(direction: str) -> None:
    """Seven orders at one instant, three per page: the pages follow each other exactly,
    `desc` is the exact reverse of `asc`, and nothing repeats or goes missing."""
    ex, _ = make()
    made = _place(ex, 7)
    expected = made if direction == "asc" else made[::-1]
    pages: list[str] = []
    cursor: str | None = None
    while True:
        page = _ids(ex.list_orders(limit=3, direction=direction, after_order_id=cursor))
        pages += page
        if len(page) < 3:
            break
        cursor = page[-1]
    assert pages == expected


def test_before_order_id_lists_what_comes_before_the_cursor() -> None:
    """The other cursor: the orders listed before it (newer, in `desc`), exclusive."""
    ex, _ = make()
    made = _place(ex, 5)
    assert _ids(ex.list_orders(direction="desc", before_order_id=made[2])) == made[:2:-1]
    assert _ids(ex.list_orders(direction="asc", before_order_id=made[2])) == made[:2]


def test_a_cursor_order_that_ended_still_marks_its_place() -> None:
    """The kill switch cancels as it reads: the cursor order is no longer open when the
    next page is asked for, and the page still starts right after it."""
    ex, _ = make()
    made = _place(ex, 4)
    ex.cancel_order(made[2])
    ex.advance(1.0)
    assert ex.get_order(made[2])["status"] == "canceled"
    assert _ids(ex.list_orders(direction="desc", after_order_id=made[2])) == made[1::-1]


def test_cursor_misuse_is_refused() -> None:
    """Both cursors, a cursor with `after`/`until`, or an id the venue never made."""
    ex, _ = make()
    first, second = _place(ex, 2)
    at = datetime.fromisoformat(ex.get_order(first)["created_at"])
    misuses: list[Callable[[], object]] = [
        lambda: ex.list_orders(after_order_id=first, before_order_id=second),
        lambda: ex.list_orders(after_order_id=first, until=at),
        lambda: ex.list_orders(before_order_id=first, after=at),
        lambda: ex.list_orders(after_order_id="00000000-0000-4000-8000-000000000000"),
    ]
    for n, misuse in enumerate(misuses):
        with pytest.raises(SimError) as refused:
            misuse()
        assert refused.value.status == 422, n


async def test_the_cursor_over_http(venue: SimVenue) -> None:
    """The query parameters reach the exchange; misuse is a 422 with Alpaca's body."""
    async with aiohttp.ClientSession() as http:
        made = []
        for _ in range(3):
            body = {**order(), "limit_price": "1.00"}
            status, placed, _ = await call(http, venue, "POST", "/v2/orders", json=body)
            assert status == 200, placed
            made.append(placed["id"])
        status, listed, _ = await call(
            http, venue, "GET", f"/v2/orders?direction=asc&after_order_id={made[0]}"
        )
        assert (status, _ids(listed)) == (200, made[1:])
        both = f"after_order_id={made[0]}&before_order_id={made[2]}"
        for query in (both, f"after_order_id={made[0]}&until=2026-03-04T15:00:00Z"):
            status, refused, _ = await call(http, venue, "GET", f"/v2/orders?{query}")
            assert status == 422, query
            assert "code" in refused
