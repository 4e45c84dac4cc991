"""The request budget: pure accounting with a fake clock, then the asyncio shell."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.adapters.budget import (
    BudgetLedger,
    Priority,
    RequestBudget,
    Withdrawal,
    parse_rate_limit_headers,
)
from execd.adapters.errors import SendWithdrawn

from .conftest import wait_until


def test_grants_up_to_the_limit_then_waits_for_the_window() -> None:
    """190 a minute: the 191st waits until the first grant leaves the sliding window."""
    ledger = BudgetLedger(limit=3, window=60.0, read_reserve=0)
    for ticket in range(4):
        ledger.enqueue(ticket, Priority.NEW_ORDER)
    assert ledger.grant(0.0) == [0, 1, 2]
    assert ledger.grant(30.0) == []
    assert ledger.next_change(30.0) == 60.0
    assert ledger.grant(60.0) == [3]


def test_waiting_cancel_goes_before_waiting_read() -> None:
    """Whatever the arrival order, a cancel beats a replace beats a submit's validation
    read beats a new order beats a read."""
    ledger = BudgetLedger(limit=1, window=10.0, read_reserve=0)
    ledger.enqueue(0, Priority.READ)
    assert ledger.grant(0.0) == [0]
    ledger.complete(0.1)
    ledger.enqueue(1, Priority.READ)
    ledger.enqueue(2, Priority.NEW_ORDER)
    ledger.enqueue(5, Priority.VALIDATE)
    ledger.enqueue(3, Priority.REPLACE)
    ledger.enqueue(4, Priority.CANCEL)
    order = []
    for t in (10.0, 20.0, 30.0, 40.0, 50.0):
        granted = ledger.grant(t)
        order += granted
        for _ in granted:
            ledger.complete(t)
    assert order == [4, 3, 5, 2, 1]


def test_a_validation_read_may_use_the_read_reserve() -> None:
    """The slots kept from background reads are not kept from a submit's validation reads
    (a user waits for them); the cancels' reserve is kept from them like from new orders."""
    ledger = BudgetLedger(limit=4, window=60.0, read_reserve=1, cancel_reserve=1)
    ledger.enqueue(0, Priority.NEW_ORDER)
    ledger.enqueue(1, Priority.READ)
    assert ledger.grant(0.0) == [0, 1]
    ledger.enqueue(2, Priority.READ)
    ledger.enqueue(3, Priority.VALIDATE)
    ledger.enqueue(4, Priority.VALIDATE)
    assert ledger.grant(1.0) == [3]  # 2 left: 1 for cancels, the other not for reads
    ledger.enqueue(5, Priority.CANCEL)
    assert ledger.grant(2.0) == [5]


def test_fifo_within_a_priority() -> None:
    """Two waiting cancels go in the order they arrived."""
    ledger = BudgetLedger(limit=5, read_reserve=0)
    ledger.enqueue(7, Priority.CANCEL)
    ledger.enqueue(3, Priority.CANCEL)
    assert ledger.grant(0.0) == [7, 3]


def test_read_reserve_keeps_room_for_cancels() -> None:
    """Reads stop `read_reserve` short of the limit; a cancel may still use those slots."""
    ledger = BudgetLedger(limit=5, read_reserve=2)
    for ticket in range(5):
        ledger.enqueue(ticket, Priority.READ)
    assert ledger.grant(0.0) == [0, 1, 2]
    ledger.enqueue(10, Priority.CANCEL)
    assert ledger.grant(1.0) == [10]
    assert ledger.next_change(1.0) == 60.0


def test_venue_headers_lower_what_we_may_send() -> None:
    """X-RateLimit-Remaining=1 until reset: one more grant, then wait for the reset."""
    ledger = BudgetLedger(limit=190, read_reserve=0)
    ledger.enqueue(0, Priority.READ)
    ledger.grant(0.0)
    ledger.complete(0.5, remaining=1, reset_at=20.0)
    for ticket in (1, 2):
        ledger.enqueue(ticket, Priority.READ)
    assert ledger.grant(1.0) == [1]
    assert ledger.next_change(1.0) == 20.0
    assert ledger.grant(20.0) == [2]


def test_in_flight_requests_are_subtracted_from_the_venue_view() -> None:
    """Remaining=2 seen while two others are in flight means nothing is left."""
    ledger = BudgetLedger(limit=190, read_reserve=0)
    for ticket in range(3):
        ledger.enqueue(ticket, Priority.READ)
    assert ledger.grant(0.0) == [0, 1, 2]
    ledger.complete(0.1, remaining=2, reset_at=30.0)
    assert ledger.statistics(0.1).venue_remaining == 0
    assert ledger.statistics(0.1).remaining == 0


def test_429_with_nothing_left_blocks_until_reset_but_cancels_probe() -> None:
    """After a 429 that says nothing is left until the reset, nothing but a cancel is
    granted until the reset; cancels probe one at a time, once a second (issue 11 §6)."""
    ledger = BudgetLedger(limit=190, read_reserve=0)
    ledger.enqueue(0, Priority.READ)
    ledger.grant(0.0)
    ledger.complete(1.0, rate_limited=True, remaining=0, reset_at=5.0)
    ledger.enqueue(1, Priority.READ)
    ledger.enqueue(2, Priority.CANCEL)
    ledger.enqueue(3, Priority.CANCEL)
    assert ledger.grant(2.0) == [2]
    assert ledger.grant(2.0) == []  # one probe in flight
    ledger.complete(2.1, rate_limited=True, remaining=0, reset_at=5.0)
    assert ledger.next_change(2.1) == 3.0
    assert ledger.grant(2.5) == []
    assert ledger.grant(3.0) == [3]
    ledger.complete(3.1)
    assert ledger.next_change(3.1) == 5.0
    assert ledger.grant(4.9) == []
    assert ledger.grant(5.0) == [1]


def test_429_with_requests_remaining_is_a_short_backoff() -> None:
    """A 429 whose headers still show requests left and a reset at the window's end (the
    stall of issue 11 §6) blocks for the penalty only, not until the reset."""
    ledger = BudgetLedger(limit=190, read_reserve=0)
    ledger.enqueue(0, Priority.NEW_ORDER)
    ledger.grant(0.0)
    ledger.complete(1.0, rate_limited=True, remaining=150, reset_at=60.0, penalty=0.5)
    ledger.enqueue(1, Priority.NEW_ORDER)
    assert ledger.next_change(1.0) == 1.5
    assert ledger.grant(1.5) == [1]


def test_429_without_reset_uses_the_penalty() -> None:
    """A 429 with no reset header blocks for the caller's backoff delay."""
    ledger = BudgetLedger(limit=190, read_reserve=0)
    ledger.enqueue(0, Priority.READ)
    ledger.grant(0.0)
    ledger.complete(1.0, rate_limited=True, penalty=2.5)
    ledger.enqueue(1, Priority.READ)
    assert ledger.next_change(1.0) == 3.5
    assert ledger.grant(3.4) == []
    assert ledger.grant(3.5) == [1]


def test_withdrawn_ticket_is_never_granted() -> None:
    """A caller that gave up leaves the line and costs nothing."""
    ledger = BudgetLedger(limit=5, read_reserve=0)
    ledger.enqueue(0, Priority.READ)
    assert ledger.withdraw(0)
    assert ledger.grant(0.0) == []
    assert ledger.statistics(0.0).remaining == 5


def test_statistics_counts_waiting_per_priority() -> None:
    """`statistics` reports what health shows: remaining and waiting per priority."""
    ledger = BudgetLedger(limit=1, read_reserve=0)
    ledger.enqueue(0, Priority.READ)
    ledger.grant(0.0)
    ledger.enqueue(1, Priority.CANCEL)
    ledger.enqueue(2, Priority.READ)
    stats = ledger.statistics(1.0)
    assert stats.remaining == 0
    assert stats.in_flight == 1
    assert stats.waiting[Priority.CANCEL] == 1
    assert stats.waiting[Priority.READ] == 1


@given(
    ops=st.lists(
        st.tuples(st.sampled_from(list(Priority)), st.floats(0, 5)), min_size=1, max_size=200
    )
)
def test_never_more_than_limit_in_any_window(ops: list[tuple[Priority, float]]) -> None:
    """Property: however requests arrive, no 60 s window holds more than `limit` grants."""
    ledger = BudgetLedger(limit=10, window=60.0, read_reserve=2)
    now = 0.0
    grants: list[float] = []
    for ticket, (priority, gap) in enumerate(ops):
        now += gap
        ledger.enqueue(ticket, priority)
        for _ in ledger.grant(now):
            grants.append(now)
            ledger.complete(now)
    for i, start in enumerate(grants):
        assert sum(1 for t in grants[i:] if t < start + 60.0) <= 10


def test_parse_rate_limit_headers() -> None:
    """Alpaca's headers (§0.4) become (remaining, monotonic reset); junk is ignored."""
    headers = {"X-RateLimit-Remaining": "195", "X-RateLimit-Reset": "1679411617"}
    assert parse_rate_limit_headers(headers, wall_now=1679411600.0, mono_now=100.0) == (
        195,
        117.0,
    )
    assert parse_rate_limit_headers(
        {"X-RateLimit-Remaining": "x", "X-RateLimit-Reset": "1"}, wall_now=5.0, mono_now=0.0
    ) == (None, None)


async def test_shell_wakes_waiter_by_priority() -> None:
    """The asyncio shell hands a freed slot to the waiting cancel, not the earlier read."""
    budget = RequestBudget(limit=1, window=0.2, read_reserve=0)
    order: list[str] = []

    async def request(name: str, priority: Priority) -> None:
        async with budget.slot(priority) as slot:
            order.append(name)
            slot.observe(200, {})

    await request("first", Priority.READ)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(request("read", Priority.READ))
        tg.create_task(request("cancel", Priority.CANCEL))
    assert order == ["first", "cancel", "read"]
    assert budget.statistics().waiting[Priority.READ] == 0


async def test_shell_cancelled_waiter_leaves_the_line() -> None:
    """A waiter cancelled while in line is withdrawn; the next one still gets its slot."""
    budget = RequestBudget(limit=1, window=0.2, read_reserve=0)
    async with budget.slot(Priority.READ) as slot:
        slot.observe(200, {})
    waiter = asyncio.create_task(budget._acquire(Priority.READ))
    await wait_until(lambda: budget.statistics().waiting[Priority.READ] == 1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert budget.statistics().waiting[Priority.READ] == 0
    async with asyncio.timeout(2), budget.slot(Priority.CANCEL) as slot:
        slot.observe(200, {})


def test_a_cancel_never_waits_for_a_window_spent_on_orders() -> None:
    """`cancel_reserve` slots are kept for cancels: new orders and replaces stop short of
    them, so a cancel (and the kill switch) is sent at once even when a burst of new
    orders spent the rest of the window (issue 14's bench saw cancels wait 57 s)."""
    ledger = BudgetLedger(limit=10, read_reserve=2, cancel_reserve=3)
    for ticket in range(10):
        ledger.enqueue(ticket, Priority.NEW_ORDER)
    assert ledger.grant(0.0) == [0, 1, 2, 3, 4, 5, 6]
    ledger.enqueue(20, Priority.REPLACE)
    ledger.enqueue(21, Priority.READ)
    assert ledger.grant(1.0) == []
    for ticket in (30, 31, 32):
        ledger.enqueue(ticket, Priority.CANCEL)
    assert ledger.grant(2.0) == [30, 31, 32]
    ledger.enqueue(33, Priority.CANCEL)
    assert ledger.grant(3.0) == []  # the reserve is for cancels, not beyond the limit
    assert ledger.next_change(3.0) == 60.0


def test_reserves_must_leave_room_for_orders() -> None:
    """Reserves that would leave no slot for a new order are a configuration error."""
    with pytest.raises(ValueError, match="reserve"):
        BudgetLedger(limit=10, read_reserve=5, cancel_reserve=5)


def test_orders_are_paced_so_that_cancels_never_wait_out_the_window() -> None:
    """With `burst`, orders beyond a burst are spread at the budget's rate instead of
    spending the whole window at once, so slots keep freeing and a cancel arriving when the
    cancel reserve is used up waits a fraction of a second, not the window (the budget
    benchmark of issue 14 saw 59 s)."""
    ledger = BudgetLedger(limit=70, read_reserve=0, cancel_reserve=10, burst=10)
    rate = 60 / 60.0  # (limit - cancel_reserve) per 60 s window: one a second
    for ticket in range(200):
        ledger.enqueue(ticket, Priority.NEW_ORDER)
    assert len(ledger.grant(0.0)) == 10  # the burst
    assert ledger.next_change(0.0) == pytest.approx(1 / rate)
    granted = 10
    now = 0.0
    while now < 120.0:
        now += 0.25
        granted += len(ledger.grant(now))
    assert granted <= 10 + 120 * rate + 1  # never faster than the rate after the burst
    # A burst of cancels uses the reserve; the next one waits for the next freed slot.
    for ticket in range(1000, 1011):
        ledger.enqueue(ticket, Priority.CANCEL)
    assert len(ledger.grant(now)) >= 10
    waits = []
    for ticket in range(2000, 2005):
        ledger.enqueue(ticket, Priority.CANCEL)
        start = now
        while not ledger.grant(now):
            now += 0.05
        waits.append(now - start)
    assert max(waits) <= 1.5, waits


def test_burst_must_be_positive() -> None:
    """`burst` must be at least 1."""
    with pytest.raises(ValueError, match="burst"):
        BudgetLedger(limit=10, read_reserve=0, burst=0)


def test_unused_grant_leaves_the_window_and_returns_its_token() -> None:
    """A grant that was never sent is given back whole: the next request is granted at
    once instead of waiting for the window or the pacing (`unused`, unlike `complete`)."""
    ledger = BudgetLedger(limit=2, window=60.0, read_reserve=0, burst=1)
    ledger.enqueue(0, Priority.NEW_ORDER)
    ledger.enqueue(1, Priority.NEW_ORDER)
    assert ledger.grant(0.0) == [0]
    assert ledger.grant(0.0) == []  # paced: the burst of one is spent
    ledger.unused(0.0, 0.0, Priority.NEW_ORDER)
    assert ledger.statistics(0.0).in_flight == 0
    assert ledger.grant(0.0) == [1]
    ledger.complete(0.1)
    ledger.enqueue(2, Priority.CANCEL)
    assert ledger.grant(0.2) == [2]  # the limit of 2 still has room: ticket 0 left it


async def test_withdrawal_takes_a_waiting_request_out_of_line() -> None:
    """A set `Withdrawal` ends a waiting `slot` at once with `SendWithdrawn`; the request
    costs nothing and the next one in line (a lower priority) gets the slot."""
    budget = RequestBudget(limit=1, window=60.0, read_reserve=0)
    async with budget.slot(Priority.READ) as slot:
        slot.observe(200, {})  # the window's one slot is spent for a minute
    withdrawal = Withdrawal()

    async def new_order() -> None:
        async with budget.slot(Priority.NEW_ORDER, withdrawal):
            raise AssertionError("a withdrawn request was granted")

    waiter = asyncio.create_task(new_order())
    await wait_until(lambda: budget.statistics().waiting[Priority.NEW_ORDER] == 1)
    withdrawal.set()
    assert budget.statistics().waiting[Priority.NEW_ORDER] == 0  # synchronously
    with pytest.raises(SendWithdrawn):
        await waiter
    with pytest.raises(SendWithdrawn):  # and every later request under it, before queueing
        async with budget.slot(Priority.REPLACE, withdrawal):
            pass
    assert budget.statistics().waiting == dict.fromkeys(Priority, 0)


async def test_withdrawal_after_the_grant_is_the_callers_check() -> None:
    """Granted in the same instant as the withdrawal (before the waiter runs again): the
    budget does not take the grant back — the caller sees `is_set()` before it sends and
    gives the slot back whole with `unused` (or it sent, and must cancel). Never both."""
    now = [0.0]
    budget = RequestBudget(limit=1, window=10.0, read_reserve=0, monotonic=lambda: now[0])
    async with budget.slot(Priority.READ) as slot:
        slot.observe(200, {})  # the one slot is spent until t=10
    withdrawal = Withdrawal()
    sent: list[bool] = []

    async def new_order() -> None:
        async with budget.slot(Priority.NEW_ORDER, withdrawal) as slot:
            if withdrawal.is_set():
                slot.unused()
                sent.append(False)
                return
            sent.append(True)

    task = asyncio.create_task(new_order())
    await wait_until(lambda: budget.statistics().waiting[Priority.NEW_ORDER] == 1)
    now[0] = 10.0
    budget._pump()  # the window rolls: granted (the waiter has not resumed yet) ...
    assert budget.statistics().in_flight == 1
    withdrawal.set()  # ... and withdrawn in the same instant
    await task
    assert sent == [False]
    stats = budget.statistics()
    assert stats.in_flight == 0
    assert stats.remaining == 1
