"""Review 7 (adversarial, spam lane): the ledger under arbitrary interleavings.

Requests of every priority arrive, are withdrawn in line, granted, completed (some with a
429), or given back unused — in any order, at any pace, with any reserves and pacing.
Whatever happens (a regression guard; it found no defect in review 7):

- the validation reads' lead credit stays within [0, validate_lead];
- nothing is in flight below zero, and no grant but a 429 block's cancel probe takes the
  window past its limit;
- nothing goes while a cancel waits, and no new order, read or validation read goes while
  a replace waits (a running leg's re-peg is never behind a submit's reads);
- nothing waits forever: with tickets waiting and none grantable now, the ledger names
  the time to try again.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from execd.adapters.budget import BudgetLedger, Priority

ops = st.lists(
    st.tuples(
        st.sampled_from(["enqueue", "withdraw", "unused", "complete", "429"]),
        st.sampled_from(list(Priority)),
        st.integers(min_value=0, max_value=1_000),
        st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0, 3.0]),
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(
    ops=ops,
    limit=st.integers(min_value=3, max_value=12),
    read_reserve=st.integers(min_value=0, max_value=1),
    cancel_reserve=st.integers(min_value=0, max_value=1),
    burst=st.sampled_from([None, 1, 2, 3]),
    lead=st.integers(min_value=1, max_value=3),
)
def test_the_ledger_holds_its_invariants_under_any_interleaving(
    ops: list[tuple[str, Priority, int, float]],
    limit: int,
    read_reserve: int,
    cancel_reserve: int,
    burst: int | None,
    lead: int,
) -> None:
    ledger = BudgetLedger(
        limit=limit,
        window=10.0,
        read_reserve=read_reserve,
        cancel_reserve=cancel_reserve,
        burst=burst,
        validate_lead=lead,
    )
    kinds: dict[int, Priority] = {}
    granted: dict[int, float] = {}
    now = 0.0
    for op, priority, pick, step in ops:
        now += step
        if op == "enqueue":
            ticket = len(kinds)
            kinds[ticket] = priority
            ledger.enqueue(ticket, priority)
        elif op == "withdraw" and kinds:
            ledger.withdraw(pick % len(kinds))
        elif op in ("unused", "complete", "429") and granted:
            ticket = sorted(granted)[pick % len(granted)]
            at = granted.pop(ticket)
            if op == "unused":
                ledger.unused(now, at, kinds[ticket], ticket)
            else:
                ledger.complete(now, rate_limited=op == "429", penalty=1.0)
        grants = ledger.grant(now)
        granted.update(dict.fromkeys(grants, now))
        gone = [kinds[t] for t in grants]
        waiting = ledger.statistics(now).waiting

        assert 0.0 <= ledger._lead_credit <= lead
        assert ledger.statistics(now).in_flight >= 0
        if gone and Priority.CANCEL not in gone:
            assert len(ledger._sent) <= limit
        if waiting[Priority.CANCEL]:
            assert set(gone) <= {Priority.CANCEL}, gone
        if waiting[Priority.REPLACE]:
            assert not set(gone) & {Priority.VALIDATE, Priority.NEW_ORDER, Priority.READ}, gone
        if any(waiting.values()) and not grants and ledger.next_change(now) is None:
            again = ledger.grant(now)  # no time named: something must go now
            assert again, waiting
            granted.update(dict.fromkeys(again, now))
