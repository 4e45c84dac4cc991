"""The engine's reads and sweeps of the venue that are not a leg's: the trading calendar
and the cancellation of execd's own open orders (halt, journal failure, shutdown).

Kept apart from `core.Engine` so that the engine's plan lifecycle reads on its own; each
function takes the REST gateway and returns data, logging only what it could not do.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import structlog
from alpaca.trading.models import Order

from execd.adapters.budget import Priority
from execd.adapters.errors import AdapterError
from execd.adapters.open_orders import list_open_orders
from execd.adapters.rest import RestGateway
from execd.domain.calendar import TradingSession
from execd.domain.ids import is_execd_order
from execd.domain.order_state import is_live_status
from execd.engine.orphans import Orphan, listed_orders

_log = structlog.get_logger("execd.engine")

HALT_LISTINGS = 3
"""Listings the kill switch makes when one ends early (each cancels what it read)."""
HALT_RELIST_PAUSE = 0.5
"""Seconds between listings, for the cancels just sent to land."""
HALT_RETRY_SECONDS = 5.0
"""How long (monotonic) the kill switch keeps listing again while a cancel it sent failed for
an order in a settled status (any failure: sent again to what the next listing still shows).
Past it the orders still refused are logged at error."""
HALT_RETRY_PAUSE_MAX = 2.0
"""The longest pause between listings while cancels are refused: past `HALT_RETRY_SECONDS`
the pause doubles from `HALT_RELIST_PAUSE`, so a venue slow to settle a replace costs a few
requests, not two a second for the whole deadline (out of the budget the cancels share)."""
UNSETTLED_STATUSES = frozenset({"pending_replace", "pending_cancel", "pending_new"})
"""Live statuses that end by themselves: an order in `pending_replace` refuses a cancel
until its replace resolves (ALPACA.md §1.7), and may then still be working (the replacement
rejected). A cancel refused in one of these is sent again until the caller's deadline
(`until`), however slow the venue is to settle it, not only for `HALT_RETRY_SECONDS`."""


async def session_on(rest: RestGateway, day: date) -> TradingSession | None:
    """The session of `day` from the venue's calendar (half days included); None when the
    market is closed that day."""
    for entry in await rest.calendar(day, day + timedelta(days=1)):
        session = TradingSession.from_alpaca(_calendar_entry(entry))
        if session.date == day:
            return session
    return None


async def sessions_from(
    rest: RestGateway, today: date, priority: Priority = Priority.READ
) -> list[TradingSession]:
    """The venue's sessions from `today` for two weeks (the next one is always in it).
    Raises `AdapterError` when the calendar cannot be read. `priority`: a plan submit's
    read queues as `Priority.VALIDATE`."""
    days = await rest.calendar(today, today + timedelta(days=14), priority=priority)
    return [TradingSession.from_alpaca(_calendar_entry(day)) for day in days]


@dataclass
class Sweep:
    """What a sweep of execd's open orders did, for the halt's answer."""

    canceled: int = 0
    """Cancels the sweep sent and the venue accepted, and orders left to a stopped leg that
    then left the open list: each order once."""
    still_working: dict[str, str] = field(default_factory=dict)
    """Client order id -> status of the orders whose cancels were refused to the end."""
    listing_failed: bool = False
    """No listing of the venue's open orders was complete: execd orders may be working
    that the sweep never saw."""


async def cancel_open_execd_orders(rest: RestGateway, *, until: float | None = None) -> int:
    """`sweep_open_execd_orders`, answering only how many it cancelled."""
    return (await sweep_open_execd_orders(rest, until=until)).canceled


async def sweep_open_execd_orders(
    rest: RestGateway,
    *,
    until: float | None = None,
    owned: Callable[[str], bool] | None = None,
) -> Sweep:
    """Cancel every open order whose client id execd generated, and nothing else (LESSONS:
    an account-wide "clean book" kills orders execd did not place).

    `owned(client_order_id)`: True for an order a live leg is cancelling itself (a halt
    stopped it): the sweep sends it no DELETE of its own (one cancel per order out of the
    budget the cancels share) and lists again until the leg has done so, as long as
    `until` allows; an order still working at the end is in `still_working` either way.

    Open means every status that is not terminal (`is_live_status`), not a list of the
    statuses execd expects. The listing is paged (more than one page of 500 orders may be
    open) and queues as a cancel: behind a backlog of new orders a read waits for the
    window to roll (up to a minute), and the kill switch must not. It lists again, after a
    pause for the cancels just sent to land, while
    - a listing ended early (a failed page, the page bound): what it read was cancelled,
      loudly, and left the open list, so the next listing reaches further (at most
      `HALT_LISTINGS` such listings);
    - a cancel failed: it is sent again to what the next listing still shows, for
      `HALT_RETRY_SECONDS` after the first failure, or — while an order is live but
      unsettled (`UNSETTLED_STATUSES`: a replace pending refuses a cancel) — until
      `until` (the caller's deadline, on the loop's monotonic clock; None: the same
      `HALT_RETRY_SECONDS`). The orders still refused then are named at error
      (`halt_cancels_refused`, with each one's status);
    - a complete listing cancelled something: pages go newest first, so an order that
      landed while the listing paged (a leg's POST in flight when halt came) is above
      its first page and no later page shows it. Halt is done only after a listing that
      found nothing new to cancel (at most `HALT_LISTINGS` listings that cancelled
      something; past it, orders still appearing are logged at error).

    The count is of cancels halt sent and the venue accepted, each order once, plus the
    orders left to a leg that then left the open list (one that filled instead is counted
    too: the listing cannot tell); the orders
    still refused at the end and whether no listing was complete are in the `Sweep`."""
    canceled = 0
    tried: set[str] = set()
    sent_to: set[str] = set()  # ids a cancel was sent to (in `tried` once accepted)
    incomplete = 0
    cancelling = 0  # complete listings that cancelled something
    any_complete = False
    loop = asyncio.get_running_loop()
    first_failure: float | None = None
    pause = HALT_RELIST_PAUSE  # doubles while cancels are refused past HALT_RETRY_SECONDS
    # The legs a halt stopped cancel their own orders: a leg that has not within this
    # (a hung leg, its cancel lost) gets the sweep's DELETE, a second one but no order left.
    defer_until = loop.time() + HALT_RETRY_SECONDS
    if until is not None:
        defer_until = min(defer_until, until)
    still: dict[str, str] = {}  # client order id -> status, of the last listing
    left_to_legs: set[str] = set()  # client order ids a stopped leg was cancelling
    swept: set[str] = set()  # client order ids the sweep's own cancel was accepted for
    for listing_number in itertools.count(1):
        listing = await list_open_orders(rest, priority=Priority.CANCEL)
        any_complete = any_complete or listing.complete
        fresh = [o for o in listing.orders if _cancellable(o) and str(o.id) not in tried]
        deferring = owned is not None and loop.time() < defer_until
        deferred = {
            str(o.client_order_id): str(o.status.value)
            for o in fresh
            if deferring and owned is not None and owned(str(o.client_order_id))
        }
        fresh = [o for o in fresh if str(o.client_order_id) not in deferred]
        left_to_legs.update(deferred)
        failed: dict[str, str] = {}  # client order id -> status when refused
        unsent: dict[str, str] = {}  # past the deadline: not sent at all
        sent = 0
        for order in fresh:
            # Past the deadline a first cancel is not sent (thousands of orders must not
            # keep the answer past the CLI's wait); a refused one gets its last try.
            if until is not None and loop.time() >= until and str(order.id) not in sent_to:
                unsent[str(order.client_order_id)] = str(order.status.value)
                continue
            sent_to.add(str(order.id))
            try:
                await rest.cancel_order(str(order.id))
            except AdapterError as exc:  # sent again if the next listing still shows it
                failed[str(order.client_order_id)] = str(order.status.value)
                _log.warning(
                    "halt_cancel_failed",
                    client_order_id=str(order.client_order_id),
                    status=str(order.status.value),
                    error=str(exc),
                )
                continue
            sent += 1
            tried.add(str(order.id))
            swept.add(str(order.client_order_id))
        still = {**deferred, **failed, **unsent}
        if unsent:
            _log.error(
                "halt_deadline_reached",
                orders=len(unsent),
                hint="execd orders are still working: check the venue",
            )
        canceled += sent
        again = False
        if not listing.complete:
            incomplete += 1
            _log.error(
                "halt_listing_incomplete",
                listing=listing_number,
                listings=HALT_LISTINGS,
                canceled=canceled,
                error=repr(listing.error) if listing.error else None,
                hint="execd orders may still be working: check the venue",
            )
            # Nothing new to cancel and no failure: a further listing reads the same.
            again = incomplete < HALT_LISTINGS and (bool(fresh) or listing.error is not None)
        retry_until: float | None = None
        if failed:
            first_failure = loop.time() if first_failure is None else first_failure
            retry_until = _retry_until(first_failure, until, set(failed.values()))
            if loop.time() < retry_until:
                again = True
            else:
                _log.error(
                    "halt_cancels_refused",
                    orders=failed,
                    client_order_ids=list(failed),
                    seconds=round(loop.time() - first_failure, 1),
                    hint="these execd orders may still be working: check the venue",
                )
        if listing.complete and sent:
            cancelling += 1
            if cancelling < HALT_LISTINGS:
                again = True
            elif not again:
                _log.error(
                    "halt_orders_kept_appearing",
                    listings=listing_number,
                    canceled=canceled,
                    hint="execd orders may still be working: check the venue",
                )
        if deferred and loop.time() < defer_until and not unsent:
            again = True  # confirm the legs' own cancels (or send ours past defer_until)
        if unsent or not again:
            break
        # A cancel is accepted at once and lands a moment later (§1.8), a replace resolves
        # a moment later (§1.7): give them that moment before the next listing. A venue
        # slow to settle gets longer pauses (never past the deadline: one last listing
        # then).
        wait = HALT_RELIST_PAUSE
        if retry_until is not None and first_failure is not None:
            if loop.time() - first_failure >= HALT_RETRY_SECONDS:  # a slow venue
                pause = min(pause * 2, HALT_RETRY_PAUSE_MAX)
                wait = pause
            wait = max(0.0, min(wait, retry_until - loop.time()))
        await asyncio.sleep(wait)
    by_legs = len(left_to_legs - swept - still.keys())  # left the open list meanwhile
    canceled += by_legs
    _log.warning("halt_orders_canceled", count=canceled, by_legs=by_legs)
    return Sweep(canceled=canceled, still_working=still, listing_failed=not any_complete)


def _retry_until(first_failure: float, until: float | None, statuses: set[str]) -> float:
    """Until when (loop time) refused cancels are sent again: the caller's deadline while
    one of the orders is live but unsettled, else `HALT_RETRY_SECONDS` (never past the
    deadline)."""
    settled_bound = first_failure + HALT_RETRY_SECONDS
    if until is None:
        return settled_bound
    if statuses & UNSETTLED_STATUSES:
        return until
    return min(until, settled_bound)


def _cancellable(order: Order) -> bool:
    """execd's, and in any status that is not terminal."""
    return is_execd_order(str(order.client_order_id)) and is_live_status(str(order.status.value))


def _calendar_entry(day: Any) -> dict[str, str]:
    """alpaca-py's `Calendar` model back to Alpaca's wire shape for `TradingSession`."""
    return {
        "date": day.date.isoformat(),
        "open": day.open.strftime("%H:%M"),
        "close": day.close.strftime("%H:%M"),
    }


async def list_open_orphans(rest: RestGateway) -> list[Orphan]:
    """Every open order, as the orphan sweeper's first pass describes them (`ListOpen`).

    A page that failed raises its error (the sweeper lists again, a bounded number of
    times); a listing that cannot go further (more orders at one instant than a page
    holds, the page bound) is logged as an error and swept as far as it reached."""
    listing = await list_open_orders(rest)
    if listing.error is not None:
        raise listing.error
    return listed_orders(listing.orders)
