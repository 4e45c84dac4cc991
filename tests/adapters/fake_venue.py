"""A small scripted Alpaca REST fake on a loopback port, for the gateway's shell tests.

It is not the simulated venue (execd/sim): no market, no matching. It keeps orders by id
and client order id with Alpaca's rules that matter to the gateway — client order ids
unique forever (§0.5), PATCH creating a new order that `replaces` the old one (§1.7),
DELETE answering 204 or 422 ``order is already in "filled" state`` (§1.8) — sends the
``X-RateLimit-*`` headers with a fixed window (§0.4), and lets a test queue faults: a
status answered before or after the real handler ran, and/or a delay.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Fault:
    """One scripted misbehaviour for the next matching request."""

    method: str
    path: str
    status: int | None = None
    when: str = "before"
    delay: float = 0.0


@dataclass
class FakeVenue:
    """State and knobs of the fake; `url` is set once serving."""

    key_id: str = "KEY"
    secret_key: str = "SECRET"
    rate_limit: int = 200
    window: float = 60.0
    url: str = ""
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_cid: dict[str, str] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    posted_bodies: list[dict[str, Any]] = field(default_factory=list)
    _window_start: float = 0.0
    _used: int = 0

    def fail(self, method: str, path: str, status: int | None = None, **kw: Any) -> None:
        """Queue a fault for the next request with this method and path prefix."""
        self.faults.append(Fault(method, path, status, **kw))

    def count(self, method: str, path: str) -> int:
        """How many requests with this method and path the fake received."""
        return sum(1 for m, p in self.requests if m == method and p == path)

    # -- helpers ---------------------------------------------------------------

    def _order(self, body: dict[str, Any], replaces: str | None = None) -> dict[str, Any]:
        now = "2026-03-04T15:00:01.123456789Z"
        oid = str(uuid.uuid4())
        qty = body.get("qty")
        order = {
            "id": oid,
            "client_order_id": body.get("client_order_id") or str(uuid.uuid4()),
            "created_at": now,
            "updated_at": now,
            "submitted_at": now,
            "filled_at": None,
            "expired_at": None,
            "canceled_at": None,
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": replaces,
            "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
            "symbol": body.get("symbol", "AAPL"),
            "asset_class": "us_equity",
            "notional": None if qty is not None else body.get("notional"),
            "qty": None if qty is None else str(qty),
            "filled_qty": "0",
            "filled_avg_price": None,
            "order_class": "",
            "order_type": body.get("type", "limit"),
            "type": body.get("type", "limit"),
            "side": body.get("side", "buy"),
            "time_in_force": body.get("time_in_force", "day"),
            "limit_price": None if body.get("limit_price") is None else str(body["limit_price"]),
            "stop_price": None,
            "status": "new",
            "extended_hours": False,
            "legs": None,
        }
        self.orders[oid] = order
        self.by_cid[order["client_order_id"]] = oid
        return order

    # -- handlers --------------------------------------------------------------

    async def post_order(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.posted_bodies.append(body)
        if body.get("client_order_id") in self.by_cid:
            return _err(422, 40010001, "client_order_id must be unique")
        return web.json_response(self._order(body))

    async def get_by_cid(self, request: web.Request) -> web.StreamResponse:
        cid = request.query["client_order_id"]
        if cid not in self.by_cid:
            return _err(404, 40410000, f"order not found for {cid}")
        return web.json_response(self.orders[self.by_cid[cid]])

    async def get_order(self, request: web.Request) -> web.StreamResponse:
        order = self.orders.get(request.match_info["id"])
        if order is None:
            return _err(404, 40410000, "order not found")
        return web.json_response(order)

    async def list_orders(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(list(self.orders.values()))

    async def patch_order(self, request: web.Request) -> web.StreamResponse:
        old = self.orders.get(request.match_info["id"])
        if old is None:
            return _err(404, 40410000, "order not found")
        if old["status"] != "new":
            return _err(422, 42210000, "unable to replace order")
        body = await request.json()
        if body.get("client_order_id") in self.by_cid:
            return _err(422, 40010001, "client_order_id must be unique")
        merged = {**old, **body, "qty": body.get("qty", old["qty"])}
        new = self._order(merged, replaces=old["id"])
        old["status"] = "replaced"
        old["replaced_by"] = new["id"]
        return web.json_response(new)

    async def delete_order(self, request: web.Request) -> web.StreamResponse:
        order = self.orders.get(request.match_info["id"])
        if order is None:
            return _err(404, 40410000, "order not found")
        if order["status"] in {"filled", "canceled", "replaced", "expired"}:
            return _err(422, 42210000, f'order is already in "{order["status"]}" state')
        order["status"] = "pending_cancel"
        return web.Response(status=204)

    async def account(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "id": "2d6a3a7e-7a43-4b5a-9e0b-4f7f6b7f2c11",
                "account_number": "PA0000001",
                "status": "ACTIVE",
                "cash": "100000",
                "buying_power": "100000",
                "currency": "USD",
            }
        )

    async def position(self, request: web.Request) -> web.StreamResponse:
        return _err(404, 40410000, "position does not exist")

    async def positions(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            [
                {
                    "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
                    "symbol": "AAPL",
                    "exchange": "NASDAQ",
                    "asset_class": "us_equity",
                    "avg_entry_price": "150.25",
                    "qty": "7.2273576",
                    "qty_available": "7.2273576",
                    "side": "long",
                    "cost_basis": "1085.91",
                }
            ]
        )

    async def clock(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "timestamp": "2026-03-04T10:00:00.123-05:00",
                "is_open": True,
                "next_open": "2026-03-05T09:30:00-05:00",
                "next_close": "2026-03-04T16:00:00-05:00",
            }
        )

    async def calendar(self, request: web.Request) -> web.StreamResponse:
        assert request.query["start"] == "2026-11-27"
        return web.json_response(
            [
                {"date": "2026-11-27", "open": "09:30", "close": "13:00",
                 "session_open": "0400", "session_close": "1700",
                 "settlement_date": "2026-11-30"},
            ]
        )  # fmt: skip

    async def asset(self, request: web.Request) -> web.StreamResponse:
        symbol = request.match_info["symbol"]
        if symbol == "ZZZZ":
            return _err(404, 40410000, "asset not found")
        return web.json_response(
            {
                "id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
                "class": "us_equity",
                "exchange": "NASDAQ",
                "symbol": symbol,
                "name": "Apple Inc.",
                "status": "active",
                "tradable": True,
                "marginable": True,
                "shortable": True,
                "easy_to_borrow": True,
                "fractionable": True,
            }
        )

    async def latest_quotes(self, request: web.Request) -> web.StreamResponse:
        symbol = request.query["symbols"]
        assert request.query["feed"] == "iex"
        return web.Response(
            # Written by hand: JSON numbers, as the data API sends them (§5).
            body='{"quotes":{"' + symbol + '":{"t":"2026-03-04T15:00:00.123456789Z","bx":"V",'
            '"bp":150.01,"bs":3,"ax":"V","ap":150.03,"as":5,"c":["R"],"z":"C"}}}',
            content_type="application/json",
        )

    # -- middleware ------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if (
            request.headers.get("APCA-API-KEY-ID") != self.key_id
            or request.headers.get("APCA-API-SECRET-KEY") != self.secret_key
        ):
            return web.json_response({"message": "unauthorized."}, status=401)
        now = time.monotonic()
        if now - self._window_start >= self.window:
            self._window_start, self._used = now, 0
        reset = int(time.time() + (self._window_start + self.window - now)) + 1
        if self._used >= self.rate_limit:
            response: web.StreamResponse = _err(429, 42910000, "rate limit exceeded")
        else:
            self._used += 1
            response = await self._faulted(request, handler)
        response.headers["X-RateLimit-Limit"] = str(self.rate_limit)
        response.headers["X-RateLimit-Remaining"] = str(max(0, self.rate_limit - self._used))
        response.headers["X-RateLimit-Reset"] = str(reset)
        return response

    async def _faulted(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        for index, fault in enumerate(self.faults):
            if fault.method == request.method and request.path.startswith(fault.path):
                del self.faults[index]
                break
        else:
            return await handler(request)
        # Read the body first: the handler must still run after the client gave up.
        await request.read()
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is None:
            return await handler(request)
        if fault.when == "after":
            await handler(request)
        if fault.status >= 502:
            return web.Response(status=fault.status, text="<html>504 Gateway Time-out</html>")
        return _err(fault.status, fault.status * 100000, "internal server error")


def _err(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)


@asynccontextmanager
async def serve(fake: FakeVenue) -> AsyncIterator[FakeVenue]:
    """Run `fake` on 127.0.0.1 (ephemeral port) for the duration of the block."""
    app = web.Application(middlewares=[fake.middleware])
    app.router.add_post("/v2/orders", fake.post_order)
    app.router.add_get("/v2/orders", fake.list_orders)
    app.router.add_get("/v2/orders:by_client_order_id", fake.get_by_cid)
    app.router.add_get("/v2/orders/{id}", fake.get_order)
    app.router.add_patch("/v2/orders/{id}", fake.patch_order)
    app.router.add_delete("/v2/orders/{id}", fake.delete_order)
    app.router.add_get("/v2/account", fake.account)
    app.router.add_get("/v2/positions", fake.positions)
    app.router.add_get("/v2/positions/{symbol}", fake.position)
    app.router.add_get("/v2/clock", fake.clock)
    app.router.add_get("/v2/calendar", fake.calendar)
    app.router.add_get("/v2/assets/{symbol}", fake.asset)
    app.router.add_get("/v2/stocks/quotes/latest", fake.latest_quotes)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()
