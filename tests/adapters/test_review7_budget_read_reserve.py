"""Review 7 (adversarial, spam lane): validation reads take the read reserve free of charge.

`_into_read_reserve` lets a submit's validation read into the slots a background read must
leave (`read_reserve`) without spending lead credit, on the ground that the waiting read
could not use them. But those slots are not idle: they are what keeps new orders and
re-pegs (`REPLACE`) from waiting out the window behind reads. A client retrying a refused
submit in a loop therefore gets its lead, plus what the running plans' grants refill, plus
the whole read reserve every window — and a running leg's re-peg that arrives next finds
the window spent and waits until it slides (60 s here).

Pure ledger tests (fake clock): the grants the ledger makes are the judge.
"""

from __future__ import annotations

import pytest

from execd.adapters.budget import BudgetLedger, Priority


def _spammed() -> tuple[BudgetLedger, list[Priority]]:
    """A window of 8 with a read reserve of 2; running plans' background reads and a loop
    of validation reads both wait; everything the ledger grants at t=0 completes at once."""
    ledger = BudgetLedger(limit=8, window=60.0, read_reserve=2, validate_lead=2)
    kinds: dict[int, Priority] = {}
    for ticket in range(6):
        kinds[ticket] = Priority.READ
        ledger.enqueue(ticket, Priority.READ)
    for ticket in range(100, 106):
        kinds[ticket] = Priority.VALIDATE
        ledger.enqueue(ticket, Priority.VALIDATE)
    granted = [kinds[t] for t in ledger.grant(0.0)]
    for _ in granted:
        ledger.complete(0.0)
    return ledger, granted


@pytest.mark.xfail(
    strict=True,
    reason="validation reads take the read reserve free: spam gets lead + refill + reserve",
)
def test_validation_reads_get_no_more_than_their_lead_and_refill_of_a_contended_window() -> None:
    ledger, granted = _spammed()
    reads = granted.count(Priority.VALIDATE)
    running = granted.count(Priority.READ)
    # Every grant was contended (both lines still waited): the lead's bound (review 6).
    assert reads <= ledger.validate_lead + running * ledger.validate_refill, granted


@pytest.mark.xfail(
    strict=True,
    reason="validation spam eats the read reserve, so a running leg's re-peg waits the window",
)
def test_a_running_legs_replace_is_not_left_to_wait_out_the_window_by_validation_spam() -> None:
    ledger, granted = _spammed()
    assert granted.count(Priority.READ) < 6  # the running plans' reads were held back
    ledger.enqueue(999, Priority.REPLACE)  # a running leg re-pegs
    assert ledger.grant(1.0) == [999], (granted, ledger.next_change(1.0))
