"""Alpaca's order rules at submission and replace (ALPACA.md §1.1–§1.3, §1.7, §7), as pure checks.

Each refusal raises :class:`SimError` with Alpaca's HTTP status, code and verbatim message where
one is recorded in ALPACA.md §0.5; messages marked "(sim)" are ours where Alpaca's text is unknown.
State-dependent checks (buying power, quantity available, duplicates) live in the exchange, which
calls the pure helpers here with the state they need.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import time
from decimal import Decimal, InvalidOperation
from typing import Any

from execd.domain.types import Side
from execd.sim.errors import SimError, forbidden, invalid, unprocessable
from execd.sim.orders import OrderRequest

ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit", "trailing_stop"})
SUPPORTED_TYPES = ORDER_TYPES
TIME_IN_FORCE = frozenset({"day", "gtc", "opg", "cls", "ioc", "fok"})
ORDER_CLASSES = frozenset({"simple", "bracket", "oco", "oto"})
MAX_CLIENT_ORDER_ID = 128
_MAX_DECIMALS = 9


# ASCII digits only (re.ASCII), as Alpaca's parser reads them: Python's Decimal() also
# reads other scripts' digits ("٣" is 3, "１" is 1) and underscores ("1_0" is 10).
_NUMERAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)


def decimal_text(text: str) -> Decimal | None:
    """`text` as a finite Decimal if it is an ASCII decimal numeral, else None."""
    if not _NUMERAL.fullmatch(text):
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        return None
    return value if value.is_finite() else None


def parse_decimal(body: Mapping[str, Any], name: str) -> Decimal | None:
    """A decimal field sent as a JSON string or number (alpaca-py sends numbers, §0.3)."""
    raw = body.get(name)
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise invalid(f"invalid {name}")
    value = decimal_text(str(raw))
    if value is None:
        raise invalid(f"invalid {name}")
    return value


def parse_bool(raw: Any) -> bool:
    """JSON booleans, and the "True"/"false" strings some clients send (§0.3)."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        return raw.strip().lower() == "true"
    return bool(raw)


def check_sub_penny(name: str, price: Decimal, raw: Any) -> None:
    """§1.2: ≥ $1 → at most 2 decimals, < $1 → at most 4."""
    places = 2 if price >= 1 else 4
    if price != price.quantize(Decimal(1).scaleb(-places)):
        shown = raw if isinstance(raw, str) else str(price)
        raise unprocessable(
            f"invalid {name} {shown}. sub-penny increment does not fulfill minimum pricing criteria"
        )


def is_fractional(qty: Decimal) -> bool:
    """True when `qty` is not a whole number of shares."""
    return qty != qty.to_integral_value()


def parse_order(body: Mapping[str, Any], *, default_client_order_id: str) -> OrderRequest:
    """Validate the shape of a POST /v2/orders body (no account or market state needed)."""
    symbol = body.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise invalid("symbol is required")
    side_raw = body.get("side")
    if side_raw not in ("buy", "sell"):
        raise invalid("side is required" if side_raw is None else f"invalid side {side_raw}")
    side = Side(side_raw)
    order_type = body.get("type", body.get("order_type"))
    if order_type not in ORDER_TYPES:
        raise invalid("type is required" if order_type is None else f"invalid type {order_type}")
    tif = body.get("time_in_force")
    if tif not in TIME_IN_FORCE:
        raise invalid(
            "time_in_force is required" if tif is None else f"invalid time_in_force {tif}"
        )
    order_class = body.get("order_class") or "simple"
    if order_class not in ORDER_CLASSES:
        if order_class == "mleg":
            raise unprocessable("mleg orders are for options")  # (sim) equities only
        raise invalid(f"invalid order_class {order_class}")
    take_profit, stop_loss, stop_loss_limit = _exits(body, order_class)
    if order_type not in SUPPORTED_TYPES:
        raise unprocessable(f"{order_type} orders are not supported by the simulator")  # (sim)
    trail_price = parse_decimal(body, "trail_price")
    trail_percent = parse_decimal(body, "trail_percent")
    if order_type == "trailing_stop":
        if (trail_price is None) == (trail_percent is None):
            raise invalid("exactly one of trail_price or trail_percent is required")  # (sim)
        for name, trail in (("trail_price", trail_price), ("trail_percent", trail_percent)):
            if trail is not None and trail <= 0:
                raise invalid(f"{name} must be > 0")  # (sim)
        if trail_percent is not None and trail_percent >= 100:
            raise invalid("trail_percent must be below 100")  # (sim): a stop at or below zero
        if tif not in ("day", "gtc"):
            raise unprocessable("trailing stop orders must be DAY or GTC orders")  # §1.3 (sim)
    elif trail_price is not None or trail_percent is not None:
        raise invalid("trail_price and trail_percent are for trailing_stop orders")  # (sim)
    if tif in ("opg", "cls") and order_type not in ("market", "limit"):
        # §1.3: OPG/CLS are market or limit orders.
        raise unprocessable(f"{tif} orders must be market or limit orders")  # (sim) wording
    qty = parse_decimal(body, "qty")
    notional = parse_decimal(body, "notional")
    if qty is None and notional is None:
        raise invalid("qty or notional is required")
    if qty is not None and notional is not None:
        raise invalid("only one of qty or notional may be set")  # (sim)
    for name, amount in (("qty", qty), ("notional", notional)):
        if amount is not None:
            if amount <= 0:
                raise invalid(f"{name} must be > 0")  # (sim)
            if amount != amount.quantize(Decimal(1).scaleb(-_MAX_DECIMALS)):
                raise invalid(f"{name} must have at most 9 decimal places")  # (sim)
    limit_price = parse_decimal(body, "limit_price")
    if order_class == "oco" and limit_price is None:
        limit_price = take_profit  # an OCO is its take-profit limit (alpaca-py sends no limit)
    stop_price = parse_decimal(body, "stop_price")
    check_prices(order_type, limit_price, stop_price, body)
    extended = parse_bool(body.get("extended_hours", False))
    client_order_id = body.get("client_order_id") or default_client_order_id
    if not isinstance(client_order_id, str):
        raise invalid("invalid client_order_id")
    check_client_order_id(client_order_id)
    req = OrderRequest(
        symbol=symbol,
        side=side,
        type=order_type,
        time_in_force=tif,
        qty=qty,
        notional=notional,
        limit_price=limit_price,
        stop_price=stop_price,
        extended_hours=extended,
        client_order_id=client_order_id,
        trail_price=trail_price,
        trail_percent=trail_percent,
        order_class=order_class,
        take_profit=take_profit,
        stop_loss=stop_loss,
        stop_loss_limit=stop_loss_limit,
    )
    check_order_constraints(req)
    check_complex(req)
    return req


def check_prices(
    order_type: str,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    body: Mapping[str, Any],
) -> None:
    """Prices required by the type are present, positive and on the tick grid."""
    if order_type in ("limit", "stop_limit") and limit_price is None:
        raise invalid("limit_price is required")  # (sim) alpaca-py refuses this client-side
    if order_type in ("stop", "stop_limit") and stop_price is None:
        raise invalid("stop_price is required")  # (sim)
    if order_type == "trailing_stop" and stop_price is not None:
        raise invalid("stop_price must not be set for trailing_stop orders")  # (sim)
    if order_type in ("market", "stop", "trailing_stop") and limit_price is not None:
        raise invalid("limit_price must not be set for market and stop orders")  # (sim)
    for name, price in (("limit_price", limit_price), ("stop_price", stop_price)):
        if price is None:
            continue
        if price <= 0:
            raise invalid(f"{name} must be > 0")  # (sim)
        check_sub_penny(name, price, body.get(name))


def check_client_order_id(client_order_id: str) -> None:
    """§1.1: at most 128 characters (uniqueness needs state: the exchange checks it)."""
    if len(client_order_id) > MAX_CLIENT_ORDER_ID:
        raise invalid("client_order_id must be no more than 128 characters")


def check_order_constraints(req: OrderRequest) -> None:
    """§1.3: fractional, notional and extended-hours combinations."""
    if req.qty is not None and is_fractional(req.qty) and req.time_in_force != "day":
        raise unprocessable("fractional orders must be DAY orders")
    if req.notional is not None:
        if req.time_in_force != "day":
            raise unprocessable("fractional orders must be DAY orders")
        if req.type != "market":
            # OAS-T: notional "can only work for market order types"; text (sim).
            raise unprocessable("notional orders must be market orders")
    if req.type == "trailing_stop" and req.qty is not None and is_fractional(req.qty):
        raise unprocessable("fractional orders must be market, limit, stop, or stop_limit orders")
    if req.extended_hours and (req.type != "limit" or req.time_in_force != "day"):
        raise unprocessable("extended hours order must be DAY limit orders")


def check_fractionable(req: OrderRequest, fractionable: bool) -> None:
    """§0.5: fractional qty or any notional on a non-fractionable asset is 403."""
    fractional = req.notional is not None or (req.qty is not None and is_fractional(req.qty))
    if fractional and not fractionable:
        raise forbidden(f'asset "{req.symbol}" is not fractionable')


def _aggressive(order_type: str) -> bool:
    return order_type in ("market", "stop")


def would_wash(new: OrderRequest, existing: Iterable[OrderRequest]) -> bool:
    """§7: an opposite-side open order of the same symbol that the new order could trade with.

    Market or stop on either side always conflicts; limit vs limit conflicts when the buy's limit
    is at or above the sell's.
    """
    if new.type == "trailing_stop" or new.order_class != "simple":
        return False  # §7: trailing stops and bracket/OCO/OTO orders are exempt
    for other in existing:
        if other.symbol != new.symbol or other.side is new.side:
            continue
        if other.type == "trailing_stop" or other.order_class != "simple":
            continue
        if _aggressive(new.type) or _aggressive(other.type):
            return True
        buy, sell = (new, other) if new.side is Side.BUY else (other, new)
        if (
            buy.limit_price is not None
            and sell.limit_price is not None
            and buy.limit_price >= sell.limit_price
        ):
            return True
    return False


def _exits(
    body: Mapping[str, Any], order_class: str
) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """(take_profit.limit_price, stop_loss.stop_price, stop_loss.limit_price) of a complex order."""
    tp_raw, sl_raw = body.get("take_profit"), body.get("stop_loss")
    if order_class == "simple":
        return None, None, None
    for name, raw in (("take_profit", tp_raw), ("stop_loss", sl_raw)):
        if raw is not None and not isinstance(raw, Mapping):
            raise invalid(f"invalid {name}")
    tp = parse_decimal(tp_raw, "limit_price") if isinstance(tp_raw, Mapping) else None
    sl = parse_decimal(sl_raw, "stop_price") if isinstance(sl_raw, Mapping) else None
    sl_limit = parse_decimal(sl_raw, "limit_price") if isinstance(sl_raw, Mapping) else None
    if sl_raw is not None and sl is None:
        raise invalid("stop_loss.stop_price is required")  # §1.1: mandatory
    if tp_raw is not None and tp is None:
        raise invalid("take_profit.limit_price is required")  # (sim)
    if order_class in ("bracket", "oco") and (tp is None or sl is None):
        raise invalid(f"{order_class} orders require take_profit and stop_loss")  # (sim)
    if order_class == "oto" and tp is None and sl is None:
        raise invalid("oto orders require take_profit or stop_loss")  # (sim)
    for name, price, raw in (
        ("limit_price", tp, tp_raw),
        ("stop_price", sl, sl_raw),
        ("limit_price", sl_limit, sl_raw),
    ):
        if price is not None:
            if price <= 0:
                raise invalid(f"{name} must be > 0")  # (sim)
            check_sub_penny(name, price, raw.get(name) if isinstance(raw, Mapping) else None)
    return tp, sl, sl_limit


def check_complex(req: OrderRequest) -> None:
    """§1.3: what bracket / OCO / OTO orders must look like (prices vs. each other and the
    entry's limit; the market-price distance needs the book and is checked by the exchange)."""
    if req.order_class == "simple":
        return
    if req.notional is not None or (req.qty is not None and is_fractional(req.qty)):
        raise unprocessable("fractional orders must be simple orders")  # §0.5
    if req.time_in_force not in ("day", "gtc"):
        raise unprocessable(f"{req.order_class} orders must be DAY or GTC orders")  # (sim)
    if req.extended_hours:
        raise unprocessable(f"{req.order_class} orders cannot be extended hours orders")  # (sim)
    if req.order_class == "oco" and req.type != "limit":
        raise unprocessable("oco orders must be limit orders")  # §1.3, (sim) wording
    if req.order_class != "oco" and req.type not in ("market", "limit"):
        raise unprocessable(f"{req.order_class} entry must be a market or limit order")  # (sim)
    buy = req.side is Side.BUY
    # An OCO is an exit: its prices sit on the other side of the position from an entry's.
    exits_sell = buy != (req.order_class == "oco")
    tp, sl = req.take_profit, req.stop_loss
    if tp is not None and sl is not None and (tp <= sl if exits_sell else tp >= sl):
        side = "greater" if exits_sell else "less"
        raise unprocessable(f"take_profit.limit_price must be {side} than stop_loss.stop_price")
    if req.order_class != "oco" and req.limit_price is not None:
        check_exit_distance(req, req.limit_price)


def check_exit_distance(req: OrderRequest, base: Decimal) -> None:
    """§1.3: a bracket/OTO's exits sit at least $0.01 beyond the base price (the entry's limit,
    or the market price for a market entry): take profit above and stop below for a buy."""
    cent = Decimal("0.01")
    up = req.side is Side.BUY
    tp, sl = req.take_profit, req.stop_loss
    if tp is not None and (tp < base + cent if up else tp > base - cent):
        raise unprocessable("take_profit.limit_price must be 0.01 beyond the base price")  # (sim)
    if sl is not None and (sl > base - cent if up else sl < base + cent):
        raise unprocessable("stop_loss.stop_price must be 0.01 beyond the base price")  # (sim)


def check_auction_window(req: OrderRequest, eastern: time) -> None:
    """§1.3 (OAS-T TimeInForce): OPG is refused 9:28–19:00 ET, CLS 15:50–19:00 ET; outside
    those windows they are queued for the next open / close."""
    if req.time_in_force == "opg" and time(9, 28) <= eastern < time(19, 0):
        raise unprocessable("opg orders are not accepted between 9:28am and 7:00pm ET")  # (sim)
    if req.time_in_force == "cls" and time(15, 50) <= eastern < time(19, 0):
        raise unprocessable("cls orders are not accepted between 3:50pm and 7:00pm ET")  # (sim)


def wash_error() -> SimError:
    """§7: documented as 403 (one 2024 report saw 422); the venue follows the docs."""
    return forbidden("potential wash trade detected. use complex orders")
