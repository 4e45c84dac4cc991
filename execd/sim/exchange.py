"""The simulated venue's engine: Alpaca's order rules over a matching engine, account, market.

Everything here is synchronous and I/O-free except :meth:`Exchange.run`, which only paces the
engine against the venue clock. Venue-side work (acks, matching, fill reports, cancels, market
ticks, session boundaries) is a time-ordered schedule; :meth:`Exchange.advance_to` processes it up
to a venue time, which is how unit tests drive the venue without sleeping.

Order life (ALPACA.md §1.9, §10 choices): POST answers ``accepted``; after the ack latency the
order reaches the book (``new`` on the stream) and matches; each execution is reported after the
fill latency (``partial_fill`` / ``fill``). Outside its session an order stays ``accepted`` until
the session opens. A cancel or replace reaches the book after the ack latency too, so fills can
win the race: a cancel then fails (``order_cancel_rejected``), a replace is rejected
(``order_replace_rejected`` for the old order, ``rejected`` for the new one).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import random
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from execd.domain.calendar import EASTERN, next_session, session_on, trading_sessions
from execd.domain.types import Side
from execd.sim import rules, wire
from execd.sim.account import Account
from execd.sim.activity import AccountActivity
from execd.sim.book import SymbolBook
from execd.sim.clock import VenueClock
from execd.sim.config import SimConfig, SymbolSpec
from execd.sim.errors import SimError, invalid, not_found, unprocessable
from execd.sim.history import TIMEFRAMES, History, aggregate_live, page
from execd.sim.ledger import Ledger
from execd.sim.market import (
    BookSnapshot,
    GeneratedMarket,
    Instrument,
    MarketSource,
    Print,
)
from execd.sim.marketdata import MarketData, MarketDataListener, last_market_time
from execd.sim.orders import NOT_ROUTED, OrderRequest, SimOrder
from execd.sim.tape import TapeMarket

TradeUpdateListener = Callable[[dict[str, Any]], None]

_ZERO = Decimal(0)
# Share of the market's prints reported late (out of sequence), a few seconds after they happen.
_LATE_REPORT_PROB = 0.02
# After a random partial fill, the remainder is looked at again this many seconds later (sim).
_PARTIAL_REEVALUATE_S = (0.2, 2.0)


_TZ = "America/New_York"
_V3_MARKETS: tuple[dict[str, str], ...] = (
    {"acronym": "NYSE", "mic": "XNYS", "name": "New York Stock Exchange", "timezone": _TZ},
    {"acronym": "NASDAQ", "mic": "XNAS", "name": "Nasdaq Stock Market", "timezone": _TZ},
)


def _clock_v3_times(now: datetime) -> dict[str, Any]:
    """The time fields of one /v3/clock entry for the US equity calendar at `now`."""
    today = now.astimezone(EASTERN).date()
    session = session_on(today)
    phase, until = "closed", None
    if session is not None:
        for start, end, name in (
            (session.extended_open, session.open, "pre"),
            (session.open, session.close, "core"),
            (session.close, session.extended_close, "post"),
        ):
            if start <= now < end:
                phase, until = name, end
        if until is None and now < session.extended_open:
            until = session.extended_open
    following = next_session(today)
    if until is None:
        until = following.extended_open
    upcoming = session if session is not None and now < session.open else following
    closing = session if session is not None and now < session.close else upcoming
    return {
        "timestamp": wire.ts_eastern(now),
        "is_market_day": session is not None,
        "phase": phase,
        "phase_until": wire.ts_eastern(until),
        "next_market_open": wire.ts_eastern(upcoming.open),
        "next_market_close": wire.ts_eastern(closing.close),
    }


class Exchange:
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
        self._ledger = Ledger(
            self._account,
            self._orders,
            self._reference_price,
            self._mark,
            multiplier=config.multiplier,
            shorting_enabled=config.shorting_enabled,
        )
        self._by_client_id: dict[str, SimOrder] = {}
        self._fills: list[dict[str, Any]] = []
        self._schedule: list[tuple[datetime, int, Callable[[], None]]] = []
        self._seq = 0
        self._trade_listeners: list[TradeUpdateListener] = []
        self._md = MarketData()
        self._history = History(tuple(self._specs.values()), config.seed, self._now)
        self._rejects: list[SimError] = []
        self._ack = timedelta(seconds=config.ack_latency_s)
        self._fill_delay = timedelta(seconds=config.fill_latency_s)
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
        cancelled."""
        self._wake = asyncio.Event()
        while True:
            self.advance_to(self._clock.now())
            self._wake.clear()
            timeout = (
                self._clock.real_seconds_until(self._schedule[0][0]) if self._schedule else 1.0
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(timeout, 1.0))

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
        self._log(order, "accepted", now)
        if self._routable(order, now):
            self._route(order, now)
        return wire.order_json(order)

    def replace_order(self, order_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH /v2/orders/{id}: returns the new order (new id, `replaces`)."""
        now = self._catch_up()
        old = self._order(order_id)
        if old.status in NOT_ROUTED:
            raise unprocessable("unable to replace order, order isn't sent to exchange yet")
        if not old.is_open:
            raise unprocessable(f'order is already in "{old.status}" state')
        if old.status == "pending_replace" or old.cancel_requested_at is not None:
            state = "pending_replace" if old.status == "pending_replace" else "pending_cancel"
            raise unprocessable(f'order is already in "{state}" state')
        if old.req.notional is not None:
            raise unprocessable("notional orders cannot be replaced")  # (sim) §1.7
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
        )
        rules.check_prices(req.type, req.limit_price, req.stop_price, body)
        rules.check_order_constraints(req)
        self._check_new(req, replacing=old)
        new = SimOrder(self._uuid(), req, old.asset_id, now, updated_at=now, status="pending_new")
        new.replaces = old.id
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
        for order in [o for o in self._orders.values() if o.is_open]:
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
        return wire.order_json(self._order(order_id))

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
    ) -> list[dict[str, Any]]:
        """GET /v2/orders (open = every non-terminal status; after/until exclusive)."""
        self._catch_up()
        if status not in ("open", "closed", "all"):
            raise invalid(f"invalid status {status}")  # (sim)
        chosen = [
            o
            for o in self._orders.values()
            if (status == "all" or (status == "open") == o.is_open)
            and (after is None or o.created_at > after)
            and (until is None or o.created_at < until)
            and (not symbols or o.symbol in symbols)
            and (side is None or o.side.value == side)
        ]
        chosen.sort(key=lambda o: o.created_at, reverse=direction != "asc")
        return [wire.order_json(o) for o in chosen[: max(0, min(limit, 500))]]

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
        for market in _V3_MARKETS:
            if wanted and not wanted & {market["acronym"], market["mic"]}:
                continue
            clocks.append({"market": dict(market), **_clock_v3_times(now)})
        return {"clocks": clocks}

    def calendar(self, start: date, end: date) -> list[dict[str, Any]]:
        """GET /v2/calendar (half days included)."""
        return [s.to_alpaca() for s in trading_sessions(start, end)]

    def asset(self, symbol: str) -> dict[str, Any]:
        """GET /v2/assets/{symbol}; 404 for unknown symbols."""
        spec = self._specs.get(symbol)
        if spec is None:
            raise SimError(404, "asset not found", 40410000)  # (sim) body text
        return wire.asset_json(
            spec.symbol, spec.name, spec.exchange, spec.fractionable, spec.easy_to_borrow
        )

    def assets(self) -> list[dict[str, Any]]:
        """GET /v2/assets."""
        return [self.asset(sym) for sym in self._specs]

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

    def silence_quotes(self, symbol: str, seconds: float | None) -> None:
        """Stop publishing quotes for `symbol` for `seconds` (None: until called with 0)."""
        self._md.silence(symbol, self._catch_up(), seconds)

    def set_fill_delay(self, seconds: float) -> None:
        """Set the fill-report latency (seconds) for subsequent matches."""
        self._fill_delay = timedelta(seconds=seconds)

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
        spec = self._specs[req.symbol]
        rules.check_fractionable(req, spec.fractionable)
        if req.client_order_id in self._by_client_id:
            raise invalid("client_order_id must be unique")
        others = [o.req for o in self._orders.values() if o.is_open and o is not replacing]
        if rules.would_wash(req, others):
            raise rules.wash_error()
        self._ledger.check(req, spec, replacing)

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

    def _order(self, order_id: str) -> SimOrder:
        order = self._orders.get(order_id)
        if order is None:
            raise not_found("order not found")
        return order

    def _remember(self, order: SimOrder) -> None:
        self._orders[order.id] = order
        self._by_client_id[order.req.client_order_id] = order

    # -- sessions ------------------------------------------------------------------------------

    def _routable(self, order: SimOrder, now: datetime) -> bool:
        """Is the order's session open (regular, or extended for extended-hours orders)?

        OPG and CLS orders are routed only by the open and close themselves (§1.3, §6: paper
        fills them like market orders at the open / close quote, no auction)."""
        if order.req.time_in_force in ("opg", "cls"):
            return False
        session = session_on(now.astimezone(EASTERN).date())
        if session is None:
            return False
        if order.req.extended_hours:
            return session.extended_open <= now < session.extended_close
        return session.open <= now < session.close

    def _schedule_session_boundary(self, after: datetime) -> None:
        day = after.astimezone(EASTERN).date()
        for _ in range(10):
            session = session_on(day) or next_session(day)
            for when, kind in (
                (session.extended_open, "extended_open"),
                (session.open, "open"),
                (session.close, "close"),
                (session.extended_close, "extended_close"),
            ):
                if when > after:
                    self._at(when, partial(self._on_boundary, kind, when))
                    return
            day = session.date + timedelta(days=1)

    def _on_boundary(self, kind: str, when: datetime) -> None:
        auction = {"open": "opg", "close": "cls"}.get(kind)
        if auction is not None:
            for order in [o for o in self._orders.values() if o.status == "accepted"]:
                if order.req.time_in_force == auction and order.cancel_requested_at is None:
                    self._route(order, when)
        if kind in ("extended_open", "open"):
            for order in [o for o in self._orders.values() if o.status == "accepted"]:
                if self._routable(order, when) and order.cancel_requested_at is None:
                    self._route(order, when)
        else:
            for order in list(self._orders.values()):
                if order.status not in ("new", "partially_filled"):
                    continue
                if order.req.time_in_force not in ("day", "opg", "cls", "ioc", "fok"):
                    continue
                if (kind == "close") != order.req.extended_hours:
                    self._expire(order)
        self._schedule_session_boundary(when)

    def _expire_remainder(self, order: SimOrder) -> None:
        """Take the unmatched rest out; report `expired` after the pending fills."""
        self._books[order.symbol].remove(order.id)
        self._drop_waiting(order)
        when = max(self._now, order.last_report_at or self._now)
        self._at(when, partial(self._expire_if_open, order))

    def _expire_if_open(self, order: SimOrder) -> None:
        if order.is_open:
            self._expire(order)

    def _expire(self, order: SimOrder) -> None:
        now = self._now
        self._books[order.symbol].remove(order.id)
        self._drop_waiting(order)
        order.expired_at = now
        order.transition("expired", now)
        self._emit(order, "expired")

    # -- venue-side order processing -----------------------------------------------------------

    def _route(self, order: SimOrder, now: datetime) -> None:
        """Send an accepted order on: `pending_new` half-way, `new` at the book (§1.9, §3.4)."""
        self._at(now + self._ack / 2, partial(self._pending_new, order))
        self._at(now + self._ack, partial(self._arrive, order))

    def _pending_new(self, order: SimOrder) -> None:
        if order.status != "accepted" or order.cancel_requested_at is not None:
            return
        order.transition("pending_new", self._now)
        self._emit(order, "pending_new")

    def _arrive(self, order: SimOrder) -> None:
        """The order reaches the book: `new`, then match."""
        if order.status not in NOT_ROUTED:
            return  # canceled before it was routed
        now = self._now
        if order.req.notional is not None:
            order.working_qty = self._ledger.notional_shares(order.req)
        order.transition("new", now)
        self._emit(order, "new")
        self._work(order)

    def _work(self, order: SimOrder) -> None:
        """Match a freshly arrived (or triggered) order; rest or drop what is left."""
        req, book, now = order.req, self._books[order.symbol], self._now
        if req.type in ("stop", "stop_limit", "trailing_stop") and not order.triggered:
            if req.type == "trailing_stop" and order.hwm is None:
                order.hwm = self._mark(order.symbol)  # the water mark starts at the last trade
            self._stops.setdefault(order.symbol, []).append(order)
            return
        if book.snapshot is None or order.symbol in self._halted:
            self._waiting_market.setdefault(order.symbol, []).append(order)
            return
        inst = book.inst
        limit: int | None = None
        if req.limit_price is not None:
            if req.side is Side.BUY:
                limit = inst.ticks_floor(req.limit_price)
            else:
                limit = inst.ticks_ceil(req.limit_price)
        if req.time_in_force == "fok" and not self._fok_possible(order, limit):
            self._finish_cancel(order)
            return
        cap = self._partial_fill_cap(order, limit)
        fills = book.take(req.side, cap or order.unmatched, limit, now)
        self._execute(order, [(inst.price(p), q) for p, q in fills])
        if order.unmatched <= 0:
            return
        if req.time_in_force in ("opg", "cls"):
            # §6 (F 11664): at the open/close quote only; what did not fill expires.
            self._expire_remainder(order)
            return
        if cap is not None and fills:
            # §6: "if still marketable, the remainder is re-evaluated for a subsequent fill".
            delay = timedelta(seconds=self._fill_rng.uniform(*_PARTIAL_REEVALUATE_S))
            self._at(now + delay, partial(self._reevaluate, order))
            return
        if req.time_in_force in ("ioc", "fok") or limit is None:
            self._cancel_remainder(order)
            return
        book.rest(order.id, req.side, limit, order.unmatched, now)

    def _partial_fill_cap(self, order: SimOrder, limit: int | None) -> Decimal | None:
        """Paper's random partial fill (§6): for an eligible order, about `partial_fill_rate` of
        the time, the whole shares this match may take (fewer than it wants); else None.

        Eligible: marketable now, at least two whole shares left, and not IOC/FOK (whose
        remainder would be cancelled rather than re-evaluated). The depth model still applies on
        top: a capped match can get less than the cap when the book is thin.
        """
        want = order.unmatched
        if order.req.time_in_force in ("ioc", "fok", "opg", "cls") or want < 2:
            return None
        book = self._books[order.symbol]
        if limit is not None and not book.crosses(order.side, limit, self._now):
            return None
        if self._fill_rng.random() >= self._config.partial_fill_rate:
            return None
        return Decimal(self._fill_rng.randint(1, int(want) - 1))

    def _reevaluate(self, order: SimOrder) -> None:
        """The remainder of a random partial fill comes back to the book (§6)."""
        if order.status not in ("new", "partially_filled"):
            return  # filled, cancelled, expired, or being replaced meanwhile
        if order.cancel_requested_at is not None or order.pending_replacement is not None:
            return
        self._work(order)

    def _fok_possible(self, order: SimOrder, limit: int | None) -> bool:
        book = self._books[order.symbol]
        levels = book.levels(order.side is Side.BUY, self._now)
        if limit is None:
            return True
        reachable = sum(
            (
                Decimal(lv.size)
                for lv in levels
                if (lv.price <= limit if order.side is Side.BUY else lv.price >= limit)
            ),
            _ZERO,
        )
        return reachable >= order.unmatched

    def _execute(self, order: SimOrder, fills: list[tuple[Decimal, Decimal]]) -> None:
        """Reserve matched quantity now; report each execution after the fill latency."""
        when = self._now + self._fill_delay
        for price, qty in fills:
            if qty <= 0:
                continue
            order.matched_qty += qty
            order.last_report_at = when
            self._at(when, partial(self._report_fill, order, price, qty))

    def _report_fill(self, order: SimOrder, price: Decimal, qty: Decimal) -> None:
        now = self._now
        position = self._account.apply_fill(order.symbol, order.side, qty, price)
        order.filled_qty += qty
        order.filled_value += qty * price
        done = order.remaining <= 0
        if done:
            order.filled_at = now
        if order.status != "pending_replace":
            order.transition("filled" if done else "partially_filled", now)
        execution_id = self._uuid()
        self._activity.record_fill(
            now,
            order_id=order.id,
            symbol=order.symbol,
            side=order.side.value,
            qty=qty,
            price=price,
            cum_qty=order.filled_qty,
            leaves_qty=order.remaining,
            order_status=order.status,
        )
        self._fills.append(
            {
                "execution_id": execution_id,
                "order_id": order.id,
                "client_order_id": order.req.client_order_id,
                "symbol": order.symbol,
                "side": order.side.value,
                "qty": wire.dec(qty),
                "price": wire.dec(price),
                "timestamp": wire.ts(now),
            }
        )
        self._emit(
            order,
            "fill" if done else "partial_fill",
            execution_id=execution_id,
            price=wire.dec(price),
            qty=wire.dec(qty),
            position_qty=wire.dec(position),
        )
        # Our fills are never printed (§6: paper orders are not routed): no trade message, no bar
        # volume, no VWAP. What they took from the book stays taken (the impact model).

    def _cancel_arrive(self, order: SimOrder) -> None:
        if not order.is_open:
            return
        if order.status in NOT_ROUTED:
            self._finish_cancel(order)
            return
        if order.unmatched <= 0:
            # The fills won the race: they will be reported; the cancel is too late.
            self._emit(order, "order_cancel_rejected")
            return
        self._cancel_remainder(order)

    def _cancel_remainder(self, order: SimOrder) -> None:
        """Take the unmatched rest out of the book; report `canceled` after pending fills."""
        self._books[order.symbol].remove(order.id)
        self._drop_waiting(order)
        when = max(self._now, order.last_report_at or self._now)
        self._at(when, lambda: self._finish_cancel(order))

    def _finish_cancel(self, order: SimOrder) -> None:
        if not order.is_open:
            return
        self._books[order.symbol].remove(order.id)
        self._drop_waiting(order)
        order.canceled_at = self._now
        order.transition("canceled", self._now)
        self._emit(order, "canceled")

    def _drop_waiting(self, order: SimOrder) -> None:
        for table in (self._waiting_market, self._stops):
            waiting = table.get(order.symbol)
            if waiting and order in waiting:
                waiting.remove(order)

    def _replace_arrive(self, old: SimOrder, new: SimOrder) -> None:
        now = self._now
        if old.unmatched <= 0 or not old.is_open:
            # §1.7: the original filled first; the replacement is rejected.
            old.pending_replacement = None
            status = "filled" if old.remaining <= 0 else "partially_filled"
            if old.filled_qty == 0 and old.remaining > 0:
                status = "new"
            old.transition(status, now)
            self._emit(old, "order_replace_rejected")
            new.failed_at = now
            new.transition("rejected", now)
            self._emit(new, "rejected")
            return
        self._books[old.symbol].remove(old.id)
        self._drop_waiting(old)
        when = max(now, old.last_report_at or now)
        self._at(when, lambda: self._finish_replace(old, new))

    def _finish_replace(self, old: SimOrder, new: SimOrder) -> None:
        now = self._now
        old.replaced_at = now
        old.replaced_by = new.id
        old.transition("replaced", now)
        self._emit(old, "replaced")
        new.transition("accepted", now)
        if self._routable(new, now):
            self._arrive(new)

    # -- market --------------------------------------------------------------------------------

    def _schedule_tick(self) -> None:
        """(Re)schedule the one market tick at the source's next event time; a superseded tick
        (the source gained an earlier event, see :meth:`activate`) does nothing."""
        self._tick_token += 1
        upcoming = self._source.next_time()
        if upcoming is not None:
            self._at(max(upcoming, self._now), partial(self._market_tick, self._tick_token))

    def _market_tick(self, token: int) -> None:
        if token != self._tick_token:
            return
        for event in self._source.pop():
            if event.symbol in self._halted:
                continue  # a halted symbol has no market: no quotes, no prints, no matching
            if isinstance(event, BookSnapshot):
                self._on_snapshot(event)
            else:
                self._on_print(event)
        self._schedule_tick()

    def activate(self, symbols: Iterable[str]) -> None:
        """Start the market of listed symbols that are not running yet (the universe runs
        lazily so that starting the venue stays fast): their path from the venue's start is
        replayed silently and their book starts at its state now."""
        if self._generated is None:
            return
        started = False
        for symbol in symbols:
            if symbol not in self._insts or self._generated.is_live(symbol):
                continue
            snap = self._generated.activate(symbol, self._now)
            started = True
            if snap is not None and symbol not in self._halted:
                self._on_snapshot(snap)
        if started:
            self._schedule_tick()

    def _on_snapshot(self, snap: BookSnapshot) -> None:
        book = self._books[snap.symbol]
        executions = book.on_snapshot(snap)
        for ex in executions:
            self._execute(self._orders[ex.order_id], [(book.inst.price(ex.price), ex.qty)])
        waiting = self._waiting_market.pop(snap.symbol, [])
        for order in waiting:
            self._work(order)
        self._publish_quote(snap.symbol, snap.bid_exchange, snap.ask_exchange)

    def _on_print(self, trade: Print) -> None:
        book = self._books[trade.symbol]
        price = book.inst.price(trade.price)
        report = partial(
            self._md.publish_trade,
            trade.symbol,
            trade.t,
            price,
            Decimal(trade.size),
            trade.exchange,
        )
        if self._report_rng.random() < _LATE_REPORT_PROB:
            # A late report (§4.3 updatedBars): printed with its own time, a few seconds on.
            self._at(self._now + timedelta(seconds=self._report_rng.uniform(1.0, 20.0)), report)
        else:
            report()
        for ex in book.on_print(trade):
            self._execute(self._orders[ex.order_id], [(book.inst.price(ex.price), ex.qty)])
        regular = self._in_regular_session(trade.t)
        for order in list(self._stops.get(trade.symbol, [])):
            if order.req.type == "trailing_stop":
                if not regular:
                    continue  # §1.3: trailing stops do not trigger outside regular hours
                mark = order.hwm if order.hwm is not None else price
                order.hwm = min(mark, price) if order.side is Side.BUY else max(mark, price)
            stop = order.trailing_stop_price or order.req.stop_price or _ZERO
            hit = price >= stop if order.side is Side.BUY else price <= stop
            if hit and order.is_open:
                self._stops[trade.symbol].remove(order)
                order.triggered = True
                self._work(order)

    @staticmethod
    def _in_regular_session(t: datetime) -> bool:
        session = session_on(t.astimezone(EASTERN).date())
        return session is not None and session.open <= t < session.close

    def _publish_quote(self, symbol: str, bx: str, ax: str) -> None:
        book = self._books[symbol]
        bid, ask = book.top(self._now)
        message = wire.quote_message(
            symbol,
            self._now,
            book.inst.price(bid.price) if bid else _ZERO,
            bid.size if bid else 0,
            book.inst.price(ask.price) if ask else _ZERO,
            ask.size if ask else 0,
            bx,
            ax,
        )
        self._md.publish_quote(message, self._now)

    def _schedule_minute(self, after: datetime) -> None:
        nxt = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        self._at(nxt, lambda: self._on_minute(nxt))
        self._at(nxt + timedelta(seconds=30), self._md.on_half_minute)

    def _on_minute(self, when: datetime) -> None:
        session = session_on(when.astimezone(EASTERN).date())
        regular = session is not None and session.open < when <= session.close
        self._md.on_minute(when, regular)
        self._activity.record_equity(when, self._ledger.equity())
        self._schedule_minute(when)

    # -- trading halts (§4.3 "s") -------------------------------------------------------------

    def halt(self, symbol: str, seconds: float | None = None) -> None:
        """Halt trading in `symbol` (for `seconds`, else until :meth:`resume`).

        While halted the symbol has no quotes and no prints and nothing matches: orders are
        accepted and wait; on resumption the first quote re-opens matching. The `statuses`
        channel says so both ways.
        """
        now = self._catch_up()
        if symbol not in self._insts:
            raise not_found(f"unknown symbol {symbol}")  # (sim) admin only
        self._halt_token += 1
        token = self._halt_token
        if symbol not in self._halted:
            self._halted.add(symbol)
            self._md.publish_status(wire.status_message(symbol, now, halted=True))
        if seconds is not None:
            self._at(now + timedelta(seconds=seconds), partial(self._resume_if, symbol, token))

    def resume(self, symbol: str) -> None:
        """Resume trading in a halted `symbol` (no-op when it trades)."""
        now = self._catch_up()
        if symbol not in self._insts:
            raise not_found(f"unknown symbol {symbol}")  # (sim) admin only
        if symbol in self._halted:
            self._halted.discard(symbol)
            self._md.publish_status(wire.status_message(symbol, now, halted=False))

    def halted(self) -> tuple[str, ...]:
        """The symbols halted now."""
        self._catch_up()
        return tuple(sorted(self._halted))

    def _resume_if(self, symbol: str, token: int) -> None:
        if token == self._halt_token:  # a later halt/resume call supersedes this timer
            self.resume(symbol)

    def _schedule_config_halts(self) -> None:
        for event in self._config.halts:
            when = datetime.combine(self._now.astimezone(EASTERN).date(), event.at, EASTERN)
            if when >= self._now and event.symbol in self._insts:
                self._at(when, partial(self.halt, event.symbol, event.seconds))

    # -- events --------------------------------------------------------------------------------

    def _log(self, order: SimOrder, event: str, now: datetime) -> None:
        order.events.append({"event": event, "timestamp": wire.ts(now), "status": order.status})

    def _emit(self, order: SimOrder, event: str, **extra: str | None) -> None:
        """Send a trade_updates payload (`order` is the order after the event) and record it."""
        now = self._now
        payload: dict[str, Any] = {
            "event": event,
            "timestamp": wire.ts(now),
            "order": wire.order_json(order),
        }
        payload.update(extra)
        order.events.append(
            {"event": event, "timestamp": payload["timestamp"], "status": order.status, **extra}
        )
        for listener in list(self._trade_listeners):
            listener(payload)


def spec_of(config: SimConfig, symbol: str) -> SymbolSpec | None:
    """The configured spec of `symbol` (None when the venue does not list it)."""
    return next((s for s in config.symbol_specs() if s.symbol == symbol), None)
