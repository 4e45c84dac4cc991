"""One request budget for everything that calls Alpaca's trading REST API.

Alpaca allows 200 requests per minute per account, shared by every caller, and
answers 429 beyond it (ALPACA.md §0.4). execd keeps below that on its own (190 a
minute by default, leaving room for requests still in flight when a response's
headers were computed) and, when requests must wait, lets the important ones go
first: a waiting cancel always goes before a waiting replace, which goes before a plan
submit's validation read (within a bounded lead over the running plans' requests,
`validate_lead`: submits retried in a loop must not stall running legs), then a new order,
then any other read. A few slots (`cancel_reserve`) are kept for cancels alone, so that a
burst of new orders cannot make a cancel wait out the window, and a few more
(`read_reserve`) are never given to background reads: they keep new orders and re-pegs
from waiting out the window behind reads. A submit's validation reads may use them like
new orders, but only on their lead credit: once it is spent they wait behind the waiting
background read, which earns the credit back when the window slides (review 7: taking the
read reserve free let a refused-submit loop take 5 grants of 8 and left a running leg's
re-peg to wait out the window).

Two parts, in the sans-I/O style of STYLE.md:

- `BudgetLedger` (`budget_ledger.py`) — the pure accounting. It takes `now` (monotonic
  seconds) in every call, holds the waiting tickets per priority, a sliding window of grants, the
  venue's own view (``X-RateLimit-Remaining`` until ``X-RateLimit-Reset``) and a
  block after a 429. It never sleeps and is unit-tested with a fake clock.
- `RequestBudget` — the asyncio shell: one future per waiting request, woken when the
  ledger grants it, and one `loop.call_at` timer for the moment the next grant may
  become possible. No polling.

Use::

    async with budget.slot(Priority.CANCEL) as slot:
        response = await session.delete(...)
        slot.observe(response.status, response.headers)

A caller that may stop wanting its request while it waits (a leg whose plan is cancelled)
passes a `Withdrawal`: setting it takes the waiting request out of line at once
(`SendWithdrawn`), so a stopped leg neither waits for a grant only to send nothing nor
spends a slot the budget's pacing would give it. A request granted in the same instant is
not sent either, provided the caller checks `Withdrawal.is_set` between the grant and the
send (the gateway does); once sent, it is the caller's to cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Mapping

from execd.adapters.budget_ledger import (
    BudgetLedger,
    BudgetStatistics,
    Priority,
    parse_rate_limit_headers,
)
from execd.adapters.errors import SendExpired, SendWithdrawn

__all__ = [
    "BudgetLedger",
    "BudgetStatistics",
    "Priority",
    "QueuePlace",
    "RequestBudget",
    "Slot",
    "Withdrawal",
    "WriteLine",
    "parse_rate_limit_headers",
]


class QueuePlace:
    """A write's place in the budget's line, kept while it is asked again.

    A leg whose order was not sent because its pricing quote went stale while it waited
    prices it again and asks again with the same `QueuePlace`: it goes back to where it
    stood, not to the end of the line (`BudgetLedger.enqueue`). A new write gets a new one.
    """

    __slots__ = ("seniority",)

    def __init__(self) -> None:
        #: what the first `enqueue` returned (None: not queued yet).
        self.seniority: int | None = None


class WriteLine:
    """The places of one caller's successive writes in the budget's line (a leg's).

    `next_place` before each write; `expired` when the write was not sent because its
    pricing quote went stale in line: the next write (the same order, priced again) then
    gets the same `QueuePlace` and goes back where it stood. After any other end the next
    write is a new one and queues at the end.
    """

    __slots__ = ("_expired", "_place")

    def __init__(self) -> None:
        self._place = QueuePlace()
        self._expired = False

    def next_place(self) -> QueuePlace:
        """The place for the write about to be asked for."""
        if self._place.seniority is not None and not self._expired:
            self._place = QueuePlace()
        self._expired = False
        return self._place

    def expired(self) -> None:
        """The last write went stale in line, unsent: the next one keeps its place."""
        self._expired = True


class Withdrawal:
    """A caller's "I no longer want my queued requests sent", set once (a stopped leg).

    Synchronous, like everything on one event loop: `set` runs every hook at once, so a
    request is either still waiting (withdrawn, never sent) or already granted (the caller
    checks `is_set` before sending). There is no moment in between.
    """

    __slots__ = ("_hooks", "_set")

    def __init__(self) -> None:
        self._set = False
        self._hooks: dict[int, Callable[[], None]] = {}

    def is_set(self) -> bool:
        """True once `set` was called."""
        return self._set

    def set(self) -> None:
        """Withdraw every request waiting under this token, and all later ones."""
        if self._set:
            return
        self._set = True
        hooks, self._hooks = self._hooks, {}
        for hook in hooks.values():
            hook()

    def _watch(self, key: int, hook: Callable[[], None]) -> None:
        self._hooks[key] = hook

    def _unwatch(self, key: int) -> None:
        self._hooks.pop(key, None)


class Slot:
    """One granted request. Call `observe` with the response; the budget does the rest."""

    __slots__ = ("_budget", "_done", "_granted_at", "_priority", "_ticket", "penalty")

    def __init__(
        self, budget: RequestBudget, priority: Priority, granted_at: float, ticket: int
    ) -> None:
        self._budget = budget
        self._done = False
        self._priority = priority
        self._granted_at = granted_at
        self._ticket = ticket
        #: seconds to block everyone if this response is a 429 without a reset header.
        self.penalty = 1.0

    def unused(self) -> None:
        """Record that the request was never sent (a check right before the send refused
        it): the grant is given back whole, as if it had never been made."""
        if self._done:
            return
        self._done = True
        self._budget._unused(self._priority, self._granted_at, self._ticket)

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Record the response's status and rate-limit headers (once)."""
        if self._done:
            return
        self._done = True
        self._budget._complete(status, headers, self.penalty)

    def abandon(self) -> None:
        """Record a request that got no response (timeout, reset)."""
        if self._done:
            return
        self._done = True
        self._budget._complete(None, {}, self.penalty)


class RequestBudget:
    """The asyncio shell over `BudgetLedger`: await a slot, then report the response.

    `monotonic` and `wall` are injectable so that tests can drive a fake clock;
    the wake-up timer uses the event loop's clock, which is the monotonic one in
    production.
    """

    def __init__(
        self,
        limit: int = 190,
        *,
        window: float = 60.0,
        read_reserve: int = 10,
        cancel_reserve: int = 0,
        burst: int | None = None,
        monotonic: Callable[[], float] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._ledger = BudgetLedger(
            limit=limit,
            window=window,
            read_reserve=read_reserve,
            cancel_reserve=cancel_reserve,
            burst=burst,
        )
        self._monotonic = monotonic
        self._wall = wall
        self._futures: dict[int, asyncio.Future[float]] = {}
        #: each waiting ticket's `send_by` and priority (`slot`).
        self._send_by: dict[int, tuple[float, Priority]] = {}
        self._tickets = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    def _now(self) -> float:
        if self._monotonic is not None:
            return self._monotonic()
        return asyncio.get_running_loop().time()

    @contextlib.asynccontextmanager
    async def slot(
        self,
        priority: Priority,
        withdraw: Withdrawal | None = None,
        place: QueuePlace | None = None,
        send_by: float | None = None,
    ) -> AsyncIterator[Slot]:
        """Wait for a grant at `priority`; the body performs exactly one request.

        Raises `SendWithdrawn` instead of granting once `withdraw` is set (at once if it
        already is); the body itself must check `withdraw.is_set()` right before sending.
        `place`: queue where this request first queued (`QueuePlace`). `send_by` (the
        budget's clock, the loop's in production): a grant that comes at or after it is
        given back in the same instant and `SendExpired` raised, the body never run — its
        pricing quote went stale in line, and a grant handed to a waiter only to come back
        unsent lost part of its token to the pacing while the waiter woke.
        """
        ticket, granted_at = await self._acquire_ticket(priority, withdraw, place, send_by)
        slot = Slot(self, priority, granted_at, ticket)
        try:
            yield slot
        finally:
            slot.abandon()

    def statistics(self) -> BudgetStatistics:
        """Remaining requests, in flight, waiting per priority (for `health`)."""
        return self._ledger.statistics(self._now())

    async def _acquire(self, priority: Priority, withdraw: Withdrawal | None = None) -> float:
        """Wait for the ledger to grant a ticket; the grant's time."""
        return (await self._acquire_ticket(priority, withdraw))[1]

    async def _acquire_ticket(
        self,
        priority: Priority,
        withdraw: Withdrawal | None = None,
        place: QueuePlace | None = None,
        send_by: float | None = None,
    ) -> tuple[int, float]:
        """Wait for the ledger to grant a ticket; the ticket and the grant's time (for
        `Slot.unused`)."""
        if withdraw is not None and withdraw.is_set():
            raise SendWithdrawn(f"{priority.name} request withdrawn before it queued")
        ticket = next(self._tickets)
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._futures[ticket] = future
        seniority = self._ledger.enqueue(
            ticket, priority, None if place is None else place.seniority
        )
        if place is not None:
            place.seniority = seniority
        if send_by is not None:
            self._send_by[ticket] = (send_by, priority)
        if withdraw is not None:
            withdraw._watch(ticket, lambda: self._withdraw(ticket, priority))
        self._pump()
        try:
            return ticket, await future
        except asyncio.CancelledError:
            self._futures.pop(ticket, None)
            granted = (
                future.done() and not future.cancelled() and future.exception() is None
            )  # not a withdrawal's `SendWithdrawn`: the cancellation must propagate
            if not self._ledger.withdraw(ticket) and granted:
                # Granted just as we were cancelled: give the grant back as unused.
                self._ledger.unused(self._now(), future.result(), priority, ticket)
            self._pump()
            raise
        finally:
            self._send_by.pop(ticket, None)
            if withdraw is not None:
                withdraw._unwatch(ticket)

    def _withdraw(self, ticket: int, priority: Priority) -> None:
        """`Withdrawal.set` for a waiting ticket: out of line, its waiter told at once.

        A ticket already granted is left alone: its waiter checks the withdrawal before it
        sends (and gives the grant back unused), or it was sent and is the caller's to
        cancel."""
        if not self._ledger.withdraw(ticket):
            return
        future = self._futures.pop(ticket, None)
        if future is not None and not future.done():
            future.set_exception(SendWithdrawn(f"{priority.name} request withdrawn in line"))
        self._pump()

    def _unused(self, priority: Priority, granted_at: float, ticket: int) -> None:
        self._ledger.unused(self._now(), granted_at, priority, ticket)
        self._pump()

    def _complete(self, status: int | None, headers: Mapping[str, str], penalty: float) -> None:
        now = self._now()
        remaining, reset_at = parse_rate_limit_headers(headers, wall_now=self._wall(), mono_now=now)
        self._ledger.complete(
            now,
            remaining=remaining,
            reset_at=reset_at,
            rate_limited=status == 429,
            penalty=penalty,
        )
        self._pump()

    def _pump(self) -> None:
        """Grant what can be granted now and arm one timer for the next possibility."""
        now = self._now()
        granted = self._ledger.grant(now)
        while granted:
            expired = False
            for ticket in granted:
                future = self._futures.pop(ticket, None)
                if future is None or future.done():
                    # Its waiter is gone: return the slot unused. (Unreachable while
                    # `_acquire` withdraws its ticket on every exit; the ledger's safety net.)
                    self._ledger.complete(now)
                    continue
                deadline = self._send_by.pop(ticket, None)
                if deadline is not None and now >= deadline[0]:
                    # Stale in line: given back whole, in the instant it was granted.
                    self._ledger.unused(now, now, deadline[1], ticket)
                    future.set_exception(
                        SendExpired(f"{deadline[1].name} request: its quote went stale in line")
                    )
                    expired = True
                    continue
                future.set_result(now)
            granted = self._ledger.grant(now) if expired else []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        wake = self._ledger.next_change(now)
        if wake is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(loop.time() + max(0.0, wake - now), self._pump)
