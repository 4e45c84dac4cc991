"""Everything the engine emits parses into alpaca-py's own models (ALPACA.md §8.5)."""

from __future__ import annotations

import warnings
from datetime import date, time
from decimal import Decimal
from typing import Any

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from alpaca.data.models import Bar, Quote, Trade
    from alpaca.trading.models import (
        Asset,
        Calendar,
        Clock,
        Order,
        Position,
        TradeAccount,
        TradeUpdate,
    )

from execd.sim.clock import VenueClock
from execd.sim.config import SimConfig
from execd.sim.exchange import Exchange


def make() -> tuple[Exchange, list[dict[str, Any]], list[dict[str, Any]]]:
    """A calm venue with a starting AAPL position, stepped one second."""
    config = SimConfig(
        scenario="calm",
        start=time(10, 0),
        start_date=date(2026, 3, 4),
        positions={"AAPL": Decimal(10)},
    )
    ex = Exchange(config, VenueClock.from_config(config, monotonic=None))
    updates: list[dict[str, Any]] = []
    md: list[dict[str, Any]] = []
    ex.on_trade_update(updates.append)
    ex.on_market_data(md.append)
    ex.advance(1)
    return ex, updates, md


def test_orders_and_trade_updates_parse() -> None:
    """Every order dict and every trade_updates payload (fills, cancels, replaces) parses."""
    ex, updates, _ = make()
    body = {"symbol": "TQQQ", "side": "buy", "type": "market", "qty": 5, "time_in_force": "day"}
    orders = [ex.submit_order(body)]
    limit = {**body, "type": "limit", "limit_price": "10.00"}
    orders.append(ex.submit_order(limit))
    ex.advance(0.1)
    orders.append(ex.replace_order(orders[1]["id"], {"limit_price": "11"}))
    ex.advance(0.1)
    ex.cancel_order(orders[2]["id"])
    ex.advance(0.1)
    for o in [*orders, *ex.list_orders(status="all")]:
        Order(**o)
    assert {u["event"] for u in updates} >= {"new", "fill", "replaced", "canceled"}
    for u in updates:
        TradeUpdate(**u)


def test_account_positions_clock_calendar_asset_parse() -> None:
    """Account, positions, clock, calendar (with a half day) and assets parse."""
    ex, _, _ = make()
    TradeAccount(**ex.account())
    assert [Position(**p).symbol for p in ex.positions()] == ["AAPL"]
    Position(**ex.position("AAPL"))
    clock = Clock(**ex.clock_json())
    assert clock.is_open
    days = [Calendar(**d) for d in ex.calendar(date(2026, 11, 25), date(2026, 11, 27))]
    assert [d.close.hour for d in days] == [16, 13]  # Thanksgiving closed, Friday half day
    for a in ex.assets():
        Asset(**a)


def test_market_data_parses() -> None:
    """Quotes, trades and bars in REST form parse into alpaca-py's data models."""
    ex, _, md = make()
    ex.advance(61)
    for sym, q in ex.latest_quotes(ex.symbols()).items():
        Quote(sym, q)
    for sym, t in ex.latest_trades(ex.symbols()).items():
        Trade(sym, t)
    # A page is cut from the symbols in order, so every symbol's first page (limit 1000)
    # is the alphabetically first one's history: asked for alone it is the same page,
    # without generating the other 78 symbols' histories (~10 s of CPU).
    first = min(ex.symbols())
    bars = ex.bars([first])
    assert bars[first]
    for sym, rows in bars.items():
        for row in rows:
            Bar(sym, row)
    assert {m["T"] for m in md} == {"q", "t", "b", "d"}
