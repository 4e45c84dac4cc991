"""Alpaca's JSON shapes (ALPACA.md §1.4, §2, §4.3, §5): where engine values become wire dicts.

Decimals become strings on the trading API (§0.3); market-data messages carry JSON numbers, as
Alpaca's do, so prices become floats only here, at the wire.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from execd.domain.calendar import EASTERN
from execd.sim.account import Holding
from execd.sim.orders import SimOrder

if TYPE_CHECKING:
    from execd.sim.ledger import AccountFigures


def dec(value: Decimal | None) -> str | None:
    """A decimal as Alpaca prints it: no exponent, no trailing zeros ("2", "150.25")."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def ts(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with nanosecond digits, as Alpaca's order timestamps look."""
    if value is None:
        return None
    v = value.astimezone(UTC)
    return f"{v:%Y-%m-%dT%H:%M:%S}.{v.microsecond:06d}000Z"


def ts_eastern(value: datetime) -> str:
    """RFC 3339 with the Eastern offset, as /v2/clock answers."""
    v = value.astimezone(EASTERN)
    return v.isoformat(timespec="microseconds")


def asset_id(symbol: str) -> str:
    """A stable asset UUID per symbol (Alpaca's asset ids never change)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"execd-sim/asset/{symbol}"))


def number(value: Decimal) -> float | int:
    """A market-data number: an int when whole, else a float (the JSON number Alpaca sends)."""
    return int(value) if value == value.to_integral_value() else float(value)


def quote_message(
    symbol: str,
    t: datetime,
    bid: Decimal | float,
    bid_size: int,
    ask: Decimal | float,
    ask_size: int,
    bid_exchange: str,
    ask_exchange: str,
) -> dict[str, Any]:
    """A §4.3 "q" message (stream form: `t` an aware datetime). Prices are exact decimals,
    or already the wire's JSON numbers (`Instrument.number`, the market's hot path)."""
    return {
        "T": "q",
        "S": symbol,
        "bx": bid_exchange,
        "bp": number(bid) if isinstance(bid, Decimal) else bid,
        "bs": bid_size,
        "ax": ask_exchange,
        "ap": number(ask) if isinstance(ask, Decimal) else ask,
        "as": ask_size,
        "c": ["R"],
        "z": "C",
        "t": t,
    }


def trade_message(
    symbol: str, t: datetime, trade_id: int, price: Decimal, size: Decimal, exchange: str
) -> dict[str, Any]:
    """A §4.3 "t" message (stream form)."""
    return {
        "T": "t",
        "S": symbol,
        "i": trade_id,
        "x": exchange,
        "p": number(price),
        "s": number(size),
        "c": ["@"],
        "z": "C",
        "t": t,
    }


def bar_message(
    kind: str,
    symbol: str,
    start: datetime,
    o: Decimal,
    h: Decimal,
    low: Decimal,
    c: Decimal,
    v: Decimal,
    vwap: Decimal | None,
    n: int,
) -> dict[str, Any]:
    """A §4.3 bar ("b" minute, "d" daily, "u" updated; stream form, `t` the bar's start).

    alpaca-py requires `n` and `vw` (§8.5). The VWAP is an exact decimal rounded to 4 places
    (a sub-penny figure, like Alpaca's), not a float's binary expansion of a quotient.
    """
    return {
        "T": kind,
        "S": symbol,
        "o": number(o),
        "h": number(h),
        "l": number(low),
        "c": number(c),
        "v": number(v),
        "vw": None if vwap is None else number(vwap.quantize(_VWAP_PLACES)),
        "n": n,
        "t": start,
    }


_VWAP_PLACES = Decimal("0.0001")


def status_message(symbol: str, t: datetime, *, halted: bool) -> dict[str, Any]:
    """A §4.3 "s" trading-status message (fields S, sc, sm, rc, rm, t, z).

    The venue's quotes and trades say tape C (Nasdaq UTP), so the codes are UTP's: `H` "Trading
    Halt" (reason `T12`, further information requested) and `T` "Trading Resumption".
    """
    if halted:
        sc, sm, rc, rm = "H", "Trading Halt", "T12", "Halt Further Information Requested"
    else:
        sc, sm, rc, rm = "T", "Trading Resumption", "", ""
    return {"T": "s", "S": symbol, "sc": sc, "sm": sm, "rc": rc, "rm": rm, "t": t, "z": "C"}


def rest_form(message: dict[str, Any]) -> dict[str, Any]:
    """The REST form of a stream message (§5): no `T`/`S`, `t` as an RFC 3339 string."""
    out = {k: v for k, v in message.items() if k not in ("T", "S")}
    out["t"] = ts(message["t"])
    return out


def order_json(order: SimOrder) -> dict[str, Any]:
    """The §1.4 Order object."""
    req = order.req
    return {
        "id": order.id,
        "client_order_id": req.client_order_id,
        "created_at": ts(order.created_at),
        "updated_at": ts(order.updated_at or order.created_at),
        "submitted_at": ts(order.created_at),
        "filled_at": ts(order.filled_at),
        "expired_at": ts(order.expired_at),
        "canceled_at": ts(order.canceled_at),
        "failed_at": ts(order.failed_at),
        "replaced_at": ts(order.replaced_at),
        "replaced_by": order.replaced_by,
        "replaces": order.replaces,
        "asset_id": order.asset_id,
        "symbol": req.symbol,
        "asset_class": "us_equity",
        "notional": dec(req.notional),
        "qty": dec(req.qty),
        "filled_qty": dec(order.filled_qty),
        "filled_avg_price": (
            None if order.avg_price_hidden_until is not None else dec(_round_price(order.avg_price))
        ),
        "order_class": "" if req.order_class == "simple" else req.order_class,
        "order_type": req.type,
        "type": req.type,
        "side": req.side.value,
        "position_intent": "buy_to_open" if req.side.value == "buy" else "sell_to_close",
        "time_in_force": req.time_in_force,
        "limit_price": dec(req.limit_price),
        "stop_price": dec(req.stop_price if req.stop_price is not None else _stop(order)),
        "status": order.status,
        "extended_hours": req.extended_hours,
        "legs": None,
        "trail_percent": dec(req.trail_percent),
        "trail_price": dec(req.trail_price),
        "hwm": dec(order.hwm),
        "subtag": None,
        "source": None,
        "expires_at": None,
    }


def _stop(order: SimOrder) -> Decimal | None:
    """A trailing stop's current stop price, on the cent (sub-dollar: $0.0001) grid."""
    stop = order.trailing_stop_price
    if stop is None:
        return None
    return stop.quantize(Decimal("0.01") if stop >= 1 else Decimal("0.0001"))


def _round_price(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(Decimal("0.000000001"))


def position_json(
    symbol: str, exchange: str, holding: Holding, available: Decimal, price: Decimal, last: Decimal
) -> dict[str, Any]:
    """The §2.2 Position object, marked at `price` (latest trade); `last` is the day's open mark.
    A short position has a negative `qty`, `market_value` and `cost_basis` (§1.10)."""
    market_value = holding.qty * price
    pl = market_value - holding.cost_basis
    day_base = holding.qty * last
    return {
        "asset_id": asset_id(symbol),
        "symbol": symbol,
        "exchange": exchange,
        "asset_class": "us_equity",
        "asset_marginable": True,
        "avg_entry_price": dec(_round_price(holding.avg_entry_price)),
        "qty": dec(holding.qty),
        "qty_available": dec(available),
        "side": "long" if holding.qty > 0 else "short",
        "market_value": dec(market_value),
        "cost_basis": dec(holding.cost_basis),
        "unrealized_pl": dec(pl),
        "unrealized_plpc": dec(_ratio(pl, holding.cost_basis)),
        "unrealized_intraday_pl": dec(market_value - day_base),
        "unrealized_intraday_plpc": dec(_ratio(market_value - day_base, day_base)),
        "current_price": dec(price),
        "lastday_price": dec(last),
        "change_today": dec(_ratio(price - last, last)),
    }


def _ratio(num: Decimal, den: Decimal) -> Decimal:
    return (num / den).quantize(Decimal("0.0000000001")) if den else Decimal(0)


def asset_json(
    symbol: str, name: str, exchange: str, fractionable: bool, easy_to_borrow: bool = True
) -> dict[str, Any]:
    """The §2.5 Asset object (alpaca-py still requires `easy_to_borrow`)."""
    return {
        "id": asset_id(symbol),
        "class": "us_equity",
        "exchange": exchange,
        "symbol": symbol,
        "name": name or symbol,
        "status": "active",
        "tradable": True,
        "marginable": True,
        "maintenance_margin_requirement": 30,
        "margin_requirement_long": "30",
        "margin_requirement_short": "100",
        "shortable": easy_to_borrow,
        "easy_to_borrow": easy_to_borrow,
        "fractionable": fractionable,
        "attributes": ["fractional_eh_enabled"] if fractionable else [],
    }


def account_json(
    account_id: str, created_at: datetime, money: AccountFigures, today: datetime
) -> dict[str, Any]:
    """The §2.1 Account object: every money field an exact decimal string (§0.3)."""
    bp = dec(money.buying_power)
    return {
        "id": account_id,
        "account_number": "PA3SIMVENUE1",
        "status": "ACTIVE",
        "crypto_status": "INACTIVE",
        "currency": "USD",
        "cash": dec(money.cash),
        "portfolio_value": dec(money.equity),
        "equity": dec(money.equity),
        "last_equity": dec(money.last_equity),
        "buying_power": bp,
        "regt_buying_power": dec(money.regt_buying_power),
        "effective_buying_power": bp,
        "non_marginable_buying_power": dec(money.non_marginable_buying_power),
        "options_buying_power": dec(money.non_marginable_buying_power),
        "multiplier": str(money.multiplier),
        "initial_margin": dec(money.initial_margin),
        "maintenance_margin": dec(money.maintenance_margin),
        "last_maintenance_margin": dec(money.last_maintenance_margin),
        "sma": "0",
        "long_market_value": dec(money.long_market_value),
        "short_market_value": dec(money.short_market_value),
        "position_market_value": dec(money.long_market_value - money.short_market_value),
        "accrued_fees": "0",
        "pending_transfer_in": "0",
        "pending_transfer_out": "0",
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "trade_suspended_by_user": False,
        "shorting_enabled": money.shorting_enabled,
        "created_at": ts(created_at),
        "balance_asof": today.astimezone(EASTERN).date().isoformat(),
        "crypto_tier": 0,
        "options_approved_level": 0,
        "options_trading_level": 0,
        "intraday_adjustments": "0",
        "pending_reg_taf_fees": "0",
    }
