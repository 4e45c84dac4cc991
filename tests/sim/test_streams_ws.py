"""Both websockets over real loopback sockets with a plain client: handshakes, framing, errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgpack
import pytest

from execd.sim.server import ServerOptions
from execd.sim.venue import SimVenue
from tests.sim.conftest import DEADLINE, venue_config, within


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp client session for websockets."""
    async with aiohttp.ClientSession() as session:
        yield session


async def recv_json(ws: aiohttp.ClientWebSocketResponse) -> Any:
    """The next data frame, decoded as JSON (text or binary)."""
    msg = await ws.receive(timeout=DEADLINE)
    assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
    return json.loads(msg.data)


async def recv_msgpack(ws: aiohttp.ClientWebSocketResponse) -> Any:
    """The next frame, which must be binary msgpack."""
    msg = await ws.receive(timeout=DEADLINE)
    assert msg.type is aiohttp.WSMsgType.BINARY, msg
    return msgpack.unpackb(msg.data)


async def data_auth(ws: aiohttp.ClientWebSocketResponse, venue: SimVenue) -> None:
    """Consume `connected`, authenticate, consume `authenticated` (JSON codec)."""
    assert await recv_json(ws) == [{"T": "success", "msg": "connected"}]
    await ws.send_str(
        json.dumps({"action": "auth", "key": venue.key_id, "secret": venue.secret_key})
    )
    assert await recv_json(ws) == [{"T": "success", "msg": "authenticated"}]


async def test_trading_stream_handshake_is_binary(
    venue: SimVenue, http: aiohttp.ClientSession
) -> None:
    """authenticate → authorized, listen → listening, each a binary frame like paper (§3)."""
    async with http.ws_connect(venue.trading_stream_url) as ws:
        auth = {"key_id": venue.key_id, "secret_key": venue.secret_key}
        await ws.send_str(json.dumps({"action": "authenticate", "data": auth}))
        reply = await ws.receive(timeout=DEADLINE)
        assert reply.type is aiohttp.WSMsgType.BINARY
        assert json.loads(reply.data) == {
            "stream": "authorization",
            "data": {"status": "authorized", "action": "authenticate"},
        }
        await ws.send_str(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        assert await recv_json(ws) == {
            "stream": "listening",
            "data": {"streams": ["trade_updates"]},
        }


async def test_trading_stream_refuses_bad_keys(
    venue: SimVenue, http: aiohttp.ClientSession
) -> None:
    """listen before auth and a wrong secret are both answered ``unauthorized`` (§3.2)."""
    async with http.ws_connect(venue.trading_stream_url) as ws:
        await ws.send_str(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        assert (await recv_json(ws))["data"] == {"status": "unauthorized", "action": "listen"}
        bad = {"key_id": venue.key_id, "secret_key": "nope"}
        await ws.send_str(json.dumps({"action": "authenticate", "data": bad}))
        assert (await recv_json(ws))["data"] == {
            "status": "unauthorized",
            "action": "authenticate",
        }


async def test_trading_stream_msgpack_on_request(
    venue: SimVenue, http: aiohttp.ClientSession
) -> None:
    """With ``Content-Type: application/msgpack`` the trading stream answers msgpack (§3.1)."""
    headers = {"Content-Type": "application/msgpack"}
    async with http.ws_connect(venue.trading_stream_url, headers=headers) as ws:
        auth = {"key_id": venue.key_id, "secret_key": venue.secret_key}
        await ws.send_bytes(msgpack.packb({"action": "authenticate", "data": auth}))
        assert (await recv_msgpack(ws))["data"]["status"] == "authorized"


async def test_data_stream_json_quotes(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """JSON codec: connected → auth → subscribe echo → text arrays of quotes with string ``t``."""
    async with http.ws_connect(venue.data_stream_url) as ws:
        await data_auth(ws, venue)
        await ws.send_str(json.dumps({"action": "subscribe", "quotes": ["SPY"], "trades": ["SPY"]}))
        [echo] = await recv_json(ws)
        assert echo["T"] == "subscription"
        assert echo["quotes"] == ["SPY"]
        assert echo["corrections"] == ["SPY"]
        msg = await ws.receive(timeout=DEADLINE)
        assert msg.type is aiohttp.WSMsgType.TEXT
        batch = json.loads(msg.data)
        assert batch
        for item in batch:
            assert item["T"] in ("q", "t")
            assert item["S"] == "SPY"
            assert isinstance(item["t"], str)
            assert item["t"].endswith("Z")


async def test_data_stream_msgpack_quotes(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """msgpack codec: binary frames, msgpack client messages, ``t`` a msgpack Timestamp (§4.2)."""
    headers = {"Content-Type": "application/msgpack"}
    async with http.ws_connect(venue.data_stream_url, headers=headers) as ws:
        assert await recv_msgpack(ws) == [{"T": "success", "msg": "connected"}]
        await ws.send_bytes(
            msgpack.packb({"action": "auth", "key": venue.key_id, "secret": venue.secret_key})
        )
        assert await recv_msgpack(ws) == [{"T": "success", "msg": "authenticated"}]
        await ws.send_bytes(msgpack.packb({"action": "subscribe", "quotes": ["TQQQ"]}))
        [echo] = await recv_msgpack(ws)
        assert echo["quotes"] == ["TQQQ"]
        [first, *_] = await recv_msgpack(ws)
        assert first["T"] == "q"
        assert isinstance(first["t"], msgpack.Timestamp)
        assert isinstance(first["bp"], float)
        assert first["ap"] >= first["bp"]


async def test_data_stream_header_auth(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """Key headers on the handshake authenticate without an ``auth`` message (§4.1 step 3)."""
    headers = {"APCA-API-KEY-ID": venue.key_id, "APCA-API-SECRET-KEY": venue.secret_key}
    async with http.ws_connect(venue.data_stream_url, headers=headers) as ws:
        assert await recv_json(ws) == [{"T": "success", "msg": "connected"}]
        assert await recv_json(ws) == [{"T": "success", "msg": "authenticated"}]


@pytest.mark.parametrize("feed", ["sip", "test"])
async def test_other_feeds_speak_the_same_protocol(
    venue: SimVenue, http: aiohttp.ClientSession, feed: str
) -> None:
    """``/v2/sip`` and ``/v2/test`` are served like ``/v2/iex``."""
    async with http.ws_connect(f"ws://127.0.0.1:{venue.port}/v2/{feed}") as ws:
        await data_auth(ws, venue)


async def test_data_stream_errors(venue: SimVenue, http: aiohttp.ClientSession) -> None:
    """401 subscribe before auth, 402 bad secret, 400 garbage, 403 double auth (§4.4)."""
    async with http.ws_connect(venue.data_stream_url) as ws:
        await recv_json(ws)
        await ws.send_str(json.dumps({"action": "subscribe", "quotes": ["SPY"]}))
        assert await recv_json(ws) == [{"T": "error", "code": 401, "msg": "not authenticated"}]
        await ws.send_str(json.dumps({"action": "auth", "key": venue.key_id, "secret": "x"}))
        assert await recv_json(ws) == [{"T": "error", "code": 402, "msg": "auth failed"}]
        await ws.send_str("{garbage")
        assert await recv_json(ws) == [{"T": "error", "code": 400, "msg": "invalid syntax"}]
        await ws.send_str(
            json.dumps({"action": "auth", "key": venue.key_id, "secret": venue.secret_key})
        )
        assert (await recv_json(ws))[0]["msg"] == "authenticated"
        await ws.send_str(
            json.dumps({"action": "auth", "key": venue.key_id, "secret": venue.secret_key})
        )
        assert await recv_json(ws) == [{"T": "error", "code": 403, "msg": "already authenticated"}]


async def test_auth_timeout_is_404_then_close(http: aiohttp.ClientSession) -> None:
    """No auth within the timeout → ``404 auth timeout`` and the server closes (§4.1)."""
    options = ServerOptions(data_auth_timeout=0.2)
    async with (
        SimVenue(venue_config(), options=options) as venue,
        http.ws_connect(venue.data_stream_url) as ws,
    ):
        await recv_json(ws)
        assert await recv_json(ws) == [{"T": "error", "code": 404, "msg": "auth timeout"}]
        closing = await ws.receive(timeout=DEADLINE)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_symbol_limit_is_405(http: aiohttp.ClientSession) -> None:
    """Subscribing past the plan's symbol limit → 405, subscriptions unchanged (§4.4)."""
    options = ServerOptions(data_symbol_limit=2)
    async with (
        SimVenue(venue_config(), options=options) as venue,
        http.ws_connect(venue.data_stream_url) as ws,
    ):
        await data_auth(ws, venue)
        await ws.send_str(json.dumps({"action": "subscribe", "quotes": ["SPY", "TQQQ"]}))
        assert (await recv_json(ws))[0]["quotes"] == ["SPY", "TQQQ"]
        await ws.send_str(json.dumps({"action": "subscribe", "trades": ["MULN"]}))
        while True:  # quotes may be interleaved; wait for the control reply
            batch = await recv_json(ws)
            if batch[0]["T"] == "error":
                break
        assert batch == [{"T": "error", "code": 405, "msg": "symbol limit exceeded"}]


async def test_one_data_connection_per_key_is_406(
    venue: SimVenue, http: aiohttp.ClientSession
) -> None:
    """A second authenticated connection → 406; once the first closes, re-auth succeeds."""
    async with http.ws_connect(venue.data_stream_url) as first:
        await data_auth(first, venue)
        async with http.ws_connect(venue.data_stream_url) as second:
            await recv_json(second)
            auth = json.dumps({"action": "auth", "key": venue.key_id, "secret": venue.secret_key})
            await second.send_str(auth)
            assert await recv_json(second) == [
                {"T": "error", "code": 406, "msg": "connection limit exceeded"}
            ]
            await first.close()
            await within(venue.wait_streams(data=0))
            await second.send_str(auth)  # the socket stayed open, as the Go SDK expects
            assert await recv_json(second) == [{"T": "success", "msg": "authenticated"}]
