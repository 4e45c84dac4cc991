"""The journal's API: plans, legs, intents before requests, acks, events, fills exactly once."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from execd.adapters.journal import (
    DuplicateIntent,
    Journal,
    JournalClosed,
    JournalUnwritable,
    RecordConflict,
    UnknownRecord,
)
from execd.adapters.journal_schema import SCHEMA_VERSION
from execd.domain.ids import client_order_id
from execd.domain.order_state import OrderStatus
from execd.domain.types import Side, Urgency

from .conftest import wait_until

T0 = datetime(2026, 5, 11, 13, 30, tzinfo=UTC)
PLAN = "plan-2026-05-11"


@dataclass(frozen=True, slots=True)
class FakeLeg:
    """A leg as the plan model gives it (the journal only reads these attributes)."""

    index: int
    symbol: str
    side: Side
    qty: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    urgency: Urgency = Urgency.NORMAL


LEGS = (
    FakeLeg(0, "TQQQ", Side.SELL, qty=Decimal("10")),
    FakeLeg(1, "AAPL", Side.BUY, notional=Decimal("1500.00"), urgency=Urgency.LOW),
)


def coid(leg: int, attempt: int, plan_id: str = PLAN) -> str:
    """The client order id of one attempt (the real, deterministic scheme)."""
    return client_order_id(plan_id, leg, attempt)


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    """An open journal holding PLAN with two legs."""
    async with await Journal.open(tmp_path / "state" / "execd" / "journal.db") as j:
        assert await j.record_plan(PLAN, T0, {"plan_id": PLAN, "legs": []}, legs=LEGS)
        yield j


async def place(
    j: Journal, leg: int = 0, attempt: int = 0, qty: str = "10", price: str | None = "50.01"
) -> str:
    """Record a place intent for one attempt and return its client order id."""
    cid = coid(leg, attempt)
    await j.record_intent(
        cid,
        plan_id=PLAN,
        leg_index=leg,
        attempt=attempt,
        kind="place",
        order_type="limit" if price else "market",
        side=LEGS[leg].side,
        qty=Decimal(qty),
        limit_price=None if price is None else Decimal(price),
        at=T0,
    )
    return cid


# --- open / close -----------------------------------------------------------------------------


async def test_open_creates_private_dirs_and_runs_wal_full(tmp_path: Path) -> None:
    """Missing parents are made 0700, the file 0600; WAL, FULL, foreign keys, busy timeout."""
    path = tmp_path / "a" / "b" / "journal.db"
    async with await Journal.open(path) as j:
        settings = await j.settings()
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert settings.journal_mode == "wal"
    assert settings.synchronous == "FULL"
    assert settings.foreign_keys is True
    assert settings.busy_timeout_ms >= 1000
    assert settings.schema_version == SCHEMA_VERSION


async def test_cancelled_open_closes_the_file(tmp_path: Path) -> None:
    """An open() cancelled half-way leaves no thread holding the file open."""
    path = tmp_path / "j.db"
    opening = asyncio.ensure_future(Journal.open(path))
    await asyncio.sleep(0)  # one loop turn (not a wait for time): the worker thread starts
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    await wait_until(lambda: not any(t.name == "execd-journal:j.db" for t in threading.enumerate()))


async def test_close_is_idempotent_and_later_calls_fail(tmp_path: Path) -> None:
    """close() twice is fine; a call after close raises JournalClosed instead of hanging."""
    j = await Journal.open(tmp_path / "j.db")
    await j.close()
    await j.close()
    assert j.closed
    with pytest.raises(JournalClosed):
        await j.get_plan(PLAN)


async def test_close_flushes_calls_already_made(tmp_path: Path) -> None:
    """Writes started before close() are committed by the time close() returns."""
    path = tmp_path / "j.db"
    j = await Journal.open(path)
    writes = [j.record_plan(f"p{i}", T0, {"i": i}, legs=LEGS) for i in range(20)]
    # gather starts its tasks in order, so every write is queued before close() runs.
    *recorded, _ = await asyncio.gather(*writes, j.close())
    assert all(recorded)
    async with await Journal.open(path) as again:
        assert len(await again.plans(limit=100)) == 20


# --- plans and legs --------------------------------------------------------------------------


async def test_resubmitted_plan_returns_false_and_changes_nothing(journal: Journal) -> None:
    """A plan id already journaled is refused: the caller must send nothing new."""
    assert not await journal.record_plan(PLAN, T0 + timedelta(hours=1), {"other": True}, legs=())
    plan = await journal.get_plan(PLAN)
    assert plan is not None
    assert plan.submitted_at == T0
    assert plan.plan_json == f'{{"plan_id":"{PLAN}","legs":[]}}'
    assert len(await journal.legs(PLAN)) == 2


async def test_plan_legs_round_trip_exactly(journal: Journal) -> None:
    """Legs come back with exact Decimals, their enums and state pending."""
    legs = await journal.legs(PLAN)
    assert [(leg.leg_index, leg.symbol, leg.side, leg.urgency) for leg in legs] == [
        (0, "TQQQ", Side.SELL, Urgency.NORMAL),
        (1, "AAPL", Side.BUY, Urgency.LOW),
    ]
    assert legs[0].qty == Decimal("10")
    assert legs[0].notional is None
    assert str(legs[1].notional) == "1500.00"
    assert all(leg.state == "pending" and leg.filled_qty == 0 for leg in legs)


async def test_record_legs_separately_and_unknown_plan(journal: Journal) -> None:
    """record_legs adds legs to a plan recorded without them; an unknown plan is refused."""
    assert await journal.record_plan("p2", T0, "{}")
    await journal.record_legs("p2", LEGS[:1])
    assert [leg.symbol for leg in await journal.legs("p2")] == ["TQQQ"]
    with pytest.raises(RecordConflict):
        await journal.record_legs("p2", LEGS[:1])
    with pytest.raises(UnknownRecord):
        await journal.record_legs("nope", LEGS)


async def test_update_plan_and_unfinished_plans(journal: Journal) -> None:
    """A plan with finished_at drops out of unfinished_plans; reason is kept when not given."""
    assert await journal.record_plan("p2", T0 + timedelta(minutes=1), "{}", legs=LEGS[:1])
    await journal.update_plan("p2", "running", reason="buying power wait")
    await journal.update_plan("p2", "completed", finished_at=T0 + timedelta(minutes=5))
    unfinished = await journal.unfinished_plans()
    assert [u.plan.plan_id for u in unfinished] == [PLAN]
    assert [leg.leg_index for leg in unfinished[0].legs] == [0, 1]
    done = await journal.get_plan("p2")
    assert done is not None
    assert (done.state, done.reason) == ("completed", "buying power wait")
    assert done.finished_at == T0 + timedelta(minutes=5)
    assert [p.plan_id for p in await journal.plans(limit=1)] == ["p2"]
    with pytest.raises(UnknownRecord):
        await journal.update_plan("nope", "failed")


async def test_update_leg_fields(journal: Journal) -> None:
    """update_leg changes only the fields given, encoding decimals, times and the report."""
    eastern = timezone(timedelta(hours=-4))
    await journal.update_leg(
        PLAN,
        0,
        state="working",
        step="marketable_limit",
        started_at=datetime(2026, 5, 11, 9, 30, 2, tzinfo=eastern),
    )
    await journal.update_leg(
        PLAN,
        0,
        state="completed",
        filled_qty=Decimal("10"),
        avg_fill_price=Decimal("50.0150"),
        reason="filled",
        report={"slippage_bps": Decimal("1.25")},
    )
    leg = (await journal.legs(PLAN))[0]
    assert (leg.state, leg.step, leg.reason) == ("completed", "marketable_limit", "filled")
    assert leg.started_at == datetime(2026, 5, 11, 13, 30, 2, tzinfo=UTC)
    assert leg.started_at.tzinfo is UTC
    assert str(leg.avg_fill_price) == "50.0150"
    assert leg.report == '{"slippage_bps":"1.25"}'
    with pytest.raises(UnknownRecord):
        await journal.update_leg(PLAN, 7, state="x")
    with pytest.raises(ValueError, match="unknown field"):
        await journal.update_leg(PLAN, 0, symbol="MSFT")  # type: ignore[call-arg]


async def test_naive_datetimes_and_float_money_are_refused(journal: Journal) -> None:
    """Naive datetimes and non-Decimal amounts raise before anything is written."""
    with pytest.raises(ValueError, match="tz-aware"):
        await journal.record_plan("p3", datetime(2026, 5, 11, 9, 30), "{}")
    with pytest.raises(ValueError, match="Decimal"):
        await journal.update_leg(PLAN, 0, filled_qty=1.5)  # type: ignore[arg-type]
    assert await journal.get_plan("p3") is None


# --- intents and acks ------------------------------------------------------------------------


async def test_intent_is_committed_before_record_intent_returns(journal: Journal) -> None:
    """Once record_intent returns, another connection sees the intent, stored as text."""
    cid = await place(journal)
    other = sqlite3.connect(journal.path)
    try:
        row = other.execute(
            "SELECT status, qty, typeof(qty), limit_price, intent_at, order_id"
            " FROM orders WHERE client_order_id = ?",
            (cid,),
        ).fetchone()
    finally:
        other.close()
    assert row == ("pending_submit", "10", "text", "50.01", "2026-05-11T13:30:00.000000Z", None)


async def test_duplicate_intent_is_refused(journal: Journal) -> None:
    """The same attempt cannot be intended twice: the caller must reconcile, not resend."""
    await place(journal)
    with pytest.raises(DuplicateIntent, match="never resend"):
        await place(journal)


async def test_intent_checks_its_client_order_id_and_leg(journal: Journal) -> None:
    """The id must be this plan/leg/attempt's id; the leg must exist; a replace names its order."""
    with pytest.raises(ValueError, match="is not the id"):
        await journal.record_intent(
            coid(0, 1),
            plan_id=PLAN,
            leg_index=0,
            attempt=2,
            kind="place",
            order_type="limit",
            side=Side.SELL,
            qty=Decimal(1),
            limit_price=Decimal(1),
            at=T0,
        )
    with pytest.raises(UnknownRecord):
        await journal.record_intent(
            coid(5, 0),
            plan_id=PLAN,
            leg_index=5,
            attempt=0,
            kind="place",
            order_type="market",
            side=Side.SELL,
            qty=Decimal(1),
            limit_price=None,
            at=T0,
        )
    with pytest.raises(ValueError, match="a replace names"):
        await journal.record_intent(
            coid(0, 1),
            plan_id=PLAN,
            leg_index=0,
            attempt=1,
            kind="replace",
            order_type="limit",
            side=Side.SELL,
            qty=Decimal(1),
            limit_price=Decimal(1),
            at=T0,
        )
    assert await journal.orders_for_leg(PLAN, 0) == ()


async def test_replace_chain_and_ack(journal: Journal) -> None:
    """A replace intent points at the order it replaces; acks fill in the venue ids."""
    first = await place(journal)
    await journal.record_ack(first, "venue-1", OrderStatus.NEW, T0 + timedelta(seconds=1))
    second = coid(0, 1)
    await journal.record_intent(
        second,
        plan_id=PLAN,
        leg_index=0,
        attempt=1,
        kind="replace",
        order_type="limit",
        side=Side.SELL,
        qty=Decimal("10"),
        limit_price=Decimal("49.99"),
        at=T0 + timedelta(seconds=3),
        replaces_client_order_id=first,
    )
    await journal.record_ack(second, "venue-2", "accepted", T0 + timedelta(seconds=4))
    orders = await journal.orders_for_leg(PLAN, 0)
    assert [(o.attempt, o.kind, o.order_id, o.status) for o in orders] == [
        (0, "place", "venue-1", OrderStatus.NEW),
        (1, "replace", "venue-2", OrderStatus.ACCEPTED),
    ]
    assert orders[1].replaces_client_order_id == first
    assert orders[1].limit_price == Decimal("49.99")


async def test_ack_after_stream_event_keeps_the_stream_status(journal: Journal) -> None:
    """The REST answer often lands after the stream's fill: `new` must not undo `filled`."""
    cid = await place(journal)
    at = T0 + timedelta(seconds=1)
    await journal.record_event(cid, "venue-1", "fill", at, {"event": "fill"}, status="filled")
    await journal.record_ack(cid, "venue-1", OrderStatus.NEW, at + timedelta(seconds=1))
    order = await journal.get_order(cid)
    assert order is not None
    assert (order.order_id, order.status) == ("venue-1", OrderStatus.FILLED)
    assert order.last_event_at == at + timedelta(seconds=1)


async def test_ack_with_another_order_id_is_a_conflict(journal: Journal) -> None:
    """One client order id is one venue order: a second order id is refused loudly."""
    cid = await place(journal)
    await journal.record_ack(cid, "venue-1", OrderStatus.NEW, T0)
    with pytest.raises(RecordConflict):
        await journal.record_ack(cid, "venue-2", OrderStatus.NEW, T0)
    with pytest.raises(UnknownRecord):
        await journal.record_ack(coid(1, 0), "venue-3", OrderStatus.NEW, T0)


# --- events and open orders ------------------------------------------------------------------


async def test_events_are_kept_verbatim_and_terminal_status_absorbs(journal: Journal) -> None:
    """Raw frames are stored as given; a late `new` after `canceled` does not reopen the order."""
    cid = await place(journal)
    raw = b'{"event":"canceled","order":{"client_order_id":"x"}}'
    first = await journal.record_event(cid, "v1", "canceled", T0, raw, status="canceled")
    second = await journal.record_event(cid, "v1", "new", T0, '{"event":"new"}', status="new")
    assert second > first
    order = await journal.get_order(cid)
    assert order is not None
    assert order.status is OrderStatus.CANCELED
    assert not order.is_open
    events = await journal.events_for_order(cid)
    assert [(e.event, e.raw) for e in events] == [
        ("canceled", raw.decode()),
        ("new", '{"event":"new"}'),
    ]
    with pytest.raises(ValueError, match="JSON"):
        await journal.record_event(cid, "v1", "new", T0, "{not json")


async def test_event_for_an_unknown_order_is_still_kept(journal: Journal) -> None:
    """The venue's word is never dropped, even about an order the journal does not know."""
    await journal.record_event("someone-else", "v9", "new", T0, {"event": "new"}, status="new")
    assert [e.order_id for e in await journal.events_for_order("someone-else")] == ["v9"]


async def test_open_orders_include_unacknowledged_intents(journal: Journal) -> None:
    """pending_submit and working orders are open; terminal ones are not."""
    a = await place(journal, leg=0, attempt=0)
    b = await place(journal, leg=0, attempt=1)
    c = await place(journal, leg=1, attempt=0, qty="3", price=None)
    await journal.record_ack(b, "vb", OrderStatus.NEW, T0)
    await journal.record_event(c, "vc", "fill", T0, "{}", status=OrderStatus.FILLED)
    assert [(o.client_order_id, o.status) for o in await journal.open_orders()] == [
        (a, OrderStatus.PENDING_SUBMIT),
        (b, OrderStatus.NEW),
    ]


# --- fills -----------------------------------------------------------------------------------


async def test_duplicate_fill_is_dropped(journal: Journal) -> None:
    """A redelivered execution id is recorded once and counted once."""
    cid = await place(journal)
    assert await journal.record_fill("ex-1", cid, Decimal("4"), Decimal("50.01"), T0)
    assert not await journal.record_fill("ex-1", cid, Decimal("4.0"), Decimal("50.010"), T0)
    assert await journal.record_fill("ex-2", cid, Decimal("6"), Decimal("50.00"), T0)
    assert await journal.filled_qty_for_leg(PLAN, 0) == Decimal("10")
    assert [f.execution_id for f in await journal.fills_for_leg(PLAN, 0)] == ["ex-1", "ex-2"]


async def test_same_execution_id_with_other_numbers_is_a_conflict(journal: Journal) -> None:
    """Not a redelivery but two stories: refused loudly, the first account kept."""
    cid = await place(journal)
    assert await journal.record_fill("ex-1", cid, Decimal("4"), Decimal("50.01"), T0)
    with pytest.raises(RecordConflict):
        await journal.record_fill("ex-1", cid, Decimal("5"), Decimal("50.01"), T0)
    assert await journal.filled_qty_for_leg(PLAN, 0) == Decimal("4")


async def test_fills_for_leg_span_attempts_and_sum_exactly(journal: Journal) -> None:
    """The leg's filled qty sums every attempt's executions exactly (no float on the way)."""
    a = await place(journal, attempt=0, qty="0.3")
    b = await place(journal, attempt=1, qty="0.1")
    other = await place(journal, leg=1, qty="1")
    for i, (cid, qty) in enumerate([(a, "0.1"), (a, "0.2"), (b, "0.1"), (other, "1")]):
        assert await journal.record_fill(f"ex-{i}", cid, Decimal(qty), Decimal("1.0001"), T0)
    assert await journal.filled_qty_for_leg(PLAN, 0) == Decimal("0.4")
    assert str(await journal.filled_qty_for_leg(PLAN, 0)) == "0.4"
    assert len(await journal.fills_for_leg(PLAN, 0)) == 3


async def test_fill_for_an_unknown_order_is_kept(journal: Journal) -> None:
    """A fill is never lost for want of its order row; orphan_fills() is where it is found."""
    cid = await place(journal)
    assert await journal.record_fill("ex-1", cid, Decimal(1), Decimal(2), T0)
    assert await journal.record_fill("ex-x", "xd-unknown", Decimal(1), Decimal(2), T0)
    assert not await journal.record_fill("ex-x", "xd-unknown", Decimal(1), Decimal(2), T0)
    assert [f.execution_id for f in await journal.orphan_fills()] == ["ex-x"]


# --- transactions and cancellation -----------------------------------------------------------


async def test_a_failing_call_does_not_undo_its_neighbours(journal: Journal) -> None:
    """Calls committed in one group each have a savepoint: one failure rolls back only itself."""
    cid = await place(journal)
    results = await asyncio.gather(
        journal.record_fill("ex-1", cid, Decimal(1), Decimal(50), T0),
        place(journal),  # duplicate intent: fails
        journal.record_fill("ex-2", cid, Decimal(1), Decimal(50), T0),
        return_exceptions=True,
    )
    assert results[0] is True
    assert results[2] is True
    assert isinstance(results[1], DuplicateIntent)
    assert await journal.filled_qty_for_leg(PLAN, 0) == Decimal(2)


async def test_a_cancelled_awaiter_does_not_lose_its_write(tmp_path: Path) -> None:
    """A fill whose recording task is cancelled (shutdown) is still committed."""
    path = tmp_path / "j.db"
    j = await Journal.open(path)
    await j.record_plan(PLAN, T0, "{}", legs=LEGS)
    task = asyncio.ensure_future(j.record_fill("ex-1", "cid", Decimal(1), Decimal(1), T0))
    await asyncio.sleep(0)  # one loop turn (not a wait for time): the task queues its call
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await j.close()
    async with await Journal.open(path) as again:
        assert not await again.record_fill("ex-1", "cid", Decimal(1), Decimal(1), T0)


# --- fill dedup by cumulative quantity; the journaled halt (issue 11 §8, §11) ----------------


async def test_reconciled_fill_then_stream_fill_of_the_same_shares_counts_once(
    journal: Journal,
) -> None:
    """A fill learned over REST (made-up id, cumulative 6) and then the stream's event for
    the same shares (the venue's id, cumulative 6) are one fill; the next real execution
    (cumulative 10) counts. The order's cumulative quantity survives a reopen."""
    cid = await place(journal)
    assert await journal.record_fill(
        "reconciled:o1:0-6", cid, Decimal(6), Decimal("50.00"), T0, cumulative=Decimal(6)
    )
    assert not await journal.record_fill(
        "venue-exec-1", cid, Decimal(6), Decimal("50.00"), T0, cumulative=Decimal(6)
    )
    assert await journal.filled_qty_for_leg(PLAN, 0) == 6
    assert await journal.record_fill(
        "venue-exec-2", cid, Decimal(4), Decimal("50.01"), T0, cumulative=Decimal(10)
    )
    assert await journal.filled_qty_for_leg(PLAN, 0) == 10
    assert await journal.order_filled_qty(cid) == 10


async def test_fills_without_cumulative_still_advance_the_count(journal: Journal) -> None:
    """A caller that does not know the venue's cumulative adds its qty to the count."""
    cid = await place(journal)
    assert await journal.record_fill("e1", cid, Decimal(3), Decimal(50), T0)
    assert await journal.order_filled_qty(cid) == 3
    assert not await journal.record_fill(
        "e2", cid, Decimal(3), Decimal(50), T0, cumulative=Decimal(3)
    )
    assert await journal.order_filled_qty(coid(0, 99)) is None


async def test_halt_is_journaled(tmp_path: Path) -> None:
    """`set_halted` survives a reopen; resuming clears it."""
    path = tmp_path / "j.db"
    async with await Journal.open(path) as j:
        assert await j.halted() is None
        await j.set_halted(True, T0, "halted by user")
    async with await Journal.open(path) as j:
        assert await j.halted() == "halted by user"
        await j.set_halted(False, T0)
        assert await j.halted() is None


async def test_full_disk_is_reported_once_as_unwritable(journal: Journal) -> None:
    """A write the storage refuses (max_page_count: a full disk without root) raises
    `JournalUnwritable` and wakes `wait_unwritable` with the reason (issue 11 §5)."""

    def fill(conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")

    await journal._call(fill)
    assert journal.unwritable is None
    refused: list[JournalUnwritable] = []
    for attempt in range(200):
        try:
            await journal.record_event(None, None, "x", T0, {"pad": "x" * 4000, "n": attempt})
        except JournalUnwritable as exc:
            refused.append(exc)
            break
    assert refused, "the page cap never refused a write"
    reason = await asyncio.wait_for(journal.wait_unwritable(), 5)
    assert "full" in reason
    assert journal.unwritable == reason
