"""Review 5: a connection given back to the pool by an aborted request (`CheckedRequest`),
attacked: the next requests on it must be parsed by the venue exactly as sent.

In aiohttp (3.14, `client.py` `_connect_and_send_request`) the connection's protocol is
primed for the aborted request's response (`set_response_params`) before `send` runs, and
nothing of the request is written before our check: every request primes it again, so
the reused connection carries no state of the aborted one. These guard that it stays so.
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


def _abort() -> None:
    raise _Aborted


async def test_aborts_on_a_fresh_connection_then_orders_on_it(venue: SimVenue) -> None:
    """Three aborted POSTs (the first on a connection just made, one with a 64 KiB body),
    then a real order and its read on the same connection: one TCP connection, exactly one
    order at the venue, with the fields of the request that was sent."""
    made: list[str] = []

    async def on_create(
        session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object
    ) -> None:
        made.append("connect")

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_create)
    headers = {"APCA-API-KEY-ID": venue.key_id, "APCA-API-SECRET-KEY": venue.secret_key}
    orders = venue.trading_url + "/v2/orders"
    symbol = "SPY"  # one of `sim_config`'s symbols
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1),
        request_class=CheckedRequest,
        headers=headers,
        trace_configs=[trace],
    ) as session:
        aborted = [
            {"symbol": symbol, "qty": "7", "side": "buy", "type": "market"},
            {"symbol": symbol, "qty": "9", "side": "buy", "type": "market", "pad": "x" * 65536},
            {"symbol": symbol, "qty": "11", "side": "buy", "type": "market"},
        ]
        for body in aborted:
            with pytest.raises(_Aborted), last_check(_abort):
                await session.post(orders, json=body)
        sent = {
            "symbol": symbol,
            "qty": "2",
            "side": "buy",
            "type": "limit",
            "limit_price": "1.00",
            "time_in_force": "day",
            "client_order_id": "review5-pool",
        }
        async with session.post(orders, json=sent) as answer:
            assert answer.status == 200, await answer.text()
            placed = await answer.json()
        async with session.get(f"{orders}/{placed['id']}") as answer:
            assert answer.status == 200
            read = await answer.json()
    assert made == ["connect"]
    history = (await venue.history())["orders"]
    assert [(o["order"]["client_order_id"], o["order"]["qty"]) for o in history] == [
        ("review5-pool", "2")
    ]
    assert read["client_order_id"] == "review5-pool"
