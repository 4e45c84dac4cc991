"""A submit's validation reads pass new orders, within a bounded lead (review 6).

Pure ledger tests with a fake clock: each grant is completed before the next, so the
order of grants is the order of priorities the ledger chose.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from execd.adapters.budget import BudgetLedger, Priority


def _drain(ledger: BudgetLedger, steps: int, start: int = 0) -> list[int]:
    """Grant one ticket per second from `start` (each completed at once), `steps` times."""
    order: list[int] = []
    for step in range(start, start + steps):
        for ticket in ledger.grant(float(step)):
            order.append(ticket)
            ledger.complete(float(step))
    return order


def _paced(lead: int = 2) -> BudgetLedger:
    # one grant a second: limit 60 a minute, a burst of one
    return BudgetLedger(limit=60, window=60.0, read_reserve=0, burst=1, validate_lead=lead)


def test_a_submits_reads_pass_a_backlog_of_new_orders() -> None:
    """Two reads (a submit's positions and account) go before ten waiting new orders."""
    ledger = _paced()
    for ticket in range(10):
        ledger.enqueue(ticket, Priority.NEW_ORDER)
    ledger.enqueue(100, Priority.VALIDATE)
    ledger.enqueue(101, Priority.VALIDATE)
    assert _drain(ledger, 3) == [100, 101, 0]


def test_reads_in_a_loop_get_at_most_one_contended_grant_in_three() -> None:
    """Beyond the lead, a validation read waits behind new orders: a client retrying
    submits in a loop cannot take every grant from running legs."""
    ledger = _paced()
    for ticket in range(100):
        ledger.enqueue(ticket, Priority.NEW_ORDER)
    for ticket in range(1000, 1100):
        ledger.enqueue(ticket, Priority.VALIDATE)
    order = _drain(ledger, 32)
    reads = [t for t in order if t >= 1000]
    assert order[:2] == [1000, 1001]  # the lead
    assert len(reads) <= 2 + (32 - 2) / 3
    assert len(order) - len(reads) >= 20


def test_the_lead_comes_back_while_no_read_waits() -> None:
    """New orders granted while reads wait earn the lead back; grants nobody contended
    cost nothing (a submit with no backlog spends no lead)."""
    ledger = _paced()
    ledger.enqueue(1000, Priority.VALIDATE)
    ledger.enqueue(1001, Priority.VALIDATE)
    assert _drain(ledger, 2) == [1000, 1001]  # uncontended: free
    for ticket in range(10):
        ledger.enqueue(ticket, Priority.NEW_ORDER)
    ledger.enqueue(1002, Priority.VALIDATE)
    ledger.enqueue(1003, Priority.VALIDATE)
    ledger.enqueue(1004, Priority.VALIDATE)
    order = _drain(ledger, 6, start=2)
    assert order[:2] == [1002, 1003]
    assert order[2:4] == [0, 1]  # the third read waits for two new orders
    assert order[4] == 1004


def test_a_read_still_goes_before_background_reads_and_after_cancels() -> None:
    ledger = _paced(lead=1)
    ledger.enqueue(0, Priority.NEW_ORDER)
    ledger.enqueue(1, Priority.NEW_ORDER)
    ledger.enqueue(1000, Priority.VALIDATE)
    ledger.enqueue(1001, Priority.VALIDATE)
    ledger.enqueue(2000, Priority.READ)
    ledger.enqueue(3000, Priority.CANCEL)
    assert _drain(ledger, 6) == [3000, 1000, 0, 1, 1001, 2000]


@given(st.lists(st.sampled_from([Priority.VALIDATE, Priority.NEW_ORDER]), max_size=60))
def test_contended_reads_never_exceed_their_share(arrivals: list[Priority]) -> None:
    """Whatever arrives when, of the grants made while both lines waited, reads take at
    most the lead plus one in three of the rest."""
    ledger = BudgetLedger(limit=10_000, window=60.0, read_reserve=0, burst=1)
    contended = {Priority.VALIDATE: 0, Priority.NEW_ORDER: 0}
    tickets = {}
    for step, priority in enumerate([*arrivals, *[None] * 60]):
        if priority is not None:
            tickets[step] = priority
            ledger.enqueue(step, priority)
        both = all(ledger.statistics(float(step)).waiting[p] for p in contended)
        for ticket in ledger.grant(float(step)):
            if both:
                contended[tickets[ticket]] += 1
            ledger.complete(float(step))
    reads, orders = contended[Priority.VALIDATE], contended[Priority.NEW_ORDER]
    assert reads <= ledger.validate_lead + orders * ledger.validate_refill


def test_background_reads_share_the_running_plans_grants() -> None:
    """A running plan's background read (its buys' release account read) is not kept back
    by a line of validation reads: beyond the lead, reads get one grant in three (review 6,
    spam lane: a plan accepted during the spam placed nothing)."""
    ledger = _paced()
    ledger.enqueue(0, Priority.READ)
    for ticket in range(1000, 1010):
        ledger.enqueue(ticket, Priority.VALIDATE)
    assert _drain(ledger, 3) == [1000, 1001, 0]


def test_a_grant_given_back_unused_gives_back_the_credit_it_earned() -> None:
    """A new order granted while reads waited, then not sent (its quote went stale in line),
    earns the reads nothing: with a line of stale legs, each grant given back used to earn
    half a credit, and the spam took every real grant."""
    ledger = _paced()
    for ticket in range(10):
        ledger.enqueue(ticket, Priority.NEW_ORDER)
    for ticket in range(1000, 1010):
        ledger.enqueue(ticket, Priority.VALIDATE)
    assert _drain(ledger, 2) == [1000, 1001]  # the lead is spent
    for step in range(2, 6):  # four new orders granted and given back, one a second
        (ticket,) = ledger.grant(float(step))
        assert ticket < 1000
        ledger.unused(float(step), float(step), Priority.NEW_ORDER, ticket)
        ledger.enqueue(ticket, Priority.NEW_ORDER)
    # Before: the four had earned two credits, and the next two grants went to the reads.
    assert _drain(ledger, 3, start=6) == [4, 5, 1002]


@given(
    st.lists(
        st.tuples(
            st.sampled_from([Priority.VALIDATE, Priority.NEW_ORDER, Priority.READ, None]),
            st.booleans(),
        ),
        max_size=80,
    )
)
def test_validation_reads_never_stop_the_running_plans(
    steps: list[tuple[Priority | None, bool]],
) -> None:
    """Whatever arrives when, and whichever running grants are given back unused (a leg's
    quote went stale in line; it queues again), of the grants made while validation reads
    and running plans' requests (new orders, background reads) both waited:

    - the reads take at most the lead plus `validate_refill` per running grant *sent*;
    - the reads never take more than `validate_lead` such grants in a row (a running plan
      is slowed by a bounded fraction, never stopped)."""
    ledger = BudgetLedger(limit=10_000, window=60.0, read_reserve=0, burst=1)
    running = (Priority.NEW_ORDER, Priority.READ)
    kinds: dict[int, Priority] = {}
    fresh = iter(range(1_000_000))
    reads = sent = in_a_row = longest = 0
    plan = [*steps, *[(None, False)] * 80]
    for step, (arrival, give_back) in enumerate(plan):
        now = float(step)
        if arrival is not None:
            ticket = next(fresh)
            kinds[ticket] = arrival
            ledger.enqueue(ticket, arrival)
        for _ in range(4):  # a grant given back lets the next one go at once
            waiting = ledger.statistics(now).waiting
            contended = bool(waiting[Priority.VALIDATE]) and any(waiting[p] for p in running)
            granted = ledger.grant(now)
            if not granted:
                break
            (ticket,) = granted
            kind = kinds[ticket]
            if kind in running and give_back:
                ledger.unused(now, now, kind, ticket)
                again = next(fresh)
                kinds[again] = kind
                ledger.enqueue(again, kind)
                continue  # not sent: it counts for neither side
            ledger.complete(now)
            if not contended:
                continue
            if kind is Priority.VALIDATE:
                reads += 1
                in_a_row += 1
                longest = max(longest, in_a_row)
            else:
                sent += 1
                in_a_row = 0
            break
    assert reads <= ledger.validate_lead + sent * ledger.validate_refill
    assert longest <= ledger.validate_lead


def test_a_read_past_its_lead_still_leaves_the_read_reserve_to_validation_reads() -> None:
    """Once the lead is spent a background read goes first; but the slots kept from
    background reads are still a validation read's (free of charge: the read could not use
    them), so a submit does not wait out the window behind a read that may not use them."""
    ledger = BudgetLedger(limit=6, window=60.0, read_reserve=2, validate_lead=1)
    for ticket in range(3):
        ledger.enqueue(ticket, Priority.READ)
    for ticket in range(1000, 1004):
        ledger.enqueue(ticket, Priority.VALIDATE)
    # the lead (1000), two reads earn a credit back (0, 1), 1001 spends it; the read 2 may
    # not use the last two slots (the read reserve): the validation reads do.
    assert ledger.grant(0.0) == [1000, 0, 1, 1001, 1002, 1003]
    assert ledger.next_change(0.0) == 60.0
