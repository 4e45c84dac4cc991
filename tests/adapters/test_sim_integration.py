"""The adapters against the real simulated venue (execd.sim) over loopback.

These are the end-to-end checks of the adapters' promises: answers parse with
alpaca-py's models, a lost POST never makes two orders (the venue's own history is
the witness), quotes go stale while the data stream is down and come back after the
reconnect, and trade updates keep reaching the router across a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest

from execd.adapters.backoff import BackoffPolicy
from execd.adapters.budget import RequestBudget
from execd.adapters.errors import SendExpired, VenueRefused, VenueUnavailable
from execd.adapters.market_stream import MarketStream, MarketStreamConfig
from execd.adapters.order_stream import OrderStream, OrderStreamConfig
from execd.adapters.rest import RestConfig, RestGateway
from execd.adapters.wire import TradeUpdate
from execd.domain.quotes import Quote
from execd.domain.types import Side
from execd.sim.config import SimConfig
from execd.sim.venue import SimVenue

from .conftest import DEADLINE, wait_until

FAST = BackoffPolicy(initial=0.01, maximum=0.05)


def sim_config() -> SimConfig:
    """A calm, open market on a plain Wednesday mid-morning, fixed seed."""
    return SimConfig(
        scenario="calm",
        seed=11,
        start=time(10, 0),
        start_date=date(2026, 3, 4),
        symbols=("TQQQ", "SPY"),
    )


@pytest.fixture
async def venue() -> AsyncIterator[SimVenue]:
    """The simulated venue on an ephemeral loopback port."""
    async with SimVenue(sim_config()) as running:
        yield running


def rest_for(venue: SimVenue, **overrides: Any) -> RestGateway:
    """A gateway on the venue with short timeouts and fast backoff."""
    fields: dict[str, Any] = {
        "trading_url": venue.trading_url,
        "data_url": venue.data_url,
        "key_id": venue.key_id,
        "secret_key": venue.secret_key,
        "total_timeout": 3.0,
        "connect_timeout": 1.0,
        "backoff": FAST,
    }
    fields.update(overrides)
    return RestGateway(RestConfig(**fields), RequestBudget(), rand=random.Random(2).random)


@contextlib.asynccontextmanager
async def supervised(coro: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """Run a stream's `run()` as a task for the block; its crash fails the test."""
    task = asyncio.create_task(coro, name=name)
    try:
        yield
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def orders_with(history: dict[str, Any], client_order_id: str) -> list[dict[str, Any]]:
    """The venue's history entries for one client order id."""
    return [o for o in history["orders"] if o["order"]["client_order_id"] == client_order_id]


async def test_rest_round_trip_parses(venue: SimVenue) -> None:
    """submit → replace → cancel, plus account/market reads, all parse with alpaca-py."""
    async with rest_for(venue) as rest:
        quote = await _latest(rest, "TQQQ")
        assert quote.bid > 0
        assert quote.ask >= quote.bid
        resting = (quote.bid - Decimal("1.00")).quantize(Decimal("0.01"))
        order = await rest.submit_order(
            symbol="TQQQ", side=Side.BUY, qty=Decimal(3), limit_price=resting,
            client_order_id="xd-0123456789ab-0-0",
        )  # fmt: skip
        assert Decimal(str(order.limit_price)) == resting
        assert Decimal(str(order.qty)) == Decimal(3)
        current = await rest.get_order(str(order.id))
        await _wait_status(rest, str(current.id), {"new"})
        new = await rest.replace_order(
            str(order.id), Decimal(3), resting - Decimal("0.01"), "xd-0123456789ab-0-1"
        )
        assert str(new.replaces) == str(order.id)
        assert Decimal(str(new.limit_price)) == resting - Decimal("0.01")
        await _wait_status(rest, str(new.id), {"new"})
        await rest.cancel_order(str(new.id))
        await _wait_status(rest, str(new.id), {"canceled"})
        by_cid = await rest.get_order_by_client_id("xd-0123456789ab-0-1")
        assert by_cid is not None
        assert by_cid.id == new.id
        assert await rest.get_order_by_client_id("xd-0123456789ab-0-9") is None
        listed = await rest.list_orders(status="all", limit=500, nested=True)
        assert {str(o.id) for o in listed} >= {str(order.id), str(new.id)}

        account = await rest.account()
        assert Decimal(str(account.cash)) > 0
        assert (await rest.clock()).is_open
        days = await rest.calendar(date(2026, 3, 2), date(2026, 3, 6))
        assert len(days) == 5
        assert (await rest.asset("TQQQ")).symbol == "TQQQ"
        assert await rest.position("SPY") is None
        assert isinstance(await rest.positions(), list)


async def _latest(rest: RestGateway, symbol: str) -> Quote:
    """The venue's latest quote, waiting (with a deadline) for its first one."""
    async with asyncio.timeout(DEADLINE):
        while (quote := await rest.latest_quote(symbol)) is None:  # noqa: ASYNC110 - REST
            await asyncio.sleep(0.05)
    return quote


async def _wait_status(rest: RestGateway, order_id: str, statuses: set[str]) -> None:
    """Poll the order (REST, with a deadline) until its status is one of `statuses`."""
    async with asyncio.timeout(DEADLINE):
        while (await rest.get_order(order_id)).status.value not in statuses:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_post_answered_504_after_placing_makes_one_order(venue: SimVenue) -> None:
    """The venue places the order and answers 504: the gateway finds it; one order exists."""
    await venue.fail_next_requests(1, status=504, method="POST", path="/v2/orders", when="after")
    async with rest_for(venue) as rest:
        quote = await _latest(rest, "SPY")
        order = await rest.submit_order(
            symbol="SPY", side=Side.BUY, qty=Decimal(1),
            limit_price=(quote.bid - 2).quantize(Decimal("0.01")), client_order_id="cid-504",
        )  # fmt: skip
    assert order.client_order_id == "cid-504"
    assert len(orders_with(await venue.history(), "cid-504")) == 1


async def test_post_answered_504_before_placing_makes_one_order(venue: SimVenue) -> None:
    """504 without placing: look-up 404 → resent with the same id → exactly one order."""
    await venue.fail_next_requests(1, status=504, method="POST", path="/v2/orders")
    async with rest_for(venue) as rest:
        quote = await _latest(rest, "SPY")
        order = await rest.submit_order(
            symbol="SPY", side=Side.BUY, qty=Decimal(1),
            limit_price=(quote.bid - 2).quantize(Decimal("0.01")), client_order_id="cid-504b",
        )  # fmt: skip
    assert order.client_order_id == "cid-504b"
    assert len(orders_with(await venue.history(), "cid-504b")) == 1


async def test_post_slower_than_our_timeout_makes_one_order(venue: SimVenue) -> None:
    """The venue answers after our timeout: resolved by look-up, still one order."""
    await venue.fail_next_requests(1, delay=0.5, method="POST", path="/v2/orders")
    slow_lookup = BackoffPolicy(initial=0.8, maximum=0.8, jitter=0)
    async with rest_for(venue, total_timeout=0.2, backoff=slow_lookup) as rest:
        quote = await _latest(rest, "SPY")
        order = await rest.submit_order(
            symbol="SPY", side=Side.BUY, qty=Decimal(1),
            limit_price=(quote.bid - 2).quantize(Decimal("0.01")), client_order_id="cid-slow",
        )  # fmt: skip
    assert order.client_order_id == "cid-slow"
    assert len(orders_with(await venue.history(), "cid-slow")) == 1


async def test_refusal_is_verbatim() -> None:
    """Selling what we do not hold on a cash account (a margin account would sell it short):
    403 `insufficient qty available …` kept verbatim."""
    cash_account = dataclasses.replace(sim_config(), multiplier=1)
    async with SimVenue(cash_account) as venue, rest_for(venue) as rest:
        with pytest.raises(VenueRefused) as caught:
            await rest.submit_order(
                symbol="SPY", side=Side.SELL, qty=Decimal(5), limit_price=Decimal("500.00"),
                client_order_id="cid-refused",
            )  # fmt: skip
    assert caught.value.status == 403
    assert caught.value.message.startswith("insufficient qty available for order")


async def test_tight_rate_limit_is_waited_out(venue: SimVenue) -> None:
    """With the venue allowing 4 requests a second, 7 concurrent reads all succeed."""
    await venue.set_rate_limit(4, 1.0)
    async with rest_for(venue, read_attempts=8) as rest, asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(rest.clock()) for _ in range(7)]
    assert all(t.result().is_open for t in tasks)


async def test_quote_stream_goes_stale_while_down_and_recovers(venue: SimVenue) -> None:
    """Drop the data stream: quotes freeze; after the reconnect fresh quotes flow again."""
    stream = MarketStream(
        MarketStreamConfig(
            url=venue.data_stream_url, key_id=venue.key_id, secret_key=venue.secret_key,
            backoff=BackoffPolicy(initial=0.2, maximum=0.2, jitter=0),
        ),
        rand=random.Random(4).random,
    )  # fmt: skip
    stream.subscribe(["TQQQ", "SPY"])
    async with supervised(stream.run(), "market-stream"):
        first = await asyncio.wait_for(stream.wait_quote("TQQQ"), DEADLINE)
        assert first.bid > 0
        await wait_until(lambda: stream.vwap("TQQQ").volume >= 0)

        await venue.drop_streams("data", abort=True)
        await wait_until(lambda: not stream.connected)
        down_at = datetime.now(UTC)
        frozen = stream.quote("TQQQ")
        assert frozen is not None
        assert frozen.as_of <= down_at
        again = stream.quote("TQQQ")
        assert again is not None
        assert again.as_of == frozen.as_of  # not moving while down

        await asyncio.wait_for(stream.wait_connected(), DEADLINE)
        fresh = await asyncio.wait_for(stream.wait_quote("TQQQ", newer_than=down_at), DEADLINE)
        assert fresh.as_of > frozen.as_of
        await asyncio.wait_for(venue.wait_streams(data=1), DEADLINE)
    assert stream.statistics().reconnects >= 1


async def test_trade_updates_reach_the_router_across_a_reconnect(venue: SimVenue) -> None:
    """Fills are routed; after a drop the hook reconciles, then new fills are routed too."""
    routed: list[TradeUpdate] = []
    reconciled: list[datetime | None] = []

    def route(client_order_id: str, update: TradeUpdate) -> bool:
        if not client_order_id.startswith("xd-"):
            return False
        routed.append(update)
        return True

    async def on_reconnected(down_since: datetime | None) -> None:
        reconciled.append(down_since)

    stream = OrderStream(
        OrderStreamConfig(
            url=venue.trading_stream_url, key_id=venue.key_id, secret_key=venue.secret_key,
            backoff=FAST,
        ),
        route,
        on_reconnected=on_reconnected,
        rand=random.Random(6).random,
    )  # fmt: skip
    async with rest_for(venue) as rest, supervised(stream.run(), "order-stream"):
        await asyncio.wait_for(stream.wait_connected(), DEADLINE)
        await _buy_marketable(rest, "xd-0123456789ab-1-0")
        await wait_until(lambda: _filled(routed, "xd-0123456789ab-1-0"))

        await venue.drop_streams("trading", abort=True)
        await wait_until(lambda: len(reconciled) == 2 and stream.connected)
        await asyncio.wait_for(venue.wait_streams(trading=1), DEADLINE)
        await _buy_marketable(rest, "xd-0123456789ab-1-1")
        await wait_until(lambda: _filled(routed, "xd-0123456789ab-1-1"))
    assert reconciled[0] is None
    assert reconciled[1] is not None
    fills = [u for u in routed if u.event in {"fill", "partial_fill"}]
    assert all(u.price is not None and u.qty is not None for u in fills)


async def _buy_marketable(rest: RestGateway, client_order_id: str) -> None:
    quote = await _latest(rest, "SPY")
    await rest.submit_order(
        symbol="SPY", side=Side.BUY, qty=Decimal(2),
        limit_price=(quote.ask + Decimal("0.50")).quantize(Decimal("0.01")),
        client_order_id=client_order_id,
    )  # fmt: skip


def _filled(routed: list[TradeUpdate], client_order_id: str) -> bool:
    return any(u.client_order_id == client_order_id and u.event == "fill" for u in routed)


async def test_a_read_does_not_queue_behind_slow_writes(venue: SimVenue) -> None:
    """Every pooled connection busy with an order write the overloaded venue answers slowly:
    a read (here the calendar a submit validates against) must still get through. Before,
    reads waited for a free connection in the writes' pool; aiohttp counts that wait against
    the connect timeout, so every attempt failed `ConnectionTimeoutError` without ever
    reaching the venue and the submit was refused (issue 14, the scale bench's 4th plan)."""
    slow = 1.5
    await venue.fail_next_requests(2, delay=slow, method="POST", path="/v2/orders")
    async with rest_for(venue, connections=2, connect_timeout=0.2, total_timeout=3.0) as rest:
        quote = await _latest(rest, "SPY")
        price = (quote.bid - 2).quantize(Decimal("0.01"))
        cids = ("cid-pool-0", "cid-pool-1")
        orders = (
            rest.submit_order(
                symbol="SPY", side=Side.BUY, qty=Decimal(1), limit_price=price, client_order_id=cid
            )
            for cid in cids
        )
        writes = [asyncio.create_task(order) for order in orders]
        await wait_until(lambda: not venue.services.faults.pending())
        began = asyncio.get_running_loop().time()
        days = await rest.calendar(date(2026, 3, 2), date(2026, 3, 6))
        waited = asyncio.get_running_loop().time() - began
        placed = await asyncio.gather(*writes)
    assert len(days) == 5
    assert waited < slow  # answered while both writes were still held, not after them
    assert [o.client_order_id for o in placed] == list(cids)
    history = await venue.history()
    assert all(len(orders_with(history, cid)) == 1 for cid in cids)


async def test_a_read_waits_its_turn_for_a_connection(venue: SimVenue) -> None:
    """Every connection of the reads' pool busy with a read the overloaded venue answers
    slowly: a further read waits for a connection (bounded by the total timeout) and is
    then sent. Before, the wait counted against the connect timeout: each attempt failed
    `ConnectionTimeoutError` without reaching the venue and went back to the end of the
    queue (the scale bench's 4th submit, refused after 15 s: `GET /v2/calendar`)."""
    slow = 1.0
    await venue.fail_next_requests(2, delay=slow, method="GET", path="/v2/account")
    async with rest_for(venue, connections=2, connect_timeout=0.2, total_timeout=3.0) as rest:
        busy = [asyncio.create_task(rest.account()) for _ in range(2)]
        await wait_until(lambda: not venue.services.faults.pending())
        days = await rest.calendar(date(2026, 3, 2), date(2026, 3, 6))
        accounts = await asyncio.gather(*busy)
    assert len(days) == 5
    assert all(Decimal(str(a.cash)) > 0 for a in accounts)


async def test_a_write_that_never_got_a_connection_is_sent_again_without_a_look_up(
    venue: SimVenue,
) -> None:
    """The one pooled connection is held by a slow order: the next order cannot get a
    connection in time. That attempt never left (aiohttp raises its connect timeout before
    writing a byte), so there is nothing to settle: it is sent again once a connection is
    free. Before, it was called uncertain and settled by look-ups — on an overloaded venue
    600 unsent orders made 1,600 look-ups that timed out in turn (the scale bench). The
    look-ups here fail, so a look-up would end the order `OutcomeUnknown`."""
    await venue.fail_next_requests(1, delay=0.5, method="POST", path="/v2/orders")
    await venue.fail_next_requests(20, status=500, path="/v2/orders:by_client_order_id")
    async with rest_for(venue, connections=1, connect_timeout=0.2) as rest:
        quote = await _latest(rest, "SPY")
        price = (quote.bid - 2).quantize(Decimal("0.01"))
        held = rest.submit_order(
            symbol="SPY", side=Side.BUY, qty=Decimal(1), limit_price=price,
            client_order_id="cid-held",
        )  # fmt: skip
        slow = asyncio.create_task(held)
        await wait_until(lambda: len(venue.services.faults.pending()) == 1)
        order = await rest.submit_order(
            symbol="SPY", side=Side.BUY, qty=Decimal(1), limit_price=price,
            client_order_id="cid-queued",
        )  # fmt: skip
        await slow
    assert order.client_order_id == "cid-queued"
    history = await venue.history()
    assert len(orders_with(history, "cid-queued")) == 1
    assert [f["remaining"] for f in venue.services.faults.pending()] == [20]  # no look-up


async def test_a_write_that_never_left_ends_not_sent_not_unknown(venue: SimVenue) -> None:
    """No connection for any attempt: `SendExpired` (the order does not exist; the leg
    prices it afresh), not `OutcomeUnknown` (which would stop the leg to reconcile)."""
    await venue.fail_next_requests(1, delay=1.5, method="POST", path="/v2/orders")
    async with rest_for(venue, connections=1, connect_timeout=0.1) as rest:
        quote = await _latest(rest, "SPY")
        price = (quote.bid - 2).quantize(Decimal("0.01"))
        held = rest.submit_order(
            symbol="SPY", side=Side.BUY, qty=Decimal(1), limit_price=price,
            client_order_id="cid-hold",
        )  # fmt: skip
        slow = asyncio.create_task(held)
        await wait_until(lambda: not venue.services.faults.pending())
        with pytest.raises(SendExpired, match="no connection"):
            await rest.submit_order(
                symbol="SPY", side=Side.BUY, qty=Decimal(1), limit_price=price,
                client_order_id="cid-never",
            )  # fmt: skip
        await slow
    assert orders_with(await venue.history(), "cid-never") == []


async def test_a_read_retries_within_its_window(venue: SimVenue) -> None:
    """A read waits its turn for a connection up to the total timeout, so its retries are
    bounded by time too: no attempt starts after `read_window`, however many are left (an
    unanswering venue refuses a submit in bounded time, not attempts x total timeout)."""
    await venue.fail_next_requests(50, delay=2.0, method="GET", path="/v2/account")
    config = {"total_timeout": 0.3, "read_attempts": 20, "read_window": 0.8}
    async with rest_for(venue, **config) as rest:
        began = asyncio.get_running_loop().time()
        with pytest.raises(VenueUnavailable):
            await rest.account()
        took = asyncio.get_running_loop().time() - began
    # The last attempt started within the window (give or take one backoff, 0.05 s) and
    # ran out its timeout: far from the 20 attempts' 6 s+ (slack for a loaded machine).
    assert 0.8 - 0.05 <= took < 2.0
    assert 50 - venue.services.faults.pending()[0]["remaining"] <= 4
