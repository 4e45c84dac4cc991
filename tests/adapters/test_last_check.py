"""`last_check` on real aiohttp against the simulated venue: a request aborted by its check
sends nothing and gives its kept-alive connection back to the pool.

aiohttp closes the connection of a request whose `send` raises; for an abort before the
first byte that threw away a good connection, and the next write paid a new TCP connect
(5.8 % of the daemon loop's stall samples in the 2,000-leg benchmark, issue 14 item 3).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace

import aiohttp
import pytest

from execd.adapters.last_check import CheckedRequest, last_check
from execd.sim.venue import SimVenue

from .test_sim_integration import sim_config


class _Aborted(Exception):
    pass


@pytest.fixture
async def venue() -> AsyncIterator[SimVenue]:
    async with SimVenue(sim_config()) as running:
        yield running


async def test_an_aborted_request_gives_its_connection_back(venue: SimVenue) -> None:
    """One pooled connection: a GET, a POST aborted by its last check, a GET — one TCP
    connection made in all, and the venue saw no order."""
    made: list[str] = []

    async def on_create(
        session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object
    ) -> None:
        made.append("connect")

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_create)
    headers = {"APCA-API-KEY-ID": venue.key_id, "APCA-API-SECRET-KEY": venue.secret_key}

    def abort() -> None:
        raise _Aborted

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1),
        request_class=CheckedRequest,
        headers=headers,
        trace_configs=[trace],
    ) as session:
        async with session.get(venue.trading_url + "/v2/clock") as answer:
            assert answer.status == 200
            await answer.read()
        body = {"symbol": "SPY", "qty": "1", "side": "buy", "type": "market"}
        with pytest.raises(_Aborted), last_check(abort):
            await session.post(venue.trading_url + "/v2/orders", json=body)
        async with session.get(venue.trading_url + "/v2/clock") as answer:
            assert answer.status == 200
            await answer.read()
    assert made == ["connect"]
    assert (await venue.history())["orders"] == []
