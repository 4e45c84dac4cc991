"""The venue's REST face over real loopback HTTP: auth, error bodies, rate limit, query parsing."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from execd.sim.venue import SimVenue
from tests.sim.conftest import first_quote


def auth_headers(venue: SimVenue) -> dict[str, str]:
    """Alpaca's key/secret headers for the venue's account."""
    return {"APCA-API-KEY-ID": venue.key_id, "APCA-API-SECRET-KEY": venue.secret_key}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client (no alpaca-py), to see statuses, headers and bodies exactly."""
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    venue: SimVenue,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, Any, dict[str, str]]:
    """One request; returns (status, decoded JSON body or text or None, headers)."""
    hdrs = auth_headers(venue) if headers is None else headers
    async with http.request(method, venue.trading_url + path, headers=hdrs, **kwargs) as resp:
        text = await resp.text()
        body: Any = None
        if resp.content_type == "application/json":
            body = await resp.json()
        elif text:
            body = text
        return resp.status, body, dict(resp.headers)


async def test_missing_credentials_are_401_unauthorized(
    venue: SimVenue, http: aiohttp.ClientSession
) -> None:
    """No key headers → 401 ``{"message": "unauthorized."}`` with no code (ALPACA.md §0.2)."""
    status, body, _ = await call(http, venue, "GET", "/v2/account", headers={})
    assert (status, body) == (401, {"message": "unauthorized."})


async def test_wrong_secret_is_401(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """A wrong secret is refused the same way, on trading and market-data paths alike."""
    bad = {"APCA-API-KEY-ID": venue.key_id, "APCA-API-SECRET-KEY": "wrong"}
    for path in ("/v2/orders", "/v2/stocks/quotes/latest?symbols=SPY"):
        status, body, _ = await call(http, venue, "GET", path, headers=bad)
        assert (status, body) == (401, {"message": "unauthorized."})


async def test_basic_auth_is_accepted(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """``Authorization: Basic`` works as alpaca-py's ``use_basic_auth`` sends it (§0.2)."""
    token = base64.b64encode(f"{venue.key_id}:{venue.secret_key}".encode()).decode()
    status, body, _ = await call(
        http, venue, "GET", "/v2/account", headers={"Authorization": f"Basic {token}"}
    )
    assert status == 200
    assert body["status"] == "ACTIVE"


async def test_rate_limit_headers_and_429(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """Every trading response carries X-RateLimit-*; beyond the budget: 429 with Alpaca's body."""
    await venue.set_rate_limit(3)
    remaining = []
    for _ in range(3):
        status, _, headers = await call(http, venue, "GET", "/v2/clock")
        assert status == 200
        assert headers["X-RateLimit-Limit"] == "3"
        assert int(headers["X-RateLimit-Reset"]) > 0
        remaining.append(headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    status, body, headers = await call(http, venue, "GET", "/v2/clock")
    assert (status, body) == (429, {"code": 42910000, "message": "rate limit exceeded"})
    assert headers["X-RateLimit-Remaining"] == "0"
    # Market data has its own budget (§0.4): still served.
    status, _, headers = await call(http, venue, "GET", "/v2/stocks/quotes/latest?symbols=SPY")
    assert status == 200
    assert "X-RateLimit-Limit" in headers


async def test_error_responses_carry_rate_limit_headers(
    venue: SimVenue, http: aiohttp.ClientSession
) -> None:
    """Headers are on error answers too (staff: "all Trading API responses", §0.4)."""
    status, body, headers = await call(http, venue, "GET", f"/v2/orders/{uuid.uuid4()}")
    assert status == 404
    assert body["code"] == 40410000
    assert isinstance(body["message"], str)
    assert "X-RateLimit-Remaining" in headers


async def test_malformed_order_body_is_400(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """A body that is not a JSON object → 400 ``request body format is invalid``."""
    for raw in (b"{not json", b"[1, 2]", b""):
        status, body, _ = await call(
            http, venue, "POST", "/v2/orders", data=raw, headers=auth_headers(venue)
        )
        assert (status, body) == (
            400,
            {"code": 40010000, "message": "request body format is invalid"},
        )


async def test_engine_refusal_maps_to_alpaca_error(
    venue: SimVenue, http: aiohttp.ClientSession
) -> None:
    """An engine SimError becomes its status and ``{"code","message"}`` body (§0.5)."""
    order = {"symbol": "ZZZZ", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}
    status, body, _ = await call(http, venue, "POST", "/v2/orders", json=order)
    assert status == 422
    assert body["code"] == 42210000
    assert "ZZZZ" in body["message"]


async def test_query_booleans_accept_python_true(
    venue: SimVenue, http: aiohttp.ClientSession
) -> None:
    """``nested=True`` (alpaca-py's spelling) is accepted; a nonsense boolean is 422 (§0.3)."""
    status, body, _ = await call(http, venue, "GET", "/v2/orders?status=all&nested=True")
    assert status == 200
    assert isinstance(body, list)
    status, body, _ = await call(http, venue, "GET", "/v2/orders?nested=perhaps")
    assert status == 422
    assert body["code"] == 40010001


async def test_bad_list_parameters_are_422(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """Unknown status/direction/side values and out-of-range limits are validation errors."""
    for query in ("status=sideways", "direction=up", "side=hold", "limit=0", "limit=501"):
        status, body, _ = await call(http, venue, "GET", f"/v2/orders?{query}")
        assert status == 422, query
        assert "code" in body


async def test_unknown_endpoint_is_json_404(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """Unknown paths still answer JSON (alpaca-py's APIError json-decodes every error body)."""
    status, body, _ = await call(http, venue, "GET", "/v2/nowhere")
    assert status == 404
    assert set(body) == {"code", "message"}


async def test_cancel_unknown_order_is_404(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """DELETE of an unknown order → 404 ``order not found`` style body (§1.8)."""
    status, body, _ = await call(http, venue, "DELETE", f"/v2/orders/{uuid.uuid4()}")
    assert status == 404
    assert body["code"] == 40410000


async def test_missing_position_is_404(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """GET /v2/positions/{sym} with no position → 404 ``position does not exist`` (§2.2)."""
    status, body, _ = await call(http, venue, "GET", "/v2/positions/TQQQ")
    assert (status, body) == (404, {"code": 40410000, "message": "position does not exist"})


async def test_latest_quote_shapes(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """Multi-symbol ``{"quotes": {...}}`` and single-symbol ``{"symbol", "quote"}`` (§5)."""
    await first_quote(venue, "SPY")
    await first_quote(venue, "TQQQ")
    status, body, _ = await call(http, venue, "GET", "/v2/stocks/quotes/latest?symbols=SPY,TQQQ")
    assert status == 200
    assert set(body) == {"quotes"}
    assert set(body["quotes"]) == {"SPY", "TQQQ"}
    for field in ("t", "bx", "bp", "bs", "ax", "ap", "as", "c", "z"):
        assert field in body["quotes"]["SPY"]
    status, body, _ = await call(http, venue, "GET", "/v2/stocks/SPY/quotes/latest")
    assert status == 200
    assert body["symbol"] == "SPY"
    assert body["quote"]["ap"] >= body["quote"]["bp"]


async def test_latest_quotes_require_symbols(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """No ``symbols`` → 400 with a JSON body."""
    status, body, _ = await call(http, venue, "GET", "/v2/stocks/quotes/latest")
    assert status == 400
    assert "message" in body


async def test_calendar_range_and_clock(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """Calendar days inside the requested range; the clock is open at 10:00 on a weekday."""
    status, body, _ = await call(http, venue, "GET", "/v2/calendar?start=2026-03-02&end=2026-03-06")
    assert status == 200
    assert [d["date"] for d in body] == [f"2026-03-0{d}" for d in range(2, 7)]
    assert body[0]["open"] == "09:30"
    status, body, _ = await call(http, venue, "GET", "/v2/clock")
    assert status == 200
    assert body["is_open"] is True


async def test_bars_and_latest_trades_shapes(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """``/v2/stocks/bars`` answers ``{"bars": {...}, "next_page_token": ...}`` (a token while
    history has more rows than `limit`, null on the last page); latest trades answer
    ``{"trades": {...}}`` — the single data key alpaca-py's pager insists on (§5)."""
    status, body, _ = await call(
        http, venue, "GET", "/v2/stocks/bars?symbols=SPY&timeframe=1Min&limit=10"
    )
    assert status == 200
    assert set(body) == {"bars", "next_page_token"}
    assert isinstance(body["next_page_token"], str)
    assert len(body["bars"]["SPY"]) == 10
    token, first = body["next_page_token"], body["bars"]["SPY"]
    status, page2, _ = await call(
        http,
        venue,
        "GET",
        f"/v2/stocks/bars?symbols=SPY&timeframe=1Min&limit=10&page_token={token}",
    )
    assert status == 200
    assert page2["bars"]["SPY"][0]["t"] > first[-1]["t"]
    status, body, _ = await call(
        http, venue, "GET", "/v2/stocks/bars?symbols=SPY&timeframe=1Day&limit=10000"
    )
    assert body["next_page_token"] is None
    status, body, _ = await call(http, venue, "GET", "/v2/stocks/trades/latest?symbols=SPY")
    assert status == 200
    assert set(body) == {"trades"}
