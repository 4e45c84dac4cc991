"""The venue's fault and inspection API under ``/sim/`` — **not part of Alpaca's API**.

Tests and demos use it (over HTTP, or through :class:`execd.sim.venue.SimVenue`'s async helpers,
which call the same functions) to make the venue misbehave the ways Alpaca does (ALPACA.md §9).
It needs no authentication (the venue listens on loopback only) and always answers JSON.
Bodies are JSON objects; bad input gets ``400 {"message": ...}``.

==========================  =====================================================================
``GET  /sim``               ``{"venue_time", "streams": {"trading"|"data": {"connections",
                            "ready", "muted", "refusing", "backlog"}}, "rate_limit": {"limit",
                            "window_seconds"}, "http_faults": [...], "halted": [...]}``
``GET  /sim/history``       every order (incl. replaced) with its events and every fill
                            (``Exchange.history()``)
``POST /sim/streams/drop``  ``{"stream": "trading"|"data"|"all" = "all", "abort": false}`` — close
                            the connections (``abort``: kill TCP without a close frame, the client
                            sees 1006) → ``{"dropped": n}``
``POST /sim/streams/mute``  ``{"stream": "trading"|"data"|"all", "seconds": s}`` — sockets stay
                            open but deliver nothing for ``s`` seconds (the "silent socket" of
                            §9) → ``{"muted": [...]}``
``POST /sim/streams/refuse`` ``{"stream": "trading"|"data"|"all", "seconds": s, "status": 429}`` —
                            new connections are answered HTTP ``status`` (429 or 406, as Alpaca
                            does until it reaps a dead session, §9) for ``s`` seconds; open
                            ones stay → ``{"refused": [...]}``
``POST /sim/quotes/silence`` ``{"symbol": "TQQQ", "seconds": 30}`` — no quotes for the symbol
                            (``seconds`` null: until silenced again with 0)
``POST /sim/halt``          ``{"symbol": "TQQQ", "seconds": 60}`` — halt trading in the symbol
                            (``seconds`` null/absent: until ``/sim/resume``): ``statuses`` sends
                            ``sc`` ``H``; no quotes, prints or matching until it resumes (orders
                            are accepted and wait) → ``{"halted": [...], "symbol", "seconds"}``
``POST /sim/resume``        ``{"symbol": "TQQQ"}`` — resume trading (``statuses`` ``sc`` ``T``;
                            the next quote re-opens matching) → ``{"halted": [...]}``
``POST /sim/orders/reject`` ``{"count": 1, "status": 403, "message": "...", "code": 40310000}`` —
                            the next ``count`` order submissions fail with this HTTP error
``POST /sim/replaces/reject`` ``{"count": 1}`` — the next ``count`` replacements are rejected
                            when they reach the exchange: the PATCH answered 200, then
                            ``order_replace_rejected`` (old order goes on) and ``rejected``
``POST /sim/http/faults``   ``{"count": 1, "status": 504, "delay": 0, "method": "POST",
                            "path": "/v2/orders", "when": "before", "body": null}`` — the next
                            ``count`` matching REST calls (``method``/``path`` optional filters,
                            ``path`` is a prefix) are delayed by ``delay`` seconds and/or answered
                            with ``status``. ``when: "after"`` runs the real request first and
                            then answers the error (a 504 whose order was nevertheless placed)
                            and/or holds the answer ``delay`` seconds.
                            Default bodies: 500 → ``{"code":50010000,"message":"internal server
                            error"}``; 502/503/504 → an nginx-style HTML page, as a gateway
                            produces; ``body`` overrides. Faults queue in order given.
                            Every answer carries the real limiter's ``X-RateLimit-*`` headers
                            (as Alpaca's do); ``"rate_limit_remaining": 0`` overrides the
                            Remaining one (a 429 of an exhausted window vs a spurious one).
``DELETE /sim/http/faults`` drop every pending HTTP fault
``POST /sim/ratelimit``     ``{"limit": 10, "window_seconds": 60, "reset": true}`` — change the
                            trading budget (``reset`` starts a fresh window for every key)
``POST /sim/fills/delay``   ``{"seconds": 2.5}`` — fill-report latency for subsequent matches
``POST /sim/fills/price_lag`` ``{"seconds": 30}`` — after each later fill the order's
                            ``filled_avg_price`` reads ``null`` for ``seconds`` (REST and
                            stream; the fill event's own ``price`` is unaffected): an order
                            reported filled before its price exists (LESSONS); ``0`` also
                            shows every price hidden so far
``POST /sim/account/override`` ``{"fields": {"cash": "NaN"}, "count": null}`` — the next
                            ``count`` ``GET /v2/account`` answers (null: every one until
                            cleared with ``"fields": {}``) show these string values instead
                            of the venue's own (a broken account read: ``"NaN"``,
                            ``"Infinity"``, ``""``); the account itself is unchanged
``POST /sim/orders/status``  ``{"order_id": "...", "status": "done_for_day"}`` —
                            ``GET /v2/orders/{order_id}`` shows that status for this one
                            order (``status`` null: its real one again), for statuses the
                            matching engine never produces; the order itself is unchanged
==========================  =====================================================================
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from execd.sim.streams import StreamKind

if TYPE_CHECKING:
    from execd.sim.server import VenueServices

__all__ = [
    "AdminError",
    "AnswerOverrides",
    "FaultQueue",
    "HttpFault",
    "add_admin_routes",
    "fault_response",
]

ADMIN_PREFIX = "/sim"
# Durations and delays beyond this (about 11 days) are mistakes, not tests.
_MAX_NUMBER = 1e6


class AdminError(ValueError):
    """Bad input to the admin API (answered 400)."""


@dataclass(frozen=True, slots=True)
class HttpFault:
    """One injected REST misbehaviour: a delay, an error status, or both."""

    status: int | None = None
    delay: float = 0.0
    method: str | None = None
    path: str | None = None
    when: Literal["before", "after"] = "before"
    body: str | None = None
    rate_limit_remaining: int | None = None
    """When set, the answer's ``X-RateLimit-Remaining`` (else the limiter's own)."""

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to a request (method exact, path by prefix)."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or path.startswith(self.path)


class FaultQueue:
    """Pending HTTP faults, each good for a number of matching requests; pure bookkeeping."""

    def __init__(self) -> None:
        self._pending: list[list[Any]] = []  # [fault, remaining]

    def add(self, fault: HttpFault, count: int = 1) -> None:
        """Queue ``fault`` for the next ``count`` matching requests."""
        if count < 1:
            raise AdminError("count must be >= 1")
        self._pending.append([fault, count])

    def take(self, method: str, path: str) -> HttpFault | None:
        """The first pending fault matching the request, consuming one use of it."""
        for entry in self._pending:
            fault: HttpFault = entry[0]
            if fault.matches(method, path):
                entry[1] -= 1
                if entry[1] == 0:
                    self._pending.remove(entry)
                return fault
        return None

    def clear(self) -> int:
        """Drop every pending fault; return how many entries there were."""
        count = len(self._pending)
        self._pending.clear()
        return count

    def pending(self) -> list[dict[str, Any]]:
        """The queue, for ``GET /sim``."""
        return [{**asdict(fault), "remaining": left} for fault, left in self._pending]


class AnswerOverrides:
    """Fields rewritten in the venue's REST answers: a fault injected over ``/sim/``, never
    a venue state. The exchange keeps its real account and orders; only what a client
    reads changes (a broken account figure, a status the matching engine never sets)."""

    def __init__(self) -> None:
        self._account: dict[str, str] = {}
        self._account_left: int | None = None
        self._statuses: dict[str, str] = {}

    def set_account(self, fields: dict[str, str], count: int | None) -> None:
        """Show `fields` in the next `count` account answers (None: until cleared)."""
        self._account, self._account_left = dict(fields), count

    def set_status(self, order_id: str, status: str | None) -> None:
        """Show `status` for `order_id` (None: its real status again)."""
        if status is None:
            self._statuses.pop(order_id, None)
        else:
            self._statuses[order_id] = status

    def account(self, answer: dict[str, Any]) -> dict[str, Any]:
        """`answer` (an account's JSON) with the pending field overrides applied."""
        if not self._account:
            return answer
        answer = {**answer, **self._account}
        if self._account_left is not None:
            self._account_left -= 1
            if self._account_left <= 0:
                self._account, self._account_left = {}, None
        return answer

    def order(self, answer: dict[str, Any]) -> dict[str, Any]:
        """`answer` (an order's JSON) with its status override, if it has one."""
        status = self._statuses.get(str(answer.get("id")))
        return answer if status is None else {**answer, "status": status}


_GATEWAY_REASONS = {
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


def fault_response(fault: HttpFault) -> web.Response:
    """The error response of an injected fault (see the module docstring for default bodies)."""
    status = fault.status or 500
    if fault.body is not None:
        content_type = "application/json" if fault.body.lstrip().startswith("{") else "text/plain"
        return web.Response(status=status, text=fault.body, content_type=content_type)
    if status in _GATEWAY_REASONS:
        reason = _GATEWAY_REASONS[status]
        html = (
            f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
        )
        return web.Response(status=status, text=html, content_type="text/html")
    code = status * 100000 + 10000  # Alpaca's pattern: 404 -> 40410000, 500 -> 50010000
    message = "internal server error" if status == 500 else "error"
    return web.json_response({"code": code, "message": message}, status=status)


# ------------------------------------------------------------------------------ input parsing


def _number(body: dict[str, Any], key: str, default: float | None = None) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AdminError(f"{key} must be a number")
    if not math.isfinite(value) or value < 0 or value > _MAX_NUMBER:
        raise AdminError(f"{key} must be a finite number between 0 and {_MAX_NUMBER:g}")
    return float(value)


def _integer(body: dict[str, Any], key: str, default: int | None = None) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise AdminError(f"{key} must be an integer")
    return value


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise AdminError(f"{key} must be a string")
    return value


def stream_kinds(value: object) -> list[StreamKind]:
    """``"trading"``, ``"data"`` or ``"all"`` → the stream kinds it names."""
    if value in (None, "all"):
        return list(StreamKind)
    try:
        return [StreamKind(str(value))]
    except ValueError as exc:
        raise AdminError("stream must be 'trading', 'data' or 'all'") from exc


def parse_http_fault(body: dict[str, Any]) -> tuple[HttpFault, int]:
    """Validate a ``POST /sim/http/faults`` body."""
    count = _integer(body, "count", 1)
    status = body.get("status")
    if status is not None and (
        isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599
    ):
        raise AdminError("status must be an HTTP error status (400-599)")
    delay = _number(body, "delay", 0.0)
    if status is None and delay == 0:
        raise AdminError("a fault needs a status, a delay, or both")
    when = body.get("when", "before")
    if when not in ("before", "after"):
        raise AdminError("when must be 'before' or 'after'")
    fault = HttpFault(
        status=status,
        delay=delay,
        method=_optional_str(body, "method"),
        path=_optional_str(body, "path"),
        when=when,
        body=_optional_str(body, "body"),
        rate_limit_remaining=_optional_count(body, "rate_limit_remaining"),
    )
    return fault, count


def _optional_count(body: dict[str, Any], key: str) -> int | None:
    if body.get(key) is None:
        return None
    value = _integer(body, key)
    if value < 0:
        raise AdminError(f"{key} must be >= 0")
    return value


# ---------------------------------------------------------------------------------- routes


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise AdminError("body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise AdminError("body must be a JSON object")
    return body


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _admin(handler: Callable[[dict[str, Any]], Awaitable[Any]]) -> Handler:
    """Wrap an admin action: parse the body, map AdminError to 400, answer JSON."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            result = await handler(await _json_body(request))
        except AdminError as exc:
            return web.json_response({"message": str(exc)}, status=400)
        return web.json_response(result)

    return wrapped


def add_admin_routes(app: web.Application, services: VenueServices) -> None:
    """Register the ``/sim/`` routes (module docstring) on ``app``."""
    exchange = services.exchange
    hub = services.hub

    async def info(_: dict[str, Any]) -> Any:
        return {
            "venue_time": services.clock.now().isoformat(),
            "streams": hub.statistics(),
            "rate_limit": {
                "limit": services.trading_limiter.limit,
                "window_seconds": services.trading_limiter.window_seconds,
            },
            "http_faults": services.faults.pending(),
            "halted": list(exchange.halted()),
        }

    async def history(_: dict[str, Any]) -> Any:
        return exchange.history()

    async def drop(body: dict[str, Any]) -> Any:
        kinds = stream_kinds(body.get("stream"))
        abort = body.get("abort", False)
        if not isinstance(abort, bool):
            raise AdminError("abort must be a boolean")
        dropped = 0
        for kind in kinds:
            dropped += await hub.drop(kind, abort=abort)
        return {"dropped": dropped}

    async def mute(body: dict[str, Any]) -> Any:
        kinds = stream_kinds(body.get("stream"))
        seconds = _number(body, "seconds")
        for kind in kinds:
            hub.mute(kind, seconds)
        return {"muted": [k.value for k in kinds], "seconds": seconds}

    async def refuse(body: dict[str, Any]) -> Any:
        kinds = stream_kinds(body.get("stream"))
        seconds = _number(body, "seconds")
        status = _integer(body, "status", 429)
        if not 400 <= status <= 599:
            raise AdminError("status must be an HTTP error status (400-599)")
        for kind in kinds:
            hub.refuse(kind, seconds, status)
        return {"refused": [k.value for k in kinds], "seconds": seconds, "status": status}

    async def silence(body: dict[str, Any]) -> Any:
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise AdminError("symbol must be a non-empty string")
        seconds = None if body.get("seconds") is None else _number(body, "seconds")
        exchange.silence_quotes(symbol, seconds)
        return {"symbol": symbol, "seconds": seconds}

    def _symbol(body: dict[str, Any]) -> str:
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise AdminError("symbol must be a non-empty string")
        if symbol not in exchange.symbols():
            raise AdminError(f"unknown symbol {symbol}")
        return symbol

    async def halt(body: dict[str, Any]) -> Any:
        symbol = _symbol(body)
        seconds = None if body.get("seconds") is None else _number(body, "seconds")
        exchange.halt(symbol, seconds)
        return {"halted": list(exchange.halted()), "symbol": symbol, "seconds": seconds}

    async def resume(body: dict[str, Any]) -> Any:
        exchange.resume(_symbol(body))
        return {"halted": list(exchange.halted())}

    async def reject(body: dict[str, Any]) -> Any:
        count = _integer(body, "count", 1)
        status = _integer(body, "status", 403)
        message = body.get("message", "rejected by the simulator")
        code = body.get("code")
        if count < 1:
            raise AdminError("count must be >= 1")
        if not 400 <= status <= 599:
            raise AdminError("status must be an HTTP error status (400-599)")
        if not isinstance(message, str):
            raise AdminError("message must be a string")
        if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
            raise AdminError("code must be an integer")
        exchange.reject_next_orders(count, status, message, code)
        return {"count": count, "status": status, "message": message, "code": code}

    async def reject_replaces(body: dict[str, Any]) -> Any:
        count = _integer(body, "count", 1)
        if count < 1:
            raise AdminError("count must be >= 1")
        exchange.reject_next_replaces(count)
        return {"count": count}

    async def add_fault(body: dict[str, Any]) -> Any:
        fault, count = parse_http_fault(body)
        services.faults.add(fault, count)
        return {"http_faults": services.faults.pending()}

    async def clear_faults(_: dict[str, Any]) -> Any:
        return {"cleared": services.faults.clear()}

    async def ratelimit(body: dict[str, Any]) -> Any:
        limit = _integer(body, "limit")
        window = None if body.get("window_seconds") is None else _number(body, "window_seconds")
        try:
            services.trading_limiter.configure(limit, window)
        except ValueError as exc:
            raise AdminError(str(exc)) from exc
        if body.get("reset", True):
            services.trading_limiter.reset()
        return {
            "limit": services.trading_limiter.limit,
            "window_seconds": services.trading_limiter.window_seconds,
        }

    async def fill_delay(body: dict[str, Any]) -> Any:
        seconds = _number(body, "seconds")
        exchange.set_fill_delay(seconds)
        return {"seconds": seconds}

    async def price_lag(body: dict[str, Any]) -> Any:
        seconds = _number(body, "seconds")
        exchange.set_avg_price_lag(seconds)
        return {"seconds": seconds}

    async def override_account(body: dict[str, Any]) -> Any:
        fields = body.get("fields")
        if not isinstance(fields, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in fields.items()
        ):
            raise AdminError("fields must be an object of strings")
        count = None if body.get("count") is None else _integer(body, "count")
        if count is not None and count < 1:
            raise AdminError("count must be >= 1")
        services.overrides.set_account(fields, count)
        return {"fields": fields, "count": count}

    async def override_status(body: dict[str, Any]) -> Any:
        order_id = body.get("order_id")
        if not isinstance(order_id, str) or not order_id:
            raise AdminError("order_id must be a non-empty string")
        status = _optional_str(body, "status")
        services.overrides.set_status(order_id, status)
        return {"order_id": order_id, "status": status}

    p = ADMIN_PREFIX
    app.router.add_get(p, _admin(info))
    app.router.add_get(f"{p}/", _admin(info))
    app.router.add_get(f"{p}/history", _admin(history))
    app.router.add_post(f"{p}/streams/drop", _admin(drop))
    app.router.add_post(f"{p}/streams/mute", _admin(mute))
    app.router.add_post(f"{p}/streams/refuse", _admin(refuse))
    app.router.add_post(f"{p}/quotes/silence", _admin(silence))
    app.router.add_post(f"{p}/orders/reject", _admin(reject))
    app.router.add_post(f"{p}/replaces/reject", _admin(reject_replaces))
    app.router.add_post(f"{p}/halt", _admin(halt))
    app.router.add_post(f"{p}/resume", _admin(resume))
    app.router.add_post(f"{p}/http/faults", _admin(add_fault))
    app.router.add_delete(f"{p}/http/faults", _admin(clear_faults))
    app.router.add_post(f"{p}/ratelimit", _admin(ratelimit))
    app.router.add_post(f"{p}/fills/delay", _admin(fill_delay))
    app.router.add_post(f"{p}/fills/price_lag", _admin(price_lag))
    app.router.add_post(f"{p}/account/override", _admin(override_account))
    app.router.add_post(f"{p}/orders/status", _admin(override_status))


async def sleep_for_fault(fault: HttpFault) -> None:
    """Apply a fault's delay (the one sanctioned sleep: the fault *is* a delay)."""
    if fault.delay > 0:
        await asyncio.sleep(fault.delay)
