"""``POST /sim/streams/refuse``: new stream connections are refused for a while (not Alpaca's
API; it imitates Alpaca refusing reconnections until a dead session is reaped, ALPACA.md §9)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from execd.sim.venue import SimVenue
from tests.sim.conftest import DEADLINE


async def test_refused_streams_answer_the_status_then_accept_again(venue: SimVenue) -> None:
    """While refusing, a websocket upgrade gets the HTTP status (an open socket stays open);
    once the time is up, connections are accepted again."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(venue.trading_stream_url) as kept,
    ):
        await asyncio.wait_for(venue.wait_streams(trading=1, ready=False), DEADLINE)
        async with http.post(
            venue.admin_url + "/streams/refuse",
            json={"stream": "all", "seconds": 0.3, "status": 429},
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["refused"] == ["trading", "data"]
        assert venue.statistics()["data"]["refusing"] is True
        for url in (venue.trading_stream_url, venue.data_stream_url):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(url)
            assert refused.value.status == 429
        assert not kept.closed
        loop = asyncio.get_running_loop()
        end = loop.time() + DEADLINE
        while venue.statistics()["trading"]["refusing"]:  # the fault's own clock
            assert loop.time() < end
            await asyncio.sleep(0.02)
        async with http.ws_connect(venue.data_stream_url) as ws:
            assert (await ws.receive_json(timeout=DEADLINE))[0]["msg"] == "connected"


@pytest.mark.parametrize(
    "body",
    [{"stream": "all"}, {"seconds": 1, "status": 200}, {"stream": "x", "seconds": 1}],
)
async def test_refuse_rejects_bad_input(venue: SimVenue, body: dict[str, object]) -> None:
    """A refusal needs seconds, a known stream and an error status."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(venue.admin_url + "/streams/refuse", json=body) as resp,
    ):
        assert resp.status == 400
