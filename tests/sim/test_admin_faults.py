"""Every ``/sim/`` fault, driven over HTTP against a running venue (not Alpaca's API)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from execd.sim.venue import SimVenue
from tests.sim.conftest import DEADLINE, first_quote, wait_until, within

ORDER = {"symbol": "SPY", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp client."""
    async with aiohttp.ClientSession() as session:
        yield session


def keys(venue: SimVenue) -> dict[str, str]:
    """Alpaca auth headers for the venue."""
    return {"APCA-API-KEY-ID": venue.key_id, "APCA-API-SECRET-KEY": venue.secret_key}


async def admin(
    http: aiohttp.ClientSession, venue: SimVenue, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    """Call the admin API; returns (status, JSON body)."""
    async with http.request(method, venue.admin_url + path, json=body) as resp:
        return resp.status, await resp.json()


async def trading(
    http: aiohttp.ClientSession, venue: SimVenue, method: str, path: str, body: Any = None
) -> tuple[int, str, str]:
    """Call the trading API; returns (status, content type, raw text)."""
    url = venue.trading_url + path
    async with http.request(method, url, json=body, headers=keys(venue)) as resp:
        return resp.status, resp.content_type, await resp.text()


async def orders_in_history(venue: SimVenue) -> int:
    """How many orders the venue has ever seen."""
    return len((await venue.history())["orders"])


async def test_info_and_history(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """``GET /sim`` reports streams and limits; ``GET /sim/history`` lists orders and fills."""
    status, info = await admin(http, venue, "GET", "")
    assert status == 200
    assert info["streams"]["trading"]["connections"] == 0
    assert info["rate_limit"] == {"limit": 200, "window_seconds": 60.0}
    await trading(http, venue, "POST", "/v2/orders", ORDER)
    status, history = await admin(http, venue, "GET", "/history")
    assert status == 200
    assert len(history["orders"]) == 1
    assert "fills" in history


async def test_http_fault_before_skips_the_request(
    venue: SimVenue, http: aiohttp.ClientSession
) -> None:
    """A 500 fault answers Alpaca's internal-error body and the order is never placed."""
    status, _ = await admin(
        http, venue, "POST", "/http/faults", {"status": 500, "method": "POST", "path": "/v2/orders"}
    )
    assert status == 200
    assert (await trading(http, venue, "GET", "/v2/clock"))[0] == 200  # not matched
    status, ctype, text = await trading(http, venue, "POST", "/v2/orders", ORDER)
    assert (status, ctype) == (500, "application/json")
    assert json.loads(text) == {"code": 50010000, "message": "internal server error"}
    assert await orders_in_history(venue) == 0
    status, _, _ = await trading(http, venue, "POST", "/v2/orders", ORDER)  # fault used up
    assert status == 200


async def test_http_504_after_places_the_order(
    venue: SimVenue, http: aiohttp.ClientSession
) -> None:
    """``when: after`` runs the request and then answers a gateway 504 (HTML), like a timeout."""
    await admin(http, venue, "POST", "/http/faults", {"status": 504, "when": "after", "count": 1})
    status, ctype, text = await trading(http, venue, "POST", "/v2/orders", ORDER)
    assert (status, ctype) == (504, "text/html")
    assert "504 Gateway Time-out" in text
    assert await orders_in_history(venue) == 1


async def test_http_delay_fault(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """A delay fault holds the answer for at least the delay, then answers normally."""
    await venue.fail_next_requests(delay=0.3, path="/v2/account")
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, _, _ = await trading(http, venue, "GET", "/v2/account")
    assert status == 200
    assert loop.time() - started >= 0.3


async def test_delay_when_after_holds_the_answer_of_a_request_already_performed(
    venue: SimVenue, http: aiohttp.ClientSession
) -> None:
    """``when: after`` with a delay: the venue acts at once and only the answer is late
    (a crash between send and acknowledgement), never the other way round."""
    await venue.fail_next_requests(delay=5.0, method="POST", path="/v2/orders", when="after")
    request = asyncio.ensure_future(trading(http, venue, "POST", "/v2/orders", ORDER))

    def placed() -> bool:
        return len(venue.exchange.history()["orders"]) == 1

    try:
        await wait_until(placed, "the order placed while its answer is held", limit=2.0)
        assert not request.done(), "the answer was not held"
    finally:
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)


async def test_clear_faults(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """``DELETE /sim/http/faults`` drops pending faults."""
    await admin(http, venue, "POST", "/http/faults", {"status": 503, "count": 5})
    assert await admin(http, venue, "DELETE", "/http/faults") == (200, {"cleared": 1})
    status, _, _ = await trading(http, venue, "GET", "/v2/clock")
    assert status == 200


async def test_reject_next_orders(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """The next N submissions fail with the configured status and body."""
    body = {"count": 2, "status": 403, "message": "insufficient buying power", "code": 40310000}
    assert (await admin(http, venue, "POST", "/orders/reject", body))[0] == 200
    for _ in range(2):
        status, _, text = await trading(http, venue, "POST", "/v2/orders", ORDER)
        assert status == 403
        assert json.loads(text) == {"code": 40310000, "message": "insufficient buying power"}
    status, _, _ = await trading(http, venue, "POST", "/v2/orders", ORDER)
    assert status == 200


async def test_reject_next_replaces(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """The next replacement is answered 200, then rejected by the exchange: the old order
    gets `order_replace_rejected` and goes on working, the new one ends `rejected`."""
    assert await admin(http, venue, "POST", "/replaces/reject", {"count": 1}) == (
        200,
        {"count": 1},
    )
    resting = {**ORDER, "type": "limit", "limit_price": "1.00"}
    status, _, placed = await trading(http, venue, "POST", "/v2/orders", resting)
    assert status == 200, placed
    old = json.loads(placed)["id"]

    async def status_of(order_id: str) -> str:
        answer = await trading(http, venue, "GET", f"/v2/orders/{order_id}")
        return str(json.loads(answer[2])["status"])

    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while await status_of(old) != "new":
        assert loop.time() < deadline, "the order never reached the book"
        await asyncio.sleep(0.01)
    status, _, patched = await trading(http, venue, "PATCH", f"/v2/orders/{old}", {"qty": 1})
    assert status == 200, patched
    new = json.loads(patched)["id"]
    while await status_of(new) != "rejected":
        assert loop.time() < deadline, "the replacement was never rejected"
        await asyncio.sleep(0.01)
    assert await status_of(old) == "new"


async def test_tighten_rate_limit(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """``POST /sim/ratelimit`` changes the trading budget; the next request past it is 429."""
    assert await admin(http, venue, "POST", "/ratelimit", {"limit": 1}) == (
        200,
        {"limit": 1, "window_seconds": 60.0},
    )
    assert (await trading(http, venue, "GET", "/v2/clock"))[0] == 200
    assert (await trading(http, venue, "GET", "/v2/clock"))[0] == 429


async def test_fill_delay(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """``POST /sim/fills/delay`` postpones fill reports by the given venue seconds."""
    await first_quote(venue, "SPY")
    assert await admin(http, venue, "POST", "/fills/delay", {"seconds": 0.4}) == (
        200,
        {"seconds": 0.4},
    )
    events: list[tuple[str, float]] = []
    loop = asyncio.get_running_loop()
    unsubscribe = venue.exchange.on_trade_update(lambda u: events.append((u["event"], loop.time())))
    try:
        _, _, text = await trading(http, venue, "POST", "/v2/orders", ORDER)
        order_id = json.loads(text)["id"]
        started = loop.time()
        await wait_until(lambda: any(e == "fill" for e, _ in events), "the delayed fill")
        fill_at = next(t for e, t in events if e == "fill")
        assert fill_at - started >= 0.35
        _, _, text = await trading(http, venue, "GET", f"/v2/orders/{order_id}")
        assert json.loads(text)["status"] == "filled"
    finally:
        unsubscribe()


async def test_silence_quotes(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """A silenced symbol publishes no quotes while others keep quoting."""
    await first_quote(venue, "TQQQ")
    body = {"symbol": "TQQQ", "seconds": 60}
    assert (await admin(http, venue, "POST", "/quotes/silence", body))[0] == 200
    seen: list[str] = []
    unsubscribe = venue.exchange.on_market_data(
        lambda m: seen.append(m["S"]) if m["T"] == "q" else None
    )
    try:
        await wait_until(lambda: seen.count("SPY") >= 3, "SPY quotes")
    finally:
        unsubscribe()
    assert "TQQQ" not in seen


async def test_drop_streams(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """``POST /sim/streams/drop`` closes trading and data sockets (normal close or abort)."""
    async with (
        http.ws_connect(venue.trading_stream_url) as trade_ws,
        http.ws_connect(venue.data_stream_url) as data_ws,
    ):
        await within(venue.wait_streams(trading=1, data=1, ready=False))
        assert await admin(http, venue, "POST", "/streams/drop", {"stream": "trading"}) == (
            200,
            {"dropped": 1},
        )
        closed = await trade_ws.receive(timeout=DEADLINE)
        assert closed.type is aiohttp.WSMsgType.CLOSE
        assert closed.data == 1001
        await admin(http, venue, "POST", "/streams/drop", {"stream": "data", "abort": True})
        while True:  # `connected` may still be in flight before the abort
            msg = await data_ws.receive(timeout=DEADLINE)
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                break
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        await within(venue.wait_streams(trading=0, data=0, ready=False))


async def test_mute_streams(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """A muted data stream stays open but delivers nothing until the mute ends."""
    async with http.ws_connect(venue.data_stream_url) as ws:
        await ws.receive_json(timeout=DEADLINE)
        auth = {"action": "auth", "key": venue.key_id, "secret": venue.secret_key}
        await ws.send_json(auth)
        await ws.receive_json(timeout=DEADLINE)
        status, _ = await admin(
            http, venue, "POST", "/streams/mute", {"stream": "data", "seconds": 0.5}
        )
        assert status == 200
        loop = asyncio.get_running_loop()
        muted_at = loop.time()
        await ws.send_json({"action": "subscribe", "quotes": ["SPY"]})
        assert (await ws.receive_json(timeout=DEADLINE))[0]["T"] == "subscription"
        first = await ws.receive_json(timeout=DEADLINE)
        assert first[0]["T"] == "q"
        assert loop.time() - muted_at >= 0.45


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/streams/drop", {"stream": "carrier-pigeon"}),
        ("/quotes/silence", {"symbol": ""}),
        ("/orders/reject", {"count": 0}),
        ("/orders/reject", {"status": 200}),
        ("/replaces/reject", {"count": 0}),
        ("/http/faults", {}),
        ("/ratelimit", {"limit": -1}),
        ("/fills/delay", {"seconds": "soon"}),
        ("/fills/price_lag", {"seconds": -1}),
        ("/fills/price_lag", {"seconds": float("nan")}),
        ("/fills/price_lag", {}),
    ],
)
async def test_admin_rejects_bad_input(
    venue: SimVenue, http: aiohttp.ClientSession, path: str, body: dict[str, Any]
) -> None:
    """Nonsense admin bodies are 400 with a message, and change nothing."""
    status, answer = await admin(http, venue, "POST", path, body)
    assert status == 400
    assert answer["message"]


async def test_injected_429_carries_realistic_rate_limit_headers(
    venue: SimVenue, http: aiohttp.ClientSession
) -> None:
    """An injected 429 carries the limiter's X-RateLimit-* headers (requests still left,
    reset at the window's end: the case that stalled plans, issue 11 §6), and
    ``rate_limit_remaining`` overrides the Remaining one (an exhausted window)."""
    body = {"status": 429, "method": "POST", "path": "/v2/orders"}
    assert (await admin(http, venue, "POST", "/http/faults", body))[0] == 200
    assert (await admin(http, venue, "POST", "/http/faults", {**body, "rate_limit_remaining": 0}))[
        0
    ] == 200
    url = venue.trading_url + "/v2/orders"
    seen = []
    for _ in range(2):
        async with http.post(url, json=ORDER, headers=keys(venue)) as resp:
            seen.append((resp.status, dict(resp.headers)))
    assert [status for status, _ in seen] == [429, 429]
    assert int(seen[0][1]["X-RateLimit-Remaining"]) > 0
    assert seen[1][1]["X-RateLimit-Remaining"] == "0"
    assert all(int(h["X-RateLimit-Reset"]) > 0 for _, h in seen)
    bad = await admin(http, venue, "POST", "/http/faults", {**body, "rate_limit_remaining": -1})
    assert bad[0] == 400


async def test_answer_overrides_rewrite_reads_not_the_venue(
    venue: SimVenue, http: aiohttp.ClientSession
) -> None:
    """``/sim/account/override`` shows broken account figures for ``count`` reads and
    ``/sim/orders/status`` one order's status; the account and the order are unchanged, and
    bad bodies are 400s."""
    status, _ = await admin(http, venue, "POST", "/account/override", {"fields": {"cash": 1}})
    assert status == 400
    status, _ = await admin(
        http, venue, "POST", "/account/override", {"fields": {"cash": "NaN"}, "count": 0}
    )
    assert status == 400
    status, _ = await admin(
        http, venue, "POST", "/account/override", {"fields": {"cash": "NaN"}, "count": 1}
    )
    assert status == 200
    _, _, text = await trading(http, venue, "GET", "/v2/account")
    assert json.loads(text)["cash"] == "NaN"
    _, _, text = await trading(http, venue, "GET", "/v2/account")
    assert json.loads(text)["cash"] != "NaN"  # one read only
    _, _, text = await trading(http, venue, "POST", "/v2/orders", {**ORDER, "type": "limit",
                                                                   "limit_price": "1"})  # fmt: skip
    order_id = json.loads(text)["id"]
    status, _ = await admin(http, venue, "POST", "/orders/status", {"status": "done_for_day"})
    assert status == 400
    body = {"order_id": order_id, "status": "done_for_day"}
    assert (await admin(http, venue, "POST", "/orders/status", body))[0] == 200
    _, _, text = await trading(http, venue, "GET", f"/v2/orders/{order_id}")
    assert json.loads(text)["status"] == "done_for_day"
    body = {"order_id": order_id, "status": None}
    assert (await admin(http, venue, "POST", "/orders/status", body))[0] == 200
    _, _, text = await trading(http, venue, "GET", f"/v2/orders/{order_id}")
    assert json.loads(text)["status"] != "done_for_day"
