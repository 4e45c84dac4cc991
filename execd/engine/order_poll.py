"""Order state over REST while trade_updates is down, and the reconciliation after it.

The trade_updates stream has no replay (ALPACA.md §3.2): what happens to an order while
the socket is down is only known by asking. Two things ask (issue 5, "Stream recovery"):

* `OrderPoller.run`, a supervised task of the daemon: while `OrderStream.connected` is
  False and a leg is running, every `interval` seconds (stretched so that polling takes
  at most a quarter of the request budget, each page counted) it reads execd's orders
  with ``GET /v2/orders?status=all&after=…``, every page of it, and hands the snapshot
  to every running leg, which applies what changed (fills by cumulative quantity, so
  nothing counts twice) the next time it acts. It stops when the stream is back. Its
  reads are `Priority.READ` requests of the shared budget, so polling can never take
  the slots a cancel, replace or new order needs, nor exceed the account's rate.
* `reconcile_working_orders`, awaited by the engine when the stream reconnects and
  *before* the stream dispatches anything new: the same snapshot, so every leg has
  re-read its orders before it acts on a new event.

A leg whose order is missing from the snapshot (placed after it was taken, or older than
``after``) reads that order by client order id itself; a listing that could not be read
to its end is no snapshot (every leg reads its own orders).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Protocol, TypeAlias

import structlog

from execd.adapters.open_orders import PAGE_LIMIT, list_orders_paged
from execd.adapters.rest import Order, RestGateway
from execd.domain.ids import is_execd_order

_log = structlog.get_logger("execd.order_poll")

LOOKBACK = timedelta(minutes=1)
"""``after`` is this much before the oldest working plan was submitted (clock skew)."""

Snapshot: TypeAlias = Mapping[str, Order]
"""execd's orders as one ``GET /v2/orders`` saw them, by client order id."""

PAGE = PAGE_LIMIT
"""Alpaca's largest ``limit`` for ``GET /v2/orders`` (ALPACA.md §1.5)."""

MAX_PAGES = 20
"""10,000 orders: 2,000 legs with four re-pegs each. Past it the snapshot is given up
(the legs read their orders one by one) rather than polled for minutes."""

BUDGET_SHARE = 0.25
"""Polling never takes more than this share of the request budget: a poll interval set
shorter than that allows is stretched, so the legs' own reads (reconciliations, look-ups
that settle uncertain writes) still find slots."""


class WorkingLegs(Protocol):
    """What the poller asks of the engine."""

    def running_legs(self) -> int:
        """How many legs are running their ladder now."""
        ...

    def working_since(self) -> datetime | None:
        """Venue time the oldest unfinished plan was submitted (None: nothing works)."""
        ...

    def reconcile_legs(self, snapshot: Snapshot | None) -> None:
        """Ask every running leg to re-read its orders (from `snapshot` where it can)."""
        ...


class OrderStreamState(Protocol):
    """The part of `OrderStream` the poller watches."""

    @property
    def connected(self) -> bool: ...

    async def wait_connected(self) -> None: ...

    async def wait_disconnected(self) -> None: ...


async def read_snapshot(rest: RestGateway, legs: WorkingLegs, reason: str) -> Snapshot | None:
    """execd's orders since the oldest working plan, by client order id, every page of them.

    None when nothing is working, the venue could not be asked, or the listing could not
    be finished (a failed page, a venue ignoring the cursor, more than `MAX_PAGES` pages;
    logged): the legs then read their orders one by one, never from a partial snapshot.
    """
    since = legs.working_since()
    if since is None:
        return None
    listing = await list_orders_paged(
        rest, status="all", after=since - LOOKBACK, max_pages=MAX_PAGES, what="order_poll"
    )
    if not listing.complete:
        _log.warning("order_poll_failed", reason=reason, listed=len(listing.orders))
        return None
    orders = listing.orders
    snapshot = {str(o.client_order_id): o for o in orders if is_execd_order(str(o.client_order_id))}
    _log.info("order_poll_read", reason=reason, orders=len(snapshot), pages=pages(len(orders)))
    return snapshot


def pages(orders: int) -> int:
    """The requests a listing of `orders` orders takes (a full last page needs one more)."""
    return orders // PAGE + 1


async def reconcile_working_orders(
    rest: RestGateway, legs: WorkingLegs, reason: str, seconds: float, *, fallback: bool
) -> Snapshot | None:
    """Every running leg re-reads its orders from one snapshot, read within `seconds`
    seconds. Without a snapshot, `fallback` makes each leg read its orders by client
    order id (after a reconnect that must happen); otherwise nothing happens. Returns
    the snapshot (its size tells the poller how many pages it cost)."""
    if not legs.running_legs():
        return None
    snapshot: Snapshot | None = None
    try:
        async with asyncio.timeout(seconds):
            snapshot = await read_snapshot(rest, legs, reason)
    except TimeoutError:
        _log.warning("order_poll_timeout", reason=reason, seconds=seconds)
    if snapshot is not None or fallback:
        legs.reconcile_legs(snapshot)
    return snapshot


class OrderPoller:
    """The daemon task that polls while trade_updates is down; see the module docstring."""

    def __init__(
        self,
        stream: OrderStreamState,
        legs: WorkingLegs,
        rest: RestGateway,
        *,
        interval: float,
        timeout: float,
        requests_per_minute: int,
    ) -> None:
        self._stream = stream
        self._legs = legs
        self._rest = rest
        self._interval = max(interval, 60.0 / (requests_per_minute * BUDGET_SHARE))
        self._configured = interval
        self._timeout = timeout
        self.polls = 0

    async def run(self) -> None:
        """Poll during every outage of the stream; runs until cancelled."""
        while True:
            await self._stream.wait_disconnected()
            polled = await self._while_down()
            if polled:
                _log.info("order_poll_stopped", polls=polled)

    async def _while_down(self) -> int:
        polled = 0
        while not self._stream.connected:
            if self._legs.running_legs():
                if polled == 0:
                    _log.warning(
                        "order_poll_started",
                        interval=round(self._interval, 3),
                        configured_interval=self._configured,
                    )
                snapshot = await reconcile_working_orders(
                    self._rest, self._legs, "order_stream_down", self._timeout, fallback=False
                )
                polled += 1
                self.polls += 1
                # A listing of several pages spends as many requests: the wait stretches
                # with it, so polling keeps within its share of the budget.
                wait = self._interval * (1 if snapshot is None else pages(len(snapshot)))
            else:
                wait = self._interval
            try:
                async with asyncio.timeout(wait):
                    await self._stream.wait_connected()
            except TimeoutError:
                pass
        return polled
