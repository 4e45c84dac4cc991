"""The engine-wide ledger of buys and sells the venue's figures may not show yet."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

from execd.domain.plans import Leg
from execd.domain.types import Side, Urgency
from execd.engine.ledger import Commitments, merged
from execd.engine.records import LegRecord

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


def _leg(index: int, side: Side, qty: str, symbol: str = "SPY") -> LegRecord:
    leg = Leg(index, symbol, side, Decimal(qty), None, Urgency.HIGH, None, None)
    record = LegRecord(leg)
    record.qty = Decimal(qty)
    return record


def test_a_buy_is_reserved_until_its_order_is_live_or_it_ends() -> None:
    ledger = Commitments()
    buy = _leg(0, Side.BUY, "10")
    ledger.reserve_buy(("a", 0), buy, Decimal("500"))
    assert ledger.cash() == {("a", 0): Decimal(5000)}
    buy.filled_qty = Decimal(4)
    assert ledger.cash() == {("a", 0): Decimal(3000)}
    buy.limit_price = Decimal("499")  # live at the venue: the venue holds the cash
    assert ledger.cash() == {}
    buy.limit_price = None  # between a cancel and the next order: reserved again
    assert ledger.cash() == {("a", 0): Decimal(3000)}
    ledger.release(("a", 0))
    assert ledger.cash() == {}


def test_sells_are_committed_by_symbol_until_they_end() -> None:
    ledger = Commitments()
    ledger.commit_sell(("a", 0), _leg(0, Side.SELL, "300", "TQQQ"))
    ledger.commit_sell(("b", 1), _leg(1, Side.SELL, "5", "SPY"))
    assert ledger.sells("TQQQ") == {("a", 0): Decimal(300)}
    sell = _leg(2, Side.SELL, "7", "TQQQ")
    ledger.commit_sell(("c", 2), sell)
    sell.finish("filled", "done", NOW)
    assert ledger.sells("TQQQ") == {("a", 0): Decimal(300)}


def test_merged_counts_a_leg_once_and_never_misses_one() -> None:
    before = {("a", 0): Decimal(300), ("b", 0): Decimal(50)}
    after = {("a", 0): Decimal(100), ("c", 0): Decimal(7)}  # b ended, c started meanwhile
    assert merged(before, after) == Decimal(357)
    assert merged({}, {}) == 0


async def test_a_buy_started_and_live_during_the_read_is_still_counted() -> None:
    """Another plan's buy reserved, then placed (live), while this read was in flight:
    the venue's answer may predate its order, so the ledger counts it."""
    ledger = Commitments()
    other = _leg(0, Side.BUY, "25")

    async def read() -> str:
        ledger.reserve_buy(("b", 0), other, Decimal("520"))
        other.limit_price = Decimal("519")
        return "account"

    answer, reserved, spending = await ledger.cash_around(read)
    assert (answer, reserved, spending) == ("account", Decimal(13000), Decimal(13000))
    # A later read sees its hold in the buying power; against the cash it still counts.
    _, reserved, spending = await ledger.cash_around(_account)
    assert (reserved, spending) == (Decimal(0), Decimal(13000))
    other.filled_qty = Decimal(5)
    _, _, spending = await ledger.cash_around(_account)
    assert spending == Decimal(10400)


async def test_a_sell_that_started_and_filled_during_the_read_is_still_counted() -> None:
    ledger = Commitments()
    other = _leg(0, Side.SELL, "300", "TQQQ")

    async def read() -> None:
        ledger.commit_sell(("a", 0), other)
        other.filled_qty = Decimal(300)
        other.finish("filled", "done", NOW)
        ledger.release(("a", 0))

    _, committed = await ledger.sells_around("TQQQ", read)
    assert committed == Decimal(300)
    _, committed = await ledger.sells_around("SPY", read)
    assert committed == 0


async def _account() -> str:
    return "account"


async def test_a_buy_whose_task_is_cancelled_before_its_first_step_is_released() -> None:
    """A leg task cancelled before it first runs executes none of its body, not even a
    `finally`: the reservation must go with the task itself, however it ends."""
    ledger = Commitments()
    ran: list[bool] = []

    async def leg_task() -> None:
        try:
            ran.append(True)
        finally:
            ledger.release(("a", 0))

    ledger.reserve_buy(("a", 0), _leg(0, Side.BUY, "10"), Decimal("500"))
    task = asyncio.create_task(leg_task())
    ledger.release_when_done(("a", 0), task)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert ran == [], "the scenario needs a task that never ran a step"
    assert ledger.cash() == {}


async def test_overlapping_reads_each_see_a_buy_started_during_both() -> None:
    """Two plans read the account at once and the later read answers first. A buy that
    starts while the earlier read is still in flight must still be counted by it, and the
    earlier read must end cleanly. The watchers were removed by equality: the later read's
    removal took the earlier read's (still empty, so equal) record, the buy went unseen by
    the earlier read — its plan could spend that cash again — and the earlier read's own
    removal then raised `ValueError` (a `buy_release_crashed` in the request-budget bench)."""
    ledger = Commitments()
    first_asked, second_asked = asyncio.Event(), asyncio.Event()
    first_answer, second_answer = asyncio.Event(), asyncio.Event()

    async def first_read() -> str:
        first_asked.set()
        await first_answer.wait()
        return "first"

    async def second_read() -> str:
        second_asked.set()
        await second_answer.wait()
        return "second"

    first = asyncio.create_task(ledger.cash_around(first_read))
    await first_asked.wait()
    second = asyncio.create_task(ledger.cash_around(second_read))
    await second_asked.wait()
    second_answer.set()
    await second
    ledger.reserve_buy(("b", 0), _leg(0, Side.BUY, "10"), Decimal("100"))
    first_answer.set()
    _, invisible, spending = await first
    assert invisible == Decimal(1000)
    assert spending == Decimal(1000)
