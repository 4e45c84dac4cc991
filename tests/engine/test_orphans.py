"""OrphanSweeper's rules without a venue: what is offered, and a failing cancel's retries.

The end-to-end cases run against the simulator in test_daemon_orphans.py; here the REST
gateway's cancel is replaced by a function that fails on demand (the sweeper's port).
"""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from execd.adapters.errors import NotFound, VenueRefused
from execd.adapters.wire import OrderSnapshot, TradeUpdate
from execd.domain.ids import client_order_id
from execd.engine.orphans import Orphan, OrphanStatistics, OrphanSweeper
from execd.engine.router import OrderRouter

CID = client_order_id("p", 0, 1)


def _sweeper(cancel_errors: list[Exception], calls: list[str]) -> OrphanSweeper:
    async def cancel(order_id: str) -> None:
        calls.append(order_id)
        if cancel_errors:
            raise cancel_errors.pop(0)

    router: OrderRouter[object] = OrderRouter()
    sweeper = OrphanSweeper(cancel, router.owns, retry_delay=0.0)
    sweeper.activate()
    return sweeper


async def _drain(sweeper: OrphanSweeper, done: int) -> None:
    async with asyncio.timeout(5):
        for _ in range(done):
            await sweeper.sweep_one()


def test_offer_rules() -> None:
    sweeper = OrphanSweeper(lambda _: asyncio.sleep(0), lambda _: False)
    assert not sweeper.offer(CID, "o1", "X", "new"), "inactive before recovery"
    sweeper.activate()
    assert not sweeper.offer("other-app", "o1", "X", "new"), "foreign"
    assert not sweeper.offer(CID, "o1", "X", "canceled"), "terminal"
    assert not sweeper.offer(CID, "", "X", "new"), "no order id"
    assert sweeper.offer(CID, "o1", "X", "pending_new")
    assert not sweeper.offer(CID, "o1", "X", "new"), "duplicate"
    assert sweeper.offer(CID, "o2", "X", "some_future_status"), "unknown statuses are live"
    sweeper.deactivate()
    assert not sweeper.offer(CID, "o3", "X", "new"), "off during a leave-shutdown"


async def test_a_failing_cancel_is_logged_and_retried_a_bounded_number_of_times() -> None:
    calls: list[str] = []
    sweeper = _sweeper([RuntimeError("boom")] * 5, calls)
    assert sweeper.offer(CID, "o1", "X", "new")
    with capture_logs() as logs:
        await _drain(sweeper, 1)
    assert calls == ["o1"] * 3
    assert sweeper.failed == 1
    assert sweeper.canceled == 0
    errors = [e for e in logs if e["event"] == "orphan_order_cancel_failed"]
    assert [e["attempt"] for e in errors] == [1, 2, 3]
    assert errors[0]["log_level"] == "error"
    assert errors[0]["client_order_id"] == CID


async def test_a_cancel_that_succeeds_on_retry_is_logged_canceled() -> None:
    calls: list[str] = []
    sweeper = _sweeper([RuntimeError("blip")], calls)
    assert sweeper.offer(CID, "o1", "SYM", "new")
    with capture_logs() as logs:
        await _drain(sweeper, 1)
    assert calls == ["o1", "o1"]
    done = [e for e in logs if e["event"] == "orphan_order_canceled"]
    assert len(done) == 1
    assert done[0]["log_level"] == "warning"
    assert done[0]["symbol"] == "SYM"
    assert done[0]["status"] == "new"
    assert done[0]["why"]


@pytest.mark.parametrize(
    "error", [NotFound("gone"), VenueRefused(422, None, 'order is already in "filled" state')]
)
async def test_an_order_already_dead_is_not_retried(error: Exception) -> None:
    calls: list[str] = []
    sweeper = _sweeper([error], calls)
    assert sweeper.offer(CID, "o1", "X", "new")
    await _drain(sweeper, 1)
    assert calls == ["o1"]
    assert sweeper.failed == 0
    assert sweeper.canceled == 0


async def test_an_order_a_leg_owns_again_is_not_cancelled() -> None:
    calls: list[str] = []

    async def cancel(order_id: str) -> None:
        calls.append(order_id)

    router: OrderRouter[object] = OrderRouter()
    sweeper = OrphanSweeper(cancel, router.owns)
    sweeper.activate()
    assert sweeper.offer(CID, "o1", "X", "new")
    router.register("p", 0)
    await _drain(sweeper, 1)
    assert calls == []


async def test_the_first_pass_sweeps_a_fresh_listing_once_activated() -> None:
    """The gap between recovery's listing and `activate`: once switched on, the first pass
    sweeps a fresh listing. Only execd's live orders no leg may claim are cancelled; a claimed
    one is not remembered, so its events can still offer it once its leg ends."""
    calls: list[str] = []
    owned = client_order_id("p", 1, 0)
    listing = [
        Orphan(CID, "o1", "X", "new"),
        Orphan("other-app", "o2", "X", "new"),
        Orphan(client_order_id("p", 0, 2), "o3", "X", "canceled"),
        Orphan(owned, "o4", "X", "new"),
    ]
    lists: list[int] = []

    async def list_open() -> list[Orphan]:
        lists.append(1)
        return listing

    async def cancel(order_id: str) -> None:
        calls.append(order_id)

    sweeper = OrphanSweeper(cancel, lambda cid: cid == owned, list_open=list_open)
    await sweeper.first_pass()
    assert lists == [], "nothing is listed before recovery is over (not activated)"
    sweeper.activate()
    await sweeper.first_pass()
    assert calls == ["o1"]
    assert lists == [1]
    assert sweeper.statistics() == OrphanStatistics(found=1, canceled=1, failed=0)
    assert not sweeper.offer(CID, "o1", "X", "new"), "swept once"
    assert sweeper.offer(owned, "o4", "X", "new"), "the claimed order may be offered later"


async def test_a_failing_first_listing_is_retried_then_left_to_the_next_start() -> None:
    attempts: list[int] = []

    async def list_open() -> list[Orphan]:
        attempts.append(1)
        raise RuntimeError("venue down")

    sweeper = OrphanSweeper(
        lambda _: asyncio.sleep(0), lambda _: False, list_open=list_open, retry_delay=0.0
    )
    sweeper.activate()
    with capture_logs() as logs:
        await sweeper.first_pass()
    assert len(attempts) == 3
    failed = [e for e in logs if e["event"] == "orphan_listing_failed"]
    assert [e["attempt"] for e in failed] == [1, 2, 3]
    assert failed[0]["log_level"] == "error"
    assert sweeper.statistics() == OrphanStatistics(found=0, canceled=0, failed=0)


async def test_statistics_count_found_canceled_and_failed() -> None:
    calls: list[str] = []
    sweeper = _sweeper([RuntimeError("down")] * 3, calls)
    assert sweeper.offer(CID, "o1", "X", "new")
    assert sweeper.offer(CID, "o2", "X", "new")
    await _drain(sweeper, 2)
    assert sweeper.statistics() == OrphanStatistics(found=2, canceled=1, failed=1)


@pytest.mark.parametrize(
    "message",
    ['order is already in "pending_replace" state', 'order is already in "pending_cancel" state'],
)
async def test_a_422_for_an_order_still_in_flux_is_retried(message: str) -> None:
    """Review 6: a 422 is "done" only for a terminal state. An order in pending_replace
    rejects cancels (ALPACA.md §1.7) but is still live: retry later, not forget it."""
    calls: list[str] = []
    sweeper = _sweeper([VenueRefused(422, 42210000, message)], calls)
    assert sweeper.offer(CID, "o1", "X", "pending_replace")
    await _drain(sweeper, 1)
    assert calls == ["o1", "o1"], "retried after the 422"
    assert sweeper.canceled == 1


def _update(cid: str, order_id: str, status: str) -> TradeUpdate:
    return TradeUpdate(
        event=status, order=OrderSnapshot(id=order_id, client_order_id=cid, status=status)
    )


async def test_an_order_whose_events_its_leg_took_is_swept_once_the_leg_ends() -> None:
    """Review 6 backstop: the replacement's events arrived while its leg still owned its
    client order id (routed, never offered); the leg then ended not knowing of it. Once
    the leg unregisters, the sweeper cancels every execd order of that leg the stream
    last saw live — not its terminal ones, not another leg's."""
    calls: list[str] = []

    async def cancel(order_id: str) -> None:
        calls.append(order_id)

    router: OrderRouter[TradeUpdate] = OrderRouter()
    sweeper = OrphanSweeper(cancel, router.owns, retry_delay=0.0)
    router.on_unregister = sweeper.released
    sweeper.activate()
    router.register("p", 0)
    router.register("p", 1)
    other_leg = client_order_id("p", 1, 0)
    for update in (
        _update(client_order_id("p", 0, 0), "o-old", "new"),
        _update(client_order_id("p", 0, 0), "o-old", "replaced"),
        _update(client_order_id("p", 0, 1), "o-new", "pending_new"),
        _update(client_order_id("p", 0, 1), "o-new", "new"),
        _update(other_leg, "o-other", "new"),
    ):
        sweeper.watch(update)
        assert router.route(update.client_order_id, update)
    router.unregister("p", 0)
    await _drain(sweeper, 1)
    assert calls == ["o-new"]
    assert sweeper.found == 1
    assert sweeper.canceled == 1
    router.unregister("p", 1)
    await _drain(sweeper, 1)
    assert calls == ["o-new", "o-other"]


async def test_a_leg_ending_with_its_orders_terminal_offers_nothing() -> None:
    calls: list[str] = []
    router: OrderRouter[TradeUpdate] = OrderRouter()
    sweeper = OrphanSweeper(lambda _: asyncio.sleep(0), router.owns, retry_delay=0.0)
    router.on_unregister = sweeper.released
    sweeper.activate()
    router.register("p", 0)
    for status in ("new", "partially_filled", "filled"):
        sweeper.watch(_update(client_order_id("p", 0, 0), "o1", status))
    router.unregister("p", 0)
    assert sweeper.watched() == 0, "a terminal order is forgotten"
    assert calls == []
    # deactivated (a leave-shutdown): the legs unregister on purpose, nothing is offered
    sweeper.deactivate()
    router.register("p", 2)
    sweeper.watch(_update(client_order_id("p", 2, 0), "o2", "new"))
    router.unregister("p", 2)
    assert sweeper._queue.empty()
