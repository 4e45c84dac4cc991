"""The simulated venue's engine: Alpaca's order rules over a matching engine, account, market.

Everything here is synchronous and I/O-free except :meth:`Exchange.run`, which only paces the
engine against the venue clock. Venue-side work (acks, matching, fill reports, cancels, market
ticks, session boundaries) is a time-ordered schedule; :meth:`Exchange.advance_to` processes it up
to a venue time, which is how unit tests drive the venue without sleeping.

The engine is split by job: this module is the REST face (order entry, account, positions,
clock, assets, market-data queries, faults); :mod:`execd.sim.lifecycle` is the venue-side order
life (see there), :mod:`execd.sim.marketdrive` the market ticks, fills from market flow and halts,
:mod:`execd.sim.ledger` the money rules, :mod:`execd.sim.marketdata` what is published,
:mod:`execd.sim.history` the bars before the start and :mod:`execd.sim.activity` the account's
history. Their shared state is declared in :mod:`execd.sim.state`.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from execd.domain.calendar import EASTERN, next_session, session_on, trading_sessions
from execd.domain.types import Side
from execd.sim import rules, wire
from execd.sim.account import Account
from execd.sim.activity import AccountActivity
from execd.sim.book import SymbolBook
from execd.sim.clock import VenueClock
from execd.sim.clockjson import V3_MARKETS, clock_v3_times
from execd.sim.complex import ComplexOrders
from execd.sim.config import SimConfig, SymbolSpec
from execd.sim.errors import SimError, invalid, not_found, unprocessable
from execd.sim.history import TIMEFRAMES, History, aggregate_live, page
from execd.sim.ledger import Ledger
from execd.sim.lifecycle import OrderLifecycle
from execd.sim.market import (
    GeneratedMarket,
    Instrument,
    MarketSource,
)
from execd.sim.marketdata import MarketData, MarketDataListener, last_market_time
from execd.sim.marketdrive import MarketDriver
from execd.sim.orders import HELD, NOT_ROUTED, OpenOrders, OrderRequest, SimOrder
from execd.sim.state import TradeUpdateListener
from execd.sim.tape import TapeMarket

_ZERO = Decimal(0)


class Exchange(OrderLifecycle, MarketDriver, ComplexOrders):
    """One Alpaca account on one simulated market. All answers are JSON-ready dicts in Alpaca's wire
    shape (decimals as strings, RFC 3339 timestamps); refusals raise :class:`SimError`."""

    def __init__(self, config: SimConfig, clock: VenueClock) -> None:
        self._config = config
        self._clock = clock
        self._now = clock.now()
        self._created = self._now
        # Paper's random partial fills (§6) draw from their own stream: the market's generator
        # never sees them, so two venues with one seed show the same market whatever they trade.
        self._fill_rng = random.Random(f"fills/{config.seed}")
        # Which prints are reported late (its own stream too: the market stays the seed's).
        self._report_rng = random.Random(f"reports/{config.seed}")
        self._halted: set[str] = set()
        self._halt_token = 0
        self._delisted: set[str] = set()
        source: MarketSource
        self._generated: GeneratedMarket | None
        if config.tape is not None:
            source = TapeMarket(config.tape, config.seed, config.start, config.depth_levels)
            self._generated = None
            self._specs = {i.symbol: i.spec for i in source.instruments()}
        else:
            specs = config.symbol_specs()
            source = GeneratedMarket(
                specs,
                config.scenario,
                config.seed,
                self._now,
                config.depth_levels,
                live=config.live_symbols(),
            )
            self._generated = source
            self._specs = {s.symbol: s for s in specs}
        self._source = source
        self._insts: dict[str, Instrument] = {i.symbol: i for i in source.instruments()}
        self._books = {
            sym: SymbolBook(inst, config.refill_half_life_s) for sym, inst in self._insts.items()
        }
        start_positions = {
            sym: (Decimal(qty), self._specs[sym].price if sym in self._specs else Decimal(0))
            for sym, qty in config.positions.items()
        }
        self._account = Account(config.cash, start_positions)
        self._account_id = self._uuid()
        self._activity = AccountActivity(self._account_id, self._now, config.cash)
        self._day_marks: dict[str, Decimal] = {s: spec.price for s, spec in self._specs.items()}
        self._orders: dict[str, SimOrder] = {}
        self._open_orders = OpenOrders()
        self._ledger = Ledger(
            self._account,
            self._orders,
            self._reference_price,
            self._mark,
            multiplier=config.multiplier,
            shorting_enabled=config.shorting_enabled,
            open_orders=self._open_orders,
        )
        self._by_client_id: dict[str, SimOrder] = {}
        self._fills: list[dict[str, Any]] = []
        self._schedule: list[tuple[datetime, int, Callable[[], None]]] = []
        self._seq = 0
        self._trade_listeners: list[TradeUpdateListener] = []
        self._md = MarketData()
        self._history = History(tuple(self._specs.values()), config.seed, self._now)
        self._rejects: list[SimError] = []
        self._replace_rejects = 0
        self._ack = timedelta(seconds=config.ack_latency_s)
        self._fill_delay = timedelta(seconds=config.fill_latency_s)
        self._avg_price_lag = timedelta(0)
        self._waiting_market: dict[str, list[SimOrder]] = {}
        self._stops: dict[str, list[SimOrder]] = {}
        self._wake: asyncio.Event | None = None
        self._prime_market_data()
        self._tick_token = 0
        self._schedule_tick()
        self._schedule_session_boundary(self._now)
        self._schedule_minute(self._now)
        self._schedule_config_halts()

    def _prime_market_data(self) -> None:
        """Every symbol has a latest quote, trade and bar before the first tick (§5): a one-tick
        spread around its starting price, stamped when the market last traded."""
        t = last_market_time(self._now)
        minute = t.replace(second=0, microsecond=0) - timedelta(minutes=1)
        for sym, inst in self._insts.items():
            price = inst.spec.price
            bid, ask = price, inst.price(inst.ticks_floor(price) + 1)
            lot = max(100, inst.spec.lot)
            quote = wire.quote_message(sym, t, bid, lot, ask, lot, "Q", "Q")
            trade = wire.trade_message(sym, t, 0, price, Decimal(100), "Q")
            lot_d = Decimal(lot)
            bar = wire.bar_message("b", sym, minute, price, price, price, price, lot_d, price, 1)
            self._md.prime(quote, trade, bar)

    @property
    def started_at(self) -> datetime:
        """The venue time the engine started at."""
        return self._created

    # -- driving ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Drive the market (quotes, trades, bars, resting-order fills) in step with the clock until
        cancelled.

        The wait is `asyncio.timeout`, never `asyncio.wait_for`: on Python 3.11 `wait_for`
        swallows a cancellation that arrives once the event is set (CPython gh-86296), and
        anything that schedules an event sets it: a venue closed just after an order or a
        REST read kept running, and `SimVenue.__aexit__` waited for it forever (the CI hang
        of tests/engine/test_daemon_replace_race.py; tests/sim/test_venue_close.py)."""
        self._wake = asyncio.Event()
        while True:
            self.advance_to(self._clock.now())
            self._wake.clear()
            timeout = (
                self._clock.real_seconds_until(self._schedule[0][0]) if self._schedule else 1.0
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(timeout, 1.0)):
                    await self._wake.wait()

    def advance_to(self, when: datetime) -> None:
        """Process every scheduled venue event up to venue time `when` (tests, and `run`)."""
        while self._schedule and self._schedule[0][0] <= when:
            t, _, action = heapq.heappop(self._schedule)
            self._clock.jump_to(t)
            self._now = max(self._now, t)
            action()
        self._clock.jump_to(when)
        self._now = max(self._now, when)

    def advance(self, seconds: float) -> None:
        """Manual clocks: move the clock forward `seconds`, processing events at their own times."""
        self.advance_to(self._clock.now() + timedelta(seconds=seconds))

    def _catch_up(self) -> datetime:
        self.advance_to(self._clock.now())
        return self._now

    def _at(self, when: datetime, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._schedule, (when, self._seq, action))
        if self._wake is not None:
            self._wake.set()

    @staticmethod
    def _uuid() -> str:
        """A fresh UUID v4 (§0.3). Identifiers come from the OS, never from the seed: a seed
        reproduces the market, and two runs must not hand out the same order or execution id."""
        return str(uuid.uuid4())

    # -- trading ------------------------------------------------------------------------------

    def submit_order(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /v2/orders: validate per Alpaca's rules and accept; the order reaches the book after
        the ack latency."""
        now = self._catch_up()
        if self._rejects:
            raise self._rejects.pop(0)
        symbol = body.get("symbol")
        if isinstance(symbol, str) and symbol and symbol not in self._insts:
            raise unprocessable(f'asset "{symbol}" not found')
        if isinstance(symbol, str):
            self.activate([symbol])
        req = rules.parse_order(body, default_client_order_id=self._uuid())
        rules.check_auction_window(req, now.astimezone(EASTERN).time())
        self._check_new(req, replacing=None)
        order = SimOrder(self._uuid(), req, wire.asset_id(req.symbol), now, updated_at=now)
        if req.side is Side.BUY and req.type == "market":
            order.ref_price = self._reference_price(req.symbol, Side.BUY)
        self._remember(order)
        legs = self._make_legs(order, now)
        self._log(order, "accepted", now)
        for working in [order, *(leg for leg in legs if leg.status == "accepted")]:
            if self._routable(working, now):
                self._route(working, now)
        return self._order_json(order, nested=bool(legs))

    def replace_order(self, order_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH /v2/orders/{id}: returns the new order (new id, `replaces`)."""
        now = self._catch_up()
        old = self._order(order_id)
        if old.status in NOT_ROUTED or old.status == HELD:
            # (sim) a held bracket/OTO exit is not at the exchange either (§1.3, §1.7).
            raise unprocessable("unable to replace order, order isn't sent to exchange yet")
        if not old.is_open:
            raise unprocessable(f'order is already in "{old.status}" state')
        if old.status == "pending_replace" or old.cancel_requested_at is not None:
            state = "pending_replace" if old.status == "pending_replace" else "pending_cancel"
            raise unprocessable(f'order is already in "{state}" state')
        if old.req.notional is not None:
            raise unprocessable("notional orders cannot be replaced")  # (sim) §1.7
        if old.req.order_class == "oto":
            raise unprocessable("oto orders cannot be replaced")  # §1.3, (sim) wording
        qty = rules.parse_decimal(body, "qty")
        if qty is not None and (qty <= 0 or rules.is_fractional(qty)):
            raise invalid("qty must be a positive whole number")  # (sim) §1.7 whole shares
        limit_price = rules.parse_decimal(body, "limit_price")
        stop_price = rules.parse_decimal(body, "stop_price")
        trail = rules.parse_decimal(body, "trail")
        if trail is not None and (old.req.type != "trailing_stop" or trail <= 0):
            raise invalid("trail is for trailing_stop orders and must be > 0")  # (sim) §1.7
        tif = body.get("time_in_force") or old.req.time_in_force
        if tif not in rules.TIME_IN_FORCE:
            raise invalid(f"invalid time_in_force {tif}")
        client_order_id = body.get("client_order_id") or self._uuid()
        if not isinstance(client_order_id, str):
            raise invalid("invalid client_order_id")
        rules.check_client_order_id(client_order_id)
        req = OrderRequest(
            symbol=old.req.symbol,
            side=old.req.side,
            type=old.req.type,
            time_in_force=tif,
            qty=qty if qty is not None else old.remaining,
            notional=None,
            limit_price=limit_price if limit_price is not None else old.req.limit_price,
            stop_price=stop_price if stop_price is not None else old.req.stop_price,
            extended_hours=old.req.extended_hours,
            client_order_id=client_order_id,
            # §1.7: `trail` changes the trail, never switches price <-> percent.
            trail_price=trail if trail and old.req.trail_price else old.req.trail_price,
            trail_percent=trail if trail and old.req.trail_percent else old.req.trail_percent,
            order_class=old.req.order_class,
            take_profit=old.req.take_profit,
            stop_loss=old.req.stop_loss,
            stop_loss_limit=old.req.stop_loss_limit,
        )
        rules.check_prices(req.type, req.limit_price, req.stop_price, body)
        rules.check_order_constraints(req)
        # Without a qty the replacement works the rest as the venue knows it when the
        # replace completes (`rest_of_old`): what the old order has not matched yet.
        self._check_new(req if qty is not None else replace(req, qty=old.unmatched), old)
        new = SimOrder(self._uuid(), req, old.asset_id, now, updated_at=now, status="pending_new")
        new.replaces = old.id
        new.rest_of_old = qty is None
        new.ref_price = old.ref_price
        new.hwm = old.hwm
        old.pending_replacement = new.id
        old.transition("pending_replace", now)
        self._remember(new)
        self._log(old, "pending_replace", now)
        self._log(new, "pending_new", now)
        self._at(now + self._ack, lambda: self._replace_arrive(old, new))
        return wire.order_json(new)

    def cancel_order(self, order_id: str) -> None:
        """DELETE /v2/orders/{id}: accepted (204); `canceled` follows on the stream."""
        now = self._catch_up()
        order = self._order(order_id)
        if not order.is_open:
            raise unprocessable(f'order is already in "{order.status}" state')
        if order.status == "pending_replace":
            # §1.7: orders in pending_replace reject cancel requests.
            raise unprocessable('order is already in "pending_replace" state')
        if order.cancel_requested_at is not None:
            return
        order.cancel_requested_at = now
        self._log(order, "cancel_requested", now)
        self._at(now + self._ack, lambda: self._cancel_arrive(order))

    def cancel_all_orders(self) -> list[dict[str, Any]]:
        """DELETE /v2/orders: 207 entries ``{"id","status","body"}``."""
        self._catch_up()
        out: list[dict[str, Any]] = []
        for order in self._open_orders():
            try:
                self.cancel_order(order.id)
            except SimError as err:
                out.append({"id": order.id, "status": err.status, "body": err.body()})
            else:
                out.append({"id": order.id, "status": 200, "body": wire.order_json(order)})
        return out

    def get_order(self, order_id: str, nested: bool = False) -> dict[str, Any]:
        """GET /v2/orders/{id}."""
        self._catch_up()
        return self._order_json(self._order(order_id), nested=nested)

    def get_order_by_client_id(self, client_order_id: str) -> dict[str, Any]:
        """GET /v2/orders:by_client_order_id."""
        self._catch_up()
        order = self._by_client_id.get(client_order_id)
        if order is None:
            raise not_found(f"order not found for {client_order_id}")
        return wire.order_json(order)

    def list_orders(
        self,
        *,
        status: str = "open",
        limit: int = 50,
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "desc",
        symbols: Sequence[str] | None = None,
        side: str | None = None,
        nested: bool = False,
        after_order_id: str | None = None,
        before_order_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """GET /v2/orders (open = every non-terminal status; after/until exclusive).

        The listing's order is submission time, ties in the order the venue made them, and
        `direction=desc` is exactly its reverse. `after_order_id` / `before_order_id` are
        exclusive cursors in that order (§1.5): the orders listed after (or before) that
        one, whatever its status now (a cursor order may have ended since its page). They
        exclude each other and after/until (§1.5); an unknown id is refused (sim)."""
        self._catch_up()
        if status not in ("open", "closed", "all"):
            raise invalid(f"invalid status {status}")  # (sim)
        cursor_id = after_order_id or before_order_id
        if after_order_id is not None and before_order_id is not None:
            raise invalid("after_order_id and before_order_id are mutually exclusive")
        if cursor_id is not None and (after is not None or until is not None):
            raise invalid("an order id cursor cannot be combined with after or until")
        ascending = direction == "asc"
        keyed = [((o.created_at, i), o) for i, o in enumerate(self._orders.values())]
        if cursor_id is not None:
            mark = next((key for key, o in keyed if o.id == cursor_id), None)
            if mark is None:
                raise invalid(f"order not found for {cursor_id}")  # (sim)
            # `onward`: the cursor's later submissions (after in asc, before in desc).
            onward = (after_order_id is not None) == ascending
            keyed = [(key, o) for key, o in keyed if (key > mark if onward else key < mark)]
        chosen = [
            (key, o)
            for key, o in keyed
            if (status == "all" or (status == "open") == o.is_open)
            and (after is None or o.created_at > after)
            and (until is None or o.created_at < until)
            and (not symbols or o.symbol in symbols)
            and (side is None or o.side.value == side)
            and not (nested and o.parent_id is not None)  # nested: legs roll up (§1.5)
        ]
        chosen.sort(key=lambda item: item[0], reverse=not ascending)
        page = [o for _, o in chosen[: max(0, min(limit, 500))]]
        return [self._order_json(o, nested=nested) for o in page]

    def account(self) -> dict[str, Any]:
        """GET /v2/account (§2.1)."""
        now = self._catch_up()
        start = [
            (Decimal(q), self._day_marks.get(s, _ZERO)) for s, q in self._config.positions.items()
        ]
        last_equity = self._account.start_cash + sum((q * p for q, p in start), _ZERO)
        last_gross = sum((abs(q * p) for q, p in start), _ZERO)
        figures = self._ledger.figures(last_equity, last_gross)
        return wire.account_json(self._account_id, self._created, figures, now)

    def activities(
        self,
        types: Sequence[str] | None,
        *,
        direction: str = "desc",
        page_size: int = 100,
        page_token: str | None = None,
        after: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """GET /v2/account/activities[/{type}] (see :mod:`execd.sim.activity`)."""
        self._catch_up()
        return self._activity.activities(
            types,
            direction=direction,
            page_size=page_size,
            page_token=page_token,
            after=after,
            until=until,
        )

    def portfolio_history(
        self, timeframe: str, start: datetime | None, end: datetime | None
    ) -> dict[str, Any]:
        """GET /v2/account/portfolio/history (see :mod:`execd.sim.activity`)."""
        now = self._catch_up()
        return self._activity.portfolio_history(timeframe, start, end, now)

    def positions(self) -> list[dict[str, Any]]:
        """GET /v2/positions."""
        self._catch_up()
        return [self._position_json(sym) for sym in sorted(self._account.holdings)]

    def position(self, symbol: str) -> dict[str, Any]:
        """GET /v2/positions/{symbol}; 404 `position does not exist`."""
        self._catch_up()
        if symbol not in self._account.holdings:
            raise not_found("position does not exist")
        return self._position_json(symbol)

    def close_position(
        self, symbol: str, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> dict[str, Any]:
        """DELETE /v2/positions/{symbol}: market-sell the position (or part); returns the order."""
        self._catch_up()
        held = self._account.qty(symbol)
        if held == 0:
            raise not_found("position does not exist")
        if qty is None:
            qty = abs(held) if percentage is None else abs(held) * percentage / 100
        qty = qty.quantize(Decimal("0.000000001"))
        side = "sell" if held > 0 else "buy"  # a short is closed by buying it back
        body = {"symbol": symbol, "side": side, "type": "market", "time_in_force": "day"}
        body["qty"] = str(qty)
        return self.submit_order(body)

    def clock_json(self) -> dict[str, Any]:
        """GET /v2/clock."""
        now = self._catch_up()
        today = now.astimezone(EASTERN).date()
        session = session_on(today)
        is_open = session is not None and session.open <= now < session.close
        upcoming = session if session is not None and now < session.open else None
        if upcoming is None:
            upcoming = next_session(today)
        closing = session if session is not None and now < session.close else upcoming
        return {
            "timestamp": wire.ts_eastern(now),
            "is_open": is_open,
            "next_open": wire.ts_eastern(upcoming.open),
            "next_close": wire.ts_eastern(closing.close),
        }

    def clock_v3(self, at: datetime | None, markets: Sequence[str] | None) -> dict[str, Any]:
        """GET /v3/clock (§2.3: the multi-market clock). Shape from the JS SDK 4.x models
        (`ClockResp{clocks: Clock[]}`, `Clock{market, timestamp, is_market_day, phase,
        phase_until, next_market_open, next_market_close}`, phases closed|pre|core|lunch|post).

        (sim) The venue lists the two US equity markets it models, on one calendar; `markets`
        filters them by acronym or MIC, `time` asks about another instant.
        """
        now = self._catch_up() if at is None else at
        wanted = {m.strip().upper() for m in markets or () if m.strip()}
        clocks = []
        for market in V3_MARKETS:
            if wanted and not wanted & {market["acronym"], market["mic"]}:
                continue
            clocks.append({"market": dict(market), **clock_v3_times(now)})
        return {"clocks": clocks}

    def calendar(self, start: date, end: date) -> list[dict[str, Any]]:
        """GET /v2/calendar (half days included)."""
        return [s.to_alpaca() for s in trading_sessions(start, end)]

    def asset(self, symbol: str) -> dict[str, Any]:
        """GET /v2/assets/{symbol}; 404 for unknown symbols."""
        spec = self._specs.get(symbol)
        if spec is None or symbol in self._delisted:
            raise SimError(404, "asset not found", 40410000)  # (sim) body text
        return wire.asset_json(
            spec.symbol, spec.name, spec.exchange, spec.fractionable, spec.easy_to_borrow
        )

    def assets(self) -> list[dict[str, Any]]:
        """GET /v2/assets."""
        return [self.asset(sym) for sym in self._specs if sym not in self._delisted]

    def delist(self, symbol: str) -> None:
        """Take `symbol` off the asset list (``GET /v2/assets`` omits it, the single read
        answers 404) and refuse new orders and replaces in it, as after a delisting; orders
        already open stay open (a client that placed them must still cancel them) and its
        market runs on, so they can be read, cancelled or filled. For tests of what a client
        does with a symbol gone while it was down."""
        self._delisted.add(symbol)

    # -- market data ---------------------------------------------------------------------------

    def symbols(self) -> tuple[str, ...]:
        """The venue's symbols."""
        return tuple(self._insts)

    def latest_quotes(self, symbols: Sequence[str]) -> dict[str, dict[str, Any]]:
        """GET /v2/stocks/quotes/latest → the `quotes` map (REST shape, `t` as RFC 3339 string)."""
        self._catch_up()
        self.activate(symbols)
        return self._md.latest_quotes(symbols)

    def latest_trades(self, symbols: Sequence[str]) -> dict[str, dict[str, Any]]:
        """GET /v2/stocks/trades/latest → the `trades` map."""
        self._catch_up()
        self.activate(symbols)
        return self._md.latest_trades(symbols)

    def latest_bars(self, symbols: Sequence[str]) -> dict[str, dict[str, Any]]:
        """GET /v2/stocks/bars/latest → the `bars` map (each symbol's last completed minute)."""
        self._catch_up()
        self.activate(symbols)
        return self._md.latest_bars(symbols)

    def bars(
        self,
        symbols: Sequence[str],
        timeframe: str = "1Min",
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
        page_token: str | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """GET /v2/stocks/bars → the `bars` map (one page; see :meth:`bars_page`)."""
        return self.bars_page(symbols, timeframe, start, end, limit, page_token)[0]

    def bars_page(
        self,
        symbols: Sequence[str],
        timeframe: str = "1Min",
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
        page_token: str | None = None,
    ) -> tuple[dict[str, list[dict[str, Any]]], str | None]:
        """GET /v2/stocks/bars: history before the start (:mod:`execd.sim.history`, generated
        on first request) then the live session's bars, re-cut to `timeframe`, paged across
        symbols with `next_page_token` (alpaca-py follows it)."""
        self._catch_up()
        if timeframe not in TIMEFRAMES:
            raise SimError(400, f"unsupported timeframe {timeframe}", 40010001)  # (sim)
        first_live = self._created.replace(second=0, microsecond=0)
        rows: dict[str, list[dict[str, Any]]] = {}
        for sym in symbols:
            past = self._history.bars(sym, timeframe, start, end)
            live_minutes = [
                b
                for b in self._md.minute_bars(sym, max(start or first_live, first_live), end)
                if b["t"] >= wire.ts(first_live)
            ]
            live = aggregate_live(sym, timeframe, live_minutes)
            if past and live and live[0]["t"] == past[-1]["t"]:
                past = past[:-1]  # the start day's daily bar: the live aggregate is fresher
            if past or live:
                rows[sym] = past + live
        return page(rows, limit, page_token)

    def ticks_page(
        self,
        kind: str,
        symbols: Sequence[str],
        start: datetime | None,
        end: datetime | None,
        limit: int,
        page_token: str | None,
    ) -> tuple[dict[str, list[dict[str, Any]]], str | None]:
        """GET /v2/stocks/quotes (`kind` "q") or /v2/stocks/trades ("t"): the live session's
        ticks, paged like bars."""
        self._catch_up()
        rows = {s: r for s in symbols if (r := self._md.ticks(kind, s, start, end))}
        return page(rows, limit, page_token)

    def snapshots(self, symbols: Sequence[str]) -> dict[str, dict[str, Any]]:
        """GET /v2/stocks/snapshots: the symbol → snapshot map (alpaca-py reads it whole)."""
        self._catch_up()
        self.activate(symbols)
        quotes, trades = self._md.latest_quotes(symbols), self._md.latest_trades(symbols)
        minute = self._md.latest_bars(symbols)
        out: dict[str, dict[str, Any]] = {}
        for sym in symbols:
            if sym not in quotes:
                continue
            days = self.bars_page([sym], "1Day", None, None, 10_000, None)[0].get(sym, [])
            out[sym] = {
                "latestTrade": trades.get(sym),
                "latestQuote": quotes[sym],
                "minuteBar": minute.get(sym),
                "dailyBar": days[-1] if days else None,
                "prevDailyBar": days[-2] if len(days) > 1 else None,
            }
        return out

    # -- streaming -----------------------------------------------------------------------------

    def on_trade_update(self, listener: TradeUpdateListener) -> Callable[[], None]:
        """Call `listener` with every trade_updates `data` payload; returns unsubscribe."""
        self._trade_listeners.append(listener)
        return lambda: self._trade_listeners.remove(listener)

    def on_market_data(self, listener: MarketDataListener) -> Callable[[], None]:
        """Call `listener` with every market-data message (§4.3 "q"/"t"/"b", `t` an aware datetime);
        returns unsubscribe."""
        return self._md.subscribe(listener)

    # -- faults and history --------------------------------------------------------------------

    def reject_next_orders(
        self, count: int, status: int, message: str, code: int | None = None
    ) -> None:
        """Make the next `count` order submissions fail with this HTTP error."""
        self._rejects.extend(SimError(status, message, code) for _ in range(count))

    def reject_next_replaces(self, count: int) -> None:
        """Make the exchange reject the next `count` replacements when they reach it: the
        PATCH was answered 200, then the old order gets `order_replace_rejected` and goes on
        as it was, the new one `rejected` (§1.7: a 200 does not guarantee the replace)."""
        self._replace_rejects += count

    def silence_quotes(self, symbol: str, seconds: float | None) -> None:
        """Stop publishing quotes for `symbol` for `seconds` (None: until called with 0)."""
        self._md.silence(symbol, self._catch_up(), seconds)

    def set_fill_delay(self, seconds: float) -> None:
        """Set the fill-report latency (seconds) for subsequent matches."""
        self._fill_delay = timedelta(seconds=seconds)

    def set_avg_price_lag(self, seconds: float) -> None:
        """For fills reported from now on, `filled_avg_price` reads null for `seconds` after
        each (LESSONS: an order reported filled before its fill price existed). 0 also
        shows every price hidden so far (the venue has caught up)."""
        self._avg_price_lag = timedelta(seconds=seconds)
        if seconds == 0:
            for order in self._orders.values():
                order.avg_price_hidden_until = None

    def history(self) -> dict[str, Any]:
        """Every order ever (incl. replaced) with its events, and every fill with execution_id."""
        self._catch_up()
        return {
            "orders": [
                {"order": wire.order_json(o), "events": list(o.events)}
                for o in sorted(self._orders.values(), key=lambda o: o.created_at)  # stable
            ],
            "fills": list(self._fills),
        }

    # -- rules needing state -------------------------------------------------------------------

    def _check_new(self, req: OrderRequest, replacing: SimOrder | None) -> None:
        """Asset, uniqueness, wash-trade, quantity and buying-power checks (§0.5, §1.10, §7)."""
        if req.symbol in self._delisted:
            raise unprocessable(f"asset {req.symbol} is not active")  # (sim) body text
        spec = self._specs[req.symbol]
        rules.check_fractionable(req, spec.fractionable)
        if req.client_order_id in self._by_client_id:
            raise invalid("client_order_id must be unique")
        others = [o.req for o in self._open_orders() if o is not replacing]
        if rules.would_wash(req, others):
            raise rules.wash_error()
        self._ledger.check(req, spec, replacing)
        if req.order_class in ("bracket", "oto") and req.limit_price is None:
            rules.check_exit_distance(req, self._reference_price(req.symbol, req.side))

    def _reference_price(self, symbol: str, side: Side) -> Decimal:
        """§1.10: the far side of the NBBO, else the latest trade, else the starting price."""
        book = self._books[symbol]
        bid, ask = book.top(self._now)
        level = ask if side is Side.BUY else bid
        if level is not None:
            return book.inst.price(level.price)
        return self._mark(symbol)

    def _mark(self, symbol: str) -> Decimal:
        last = self._md.last_trade_price(symbol)
        if last is not None:
            return last
        return self._specs[symbol].price if symbol in self._specs else _ZERO

    def _position_json(self, symbol: str) -> dict[str, Any]:
        holding = self._account.holdings[symbol]
        spec = self._specs.get(symbol)
        return wire.position_json(
            symbol,
            spec.exchange if spec else "",
            holding,
            self._ledger.position_available(symbol),
            self._mark(symbol),
            self._day_marks.get(symbol, holding.avg_entry_price),
        )

    def _order_json(self, order: SimOrder, *, nested: bool = False) -> dict[str, Any]:
        """§1.4's Order; with `nested`, a complex order's legs under `legs`."""
        out = wire.order_json(order)
        if nested and order.legs:
            out["legs"] = [wire.order_json(self._orders[i]) for i in order.legs]
        return out

    def _order(self, order_id: str) -> SimOrder:
        order = self._orders.get(order_id)
        if order is None:
            raise not_found("order not found")
        return order

    def _remember(self, order: SimOrder) -> None:
        self._orders[order.id] = order
        self._open_orders.add(order)
        self._by_client_id[order.req.client_order_id] = order


def spec_of(config: SimConfig, symbol: str) -> SymbolSpec | None:
    """The configured spec of `symbol` (None when the venue does not list it)."""
    return next((s for s in config.symbol_specs() if s.symbol == symbol), None)
