"""Review 4: the request budget's withdrawal and `Slot.unused`, attacked.

A stopped leg's queued request is withdrawn (`Withdrawal.set`); a grant that landed in
the same instant is given back with `unused`. These tests try to make the accounting
lie (a token or a window slot returned twice, a negative in-flight count) and try the
withdrawal against a task cancellation in the same loop turn.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from execd.adapters.budget import BudgetLedger, Priority, RequestBudget, Withdrawal

from .conftest import wait_until


async def test_cancel_in_the_same_turn_as_the_withdrawal_stays_a_cancellation() -> None:
    """Stop (withdraw) and cancel the same waiter before it runs again: `_acquire`'s
    `except CancelledError` finds the future done (with `SendWithdrawn`) and calls
    `future.result()` inside the handler, which raises `SendWithdrawn` in place of the
    cancellation. A caller that then catches `SendWithdrawn` (the leg does: PlaceFailed,
    not_sent) keeps running though it was cancelled, and whoever awaits the cancelled
    task (a shutdown's grace, a runner's gather) waits for it to end by itself."""
    budget = RequestBudget(limit=1, window=60.0, read_reserve=0)
    async with budget.slot(Priority.READ) as slot:
        slot.observe(200, {})  # the window's one slot is spent for a minute
    withdrawal = Withdrawal()

    async def new_order() -> None:
        async with budget.slot(Priority.NEW_ORDER, withdrawal):
            raise AssertionError("a withdrawn request was granted")

    task = asyncio.create_task(new_order())
    await wait_until(lambda: budget.statistics().waiting[Priority.NEW_ORDER] == 1)
    withdrawal.set()  # the leg stops ...
    task.cancel()  # ... and its task is cancelled in the same turn (shutdown, plan end)
    with pytest.raises(asyncio.CancelledError):
        await task


def test_unused_after_the_window_slid_does_not_free_a_later_grant() -> None:
    """A grant given back after its own instant slid out of the window must not take a
    later grant's place out of the window (only an equal timestamp may be removed)."""
    ledger = BudgetLedger(limit=2, window=10.0, read_reserve=0)
    ledger.enqueue(0, Priority.NEW_ORDER)
    assert ledger.grant(0.0) == [0]
    ledger.enqueue(1, Priority.NEW_ORDER)
    ledger.enqueue(2, Priority.NEW_ORDER)
    assert ledger.grant(10.5) == [1, 2]  # ticket 0's instant has slid out: 2 in window
    ledger.unused(10.6, 0.0, Priority.NEW_ORDER)  # ticket 0 given back late
    ledger.complete(10.7)
    ledger.complete(10.7)
    ledger.enqueue(3, Priority.NEW_ORDER)
    assert ledger.grant(11.0) == []  # still two sent in the window: no third
    assert ledger.statistics(11.0).in_flight == 0


_OP = st.one_of(
    st.tuples(st.just("enqueue"), st.sampled_from(list(Priority))),
    st.tuples(st.just("grant"), st.floats(min_value=0.0, max_value=3.0)),
    st.tuples(st.just("complete"), st.integers(0, 20)),
    st.tuples(st.just("unused"), st.integers(0, 20)),
    st.tuples(st.just("withdraw"), st.integers(0, 40)),
)


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(_OP, max_size=80), burst=st.sampled_from([None, 1, 3]))
@example(  # found by hypothesis: a grant given back 3 s later refunded a token the cap
    # had already replaced, so two paced requests went out at once with a burst of 1
    ops=[
        ("enqueue", Priority.CANCEL),
        ("enqueue", Priority.CANCEL),
        ("enqueue", Priority.REPLACE),
        ("enqueue", Priority.REPLACE),
        ("enqueue", Priority.REPLACE),
        ("grant", 0.0),
        ("grant", 3.0),
        ("unused", 2),
        ("grant", 0.0),
    ],
    burst=1,
)
def test_ledger_matches_a_simple_model(ops: list[tuple[str, object]], burst: int | None) -> None:
    """Random sequences of enqueue / grant / complete / unused / withdraw against a model:
    in flight is exactly the granted-not-ended count; the requests *sent* (granted and not
    given back) in any window never exceed the limit; new orders/replaces/reads never
    exceed the pacing (burst + rate x elapsed); a withdrawn or unused ticket costs nothing
    and is never granted later."""
    limit, window = 4, 10.0
    ledger = BudgetLedger(limit=limit, window=window, read_reserve=1, burst=burst)
    rate = limit / window
    now = 0.0
    tickets = iter(range(10_000))
    waiting: dict[int, Priority] = {}
    granted: list[tuple[int, Priority, float]] = []  # in flight
    sent_at: list[float] = []  # requests that went out (never given back)
    paced_sent: list[float] = []
    withdrawn: set[int] = set()
    for op, arg in ops:
        if op == "enqueue":
            assert isinstance(arg, Priority)
            ticket = next(tickets)
            ledger.enqueue(ticket, arg)
            waiting[ticket] = arg
        elif op == "grant":
            assert isinstance(arg, float)
            now += arg
            for ticket in ledger.grant(now):
                assert ticket in waiting, "granted a ticket not waiting"
                assert ticket not in withdrawn
                granted.append((ticket, waiting.pop(ticket), now))
        elif op in ("complete", "unused") and granted:
            assert isinstance(arg, int)
            _ticket, priority, at = granted.pop(arg % len(granted))
            if op == "complete":
                ledger.complete(now)
                sent_at.append(at)
                if priority is not Priority.CANCEL:
                    paced_sent.append(at)
            else:
                ledger.unused(now, at, priority)
        elif op == "withdraw" and waiting:
            assert isinstance(arg, int)
            ticket = sorted(waiting)[arg % len(waiting)]
            assert ledger.withdraw(ticket)
            del waiting[ticket]
            withdrawn.add(ticket)
        stats = ledger.statistics(now)
        assert stats.in_flight == len(granted)
        assert sum(stats.waiting.values()) == len(waiting)
        # Sent plus in flight within the window never exceed the limit.
        live = [t for t in sent_at if t > now - window] + [
            at for _t, _p, at in granted if at > now - window
        ]
        assert len(live) <= limit
        if burst is not None:
            out = sorted(paced_sent + [at for _t, p, at in granted if p is not Priority.CANCEL])
            for i, start in enumerate(out):
                count = sum(1 for t in out[i:] if t - start <= window)
                span = max((t for t in out[i:] if t - start <= window), default=start) - start
                assert count <= burst + rate * span + 1e-9, (out, burst)
