"""Review 8: the kill switch's paged listing against orders that appear while it pages.

The open-order listing pages newest first (`direction=desc`, `after_order_id` cursor): each
next page reaches *older* orders. An execd order that lands at the venue after the first
page was read (a leg's POST or PATCH in flight when `execd halt` arrived) is newer than
every order of page one, so no later page of that listing can show it. The kill switch
lists again only when a listing ended early or a cancel failed, so after a complete,
clean first listing it reports "halted" with that order still working. The venue's own
order list is the judge; the orders are placed through its exchange directly, as in
tests/engine/test_open_orders_paging.py (whose fixtures this file reuses).
"""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from execd.adapters.rest import RestGateway
from execd.engine.venue_reads import HALT_LISTINGS, cancel_open_execd_orders
from execd.sim.venue import SimVenue
from tests.engine.test_open_orders_paging import _execd, _open_cids, _place, rest, venue

__all__ = ["rest", "venue"]  # the fixtures, re-exported for pytest


async def test_an_execd_order_landing_mid_listing_is_cancelled_by_halt(
    venue: SimVenue, rest: RestGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """600 open execd orders (two pages); a leg's order lands at the venue just as the
    kill switch asks for the second page. After halt returns, no execd order works."""
    for n in range(600):
        _place(venue, _execd(n))
    listings = venue.exchange.list_orders
    landed: list[str] = []

    def an_order_lands_between_pages(**kwargs: Any) -> list[dict[str, Any]]:
        if kwargs.get("after_order_id") is not None and not landed:
            landed.append(_place(venue, _execd(900)))
        return listings(**kwargs)

    monkeypatch.setattr(venue.exchange, "list_orders", an_order_lands_between_pages)
    canceled = await cancel_open_execd_orders(rest)
    monkeypatch.setattr(venue.exchange, "list_orders", listings)
    assert landed, "the second page was never asked for"
    assert _open_cids(venue) == set(), "execd orders still working after halt"
    assert canceled == 601, "each order counted once"


async def test_orders_that_keep_appearing_end_halt_at_its_bound_loudly(
    venue: SimVenue, rest: RestGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new execd order lands before every listing (a runaway leg): halt stops after
    `HALT_LISTINGS` listings that cancelled something, says so at error, and counts each
    order it cancelled once."""
    listings = venue.exchange.list_orders
    landed: list[str] = []

    def an_order_lands_before_each_listing(**kwargs: Any) -> list[dict[str, Any]]:
        if kwargs.get("after_order_id") is None:
            landed.append(_place(venue, _execd(len(landed))))
        return listings(**kwargs)

    monkeypatch.setattr(venue.exchange, "list_orders", an_order_lands_before_each_listing)
    with capture_logs() as logs:
        canceled = await cancel_open_execd_orders(rest)
    monkeypatch.setattr(venue.exchange, "list_orders", listings)
    assert len(landed) == HALT_LISTINGS
    assert canceled == HALT_LISTINGS
    kept = [e for e in logs if e["event"] == "halt_orders_kept_appearing"]
    assert [e["log_level"] for e in kept] == ["error"]


async def test_a_cursor_order_that_ended_between_pages_still_pages_on(
    venue: SimVenue, rest: RestGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression guard: the last order of page one (the cursor) is cancelled before the
    second page is asked for; the listing still reaches every older order."""
    ids = [_place(venue, _execd(n)) for n in range(600)]
    listings = venue.exchange.list_orders
    ended: list[str] = []

    def cursor_ends(**kwargs: Any) -> list[dict[str, Any]]:
        cursor = kwargs.get("after_order_id")
        if cursor is not None and not ended:
            venue.exchange.cancel_order(cursor)
            venue.exchange.advance(1.0)
            ended.append(cursor)
        return listings(**kwargs)

    monkeypatch.setattr(venue.exchange, "list_orders", cursor_ends)
    canceled = await cancel_open_execd_orders(rest)
    monkeypatch.setattr(venue.exchange, "list_orders", listings)
    assert ended
    assert ended[0] in ids
    assert canceled >= 599  # the cursor's own cancel may be counted again
    assert _open_cids(venue) == set()
