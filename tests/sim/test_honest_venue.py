"""Issue 12, "an honest venue": the places where the simulator used to flatter the ladder.

Each test talks to the venue through the official alpaca-py clients (REST in a thread, streams as
``_run_forever()`` tasks, ALPACA.md §8.2), or, for properties of the engine itself (determinism
of the market across venues), drives two engines on manual clocks side by side.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.live.stock import StockDataStream
from alpaca.data.models import Bar, Quote, Trade, TradingStatus
from alpaca.data.requests import (
    StockBarsRequest,
    StockLatestBarRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
    StockQuotesRequest,
    StockSnapshotRequest,
    StockTradesRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    OrderClass,
    OrderSide,
    OrderStatus,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.models import TradeActivity
from alpaca.trading.requests import (
    GetOrdersRequest,
    GetPortfolioHistoryRequest,
    MarketOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)
from alpaca.trading.stream import TradingStream

from execd.domain.calendar import EASTERN
from execd.sim import wire
from execd.sim.clock import VenueClock
from execd.sim.config import HaltEvent, SimConfig
from execd.sim.errors import SimError
from execd.sim.exchange import Exchange
from execd.sim.server import ServerOptions
from execd.sim.venue import SimVenue
from tests.sim.conftest import TRADING_DAY, first_quote, venue_config, wait_until, within
from tests.sim.test_alpaca_py import Updates, rest


def _client(venue: SimVenue) -> TradingClient:
    client = TradingClient(venue.key_id, venue.secret_key, url_override=venue.trading_url)
    client._retry = 0
    return client


@pytest.fixture
async def fast_venue() -> AsyncIterator[SimVenue]:
    """A rich account on a venue clock running 30× real time (a bar closes every 2 s)."""
    async with SimVenue(venue_config(cash=Decimal("10000000"), speed=30.0)) as running:
        yield running


@pytest.fixture
async def rich_margin_venue() -> AsyncIterator[SimVenue]:
    """The default account ($100k margin), on a clock running 30× real time."""
    async with SimVenue(venue_config(speed=30.0)) as running:
        yield running


async def _trading_stream(venue: SimVenue, updates: Updates) -> tuple[TradingStream, Any]:
    stream = TradingStream(venue.key_id, venue.secret_key, url_override=venue.trading_stream_url)
    stream.subscribe_trade_updates(updates.handler)
    task = asyncio.create_task(stream._run_forever())  # type: ignore[no-untyped-call]
    await within(venue.wait_streams(trading=1))
    return stream, task


async def _stop(venue: SimVenue, stream: TradingStream | StockDataStream, task: Any) -> None:
    await stream.stop_ws()
    await venue.drop_streams("all")
    await within(task)


# -- item 1: the account's fills never print --------------------------------------------------


async def test_own_fills_never_print_on_the_tape_or_in_bars(fast_venue: SimVenue) -> None:
    """An odd-sized market order fills, and its quantity appears in no trade print, in no bar's
    volume: every bar's volume is the sum of the market's own prints in that minute (§6)."""
    trades: list[Trade] = []
    bars: list[Bar] = []
    arrivals: list[Trade | Bar] = []  # both, in the order the stream delivered them

    async def on_trade(trade: Trade | dict[Any, Any]) -> None:
        assert isinstance(trade, Trade)
        trades.append(trade)
        arrivals.append(trade)

    async def on_bar(bar: Bar | dict[Any, Any]) -> None:
        assert isinstance(bar, Bar)
        bars.append(bar)
        arrivals.append(bar)

    data = StockDataStream(
        fast_venue.key_id, fast_venue.secret_key, url_override=fast_venue.data_stream_url
    )
    data.subscribe_trades(on_trade, "SPY")
    data.subscribe_bars(on_bar, "SPY")
    data_task = asyncio.create_task(data._run_forever())
    updates = Updates()
    stream, task = await _trading_stream(fast_venue, updates)
    await wait_until(lambda: bool(trades), "a first SPY print")
    # Trade in a minute the stream saw whole: after the bar of the first one we saw.
    await wait_until(lambda: bool(bars), "a first SPY bar")
    order = await rest(
        _client(fast_venue).submit_order,
        MarketOrderRequest(symbol="SPY", qty=137, side=OrderSide.BUY, time_in_force="day"),
    )
    fill = await updates.wait(order.id, "fill")
    filled_at = fill.timestamp
    ours = {Decimal(str(u.qty)) for u in updates.seen if u.qty is not None}
    ours = {q for q in ours if q % 100}  # odd lots: a market print is never one
    await wait_until(
        lambda: any(b.timestamp > filled_at for b in bars), "the bar after the fill's minute"
    )
    await _stop(fast_venue, stream, task)
    await data.stop_ws()
    await within(data_task)
    assert all(t.size % 100 == 0 for t in trades), "the market prints round lots only"
    assert not any(Decimal(str(t.size)) in ours for t in trades)
    fill_minute = filled_at.replace(second=0, microsecond=0)
    bar = next(b for b in bars if b.timestamp == fill_minute)
    # The bar holds exactly the minute's prints that were reported before it went out (a print
    # reported late goes into an updated bar instead, §4.3).
    before = arrivals[: arrivals.index(bar)]
    in_minute = [
        t
        for t in before
        if isinstance(t, Trade) and t.timestamp.replace(second=0, microsecond=0) == fill_minute
    ]
    assert Decimal(str(bar.volume)) == sum((Decimal(str(t.size)) for t in in_minute), Decimal(0))
    assert bar.trade_count == len(in_minute)


# -- item 2: random partial fills on their own random stream ------------------------------------


async def test_partial_fills_happen_at_the_default_rate(fast_venue: SimVenue) -> None:
    """40 marketable orders at the default rate and a fixed seed: ≥ 1 `partial_fill`, and every
    order still fills completely (the remainder is re-evaluated, §6)."""
    updates = Updates()
    stream, task = await _trading_stream(fast_venue, updates)
    client = _client(fast_venue)
    ids = []
    for _ in range(40):
        order = await rest(
            client.submit_order,
            MarketOrderRequest(symbol="TQQQ", qty=20, side=OrderSide.BUY, time_in_force="day"),
        )
        ids.append(order.id)
    for order_id in ids:
        await updates.wait(order_id, "fill")
    await _stop(fast_venue, stream, task)
    events = [e for order_id in ids for e in updates.events(order_id)]
    assert events.count("fill") == 40
    assert events.count("partial_fill") >= 1
    for order_id in ids:
        qtys = [Decimal(str(u.qty)) for u in updates.seen if u.order.id == order_id and u.qty]
        assert sum(qtys, Decimal(0)) == 20


def _engine(seed: int, **overrides: Any) -> Exchange:
    fields: dict[str, Any] = {
        "scenario": "fast",
        "seed": seed,
        "start_date": TRADING_DAY,
        "symbols": ("TQQQ", "SPY"),
        "cash": Decimal("10000000"),
    }
    fields.update(overrides)
    config = SimConfig(**fields)
    return Exchange(config, VenueClock.from_config(config, monotonic=None))


def _prints(ex: Exchange) -> list[tuple[str, Any, Any, datetime]]:
    seen: list[tuple[str, Any, Any, datetime]] = []
    ex.on_market_data(
        lambda m: seen.append((m["S"], m["p"], m["s"], m["t"])) if m["T"] == "t" else None
    )
    return seen


def test_partial_fills_do_not_disturb_the_market_of_the_same_seed() -> None:
    """Two venues with one seed print the same market, whether one of them trades (with random
    partial fills) or not: the fill model has its own random stream."""
    quiet, busy = _engine(5), _engine(5, partial_fill_rate=0.5)
    quiet_prints, busy_prints = _prints(quiet), _prints(busy)
    fills: list[str] = []
    busy.on_trade_update(lambda u: fills.append(u["event"]))
    for step in range(60):
        quiet.advance(0.5)
        busy.advance(0.5)
        if step % 3 == 0:
            busy.submit_order(
                {
                    "symbol": "TQQQ",
                    "side": "buy",
                    "type": "market",
                    "qty": 30,
                    "time_in_force": "day",
                }
            )
    assert "partial_fill" in fills
    assert len(quiet_prints) > 20
    assert busy_prints == quiet_prints


def test_partial_fill_rate_is_validated() -> None:
    """A rate outside [0, 1] (or NaN) is refused at construction."""
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="partial_fill_rate"):
            SimConfig(partial_fill_rate=bad)


# -- item 8: identifiers are not seeded ---------------------------------------------------------


def test_ids_are_unique_across_runs_of_the_same_seed() -> None:
    """Same seed, two runs: the market is the same, the order and execution ids are not, and no
    execution id equals any order's client order id."""
    runs = []
    for _ in range(2):
        ex = _engine(9, partial_fill_rate=0.0)
        ex.advance(1.0)
        order = ex.submit_order(
            {"symbol": "SPY", "side": "buy", "type": "market", "qty": 2, "time_in_force": "day"}
        )
        ex.advance(1.0)
        runs.append((order, ex.history()))
    (first, h1), (second, h2) = runs
    assert first["id"] != second["id"]
    assert first["client_order_id"] != second["client_order_id"]
    uuid.UUID(first["id"])  # still UUIDs (§0.3)
    executions = {f["execution_id"] for f in h1["fills"] + h2["fills"]}
    assert len(executions) == len(h1["fills"]) + len(h2["fills"]) >= 2
    client_ids = {o["order"]["client_order_id"] for o in h1["orders"] + h2["orders"]}
    assert not executions & client_ids
    assert [f["price"] for f in h1["fills"]] == [f["price"] for f in h2["fills"]]


# -- item 3: a latest quote, trade and bar from the first request ----------------------------


async def test_latest_quote_trade_and_bar_exist_before_the_first_tick() -> None:
    """On a Saturday no tick ever comes, yet alpaca-py's latest quote/trade/bar calls answer at
    once for every symbol: the last ones, stamped at Friday's extended close (§5)."""
    saturday = date(2026, 3, 7)
    async with SimVenue(venue_config(start_date=saturday)) as venue:
        data = StockHistoricalDataClient(
            venue.key_id, venue.secret_key, url_override=venue.data_url
        )
        symbols = ["TQQQ", "SPY", "MULN"]
        quotes = await rest(
            data.get_stock_latest_quote, StockLatestQuoteRequest(symbol_or_symbols=symbols)
        )
        trades = await rest(
            data.get_stock_latest_trade, StockLatestTradeRequest(symbol_or_symbols=symbols)
        )
        bars = await rest(
            data.get_stock_latest_bar, StockLatestBarRequest(symbol_or_symbols=symbols)
        )
    friday_close = datetime(2026, 3, 6, 20, 0, tzinfo=EASTERN)
    for symbol in symbols:
        quote = quotes[symbol]
        assert 0 < quote.bid_price < quote.ask_price
        assert quote.bid_size > 0
        assert quote.ask_size > 0
        assert quote.timestamp == friday_close
        assert trades[symbol].price > 0
        assert bars[symbol].timestamp < friday_close
        assert bars[symbol].vwap is not None


# -- item 9: streams that speak ------------------------------------------------------------------


async def test_halt_and_resume_on_the_statuses_channel_and_orders_wait(
    fast_venue: SimVenue,
) -> None:
    """`POST /sim/halt` halts a symbol: `statuses` sends `H`, quotes stop, a market order is
    accepted (pending_new → new) but does not fill; `/sim/resume` sends `T` and the order fills."""
    statuses: list[TradingStatus] = []
    quotes: list[Quote] = []

    async def on_status(status: TradingStatus | dict[Any, Any]) -> None:
        assert isinstance(status, TradingStatus)
        statuses.append(status)

    async def on_quote(quote: Quote | dict[Any, Any]) -> None:
        assert isinstance(quote, Quote)
        quotes.append(quote)

    data = StockDataStream(
        fast_venue.key_id, fast_venue.secret_key, url_override=fast_venue.data_stream_url
    )
    data.subscribe_trading_statuses(on_status, "TQQQ")
    data.subscribe_quotes(on_quote, "TQQQ")
    data_task = asyncio.create_task(data._run_forever())
    updates = Updates()
    stream, task = await _trading_stream(fast_venue, updates)
    await wait_until(lambda: bool(quotes), "a first TQQQ quote")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{fast_venue.admin_url}/halt", json={"symbol": "TQQQ"}) as reply:
            assert reply.status == 200
            assert (await reply.json())["halted"] == ["TQQQ"]
        await wait_until(lambda: bool(statuses), "the halt on the statuses channel")
        halted_at = len(quotes)
        order = await rest(
            _client(fast_venue).submit_order,
            MarketOrderRequest(symbol="TQQQ", qty=5, side=OrderSide.BUY, time_in_force="day"),
        )
        await updates.wait(order.id, "new")
        # Two venue seconds of market time pass (TQQQ would quote several times): nothing.
        clock_mark = fast_venue.clock.now()
        await wait_until(
            lambda: (fast_venue.clock.now() - clock_mark).total_seconds() > 2, "venue time"
        )
        assert len(quotes) == halted_at
        assert "fill" not in updates.events(order.id)
        async with http.post(f"{fast_venue.admin_url}/resume", json={"symbol": "TQQQ"}) as reply:
            assert reply.status == 200
            assert (await reply.json())["halted"] == []
        async with http.post(f"{fast_venue.admin_url}/halt", json={"symbol": "NOPE"}) as reply:
            assert reply.status == 400
    await updates.wait(order.id, "fill")
    await _stop(fast_venue, stream, task)
    await data.stop_ws()
    await within(data_task)
    assert [(s.status_code, s.status_message) for s in statuses] == [
        ("H", "Trading Halt"),
        ("T", "Trading Resumption"),
    ]
    assert statuses[0].reason_code == "T12"
    assert statuses[0].tape == "C"
    assert updates.events(order.id)[:2] == ["pending_new", "new"]


def test_scheduled_halt_event_halts_and_resumes() -> None:
    """A `halt` scenario event (SimConfig.halts) halts the symbol at its Eastern time and
    resumes it after its duration; the status messages follow §4.3's fields."""
    ex = _engine(3, halts=(HaltEvent("SPY", time(10, 0, 5), 10.0),), start=time(10, 0))
    statuses: list[dict[str, Any]] = []
    ex.on_market_data(lambda m: statuses.append(m) if m["T"] == "s" else None)
    ex.advance(4.0)
    assert ex.halted() == ()
    ex.advance(2.0)
    assert ex.halted() == ("SPY",)
    ex.advance(10.0)
    assert ex.halted() == ()
    assert [s["sc"] for s in statuses] == ["H", "T"]
    assert set(statuses[0]) == {"T", "S", "sc", "sm", "rc", "rm", "t", "z"}


async def test_daily_and_updated_bars_are_sent(fast_venue: SimVenue) -> None:
    """`dailyBars` arrive each minute with the running day; late prints make `updatedBars`."""
    daily: list[Bar] = []
    updated: list[Bar] = []

    async def on_daily(bar: Bar | dict[Any, Any]) -> None:
        assert isinstance(bar, Bar)
        daily.append(bar)

    async def on_updated(bar: Bar | dict[Any, Any]) -> None:
        assert isinstance(bar, Bar)
        updated.append(bar)

    data = StockDataStream(
        fast_venue.key_id, fast_venue.secret_key, url_override=fast_venue.data_stream_url
    )
    data.subscribe_daily_bars(on_daily, "*")
    data.subscribe_updated_bars(on_updated, "*")
    data_task = asyncio.create_task(data._run_forever())
    await wait_until(lambda: bool(daily) and bool(updated), "a daily and an updated bar", 30)
    await data.stop_ws()
    await fast_venue.drop_streams("data")
    await within(data_task)
    day = daily[-1]
    assert day.timestamp.astimezone(EASTERN).date() == TRADING_DAY
    assert day.volume > 0
    assert updated[0].trade_count is not None
    assert updated[0].trade_count >= 1


# -- item 10: endpoints the official clients call ---------------------------------------------


async def test_v3_clock_has_the_js_sdk_shape(venue: SimVenue) -> None:
    """GET /v3/clock answers what the JS SDK 4.x's `ClockResp`/`Clock`/`PublicMarket` models
    require (their `instanceOf…` checks), with the phase of a Wednesday 10:00 ET: `core`."""
    headers = {"APCA-API-KEY-ID": venue.key_id, "APCA-API-SECRET-KEY": venue.secret_key}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(f"{venue.trading_url}/v3/clock") as reply:
            assert reply.status == 200
            body = await reply.json()
        async with http.get(
            f"{venue.trading_url}/v3/clock",
            params={"markets": "XNYS", "time": "2026-03-04T21:00:00Z"},
        ) as reply:
            evening = await reply.json()
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(f"{venue.trading_url}/v3/clock") as reply,
    ):
        assert reply.status == 401
    clocks = body["clocks"]
    assert [c["market"]["acronym"] for c in clocks] == ["NYSE", "NASDAQ"]
    required = {"is_market_day", "market", "next_market_close", "next_market_open"}
    required |= {"phase", "phase_until", "timestamp"}
    for clock in clocks:
        assert required <= set(clock)
        assert {"acronym", "name", "timezone"} <= set(clock["market"])
        assert clock["phase"] == "core"
        assert clock["is_market_day"] is True
        assert datetime.fromisoformat(clock["phase_until"]) == datetime(
            2026, 3, 4, 16, 0, tzinfo=EASTERN
        )
    [nyse] = evening["clocks"]
    assert nyse["market"]["mic"] == "XNYS"
    assert nyse["phase"] == "post"  # 16:00 ET, the after-hours session
    assert datetime.fromisoformat(nyse["next_market_open"]) == datetime(
        2026, 3, 5, 9, 30, tzinfo=EASTERN
    )


# -- item 7: account facts a paper account has ---------------------------------------------------


async def test_margin_account_by_default_with_exact_decimal_strings(
    rich_margin_venue: SimVenue,
) -> None:
    """The default account is a Reg-T margin account: multiplier 2, shorting enabled, buying
    power twice the cash, non-marginable buying power the cash; every money field is an exact
    decimal string (no float expansions), before and after fractional fills."""
    client = _client(rich_margin_venue)
    updates = Updates()
    stream, task = await _trading_stream(rich_margin_venue, updates)
    account = await rest(client.get_account)
    assert account.multiplier == "2"
    assert account.shorting_enabled is True
    assert Decimal(account.buying_power) == 2 * Decimal(account.cash) == Decimal(200000)
    assert Decimal(account.non_marginable_buying_power) == Decimal(account.cash)
    order = await rest(
        client.submit_order,
        MarketOrderRequest(symbol="TQQQ", qty=1.234567891, side=OrderSide.BUY, time_in_force="day"),
    )
    await updates.wait(order.id, "fill")
    await _stop(rich_margin_venue, stream, task)
    raw = await rest(client.get, "/account")
    money: tuple[str, ...] = ("cash", "equity", "buying_power", "regt_buying_power")
    money += ("long_market_value",)
    money += ("non_marginable_buying_power", "initial_margin", "maintenance_margin")
    for field in money:
        text = raw[field]
        assert isinstance(text, str)
        assert Decimal(text) == Decimal(text).quantize(Decimal("0.01")), (field, text)
    assert Decimal(raw["buying_power"]) < Decimal(200000)
    spy = await rest(client.get_asset, "SPY")
    assert spy.shortable
    assert spy.easy_to_borrow
    muln = await rest(client.get_asset, "MULN")
    assert not muln.easy_to_borrow


async def test_short_sale_opens_a_short_position_and_a_flip_is_refused(
    rich_margin_venue: SimVenue,
) -> None:
    """Selling SPY with no position opens a short (negative qty, side short); buying back more
    than the short is refused (no flip, §1.10); a hard-to-borrow short is refused."""
    client = _client(rich_margin_venue)
    updates = Updates()
    stream, task = await _trading_stream(rich_margin_venue, updates)
    order = await rest(
        client.submit_order,
        MarketOrderRequest(symbol="SPY", qty=3, side=OrderSide.SELL, time_in_force="day"),
    )
    fill = await updates.wait(order.id, "fill")
    assert Decimal(str(fill.position_qty)) == -3
    position = await rest(client.get_open_position, "SPY")
    assert Decimal(position.qty) == -3
    assert position.side.value == "short"
    assert Decimal(position.market_value) < 0
    with pytest.raises(APIError) as flip:
        await rest(
            client.submit_order,
            MarketOrderRequest(symbol="SPY", qty=5, side=OrderSide.BUY, time_in_force="day"),
        )
    assert flip.value.status_code == 403
    with pytest.raises(APIError) as hard:
        await rest(
            client.submit_order,
            MarketOrderRequest(symbol="MULN", qty=100, side=OrderSide.SELL, time_in_force="day"),
        )
    assert hard.value.status_code == 403
    closing = await rest(client.close_position, "SPY")
    assert closing.side == OrderSide.BUY
    await updates.wait(closing.id, "fill")
    await _stop(rich_margin_venue, stream, task)
    assert await rest(client.get_all_positions) == []


async def test_account_activities_page_and_portfolio_history(
    rich_margin_venue: SimVenue,
) -> None:
    """FILL activities (one per execution, alpaca-py's TradeActivity shape) page newest first
    by `page_token`; the starting cash is a CSD; portfolio history parses in alpaca-py."""
    client = _client(rich_margin_venue)
    updates = Updates()
    stream, task = await _trading_stream(rich_margin_venue, updates)
    for _ in range(3):
        order = await rest(
            client.submit_order,
            MarketOrderRequest(symbol="SPY", qty=2, side=OrderSide.BUY, time_in_force="day"),
        )
        await updates.wait(order.id, "fill")
    await _stop(rich_margin_venue, stream, task)
    executions = [u for u in updates.seen if u.execution_id is not None]
    fills = await rest(client.get, "/account/activities/FILL")
    assert len(fills) == len(executions) >= 3
    parsed = [TradeActivity(**a) for a in fills]
    assert [a.transaction_time for a in parsed] == sorted(
        (a.transaction_time for a in parsed), reverse=True
    )
    assert sum((Decimal(str(a.qty)) for a in parsed), Decimal(0)) == 6
    first = await rest(client.get, "/account/activities", {"page_size": 2})
    rest_page = await rest(
        client.get, "/account/activities", {"page_size": 100, "page_token": first[-1]["id"]}
    )
    assert [a["id"] for a in first + rest_page] == [a["id"] for a in fills] + [rest_page[-1]["id"]]
    assert rest_page[-1]["activity_type"] == "CSD"
    history = await rest(client.get_portfolio_history, GetPortfolioHistoryRequest(timeframe="1Min"))
    assert history.base_value == 100000
    assert history.equity
    assert len(history.timestamp) == len(history.equity) == len(history.profit_loss)


# -- item 4: a universe users can bring their plans to -------------------------------------------


async def test_default_universe_lists_msft_with_a_quote_at_start() -> None:
    """Without configured symbols the venue lists the universe: MSFT (and 70-odd others) has an
    asset and a latest quote at once; asking for it starts its market, so quotes then move."""
    config = SimConfig(scenario="calm", seed=4, start=time(10, 0), start_date=TRADING_DAY)
    async with SimVenue(config) as venue:
        client = _client(venue)
        data = StockHistoricalDataClient(
            venue.key_id, venue.secret_key, url_override=venue.data_url
        )
        asset = await rest(client.get_asset, "MSFT")
        assets = await rest(client.get_all_assets)
        first = await rest(
            data.get_stock_latest_quote, StockLatestQuoteRequest(symbol_or_symbols="MSFT")
        )
        started = first["MSFT"].timestamp
        await wait_until(
            lambda: venue.exchange.latest_quotes(["MSFT"])["MSFT"]["t"] != wire.ts(started),
            "MSFT's market to move",
        )
    assert asset.symbol == "MSFT"
    assert asset.tradable
    assert len(assets) >= 70
    assert {"QQQ", "NVDA", "IBM", "BAC", "IWM"} <= {a.symbol for a in assets}
    assert first["MSFT"].bid_price > 100


def test_any_configured_symbol_is_a_generated_instrument() -> None:
    """A symbol outside the universe, given in config, is an instrument of the default tier with
    an asset, a quote, trades and bars."""
    ex = _engine(2, symbols=("ZZZQ",), scenario="calm")
    assert ex.asset("ZZZQ")["symbol"] == "ZZZQ"
    assert "ZZZQ" in ex.latest_quotes(["ZZZQ"])
    ex.advance(70)
    assert ex.latest_trades(["ZZZQ"])["ZZZQ"]["p"] > 0
    assert len(ex.bars(["ZZZQ"])["ZZZQ"]) >= 2


def test_a_lazily_started_symbol_has_the_market_it_would_have_had() -> None:
    """MSFT started 30 s into the run quotes exactly as it does on a venue where it ran from the
    start: a symbol's market depends on the seed and the symbol, not on when it was first used."""
    always = _engine(6, symbols=("SPY", "MSFT"), scenario="calm")
    lazy = _engine(6, symbols=None, scenario="calm")
    seen: dict[str, list[tuple[Any, Any, datetime]]] = {"always": [], "lazy": []}

    def recorder(into: list[tuple[Any, Any, datetime]]) -> Callable[[dict[str, Any]], None]:
        def record(m: dict[str, Any]) -> None:
            if m["T"] == "q" and m["S"] == "MSFT":
                into.append((m["bp"], m["ap"], m["t"]))

        return record

    always.on_market_data(recorder(seen["always"]))
    lazy.on_market_data(recorder(seen["lazy"]))
    always.advance(30)
    lazy.advance(30)
    assert seen["lazy"] == []
    lazy.activate(["MSFT"])
    always.advance(30)
    lazy.advance(30)
    later = [q for q in seen["always"] if q[2] > seen["lazy"][0][2]]
    assert len(later) > 20
    assert seen["lazy"][1:] == later


# -- item 6: time in force and order types as Alpaca has them -----------------------------------


async def test_opg_at_10_15_is_refused() -> None:
    """OPG submitted between 9:28 and 19:00 ET is refused (ALPACA.md §1.3), through alpaca-py."""
    async with SimVenue(venue_config(start=time(10, 15))) as venue:
        with pytest.raises(APIError) as refused:
            await rest(
                _client(venue).submit_order,
                MarketOrderRequest(
                    symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.OPG
                ),
            )
    assert refused.value.status_code == 422
    assert "opg" in str(refused.value)


def _market(tif: str, **fields: Any) -> dict[str, Any]:
    body = {"symbol": "SPY", "side": "buy", "type": "market", "qty": 10, "time_in_force": tif}
    body.update(fields)
    return body


def test_opg_before_the_open_waits_and_fills_at_the_open_quote() -> None:
    """OPG at 9:27 ET is accepted and waits; at 9:30 it fills like a market order at the open
    quote (§6: no auction simulation)."""
    ex = _engine(8, start=time(9, 27), partial_fill_rate=0.0, scenario="calm", symbols=("SPY",))
    order = ex.submit_order(_market("opg"))
    ex.advance(2 * 60)
    assert ex.get_order(order["id"])["status"] == "accepted"
    ex.advance(61)
    done = ex.get_order(order["id"])
    assert done["status"] == "filled"
    filled_at = datetime.fromisoformat(done["filled_at"].replace("Z", "+00:00")[:26] + "+00:00")
    assert filled_at.astimezone(EASTERN).time() < time(9, 30, 2)


def test_cls_window_and_fill_at_the_close() -> None:
    """CLS is refused 15:50-19:00 ET; submitted before, it waits and fills at the close."""
    late = _engine(8, start=time(15, 55))
    with pytest.raises(SimError) as refused:
        late.submit_order(_market("cls"))
    assert refused.value.status == 422
    ex = _engine(
        8, start=time(15, 49, 50), partial_fill_rate=0.0, scenario="calm", symbols=("SPY",)
    )
    order = ex.submit_order(_market("cls"))
    ex.advance(10 * 60)
    assert ex.get_order(order["id"])["status"] == "accepted"
    ex.advance(20)
    done = ex.get_order(order["id"])
    assert done["status"] == "filled"
    assert done["filled_at"] >= "2026-03-04T21:00:00"


def test_trailing_stop_follows_the_high_water_mark_and_triggers() -> None:
    """A sell trailing stop tracks the highest print (`hwm`), its stop trails by trail_price,
    and a print at or below the stop sells at market; trailing stops are exempt from the
    wash-trade check (§1.3, §7)."""
    ex = _engine(8, scenario="fast", partial_fill_rate=0.0, positions={"SPY": Decimal(10)})
    ex.advance(1.0)
    order = ex.submit_order(
        {
            "symbol": "SPY",
            "side": "sell",
            "type": "trailing_stop",
            "trail_price": "0.50",
            "qty": 10,
            "time_in_force": "day",
        }
    )
    ex.submit_order(_market("day", qty=1))  # an opposite market order: no wash refusal
    ex.advance(2.0)
    working = ex.get_order(order["id"])
    assert working["trail_price"] == "0.5"
    hwm = Decimal(working["hwm"])
    assert Decimal(working["stop_price"]) == hwm - Decimal("0.50")
    for _ in range(600):
        ex.advance(1.0)
        if ex.get_order(order["id"])["status"] == "filled":
            break
    done = ex.get_order(order["id"])
    assert done["status"] == "filled"
    assert Decimal(done["hwm"]) >= hwm
    assert Decimal(done["filled_avg_price"]) <= Decimal(done["stop_price"]) + Decimal("0.05")
    with pytest.raises(SimError):
        ex.submit_order(
            {
                "symbol": "SPY",
                "side": "sell",
                "type": "trailing_stop",
                "qty": 1,
                "time_in_force": "day",
            }
        )


# -- item 5: history a strategy reads -------------------------------------------------------------


async def test_history_bars_at_every_timeframe_with_paging() -> None:
    """alpaca-py's get_stock_bars reads ≥ 60 prior daily bars, ≥ 5 prior days of 1Min/5Min/
    15Min/1Hour bars, following `next_page_token` across pages (the venue pages at 500 rows
    here); the history ends where the live market starts, and a snapshot parses."""
    options = ServerOptions(data_page_limit=500)
    async with SimVenue(venue_config(speed=30.0), options=options) as venue:
        data = StockHistoricalDataClient(
            venue.key_id, venue.secret_key, url_override=venue.data_url
        )
        start = datetime(2025, 11, 1, tzinfo=EASTERN)
        daily = await rest(
            data.get_stock_bars,
            StockBarsRequest(
                symbol_or_symbols=["SPY", "MSFT"], timeframe=TimeFrame.Day, start=start
            ),
        )
        minutes = await rest(
            data.get_stock_bars,
            StockBarsRequest(
                symbol_or_symbols="SPY",
                timeframe=TimeFrame.Minute,
                start=datetime(2026, 2, 25, tzinfo=EASTERN),
            ),
        )
        coarse = {}
        for unit, amount in (
            (TimeFrameUnit.Minute, 5),
            (TimeFrameUnit.Minute, 15),
            (TimeFrameUnit.Hour, 1),
        ):
            answer = await rest(
                data.get_stock_bars,
                StockBarsRequest(
                    symbol_or_symbols="SPY",
                    timeframe=TimeFrame(amount, unit),
                    start=datetime(2026, 2, 25, tzinfo=EASTERN),
                ),
            )
            coarse[(unit, amount)] = answer["SPY"]
        snapshot = await rest(
            data.get_stock_snapshot, StockSnapshotRequest(symbol_or_symbols=["SPY"])
        )
    spy_days = daily["SPY"]
    assert len(spy_days) >= 60
    assert len(daily["MSFT"]) >= 60
    assert [b.timestamp for b in spy_days] == sorted({b.timestamp for b in spy_days})
    opens = {b.timestamp.astimezone(EASTERN).date() for b in minutes["SPY"]}
    assert len([d for d in opens if d < TRADING_DAY]) >= 5
    assert len(minutes["SPY"]) > 500  # more than one page
    assert all(b.high >= max(b.open, b.close) for b in minutes["SPY"])
    prior = [b for b in minutes["SPY"] if b.timestamp.astimezone(EASTERN).date() < TRADING_DAY]
    assert abs(prior[-1].close - 521.30) / 521.30 < 0.1  # history leads to the start price
    assert len(coarse[(TimeFrameUnit.Minute, 5)]) * 5 >= len(prior)
    assert len(coarse[(TimeFrameUnit.Hour, 1)]) >= 5 * 6
    day_of = [
        b
        for b in spy_days
        if b.timestamp.astimezone(EASTERN).date() == prior[-1].timestamp.astimezone(EASTERN).date()
    ]
    assert day_of[0].volume == sum(
        b.volume for b in prior if b.timestamp.date() == prior[-1].timestamp.date()
    )
    assert snapshot["SPY"].latest_quote.ask_price > 0
    assert snapshot["SPY"].previous_daily_bar is not None


async def test_bracket_order_through_alpaca_py(rich_margin_venue: SimVenue) -> None:
    """alpaca-py submits a bracket (market entry, take profit, stop loss): the answer carries
    both legs, held until the entry fills, then working; nested listing rolls them up."""
    client = _client(rich_margin_venue)
    updates = Updates()
    stream, task = await _trading_stream(rich_margin_venue, updates)
    quote = await first_quote(rich_margin_venue, "SPY")
    ask = Decimal(str(quote["ap"]))
    order = await rest(
        client.submit_order,
        MarketOrderRequest(
            symbol="SPY",
            qty=5,
            side=OrderSide.BUY,
            time_in_force="day",
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=float(ask + 20)),
            stop_loss=StopLossRequest(stop_price=float(ask - 20)),
        ),
    )
    assert order.order_class == OrderClass.BRACKET
    assert order.legs is not None
    assert [leg.status for leg in order.legs] == [OrderStatus.HELD, OrderStatus.HELD]
    tp, sl = order.legs
    assert tp.side == sl.side == OrderSide.SELL
    await updates.wait(order.id, "fill")
    await updates.wait(tp.id, "new")
    await updates.wait(sl.id, "new")
    nested = await rest(
        client.get_orders, GetOrdersRequest(status=QueryOrderStatus.ALL, nested=True)
    )
    assert [o.id for o in nested] == [order.id]
    assert [leg.id for leg in nested[0].legs or []] == [tp.id, sl.id]
    flat = await rest(client.get_orders, GetOrdersRequest(status=QueryOrderStatus.ALL))
    assert {o.id for o in flat} == {order.id, tp.id, sl.id}
    with pytest.raises(APIError) as wash_free:
        await rest(
            client.submit_order,
            MarketOrderRequest(
                symbol="SPY",
                qty=5,
                side=OrderSide.BUY,
                time_in_force="day",
                order_class=OrderClass.BRACKET,
                take_profit=TakeProfitRequest(limit_price=float(ask - 20)),
                stop_loss=StopLossRequest(stop_price=float(ask - 30)),
            ),
        )
    assert wash_free.value.status_code == 422  # take profit below the market: refused
    cancel = await rest(client.cancel_order_by_id, tp.id)
    assert cancel is None
    await updates.wait(tp.id, "canceled")
    await _stop(rich_margin_venue, stream, task)


def test_oco_exit_one_fill_cancels_the_other_and_shares_count_once() -> None:
    """An OCO on a 10-share position: the take profit and the stop loss both work, the pair
    holds the 10 shares once (a plain sell of 1 more is refused), and when one exit fills the
    other is cancelled; the position ends flat, never short."""
    ex = _engine(8, scenario="fast", partial_fill_rate=0.0, positions={"SPY": Decimal(10)})
    ex.advance(1.0)
    bid = Decimal(str(ex.latest_quotes(["SPY"])["SPY"]["bp"]))
    events: list[dict[str, Any]] = []
    ex.on_trade_update(events.append)
    oco = ex.submit_order(
        {
            "symbol": "SPY",
            "side": "sell",
            "type": "limit",
            "qty": 10,
            "time_in_force": "day",
            "order_class": "oco",
            "take_profit": {"limit_price": str(bid + Decimal("0.10"))},
            "stop_loss": {"stop_price": str(bid - Decimal("0.10"))},
        }
    )
    [leg] = oco["legs"]
    with pytest.raises(SimError) as more:
        ex.submit_order(
            {"symbol": "SPY", "side": "sell", "type": "limit", "qty": 1, "limit_price": "900",
             "time_in_force": "day"}
        )  # fmt: skip
    assert more.value.status == 403
    for _ in range(900):
        ex.advance(1.0)
        if ex.get_order(oco["id"])["status"] not in ("new", "accepted", "pending_new"):
            break
    statuses = {ex.get_order(oco["id"])["status"], ex.get_order(leg["id"])["status"]}
    assert statuses == {"filled", "canceled"}
    assert ex.positions() == []


def test_bracket_exits_wait_held_and_end_with_their_entry() -> None:
    """A bracket's exits (a stop-limit loss here) are held while the entry rests unfilled, and
    cancelling the entry cancels them with it."""
    ex = _engine(8, scenario="fast", partial_fill_rate=0.0)
    ex.advance(1.0)
    ask = Decimal(str(ex.latest_quotes(["SPY"])["SPY"]["ap"]))
    parent = ex.submit_order(
        {
            "symbol": "SPY",
            "side": "buy",
            "type": "limit",
            "limit_price": str(ask - Decimal("5")),
            "qty": 10,
            "time_in_force": "day",
            "order_class": "bracket",
            "take_profit": {"limit_price": str(ask)},
            "stop_loss": {"stop_price": str(ask - Decimal("10")), "limit_price": str(ask - 11)},
        }
    )
    tp, sl = parent["legs"]
    assert (tp["type"], sl["type"]) == ("limit", "stop_limit")
    ex.advance(2.0)
    assert ex.get_order(tp["id"])["status"] == "held"
    ex.cancel_order(parent["id"])
    ex.advance(1.0)
    assert {ex.get_order(i)["status"] for i in (parent["id"], tp["id"], sl["id"])} == {"canceled"}


async def test_hostile_admin_and_order_inputs_are_refused_cleanly(venue: SimVenue) -> None:
    """A NaN, negative or absurd halt duration is a 400 (not a 500 or a venue crash); a
    trailing stop of 100 % or more, a bracket without its exits and a garbage bars page token
    are refused with Alpaca-style errors."""
    headers = {"APCA-API-KEY-ID": venue.key_id, "APCA-API-SECRET-KEY": venue.secret_key}
    async with aiohttp.ClientSession(headers=headers) as http:
        for seconds in ("NaN", "-1", "1e308", "Infinity"):
            async with http.post(
                f"{venue.admin_url}/halt",
                data=f'{{"symbol": "SPY", "seconds": {seconds}}}',
            ) as reply:
                assert reply.status == 400, seconds
        bad_orders: list[dict[str, Any]] = [
            {"type": "trailing_stop", "trail_percent": "100"},
            {"type": "market", "order_class": "bracket", "take_profit": {"limit_price": "1"}},
            {"type": "market", "order_class": "bracket", "take_profit": "x", "stop_loss": {}},
            {"type": "market", "order_class": "mleg"},
        ]
        for extra in bad_orders:
            body = {"symbol": "SPY", "side": "sell", "qty": "1", "time_in_force": "day", **extra}
            async with http.post(f"{venue.trading_url}/v2/orders", json=body) as reply:
                assert reply.status == 422, extra
                assert "code" in await reply.json()
        async with http.get(
            f"{venue.data_url}/v2/stocks/bars",
            params={"symbols": "SPY", "timeframe": "1Day", "page_token": "!!nope"},
        ) as reply:
            assert reply.status == 400
    assert venue.exchange.halted() == ()


async def test_historical_quotes_and_trades_page_through_alpaca_py() -> None:
    """alpaca-py's get_stock_quotes / get_stock_trades read the session's ticks, in time order,
    across pages (the venue pages at 50 rows here)."""
    options = ServerOptions(data_page_limit=50)
    async with SimVenue(venue_config(speed=30.0), options=options) as venue:
        data = StockHistoricalDataClient(
            venue.key_id, venue.secret_key, url_override=venue.data_url
        )
        await wait_until(
            lambda: (
                len(
                    venue.exchange.ticks_page("t", ["SPY"], None, None, 10_000, None)[0].get(
                        "SPY", []
                    )
                )
                > 120
            ),
            "a few hundred SPY ticks",
            30,
        )
        start = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
        quotes = await rest(
            data.get_stock_quotes, StockQuotesRequest(symbol_or_symbols="SPY", start=start)
        )
        trades = await rest(
            data.get_stock_trades, StockTradesRequest(symbol_or_symbols=["SPY"], start=start)
        )
    spy_quotes, spy_trades = quotes["SPY"], trades["SPY"]
    assert len(spy_trades) > 120
    assert len(spy_quotes) > len(spy_trades)
    assert [q.timestamp for q in spy_quotes] == sorted(q.timestamp for q in spy_quotes)
    assert [t.timestamp for t in spy_trades] == sorted(t.timestamp for t in spy_trades)
    assert all(q.bid_price < q.ask_price for q in spy_quotes)
