"""Acceptance: the official alpaca-py clients, unchanged, against the venue (only URLs overridden).

alpaca-py's REST client is synchronous, so every call goes through ``asyncio.to_thread`` and the
venue's loop keeps running. Streams run as ``_run_forever()`` tasks in the test's loop with their
handlers registered first (ALPACA.md §8.2). Stopping a stream: ``stop_ws()`` and then the venue
drops the socket, so the SDK notices at once instead of after its 5 s receive timeout.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.live.stock import StockDataStream
from alpaca.data.models import Quote, Trade
from alpaca.data.requests import StockLatestQuoteRequest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.models import Order, TradeUpdate
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetCalendarRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
)
from alpaca.trading.stream import TradingStream

from execd.adapters.budget import RequestBudget
from execd.adapters.latest_quotes import LATEST_QUOTES_CHUNK
from execd.adapters.rest import RestConfig, RestGateway
from execd.sim.clock import VenueClock
from execd.sim.venue import SimVenue
from tests.sim.conftest import TRADING_DAY, first_quote, venue_config, wait_until, within


async def rest(fn: Callable[..., Any], *args: Any) -> Any:
    """Run one blocking alpaca-py call in a thread (the SDK's REST client is synchronous).

    Typed ``Any``: the SDK's answers are ``Model | RawData`` unions and these clients are built
    with ``raw_data=False``, so they are always models.
    """
    return await asyncio.to_thread(fn, *args)


class Updates:
    """Collects TradeUpdates from alpaca-py's TradingStream and waits for matching ones."""

    def __init__(self) -> None:
        self.seen: list[TradeUpdate] = []
        self._changed = asyncio.Condition()

    async def handler(self, update: TradeUpdate) -> None:
        """The coroutine handed to ``subscribe_trade_updates``."""
        async with self._changed:
            self.seen.append(update)
            self._changed.notify_all()

    async def wait(self, order_id: uuid.UUID | str, event: str) -> TradeUpdate:
        """The first update of ``event`` for ``order_id`` (waits, bounded by the suite deadline)."""
        wanted = str(order_id)

        def find() -> TradeUpdate | None:
            for u in self.seen:
                if str(u.order.id) == wanted and str(getattr(u.event, "value", u.event)) == event:
                    return u
            return None

        async def wait_for() -> TradeUpdate:
            async with self._changed:
                await self._changed.wait_for(lambda: find() is not None)
            found = find()
            assert found is not None
            return found

        result: TradeUpdate = await within(wait_for())
        return result

    def events(self, order_id: uuid.UUID | str) -> list[str]:
        """Event names seen for one order, in order."""
        return [
            str(getattr(u.event, "value", u.event))
            for u in self.seen
            if str(u.order.id) == str(order_id)
        ]


@pytest.fixture
async def rich_venue() -> AsyncIterator[SimVenue]:
    """A venue with a large account, so big orders are limited by liquidity, not cash."""
    async with SimVenue(venue_config(cash=Decimal("10000000"))) as running:
        yield running


@pytest.fixture
def trading(rich_venue: SimVenue) -> TradingClient:
    """alpaca-py's TradingClient pointed at the venue (no retries: faults are tested apart)."""
    client = TradingClient(
        rich_venue.key_id, rich_venue.secret_key, url_override=rich_venue.trading_url
    )
    client._retry = 0
    return client


@pytest.fixture
async def updates(rich_venue: SimVenue) -> AsyncIterator[Updates]:
    """alpaca-py's TradingStream running in this loop, listening before the test starts."""
    collected = Updates()
    stream = TradingStream(
        rich_venue.key_id, rich_venue.secret_key, url_override=rich_venue.trading_stream_url
    )
    stream.subscribe_trade_updates(collected.handler)
    task = asyncio.create_task(
        stream._run_forever(),  # type: ignore[no-untyped-call]
        name="alpaca-py-trading-stream",
    )
    await within(rich_venue.wait_streams(trading=1))
    yield collected
    await stream.stop_ws()
    await rich_venue.drop_streams("trading")
    await within(task)


async def test_account_clock_calendar_asset(trading: TradingClient) -> None:
    """Account, clock, calendar and asset answers parse into alpaca-py's models (§8.5)."""
    account = await rest(trading.get_account)
    assert account.status.value == "ACTIVE"
    assert Decimal(str(account.cash)) == Decimal("10000000")
    clock = await rest(trading.get_clock)
    assert clock.is_open
    days = await rest(
        trading.get_calendar, GetCalendarRequest(start=TRADING_DAY, end=date(2026, 3, 6))
    )
    assert [d.date for d in days] == [date(2026, 3, 4), date(2026, 3, 5), date(2026, 3, 6)]
    asset = await rest(trading.get_asset, "SPY")
    assert asset.symbol == "SPY"
    assert asset.tradable


async def test_market_order_fills_with_stream_events(
    trading: TradingClient, updates: Updates
) -> None:
    """A market order: new → fill on trade_updates with qty/price/position_qty/execution_id."""
    client_id = f"acc-{uuid.uuid4().hex[:12]}"
    order = await rest(
        trading.submit_order,
        MarketOrderRequest(
            symbol="SPY",
            qty=3,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            client_order_id=client_id,
        ),
    )
    assert isinstance(order, Order)
    await updates.wait(order.id, "new")
    fill = await updates.wait(order.id, "fill")
    assert fill.execution_id is not None
    assert Decimal(str(fill.qty)) == 3
    assert Decimal(str(fill.position_qty)) == 3
    assert Decimal(str(fill.price)) > 0
    assert fill.order.status == OrderStatus.FILLED
    by_id = await rest(trading.get_order_by_id, order.id)
    assert by_id.status == OrderStatus.FILLED
    by_client = await rest(trading.get_order_by_client_id, client_id)
    assert by_client.id == order.id
    positions = await rest(trading.get_all_positions)
    assert [(p.symbol, Decimal(p.qty)) for p in positions] == [("SPY", Decimal(3))]
    spy = await rest(trading.get_open_position, "SPY")
    assert Decimal(spy.qty) == 3


async def test_fractional_and_notional_orders(trading: TradingClient, updates: Updates) -> None:
    """Fractional qty and notional market orders are accepted and fill (§1.3)."""
    fractional = await rest(
        trading.submit_order,
        MarketOrderRequest(symbol="TQQQ", qty=0.5, side=OrderSide.BUY, time_in_force="day"),
    )
    notional = await rest(
        trading.submit_order,
        MarketOrderRequest(symbol="SPY", notional=250, side=OrderSide.BUY, time_in_force="day"),
    )
    assert notional.notional is not None
    fill = await updates.wait(fractional.id, "fill")
    assert Decimal(str(fill.qty)) == Decimal("0.5")
    await updates.wait(notional.id, "fill")


async def test_resting_limit_replace_and_cancel(trading: TradingClient, updates: Updates) -> None:
    """A passive limit rests (new), is replaced (new id, ``replaced`` event) and canceled."""
    order = await rest(
        trading.submit_order,
        LimitOrderRequest(
            symbol="TQQQ", qty=5, side=OrderSide.BUY, time_in_force="day", limit_price=40.00
        ),
    )
    await updates.wait(order.id, "new")
    replacement = await rest(
        trading.replace_order_by_id, order.id, ReplaceOrderRequest(limit_price=41.00)
    )
    assert replacement.id != order.id
    assert str(replacement.replaces) == str(order.id)
    replaced = await updates.wait(order.id, "replaced")
    assert replaced.order.status == OrderStatus.REPLACED
    await updates.wait(replacement.id, "new")
    open_orders = await rest(
        trading.get_orders, GetOrdersRequest(status=QueryOrderStatus.OPEN, nested=True)
    )
    assert [o.id for o in open_orders] == [replacement.id]
    await rest(trading.cancel_order_by_id, replacement.id)
    canceled = await updates.wait(replacement.id, "canceled")
    assert canceled.order.status == OrderStatus.CANCELED


async def test_cancel_all_orders_is_207(trading: TradingClient, updates: Updates) -> None:
    """DELETE /v2/orders: one CancelOrderResponse per open order (§1.8)."""
    ids = set()
    for price in (40.0, 39.0):
        order = await rest(
            trading.submit_order,
            LimitOrderRequest(
                symbol="TQQQ", qty=1, side=OrderSide.BUY, time_in_force="day", limit_price=price
            ),
        )
        ids.add(order.id)
        await updates.wait(order.id, "new")
    responses = await rest(trading.cancel_orders)
    assert {r.id for r in responses} == ids
    assert all(200 <= r.status < 300 for r in responses)
    for order_id in ids:
        await updates.wait(order_id, "canceled")


async def test_partial_fill_then_cancel(
    rich_venue: SimVenue, trading: TradingClient, updates: Updates
) -> None:
    """An order bigger than the book's depth near the touch partially fills; the rest cancels."""
    ask = Decimal(str((await first_quote(rich_venue, "TQQQ"))["ap"]))
    order = await rest(
        trading.submit_order,
        LimitOrderRequest(
            symbol="TQQQ",
            qty=100_000,
            side=OrderSide.BUY,
            time_in_force="day",
            limit_price=float(ask + Decimal("0.05")),
        ),
    )
    partial = await updates.wait(order.id, "partial_fill")
    assert 0 < Decimal(str(partial.qty)) < 100_000
    assert partial.order.status == OrderStatus.PARTIALLY_FILLED
    await rest(trading.cancel_order_by_id, order.id)
    canceled = await updates.wait(order.id, "canceled")
    assert Decimal(str(canceled.order.filled_qty)) >= Decimal(str(partial.qty))


async def test_rejections_raise_api_error(trading: TradingClient, rich_venue: SimVenue) -> None:
    """Venue refusals reach alpaca-py as APIError with Alpaca's status, code and message."""
    await rich_venue.reject_next_orders(1, 403, "insufficient buying power", 40310000)
    with pytest.raises(APIError) as info:
        await rest(
            trading.submit_order,
            MarketOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force="day"),
        )
    assert info.value.status_code == 403
    assert info.value.code == 40310000
    assert info.value.message == "insufficient buying power"
    with pytest.raises(APIError) as info:
        await rest(trading.get_open_position, "TQQQ")
    assert info.value.status_code == 404


async def test_latest_quote_via_historical_client(rich_venue: SimVenue) -> None:
    """StockHistoricalDataClient.get_stock_latest_quote parses the venue's answer (§5)."""
    client = StockHistoricalDataClient(
        rich_venue.key_id, rich_venue.secret_key, url_override=rich_venue.data_url
    )
    await first_quote(rich_venue, "SPY")
    await first_quote(rich_venue, "TQQQ")
    quotes = await rest(
        client.get_stock_latest_quote, StockLatestQuoteRequest(symbol_or_symbols=["SPY", "TQQQ"])
    )
    assert set(quotes) == {"SPY", "TQQQ"}
    assert quotes["SPY"].ask_price >= quotes["SPY"].bid_price > 0


async def test_batched_latest_quotes_match_alpaca_py() -> None:
    """execd's `RestGateway.latest_quotes` reads 250 symbols in two requests
    (`LATEST_QUOTES_CHUNK`, counted by the venue) and gets exactly what alpaca-py's
    `StockHistoricalDataClient` gets from the same venue in one (§5 ``?symbols=A,B,...``;
    a manual clock keeps the market still between the two). A symbol the venue does not
    know is absent from both answers, never a zero quote."""
    names = tuple(f"U{i:04d}" for i in range(250))
    config = venue_config(symbols=names)
    async with SimVenue(config, clock=VenueClock.from_config(config, monotonic=None)) as venue:
        venue.exchange.advance(1.0)
        asked = [*names, "ZZZZ"]
        latest = "GET /v2/stocks/quotes/latest"
        before = venue.services.requests[latest]
        gateway = RestGateway(
            RestConfig(venue.trading_url, venue.data_url, venue.key_id, venue.secret_key),
            RequestBudget(),
        )
        async with gateway:
            ours = await gateway.latest_quotes(asked)
        assert venue.services.requests[latest] - before == -(-len(asked) // LATEST_QUOTES_CHUNK)
        client = StockHistoricalDataClient(
            venue.key_id, venue.secret_key, url_override=venue.data_url
        )
        request = StockLatestQuoteRequest(symbol_or_symbols=asked, feed=DataFeed.IEX)
        sdk = await rest(client.get_stock_latest_quote, request)
        assert set(ours) == set(sdk) == set(names)
        for symbol, quote in ours.items():
            theirs = sdk[symbol]
            assert quote.bid == Decimal(str(theirs.bid_price)) > 0
            assert quote.ask == Decimal(str(theirs.ask_price)) > quote.bid
            assert quote.venue_time == theirs.timestamp


async def test_streamed_quotes_and_trades(rich_venue: SimVenue) -> None:
    """StockDataStream (msgpack, Timestamp ``t``) delivers parsed Quote and Trade models (§4)."""
    stream = StockDataStream(
        rich_venue.key_id, rich_venue.secret_key, url_override=rich_venue.data_stream_url
    )
    quotes: list[Quote] = []
    trades: list[Trade] = []

    async def on_quote(q: Quote | dict[Any, Any]) -> None:
        assert isinstance(q, Quote)
        quotes.append(q)

    async def on_trade(t: Trade | dict[Any, Any]) -> None:
        assert isinstance(t, Trade)
        trades.append(t)

    stream.subscribe_quotes(on_quote, "SPY", "TQQQ")
    stream.subscribe_trades(on_trade, "SPY", "TQQQ")
    task = asyncio.create_task(stream._run_forever(), name="alpaca-py-data-stream")
    try:
        await wait_until(lambda: len(quotes) >= 3 and len(trades) >= 1, "quotes and a trade")
    finally:
        await stream.stop_ws()
        await rich_venue.drop_streams("data")
        await within(task)
    assert {q.symbol for q in quotes} <= {"SPY", "TQQQ"}
    assert all(q.ask_price >= q.bid_price for q in quotes)
    assert all(q.timestamp.tzinfo is not None for q in quotes)
    assert trades[0].price > 0


async def test_replace_race_rejects_the_replacement(
    rich_venue: SimVenue, trading: TradingClient, updates: Updates
) -> None:
    """PATCH answers 200, but the original filled first: the replacement is ``rejected`` (§1.7).

    A fill-report delay keeps the matched original looking ``new`` while the replace is sent.
    """
    ask = Decimal(str((await first_quote(rich_venue, "SPY"))["ap"]))
    await rich_venue.set_fill_delay(1.0)
    order = await rest(
        trading.submit_order,
        LimitOrderRequest(
            symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force="day", limit_price=float(ask)
        ),
    )
    await updates.wait(order.id, "new")
    replacement = await rest(
        trading.replace_order_by_id, order.id, ReplaceOrderRequest(limit_price=float(ask - 1))
    )
    assert replacement.id != order.id
    rejected = await updates.wait(replacement.id, "rejected")
    assert rejected.order.status == OrderStatus.REJECTED
    fill = await updates.wait(order.id, "fill")
    assert fill.order.status == OrderStatus.FILLED


async def test_close_positions(trading: TradingClient, updates: Updates) -> None:
    """Closing part of a position and then all positions: orders come back parsed (§2.2)."""
    order = await rest(
        trading.submit_order,
        MarketOrderRequest(symbol="SPY", qty=4, side=OrderSide.BUY, time_in_force="day"),
    )
    await updates.wait(order.id, "fill")
    partial = await rest(trading.close_position, "SPY", ClosePositionRequest(qty="1"))
    assert isinstance(partial, Order)
    assert partial.side == OrderSide.SELL
    assert Decimal(str(partial.qty)) == 1
    everything = await rest(trading.close_all_positions, True)
    assert [r.symbol for r in everything] == ["SPY"]
    assert everything[0].status == 200
