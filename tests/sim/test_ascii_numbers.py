"""Alpaca parses numbers as ASCII decimals; Python's `Decimal` also reads other scripts'
digits ("٣" is 3, "１" is 1) and underscores ("1_0" is 10). The simulator refuses them
with a 422, as Alpaca would, in an order's fields and in query parameters alike; so a
client bug that sends them is seen in tests instead of trading."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from execd.sim.venue import SimVenue

ORDER = {"symbol": "SPY", "side": "buy", "type": "limit", "time_in_force": "day"}
HOSTILE = ["٣", "１", "1_0", "٣.5"]


@pytest.fixture
async def http(venue: SimVenue) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"APCA-API-KEY-ID": venue.key_id, "APCA-API-SECRET-KEY": venue.secret_key}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield session


@pytest.mark.parametrize("field", ["qty", "limit_price"])
@pytest.mark.parametrize("text", HOSTILE)
async def test_an_order_with_a_non_ascii_number_is_refused(
    venue: SimVenue, http: aiohttp.ClientSession, field: str, text: str
) -> None:
    body = {**ORDER, "qty": "1", "limit_price": "1.00", field: text}
    async with http.post(venue.trading_url + "/v2/orders", json=body) as resp:
        assert resp.status == 422, await resp.text()
    assert (await venue.history())["orders"] == []


async def test_a_position_close_with_a_non_ascii_qty_is_refused(
    venue: SimVenue, http: aiohttp.ClientSession
) -> None:
    url = venue.trading_url + "/v2/positions/SPY"
    async with http.delete(url, params={"qty": "٣"}) as resp:
        assert resp.status == 422, await resp.text()


async def test_ascii_numbers_still_parse(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    body = {**ORDER, "qty": "3", "limit_price": "1.00"}
    async with http.post(venue.trading_url + "/v2/orders", json=body) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["qty"] == "3"
