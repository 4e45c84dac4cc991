"""Every open order at the venue (or every order since an instant), page by page (ALPACA.md
§1.5).

`GET /v2/orders` answers at most 500 orders, and execd runs up to 4 plans × 500 legs, so a
single page can miss the oldest orders: the kill switch would leave them working, recovery
and the orphan sweeper would never see them. This is the one listing all three use, and
the order poll's snapshot (`list_orders_paged`: every status, since the oldest working
plan) too.

Pages go newest first (`direction=desc`); the next page starts just after the last order
of the page by its id (`after_order_id`, an exclusive cursor in the listing's order), so
orders sharing one submission instant — any number of them — are read in one pass. (Paging
by `until` timestamps could not pass more orders at one instant than a page holds.)
Orders are de-duplicated by id all the same. The listing ends on a short page; a full page
that adds no new id means the venue ignored the cursor, and a bound on the pages stops a
venue that never runs out. Either is logged as an error and the listing is marked
incomplete, as is a page that failed: the caller decides what a partial listing is worth
(the kill switch cancels what it has, recovery refuses to start).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from alpaca.trading.models import Order

from execd.adapters.budget import Priority
from execd.adapters.errors import AdapterError
from execd.adapters.rest import RestGateway

_log = structlog.get_logger("execd.adapters")

PAGE_LIMIT = 500
"""Alpaca's most orders per page (§1.5)."""
MAX_PAGES = 50
"""25,000 orders: far beyond execd's 2,000 working legs; past it the venue is not sane."""


@dataclass(frozen=True, slots=True)
class OpenOrders:
    """The open orders listed, newest first, and whether that is all of them."""

    orders: list[Order]
    complete: bool
    error: AdapterError | None = None
    """The failure of the page that ended the listing early, if one did."""


async def list_open_orders(
    rest: RestGateway,
    *,
    priority: Priority = Priority.READ,
    page_limit: int = PAGE_LIMIT,
    max_pages: int = MAX_PAGES,
) -> OpenOrders:
    """Every open order the venue lists, each once; see the module docstring. Each page
    queues at `priority` (the kill switch's at cancel priority). Never raises
    `AdapterError`: a failed page ends the listing with what was read so far."""
    return await list_orders_paged(
        rest, status="open", priority=priority, page_limit=page_limit, max_pages=max_pages
    )


async def list_orders_paged(
    rest: RestGateway,
    *,
    status: str,
    after: datetime | None = None,
    priority: Priority = Priority.READ,
    page_limit: int = PAGE_LIMIT,
    max_pages: int = MAX_PAGES,
    what: str = "open_orders",
) -> OpenOrders:
    """Every order in `status` ("open", "closed", "all") the venue lists, each once,
    submitted after `after` if given; `what` names the listing in the logs.

    The cursor cannot be combined with `after` (§1.5): the first page is asked with
    `after`, the next ones by cursor only, and the listing ends at the first order
    submitted at or before `after` (pages go newest first), which is left out."""
    seen: dict[str, Order] = {}
    cursor: str | None = None
    for page_number in range(1, max_pages + 1):
        try:
            page = await rest.list_orders(
                status=status,
                after=after if cursor is None else None,
                limit=page_limit,
                direction="desc",
                after_order_id=cursor,
                priority=priority,
            )
        except AdapterError as exc:
            _log.error(
                f"{what}_page_failed",
                page=page_number,
                listed=len(seen),
                error=repr(exc),
                hint="the listing is incomplete: older orders were not read",
            )
            return OpenOrders(list(seen.values()), complete=False, error=exc)
        kept = page if after is None else [o for o in page if not _at_or_before(o, after)]
        new = [o for o in kept if str(o.id) not in seen]
        seen.update((str(o.id), o) for o in new)
        if len(page) < page_limit or len(kept) < len(page):
            return OpenOrders(list(seen.values()), complete=True)
        if not new:
            _log.error(
                f"{what}_listing_stuck",
                page=page_number,
                listed=len(seen),
                after_order_id=cursor,
                hint="the venue answered the same page again: it ignored after_order_id",
            )
            return OpenOrders(list(seen.values()), complete=False)
        cursor = str(page[-1].id)
    _log.error(f"{what}_page_bound", pages=max_pages, listed=len(seen))
    return OpenOrders(list(seen.values()), complete=False)


def _at_or_before(order: Order, instant: datetime) -> bool:
    """Whether `order` was submitted at or before `instant` (the listing's own key)."""
    submitted = order.submitted_at or order.created_at
    return submitted is not None and submitted <= instant
