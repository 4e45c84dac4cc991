"""Cancels live execd orders that no running leg owns, while the daemon runs.

Why: a leg that stops while its place is uncertain looks the order up by client id; a
404 ends the leg ``not_sent``. If the first POST was still in flight it lands *after*
the look-up, and a live order exists that nobody watches — it may fill, an order the
user did not ask for. Recovery only cancels such orphans at the next start; this
sweeper cancels them as soon as their first trade_updates event arrives unrouted.

Rules (LESSONS: only touch execd's own orders):
- only an order whose client order id parses as execd's (`parse_client_order_id`);
  another app's order on the same account is never touched;
- only a live one: an event whose order status is terminal (a leg's own late
  ``canceled`` or ``fill`` after it unregistered) is ignored;
- an order a registered leg owns is routed, never offered; the sweeper checks again
  just before the DELETE (`owned`), so a leg registered meanwhile keeps its order;
- once per order id, whatever the number of its events; a failed cancel is logged at
  error and retried a bounded number of times (a 422 counts as done only for a terminal
  state: ``pending_replace`` is live and retried);
- an order whose events went to its leg (routed) is remembered while live (`watch`) and
  offered when that leg unregisters (`released`): a write whose outcome was lost can land
  while its leg still owns the client order id, yet the leg never learns of it (review 6).

`offer` runs on the order stream's dispatch path: it never blocks (a bounded queue; a
full queue is logged at error and the order left to the next event or to recovery).
`run` is the supervised task that sends the cancels (at cancel priority).

The first pass: recovery lists the open orders and claims or cancels each, but the
sweeper is switched on only after it. An orphan that lands in between (its events arrive
while the sweeper is off, and a resting order may send no other) would stay live until
the next start. So the daemon, right after `activate` and before it reports ready, has
`first_pass` sweep a fresh listing of open orders (`list_open`); events arriving
meanwhile are queued and deduplicated as usual. The listing is retried a bounded number
of times; a failure leaves the gap to the next start, logged at error.

`statistics()` feeds the metrics (orphans found, cancelled, failed to cancel).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import structlog
from alpaca.trading.models import Order

from execd.adapters.errors import NotFound, VenueRefused
from execd.adapters.wire import TradeUpdate
from execd.domain.ids import parse_client_order_id, plan_key
from execd.domain.order_state import TERMINAL_STATUSES

_log = structlog.get_logger(__name__)

QUEUE_SIZE = 256
CANCEL_ATTEMPTS = 3
WHY = "live execd order that no running leg owns (a place that landed after its leg ended)"

#: `cancel(order_id)`: the gateway's DELETE at cancel priority; raises on failure.
Cancel = Callable[[str], Awaitable[None]]
#: `owned(client_order_id)`: True while a registered leg owns the order.
Owned = Callable[[str], bool]

_TERMINAL = frozenset(s.value for s in TERMINAL_STATUSES)


@dataclass(frozen=True, slots=True)
class Orphan:
    """One order to cancel, as its unrouted event described it."""

    client_order_id: str
    order_id: str
    symbol: str
    status: str


#: `list_open()`: the open orders as the venue lists them now (the first pass).
ListOpen = Callable[[], Awaitable[Iterable[Orphan]]]


def listed_orders(orders: Iterable[Order]) -> list[Orphan]:
    """The venue's order objects as the sweeper describes them (for `ListOpen`)."""
    return [
        Orphan(
            str(o.client_order_id),
            str(o.id),
            o.symbol or "",
            str(o.status.value if o.status is not None else ""),
        )
        for o in orders
    ]


@dataclass(frozen=True, slots=True)
class OrphanStatistics:
    """Counts since start, for the metrics."""

    found: int
    """Live execd orders no leg owned when their cancel was due (events or first pass)."""
    canceled: int
    failed: int
    """Orphans still live after every cancel attempt (left to the next start)."""


class OrphanSweeper:
    """Bounded queue of orphan orders plus the task that cancels them."""

    def __init__(
        self,
        cancel: Cancel,
        owned: Owned,
        *,
        list_open: ListOpen | None = None,
        attempts: int = CANCEL_ATTEMPTS,
        retry_delay: float = 0.5,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self._cancel = cancel
        self._owned = owned
        self._list_open = list_open
        self._attempts = max(1, attempts)
        self._retry_delay = retry_delay
        self._queue: asyncio.Queue[Orphan] = asyncio.Queue(queue_size)
        self._seen: set[str] = set()
        # (plan key, leg index) -> order id -> the order as its last live event described it
        self._watched: dict[tuple[str, int], dict[str, Orphan]] = {}
        self._active = False
        self.found = 0
        self.canceled = 0
        self.failed = 0

    def statistics(self) -> OrphanStatistics:
        """What the sweeper did since start (a cheap read, for a metrics scrape)."""
        return OrphanStatistics(self.found, self.canceled, self.failed)

    def activate(self) -> None:
        """Start offering (after recovery: until then a resumed plan's orders arrive
        unrouted before their legs register, and recovery itself sweeps orphans); then
        `first_pass` (see the module docstring)."""
        self._active = True

    def deactivate(self) -> None:
        """Stop offering: a shutdown that leaves working orders for the next start to
        adopt unregisters their legs on purpose."""
        self._active = False

    def watch(self, update: TradeUpdate) -> None:
        """Every trade_updates event (routed or not): remember execd's live orders by leg,
        forget them once terminal. O(1), never blocks (the stream's dispatch path)."""
        parts = parse_client_order_id(update.client_order_id)
        if parts is None:
            return
        key = (parts.plan_key, parts.leg_index)
        order = update.order
        if order.status in _TERMINAL:
            orders = self._watched.get(key)
            if orders is not None:
                orders.pop(order.id, None)
                if not orders:
                    del self._watched[key]
            return
        self._watched.setdefault(key, {})[order.id] = Orphan(
            update.client_order_id, order.id, order.symbol or "", order.status
        )

    def released(self, plan_id: str, leg_index: int) -> None:
        """A leg unregistered (the router's `on_unregister`): offer every order of it the
        stream last saw live. Its events went to the leg, never to `on_unrouted`, so a
        replacement or place that landed while the leg did not know of it (a lost write
        whose look-up said 404) would otherwise stay working unwatched (review 6). The
        sweep's `owned` check still spares an order a leg claims again."""
        for orphan in self._watched.pop((plan_key(plan_id), leg_index), {}).values():
            self.offer(orphan.client_order_id, orphan.order_id, orphan.symbol, orphan.status)

    def watched(self) -> int:
        """How many live execd orders the sweeper remembers (for tests and metrics)."""
        return sum(len(orders) for orders in self._watched.values())

    def on_unrouted(self, update: TradeUpdate) -> None:
        """The order stream's `on_unrouted` hook."""
        order = update.order
        self.offer(update.client_order_id, order.id, order.symbol or "", order.status)

    def offer(self, client_order_id: str, order_id: str, symbol: str, status: str) -> bool:
        """Queue the order for a cancel if it is execd's, live and new to the sweeper.

        Never blocks. True when queued.
        """
        if not self._active or not self._candidate(client_order_id, order_id, status):
            return False
        try:
            self._queue.put_nowait(Orphan(client_order_id, order_id, symbol, status))
        except asyncio.QueueFull:
            _log.error(
                "orphan_queue_full",
                client_order_id=client_order_id,
                order_id=order_id,
                symbol=symbol,
                status=status,
            )
            return False  # not marked seen: its next event offers it again
        self._seen.add(order_id)
        return True

    async def run(self) -> None:
        """Cancel queued orphans forever (ends only by cancellation)."""
        while True:
            await self.sweep_one()

    async def first_pass(self) -> None:
        """Cancel every live execd orphan of a fresh listing (the gap between recovery's
        listing and `activate`). Swept here in turn, not queued: a listing may hold more
        orders than the queue (the events' path) has room for."""
        if self._list_open is None or not self._active:
            return
        listed = await self._listing()
        if listed is None:
            return
        found = 0
        for orphan in listed:
            if not self._active:
                return  # a leave-shutdown began: its legs unregister on purpose
            if not self._candidate(orphan.client_order_id, orphan.order_id, orphan.status):
                continue
            if self._owned(orphan.client_order_id):
                continue  # a resumed leg's order: not marked seen, its leg may yet end
            self._seen.add(orphan.order_id)
            found += 1
            await self._sweep(orphan)
        _log.info("orphan_first_pass_done", listed=len(listed), orphans=found)

    async def _listing(self) -> list[Orphan] | None:
        for attempt in range(1, self._attempts + 1):
            assert self._list_open is not None
            try:
                return list(await self._list_open())
            except Exception as exc:  # logged with context; bounded retries
                _log.error(
                    "orphan_listing_failed",
                    attempt=attempt,
                    attempts=self._attempts,
                    error=repr(exc),
                    hint="an orphan placed during recovery is left to the next start",
                )
            if attempt < self._attempts:
                await asyncio.sleep(self._retry_delay * attempt)
        return None

    def _candidate(self, client_order_id: str, order_id: str, status: str) -> bool:
        """execd's, live, and new to the sweeper."""
        if parse_client_order_id(client_order_id) is None:
            return False
        return status not in _TERMINAL and bool(order_id) and order_id not in self._seen

    async def sweep_one(self) -> None:
        """Wait for the next queued orphan and cancel it (or give up, logged)."""
        await self._sweep(await self._queue.get())

    async def _sweep(self, orphan: Orphan) -> None:
        if self._owned(orphan.client_order_id):
            _log.info(
                "orphan_order_claimed",
                client_order_id=orphan.client_order_id,
                order_id=orphan.order_id,
            )
            # Forgotten: should its leg end while it is live, its next event offers it.
            self._seen.discard(orphan.order_id)
            return
        self.found += 1
        described = {
            "client_order_id": orphan.client_order_id,
            "order_id": orphan.order_id,
            "symbol": orphan.symbol,
            "status": orphan.status,
        }
        for attempt in range(1, self._attempts + 1):
            try:
                await self._cancel(orphan.order_id)
            except Exception as exc:  # logged with context; bounded retries
                if _already_dead(exc):
                    _log.info(
                        "orphan_order_already_done",
                        client_order_id=orphan.client_order_id,
                        order_id=orphan.order_id,
                        error=repr(exc),
                    )
                    return
                _log.error(
                    "orphan_order_cancel_failed",
                    **described,
                    attempt=attempt,
                    attempts=self._attempts,
                    error=repr(exc),
                )
                if attempt < self._attempts:
                    await asyncio.sleep(self._retry_delay * attempt)
                continue
            self.canceled += 1
            _log.warning("orphan_order_canceled", **described, why=WHY)
            return
        self.failed += 1


_ALREADY_IN = re.compile(r'already in "([a-z_]+)" state')


def _already_dead(exc: Exception) -> bool:
    """A refusal because the order is already terminal (filled, cancelled, replaced…), or
    unknown: nothing to do. Any other 422 — ``order is already in "pending_replace"
    state`` (such an order rejects cancels, ALPACA.md §1.7) or a text we do not know — is
    an order still live: retried later, not forgotten (review 6)."""
    if isinstance(exc, NotFound):
        return True
    if not isinstance(exc, VenueRefused) or exc.status != 422:
        return False
    state = _ALREADY_IN.search(exc.message)
    return state is not None and state.group(1) in _TERMINAL
