"""The venue's HTTP face: Alpaca's trading REST (``/v2``), market-data REST and the websockets.

One aiohttp application serves what Alpaca spreads over two hosts (ALPACA.md §0.1): the trading
API (paper-api.alpaca.markets) and market data (data.alpaca.markets) share one port, so
``trading_url`` and ``data_url`` are the same origin. Every REST request goes through
:func:`alpaca_middleware`, which applies Alpaca's conventions in this order:

1. **Auth** (§0.2): ``APCA-API-KEY-ID`` + ``APCA-API-SECRET-KEY`` headers, or
   ``Authorization: Basic base64(key:secret)``; anything else is HTTP 401
   ``{"message": "unauthorized."}`` (no ``code``, as observed on paper).
2. **Rate limit** (§0.4): per key, trading and market-data budgets counted separately
   (see :mod:`execd.sim.ratelimit` for the fixed window); ``X-RateLimit-*`` headers on every
   response, 429 ``{"code":42910000,"message":"rate limit exceeded"}`` beyond the budget.
3. **Injected faults** from the ``/sim/`` admin API (:mod:`execd.sim.admin`).
4. **The handler**, a thin call into :class:`~execd.sim.exchange.Exchange`; a
   :class:`~execd.sim.errors.SimError` becomes its HTTP status and ``{"code","message",...}``
   body (§0.5). Malformed JSON bodies are 400 ``{"code":40010000,"message":"request body
   format is invalid"}``; bad query values 422 / 40010001.

Query booleans are parsed case-insensitively because alpaca-py sends ``True`` (§0.3).
The websocket routes (``/stream``, ``/v2/{iex,sip,delayed_sip,test}``) and ``/sim/`` skip the
middleware: the streams authenticate in-protocol (:mod:`execd.sim.streams`), the admin API is open.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import msgspec
from aiohttp import web

from execd.sim.admin import (
    AnswerOverrides,
    FaultQueue,
    add_admin_routes,
    fault_response,
    sleep_for_fault,
)
from execd.sim.clock import VenueClock
from execd.sim.errors import SimError
from execd.sim.exchange import Exchange
from execd.sim.ratelimit import RateLimiter, rate_limit_headers
from execd.sim.rules import decimal_text
from execd.sim.streams_hub import StreamHub

__all__ = [
    "DATA_FEEDS",
    "ServerOptions",
    "VenueServices",
    "build_app",
    "credentials_from_headers",
    "credentials_match",
    "parse_bool",
]

DATA_FEEDS = ("iex", "sip", "delayed_sip", "test")
CODE_MALFORMED = 40010000
CODE_INVALID = 40010001
CODE_RATE_LIMITED = 42910000
UNAUTHORIZED_BODY = {"message": "unauthorized."}
RATE_LIMITED_BODY = {"code": CODE_RATE_LIMITED, "message": "rate limit exceeded"}

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """The protocol knobs of the venue that are not market/account configuration."""

    rate_limit: int = 200  # trading requests per window per key (§0.4)
    rate_window_seconds: float = 60.0
    data_rate_limit: int = 200  # market-data REST, free plan (§0.4)
    data_symbol_limit: int | None = 30  # market-data stream symbols, free plan (§0.4)
    data_auth_timeout: float = 10.0  # §4.1 step 3
    data_connections_per_key: int = 1  # §4.1 "usually 1 connection per endpoint"
    data_page_limit: int = 10_000  # most rows one market-data page carries (Alpaca's `limit` max)
    # A stream client that stops reading (§4.4 `407 slow client`): messages queued for one
    # connection before it is told 407 and hung up, and seconds it then has to take the close
    # before its TCP connection is cut (StreamOptions).
    slow_client_backlog: int = 10_000
    slow_client_timeout: float = 1.0
    # Bytes buffered per stream socket before the backlog grows (StreamOptions.send_buffer).
    stream_send_buffer: int | None = None


@dataclass(slots=True)
class VenueServices:
    """What the routes share: the engine, the stream hub, the limiters, faults and credentials."""

    exchange: Exchange
    clock: VenueClock
    hub: StreamHub
    key_id: str
    secret_key: str
    trading_limiter: RateLimiter
    data_limiter: RateLimiter
    faults: FaultQueue = field(default_factory=FaultQueue)
    overrides: AnswerOverrides = field(default_factory=AnswerOverrides)
    """Injected rewrites of account/order answers (`execd.sim.admin.AnswerOverrides`)."""
    data_page_limit: int = 10_000
    requests: Counter[str] = field(default_factory=Counter)
    """REST requests seen, by ``"METHOD /path"`` (after auth, 429s included): how tests
    count the reads a daemon spends (DESIGN.md "O(1) reads per wave")."""
    wall_time: Callable[[], float] = time.time

    def credentials_ok(self, key_id: str, secret_key: str) -> bool:
        """Whether a key pair is this venue's account."""
        return credentials_match(self.key_id, self.secret_key, key_id, secret_key)


def credentials_match(key_id: str, secret_key: str, given_key: str, given_secret: str) -> bool:
    """Constant-time comparison of a presented key pair with the account's."""
    key_ok = hmac.compare_digest(given_key.encode(), key_id.encode())
    secret_ok = hmac.compare_digest(given_secret.encode(), secret_key.encode())
    return key_ok and secret_ok


# ------------------------------------------------------------------------ pure protocol bits


def credentials_from_headers(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """The (key, secret) a request presents: APCA headers or HTTP Basic (§0.2), else None."""
    key = headers.get("APCA-API-KEY-ID")
    secret = headers.get("APCA-API-SECRET-KEY")
    if key is not None and secret is not None:
        return key, secret
    authorization = headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    key, sep, secret = decoded.partition(":")
    return (key, secret) if sep else None


def parse_bool(value: str | None, name: str, default: bool = False) -> bool:
    """A query boolean, case-insensitive: alpaca-py sends Python's ``True`` (§0.3)."""
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise SimError(422, f"invalid {name}: {value}", CODE_INVALID)


def parse_int(value: str | None, name: str, default: int, *, low: int, high: int) -> int:
    """A bounded integer query parameter."""
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise SimError(422, f"invalid {name}: {value}", CODE_INVALID) from exc
    if not low <= number <= high:
        raise SimError(422, f"invalid {name}: {value}", CODE_INVALID)
    return number


def parse_time(value: str | None, name: str) -> datetime | None:
    """An RFC 3339 timestamp or date query parameter (naive means UTC, as alpaca-py assumes)."""
    if value is None or value == "":
        return None
    # An unencoded '+' in a query string arrives as a space.
    text = value.strip().replace(" ", "+")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise SimError(422, f"invalid {name}: {value}", CODE_INVALID) from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_date(value: str | None, name: str, default: date) -> date:
    """A ``YYYY-MM-DD`` query parameter (a full timestamp is accepted and truncated)."""
    if value is None or value == "":
        return default
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError as exc:
        raise SimError(422, f"invalid {name}: {value}", CODE_INVALID) from exc


def parse_decimal(value: str | None, name: str) -> Decimal | None:
    """A decimal query parameter (position close ``qty``/``percentage``)."""
    if value is None or value == "":
        return None
    number = decimal_text(value)
    if number is None or number <= 0:
        raise SimError(422, f"invalid {name}: {value}", CODE_INVALID)
    return number


def parse_symbols(value: str | None) -> list[str]:
    """A comma-separated symbol list (§0.3), empty entries dropped."""
    if not value:
        return []
    return [s.strip() for s in value.split(",") if s.strip()]


def json_response(payload: Any, status: int = 200) -> web.Response:
    """A JSON response; decimals stay strings, datetimes RFC 3339 (Alpaca's wire conventions)."""
    return web.Response(
        body=_encoder.encode(payload), status=status, content_type="application/json"
    )


def error_response(error: SimError) -> web.Response:
    """Alpaca's error body for an engine refusal (§0.5)."""
    return json_response(error.body(), status=error.status)


async def read_body(request: web.Request) -> dict[str, Any]:
    """The JSON object body of a POST/PATCH; 400 like Alpaca when it is not one."""
    raw = await request.read()
    try:
        body = msgspec.json.decode(raw) if raw else None
    except msgspec.DecodeError as exc:
        raise SimError(400, "request body format is invalid", CODE_MALFORMED) from exc
    if not isinstance(body, dict):
        raise SimError(400, "request body format is invalid", CODE_MALFORMED)
    return body


# ------------------------------------------------------------------------------ middleware

SERVICES = web.AppKey("services", VenueServices)
_WS_PATHS = frozenset({"/stream", *(f"/v2/{feed}" for feed in DATA_FEEDS)})


def _is_data_path(path: str) -> bool:
    return path.startswith("/v2/stocks")


@web.middleware
async def alpaca_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Auth, rate limit, injected faults and error mapping for every REST call (see module doc)."""
    path = request.path
    if path in _WS_PATHS or path == "/sim" or path.startswith("/sim/"):
        return await handler(request)
    services = request.app[SERVICES]
    creds = credentials_from_headers(request.headers)
    if creds is None or not services.credentials_ok(*creds):
        return json_response(UNAUTHORIZED_BODY, status=401)
    services.requests[f"{request.method} {path}"] += 1
    limiter = services.data_limiter if _is_data_path(path) else services.trading_limiter
    decision = limiter.hit(creds[0], services.wall_time())
    headers = rate_limit_headers(decision)
    if not decision.allowed:
        refused = json_response(RATE_LIMITED_BODY, status=429)
        refused.headers.update(headers)
        return refused
    fault = services.faults.take(request.method, path)
    response: web.StreamResponse
    # A fault's delay holds the request before the venue sees it ("before") or holds the
    # answer of a request already performed ("after": a crash between send and ack).
    if fault is not None and fault.when == "before":
        # The venue has the whole request before it holds it: read the body now, so a
        # client that gives up meanwhile still gets its request performed (a POST that
        # lands after the client's timeout, as at a real venue).
        await request.read()
        await sleep_for_fault(fault)
    if fault is not None and fault.status is not None and fault.when == "before":
        response = fault_response(fault)
    else:
        try:
            response = await handler(request)
        except SimError as exc:
            response = error_response(exc)
        except web.HTTPException as exc:
            response = json_response(
                {"code": exc.status * 100000 + 10000, "message": exc.reason.lower()},
                status=exc.status,
            )
        if fault is not None and fault.when == "after":
            await sleep_for_fault(fault)
        if fault is not None and fault.status is not None:
            response = fault_response(fault)
    response.headers.update(headers)
    if fault is not None and fault.rate_limit_remaining is not None:
        response.headers["X-RateLimit-Remaining"] = str(fault.rate_limit_remaining)
    return response


# -------------------------------------------------------------------------------- handlers


def _exchange(request: web.Request) -> Exchange:
    return request.app[SERVICES].exchange


async def submit_order(request: web.Request) -> web.Response:
    """POST /v2/orders (§1.1): 200 with the order."""
    return json_response(_exchange(request).submit_order(await read_body(request)))


async def list_orders(request: web.Request) -> web.Response:
    """GET /v2/orders (§1.5)."""
    q = request.query
    status = q.get("status", "open").lower()
    if status not in ("open", "closed", "all"):
        raise SimError(422, f"invalid status: {status}", CODE_INVALID)
    direction = q.get("direction", "desc").lower()
    if direction not in ("asc", "desc"):
        raise SimError(422, f"invalid direction: {direction}", CODE_INVALID)
    side = q.get("side")
    if side is not None and side.lower() not in ("buy", "sell"):
        raise SimError(422, f"invalid side: {side}", CODE_INVALID)
    symbols = parse_symbols(q.get("symbols"))
    orders = _exchange(request).list_orders(
        status=status,
        limit=parse_int(q.get("limit"), "limit", 50, low=1, high=500),
        after=parse_time(q.get("after"), "after"),
        until=parse_time(q.get("until"), "until"),
        direction=direction,
        symbols=symbols or None,
        side=side.lower() if side else None,
        nested=parse_bool(q.get("nested"), "nested"),
        after_order_id=q.get("after_order_id") or None,
        before_order_id=q.get("before_order_id") or None,
    )
    return json_response(orders)


async def get_order(request: web.Request) -> web.Response:
    """GET /v2/orders/{order_id} (§1.6)."""
    nested = parse_bool(request.query.get("nested"), "nested")
    answer = _exchange(request).get_order(request.match_info["order_id"], nested)
    return json_response(request.app[SERVICES].overrides.order(answer))


async def get_order_by_client_id(request: web.Request) -> web.Response:
    """GET /v2/orders:by_client_order_id?client_order_id= (§1.6)."""
    client_order_id = request.query.get("client_order_id", "")
    if not client_order_id:
        raise SimError(422, "client_order_id is required", CODE_INVALID)
    return json_response(_exchange(request).get_order_by_client_id(client_order_id))


async def replace_order(request: web.Request) -> web.Response:
    """PATCH /v2/orders/{order_id} (§1.7): 200 with the *new* order."""
    body = await read_body(request)
    return json_response(_exchange(request).replace_order(request.match_info["order_id"], body))


async def cancel_order(request: web.Request) -> web.Response:
    """DELETE /v2/orders/{order_id} (§1.8): 204, the outcome follows on the stream."""
    _exchange(request).cancel_order(request.match_info["order_id"])
    return web.Response(status=204)


async def cancel_all_orders(request: web.Request) -> web.Response:
    """DELETE /v2/orders (§1.8): 207 with one ``{id, status, body}`` per order."""
    return json_response(_exchange(request).cancel_all_orders(), status=207)


async def account(request: web.Request) -> web.Response:
    """GET /v2/account (§2.1)."""
    return json_response(request.app[SERVICES].overrides.account(_exchange(request).account()))


async def activities(request: web.Request) -> web.Response:
    """GET /v2/account/activities[/{activity_type}]?activity_types=&direction=&page_size=
    &page_token=&after=&until= (newest first; the JS SDK 4.x calls both paths)."""
    q = request.query
    one = request.match_info.get("activity_type")
    types = [one] if one else parse_symbols(q.get("activity_types")) or None
    rows = _exchange(request).activities(
        types,
        direction=q.get("direction", "desc").lower(),
        page_size=parse_int(q.get("page_size"), "page_size", 100, low=1, high=100),
        page_token=q.get("page_token") or None,
        after=parse_time(q.get("after"), "after"),
        until=parse_time(q.get("until"), "until"),
    )
    return json_response(rows)


async def portfolio_history(request: web.Request) -> web.Response:
    """GET /v2/account/portfolio/history?timeframe=&start=&end= (alpaca-py's
    `get_portfolio_history`)."""
    q = request.query
    history = _exchange(request).portfolio_history(
        q.get("timeframe") or "1Min",
        parse_time(q.get("start"), "start"),
        parse_time(q.get("end"), "end"),
    )
    return json_response(history)


async def positions(request: web.Request) -> web.Response:
    """GET /v2/positions (§2.2)."""
    return json_response(_exchange(request).positions())


async def position(request: web.Request) -> web.Response:
    """GET /v2/positions/{symbol} (§2.2)."""
    return json_response(_exchange(request).position(request.match_info["symbol"]))


async def close_position(request: web.Request) -> web.Response:
    """DELETE /v2/positions/{symbol}?qty=|percentage= (§2.2): 200 with the closing order."""
    q = request.query
    qty = parse_decimal(q.get("qty"), "qty")
    percentage = parse_decimal(q.get("percentage"), "percentage")
    if qty is not None and percentage is not None:
        raise SimError(422, "only one of qty or percentage may be given", CODE_INVALID)
    order = _exchange(request).close_position(request.match_info["symbol"], qty, percentage)
    return json_response(order)


async def close_all_positions(request: web.Request) -> web.Response:
    """DELETE /v2/positions?cancel_orders= (§2.2): 207 ``{symbol, status, body}`` per position."""
    exchange = _exchange(request)
    if parse_bool(request.query.get("cancel_orders"), "cancel_orders"):
        await _cancel_all_and_wait(exchange)
    results: list[dict[str, Any]] = []
    for held in exchange.positions():
        symbol = str(held["symbol"])
        try:
            results.append(
                {"symbol": symbol, "status": 200, "body": exchange.close_position(symbol)}
            )
        except SimError as exc:
            results.append({"symbol": symbol, "status": exc.status, "body": exc.body()})
    return json_response(results, status=207)


_TERMINAL = frozenset({"filled", "canceled", "expired", "replaced", "rejected"})
CANCEL_WAIT_SECONDS = 2.0


async def _cancel_all_and_wait(exchange: Exchange) -> None:
    """Cancel every open order and wait (bounded) until they are final, so that the shares
    they held are free before the positions are closed (``cancel_orders=true``, §2.2)."""
    pending = {
        str(entry["id"]) for entry in exchange.cancel_all_orders() if entry.get("status") == 200
    }
    if not pending:
        return
    done = asyncio.Event()

    def on_update(update: dict[str, Any]) -> None:
        order = update.get("order") or {}
        if order.get("status") in _TERMINAL:
            pending.discard(str(order.get("id")))
        if not pending:
            done.set()

    unsubscribe = exchange.on_trade_update(on_update)
    try:
        for order_id in list(pending):  # some may have finished before we listened
            if exchange.get_order(order_id)["status"] in _TERMINAL:
                pending.discard(order_id)
        if pending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CANCEL_WAIT_SECONDS):
                    await done.wait()
    finally:
        unsubscribe()


async def clock(request: web.Request) -> web.Response:
    """GET /v2/clock (§2.3)."""
    return json_response(_exchange(request).clock_json())


async def clock_v3(request: web.Request) -> web.Response:
    """GET /v3/clock?markets=&time= (§2.3; the JS SDK 4.x calls it)."""
    q = request.query
    markets = parse_symbols(q.get("markets")) or None
    return json_response(_exchange(request).clock_v3(parse_time(q.get("time"), "time"), markets))


# §2.4: Alpaca serves 1970-2029 when no range is given.
_CALENDAR_FIRST = date(1970, 1, 1)
_CALENDAR_LAST = date(2029, 12, 31)


async def calendar(request: web.Request) -> web.Response:
    """GET /v2/calendar?start=&end= (§2.4), both inclusive."""
    start = parse_date(request.query.get("start"), "start", _CALENDAR_FIRST)
    end = parse_date(request.query.get("end"), "end", _CALENDAR_LAST)
    if end < start:
        return json_response([])
    return json_response(_exchange(request).calendar(start, end))


async def assets(request: web.Request) -> web.Response:
    """GET /v2/assets (§2.5)."""
    return json_response(_exchange(request).assets())


async def asset(request: web.Request) -> web.Response:
    """GET /v2/assets/{symbol} (§2.5)."""
    return json_response(_exchange(request).asset(request.match_info["symbol"]))


def _required_symbols(request: web.Request) -> list[str]:
    symbols = parse_symbols(request.query.get("symbols"))
    if not symbols:
        raise SimError(400, "symbols is required", CODE_MALFORMED)
    return symbols


async def latest_quotes(request: web.Request) -> web.Response:
    """GET /v2/stocks/quotes/latest?symbols= (§5): ``{"quotes": {...}}``."""
    return json_response({"quotes": _exchange(request).latest_quotes(_required_symbols(request))})


async def latest_quote(request: web.Request) -> web.Response:
    """GET /v2/stocks/{symbol}/quotes/latest (§5): ``{"symbol", "quote"}``."""
    symbol = request.match_info["symbol"]
    quotes = _exchange(request).latest_quotes([symbol])
    if symbol not in quotes:
        raise SimError(404, f"no quote found for {symbol}", 40410000)
    return json_response({"symbol": symbol, "quote": quotes[symbol]})


async def latest_trades(request: web.Request) -> web.Response:
    """GET /v2/stocks/trades/latest?symbols=: ``{"trades": {...}}``."""
    return json_response({"trades": _exchange(request).latest_trades(_required_symbols(request))})


async def latest_trade(request: web.Request) -> web.Response:
    """GET /v2/stocks/{symbol}/trades/latest: ``{"symbol", "trade"}``."""
    symbol = request.match_info["symbol"]
    trades = _exchange(request).latest_trades([symbol])
    if symbol not in trades:
        raise SimError(404, f"no trade found for {symbol}", 40410000)
    return json_response({"symbol": symbol, "trade": trades[symbol]})


async def latest_bars(request: web.Request) -> web.Response:
    """GET /v2/stocks/bars/latest?symbols=: ``{"bars": {...}}`` (§5's shape for bars)."""
    return json_response({"bars": _exchange(request).latest_bars(_required_symbols(request))})


async def bars(request: web.Request) -> web.Response:
    """GET /v2/stocks/bars?symbols=&timeframe=&start=&end=&limit=&page_token= (history, then
    the live session; `next_page_token` pages across symbols, §5's paging)."""
    q = request.query
    symbols: Sequence[str] = _required_symbols(request)
    result, token = _exchange(request).bars_page(
        symbols,
        timeframe=q.get("timeframe", "1Min"),
        start=parse_time(q.get("start"), "start"),
        end=parse_time(q.get("end"), "end"),
        limit=min(
            parse_int(q.get("limit"), "limit", 1000, low=1, high=10_000),
            request.app[SERVICES].data_page_limit,
        ),
        page_token=q.get("page_token") or None,
    )
    return json_response({"bars": result, "next_page_token": token})


def _ticks_handler(kind: str, key: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        q = request.query
        result, token = _exchange(request).ticks_page(
            kind,
            _required_symbols(request),
            parse_time(q.get("start"), "start"),
            parse_time(q.get("end"), "end"),
            min(
                parse_int(q.get("limit"), "limit", 1000, low=1, high=10_000),
                request.app[SERVICES].data_page_limit,
            ),
            q.get("page_token") or None,
        )
        return json_response({key: result, "next_page_token": token})

    handler.__doc__ = f"GET /v2/stocks/{key}?symbols=&start=&end=&limit=&page_token= (paged)."
    return handler


async def snapshots(request: web.Request) -> web.Response:
    """GET /v2/stocks/snapshots?symbols=: latest trade/quote, minute bar, daily bar and the
    previous daily bar per symbol (alpaca-py's `get_stock_snapshot`)."""
    return json_response(_exchange(request).snapshots(_required_symbols(request)))


# ------------------------------------------------------------------------------------ app


def build_app(services: VenueServices) -> web.Application:
    """The venue's aiohttp application: REST, websockets and ``/sim/``."""
    app = web.Application(middlewares=[alpaca_middleware])
    app[SERVICES] = services
    r = app.router
    r.add_post("/v2/orders", submit_order)
    r.add_get("/v2/orders", list_orders)
    r.add_delete("/v2/orders", cancel_all_orders)
    r.add_get("/v2/orders:by_client_order_id", get_order_by_client_id)
    r.add_get("/v2/orders/{order_id}", get_order)
    r.add_patch("/v2/orders/{order_id}", replace_order)
    r.add_delete("/v2/orders/{order_id}", cancel_order)
    r.add_get("/v2/account", account)
    r.add_get("/v2/account/activities", activities)
    r.add_get("/v2/account/activities/{activity_type}", activities)
    r.add_get("/v2/account/portfolio/history", portfolio_history)
    r.add_get("/v2/positions", positions)
    r.add_delete("/v2/positions", close_all_positions)
    r.add_get("/v2/positions/{symbol}", position)
    r.add_delete("/v2/positions/{symbol}", close_position)
    r.add_get("/v2/clock", clock)
    r.add_get("/v3/clock", clock_v3)
    r.add_get("/v2/calendar", calendar)
    r.add_get("/v2/assets", assets)
    r.add_get("/v2/assets/{symbol}", asset)
    r.add_get("/v2/stocks/quotes/latest", latest_quotes)
    r.add_get("/v2/stocks/trades/latest", latest_trades)
    r.add_get("/v2/stocks/bars/latest", latest_bars)
    r.add_get("/v2/stocks/bars", bars)
    r.add_get("/v2/stocks/snapshots", snapshots)
    r.add_get("/v2/stocks/quotes", _ticks_handler("q", "quotes"))
    r.add_get("/v2/stocks/trades", _ticks_handler("t", "trades"))
    r.add_get("/v2/stocks/{symbol}/quotes/latest", latest_quote)
    r.add_get("/v2/stocks/{symbol}/trades/latest", latest_trade)
    r.add_get("/stream", services.hub.trading_handler)
    for feed in DATA_FEEDS:
        r.add_get(f"/v2/{feed}", services.hub.data_handler)
    add_admin_routes(app, services)
    return app
