"""A market-data client that stops reading (ALPACA.md §4.4, ``407 slow client``).

Alpaca answers a consumer that cannot keep up with ``407 slow client`` and disconnects it. The
venue models that with a bounded per-connection backlog: a client that stops reading first fills
the socket buffers, then the backlog; on overflow it is told 407 and hung up, and cut off (TCP
abort) if it does not take the close within ``slow_client_timeout``. These tests shrink the
client's receive buffer, the venue's send buffer and the backlog, and raise the quote rate, so
that all this takes about a second instead of minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from execd.sim.server import ServerOptions
from execd.sim.venue import SimVenue
from tests.sim.conftest import DEADLINE, venue_config, within

# Ten fast symbols at 20× speed: about a thousand quotes a second on `*`.
SYMBOLS = ("SPY", "QQQ", "TQQQ", "SQQQ", "AAPL", "MSFT", "NVDA", "AMD", "TSLA", "META")
BACKLOG = 300
# Small bounds, two data connections a key (a stalled client and a healthy one).
OPTIONS = ServerOptions(
    data_connections_per_key=2,
    slow_client_backlog=BACKLOG,
    slow_client_timeout=0.5,
    stream_send_buffer=4096,
)


@pytest.fixture
async def busy_venue() -> AsyncIterator[SimVenue]:
    """A venue with a fast market and the small bounds (the market is what fills sockets)."""
    config = venue_config(scenario="fast", speed=20.0, symbols=SYMBOLS)
    async with SimVenue(config, options=OPTIONS) as venue:
        yield venue


@pytest.fixture
async def quiet_venue() -> AsyncIterator[SimVenue]:
    """A venue with a calm market and the small bounds (the test makes the traffic)."""
    async with SimVenue(venue_config(), options=OPTIONS) as venue:
        yield venue


async def stalled_client(venue: SimVenue) -> ClientConnection:
    """A raw websockets client with a tiny receive buffer, subscribed to every quote; the
    caller never reads from it again (websockets stops reading the socket once its own small
    queue is full, so the venue's writes back up)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", venue.port))
    ws = await websockets.connect(venue.data_stream_url, sock=sock, compression=None, max_queue=4)
    assert json.loads(await within(ws.recv()))[0]["msg"] == "connected"
    await ws.send(json.dumps({"action": "auth", "key": venue.key_id, "secret": venue.secret_key}))
    assert json.loads(await within(ws.recv()))[0]["msg"] == "authenticated"
    await ws.send(json.dumps({"action": "subscribe", "quotes": ["*"]}))
    assert json.loads(await within(ws.recv()))[0]["T"] == "subscription"
    return ws


async def count_quotes(ws: aiohttp.ClientWebSocketResponse, seen: list[int]) -> None:
    """Read every frame of a healthy client, adding its quotes to ``seen[0]``."""
    async for msg in ws:
        if msg.type is not aiohttp.WSMsgType.TEXT:
            return
        seen[0] += sum(1 for item in json.loads(msg.data) if item.get("T") == "q")


async def test_a_client_that_stops_reading_is_dropped_and_the_others_keep_receiving(
    busy_venue: SimVenue,
) -> None:
    """The stalled client's backlog never passes its bound, the venue hangs it up (407, then
    close or abort), and a healthy client on the same feed keeps receiving quotes throughout
    (it takes one symbol: a tenth of the rate, so a loaded test machine cannot make *it*
    too slow for the small backlog)."""
    venue = busy_venue
    async with aiohttp.ClientSession() as http, http.ws_connect(venue.data_stream_url) as healthy:
        assert (await healthy.receive_json(timeout=DEADLINE))[0]["msg"] == "connected"
        await healthy.send_json({"action": "auth", "key": venue.key_id, "secret": venue.secret_key})
        assert (await healthy.receive_json(timeout=DEADLINE))[0]["msg"] == "authenticated"
        await healthy.send_json({"action": "subscribe", "quotes": ["SPY"]})
        assert (await healthy.receive_json(timeout=DEADLINE))[0]["T"] == "subscription"
        seen = [0]
        slow = await stalled_client(venue)
        try:
            await dropped_while_healthy_receives(venue, healthy, seen)
            # The stalled client, reading at last, finds its connection ended: whatever it
            # still had buffered is quotes, at most followed by the 407 notice.
            tail = await read_until_closed(slow)
            assert all(m["T"] == "q" for m in tail[:-1])
            if tail and tail[-1]["T"] != "q":
                assert tail[-1] == {"T": "error", "code": 407, "msg": "slow client"}
        finally:
            slow.transport.abort()


async def read_until_closed(ws: ClientConnection) -> list[dict[str, object]]:
    """Every message ``ws`` still receives until its connection is closed (which it must be)."""
    received: list[dict[str, object]] = []
    while True:
        try:
            frame = await within(ws.recv())
        except websockets.ConnectionClosed:
            return received
        received.extend(json.loads(frame))


async def dropped_while_healthy_receives(
    venue: SimVenue, healthy: aiohttp.ClientWebSocketResponse, seen: list[int]
) -> None:
    """Wait until the venue has dropped the second data connection, checking its backlog stays
    bounded and that ``healthy`` receives quotes before and after."""
    async with asyncio.TaskGroup() as tasks:
        reader = tasks.create_task(count_quotes(healthy, seen))
        try:
            await within(venue.wait_streams(data=2))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DEADLINE
            largest = 0
            while venue.statistics()["data"]["connections"] > 1:
                largest = max(largest, venue.statistics()["data"]["backlog"])
                assert loop.time() < deadline, "the stalled client was never dropped"
                await asyncio.sleep(0.01)
            assert 0 < largest <= BACKLOG
            assert not healthy.closed, "the healthy client was dropped instead"
            before = seen[0]
            assert before > 0
            while seen[0] <= before:
                assert loop.time() < deadline, "the healthy client stopped receiving"
                await asyncio.sleep(0.01)
        finally:
            reader.cancel()


async def test_a_client_that_floods_requests_and_reads_nothing_is_bounded_too(
    quiet_venue: SimVenue,
) -> None:
    """The venue's replies to a client's own requests share the bounded backlog: a client that
    sends request after request and never reads is hung up, its backlog never past the
    bound, and the venue keeps serving (a new client connects and authenticates)."""
    venue = quiet_venue
    slow = await stalled_client(venue)
    try:
        await slow.send(json.dumps({"action": "unsubscribe", "quotes": ["*"]}))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        largest = 0
        request = json.dumps({"action": "hello"})  # answered `400 invalid syntax`, no data
        with contextlib.suppress(websockets.ConnectionClosed):
            while venue.statistics()["data"]["connections"] > 0:
                largest = max(largest, venue.statistics()["data"]["backlog"])
                assert loop.time() < deadline, "the flooding client was never dropped"
                for _ in range(50):
                    await slow.send(request)
                await asyncio.sleep(0)  # let the venue read them (send rarely yields)
        await within(venue.wait_streams(data=0, ready=False))
        assert largest <= BACKLOG
    finally:
        slow.transport.abort()
    async with aiohttp.ClientSession() as http, http.ws_connect(venue.data_stream_url) as ws:
        assert (await ws.receive_json(timeout=DEADLINE))[0]["msg"] == "connected"
        await ws.send_json({"action": "auth", "key": venue.key_id, "secret": venue.secret_key})
        assert (await ws.receive_json(timeout=DEADLINE))[0]["msg"] == "authenticated"


async def test_a_trading_client_that_stops_reading_is_dropped(quiet_venue: SimVenue) -> None:
    """The trade_updates stream has the same bound (Alpaca has no 407 there: it just hangs
    up). The engine's fan-out is driven directly with many updates; the stalled listener is
    dropped with its backlog never past the bound, and the fan-out never waits for it."""
    venue = quiet_venue
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", venue.port))
    ws = await websockets.connect(
        venue.trading_stream_url, sock=sock, compression=None, max_queue=4
    )
    try:
        auth = {"key_id": venue.key_id, "secret_key": venue.secret_key}
        await ws.send(json.dumps({"action": "authenticate", "data": auth}))
        assert json.loads(await within(ws.recv()))["data"]["status"] == "authorized"
        await ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        assert json.loads(await within(ws.recv()))["stream"] == "listening"
        update = {"event": "new", "order": {"id": "x" * 36, "symbol": "SPY", "qty": "1"}}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        largest = 0
        while venue.statistics()["trading"]["connections"] > 0:
            assert loop.time() < deadline, "the stalled trading client was never dropped"
            for _ in range(100):
                venue.hub.publish_trade_update(update)  # returns at once: never waits
            largest = max(largest, venue.statistics()["trading"]["backlog"])
            await asyncio.sleep(0)
        assert 0 < largest <= BACKLOG
    finally:
        ws.transport.abort()


async def test_a_client_that_stops_reading_is_still_dropped_after_a_venue_stall(
    busy_venue: SimVenue,
) -> None:
    """Review 11's fix keeps a catch-up burst for a client whose socket still takes bytes;
    a client whose socket is full gets no such grace: after the venue's loop stalls (the
    burst), the stalled client is hung up with its backlog bounded, and a healthy client on
    the same feed is not."""
    venue = busy_venue
    async with aiohttp.ClientSession() as http, http.ws_connect(venue.data_stream_url) as healthy:
        assert (await healthy.receive_json(timeout=DEADLINE))[0]["msg"] == "connected"
        await healthy.send_json({"action": "auth", "key": venue.key_id, "secret": venue.secret_key})
        assert (await healthy.receive_json(timeout=DEADLINE))[0]["msg"] == "authenticated"
        await healthy.send_json({"action": "subscribe", "quotes": ["SPY"]})
        assert (await healthy.receive_json(timeout=DEADLINE))[0]["T"] == "subscription"
        seen = [0]
        slow = await stalled_client(venue)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DEADLINE
            # Its socket is full: messages wait (the writer takes the whole backlog on each
            # turn while the socket takes bytes).
            while venue.statistics()["data"]["backlog"] < BACKLOG // 3:
                assert loop.time() < deadline, "the stalled client never backed up"
                await asyncio.sleep(0.01)
            time.sleep(0.8)  # noqa: ASYNC251 - the fault: the venue's loop stalls (a burst)
            await dropped_while_healthy_receives(venue, healthy, seen)
        finally:
            slow.transport.abort()
