"""Pure protocol functions of the two websockets: messages in, replies out, frames encoded."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import msgpack
import pytest
from aiohttp import WSMsgType

from execd.sim.streams import (
    DataSession,
    TradingSession,
    codec_for,
    decode_client_frame,
    encode_data_frame,
    encode_trading_frame,
    handle_data_message,
    handle_trading_message,
)


def _ok(key: str, secret: str) -> bool:
    return (key, secret) == ("K", "S")


def _data(session: DataSession, msg: object, *, limit: int | None = 30, free: bool = True) -> Any:
    return handle_data_message(
        session, msg, credentials_ok=_ok, claim_connection=lambda _: free, symbol_limit=limit
    )


def test_trading_auth_then_listen() -> None:
    """authenticate → authorized; listen → listening with the streams (ALPACA.md §3.2)."""
    session = TradingSession()
    auth = {"action": "authenticate", "data": {"key_id": "K", "secret_key": "S"}}
    assert handle_trading_message(session, auth, _ok) == [
        {"stream": "authorization", "data": {"status": "authorized", "action": "authenticate"}}
    ]
    listen = {"action": "listen", "data": {"streams": ["trade_updates", "bogus"]}}
    assert handle_trading_message(session, listen, _ok) == [
        {"stream": "listening", "data": {"streams": ["trade_updates"]}}
    ]
    assert session.listening


def test_trading_bad_secret_and_listen_before_auth() -> None:
    """Wrong secret → unauthorized; listen before auth → unauthorized with action listen."""
    session = TradingSession()
    bad = {"action": "authenticate", "data": {"key_id": "K", "secret_key": "nope"}}
    assert handle_trading_message(session, bad, _ok)[0]["data"] == {
        "status": "unauthorized",
        "action": "authenticate",
    }
    listen = {"action": "listen", "data": {"streams": ["trade_updates"]}}
    assert handle_trading_message(session, listen, _ok)[0]["data"] == {
        "status": "unauthorized",
        "action": "listen",
    }
    assert not session.listening


def test_trading_listen_empty_stops() -> None:
    """``listen`` replaces the stream set; an empty list stops the events (§3.2)."""
    session = TradingSession(authenticated=True, key_id="K", streams=("trade_updates",))
    handle_trading_message(session, {"action": "listen", "data": {"streams": []}}, _ok)
    assert not session.listening


def test_data_auth_subscribe_echo() -> None:
    """auth → authenticated; subscribe → the full subscription echo incl. mirrored channels."""
    session = DataSession()
    assert _data(session, {"action": "auth", "key": "K", "secret": "S"}) == [
        {"T": "success", "msg": "authenticated"}
    ]
    [echo] = _data(session, {"action": "subscribe", "trades": ["AAPL"], "quotes": ["AMD", "CLDR"]})
    assert echo == {
        "T": "subscription",
        "trades": ["AAPL"],
        "quotes": ["AMD", "CLDR"],
        "bars": [],
        "updatedBars": [],
        "dailyBars": [],
        "statuses": [],
        "lulds": [],
        "imbalances": [],
        "corrections": ["AAPL"],
        "cancelErrors": ["AAPL"],
    }
    [echo] = _data(session, {"action": "unsubscribe", "quotes": ["AMD"]})
    assert echo["quotes"] == ["CLDR"]


@pytest.mark.parametrize(
    ("setup", "msg", "code"),
    [
        (False, {"action": "subscribe", "quotes": ["AAPL"]}, 401),
        (False, {"action": "auth", "key": "K", "secret": "bad"}, 402),
        (True, {"action": "auth", "key": "K", "secret": "S"}, 403),
        (True, {"action": "subscribe", "quotes": "AAPL"}, 400),
        (True, {"action": "subscribe", "nonsense": ["AAPL"]}, 400),
        (True, {"action": "dance"}, 400),
        (True, ["not", "a", "map"], 400),
        (True, {"action": "subscribe", "orderbooks": ["AAPL"]}, 410),
    ],
)
def test_data_errors(setup: bool, msg: object, code: int) -> None:
    """Each documented error code for the matching mistake (§4.4)."""
    session = DataSession(authenticated=setup, key_id="K" if setup else None)
    [reply] = _data(session, msg)
    assert reply["T"] == "error"
    assert reply["code"] == code


def test_data_symbol_limit_keeps_subscriptions() -> None:
    """405 when the distinct symbols exceed the plan; the old subscription stays (§4.4)."""
    session = DataSession(authenticated=True, key_id="K")
    _data(session, {"action": "subscribe", "quotes": ["A", "B"]}, limit=3)
    [reply] = _data(session, {"action": "subscribe", "trades": ["C", "D"]}, limit=3)
    assert reply["code"] == 405
    assert session.subscriptions["quotes"] == {"A", "B"}
    assert session.subscriptions["trades"] == set()
    [echo] = _data(session, {"action": "subscribe", "trades": ["A", "*"]}, limit=3)
    assert echo["trades"] == ["*", "A"]


def test_data_connection_limit() -> None:
    """406 when the key's connection slot is taken; the session stays unauthenticated."""
    session = DataSession()
    [reply] = _data(session, {"action": "auth", "key": "K", "secret": "S"}, free=False)
    assert reply == {"T": "error", "code": 406, "msg": "connection limit exceeded"}
    assert not session.authenticated


def test_data_wants_by_channel_and_star() -> None:
    """Quotes route by the quotes channel, trades by trades, ``*`` matches every symbol."""
    session = DataSession(authenticated=True)
    session.subscriptions["quotes"] = {"AAPL"}
    session.subscriptions["bars"] = {"*"}
    assert session.wants({"T": "q", "S": "AAPL"})
    assert not session.wants({"T": "t", "S": "AAPL"})
    assert not session.wants({"T": "q", "S": "SPY"})
    assert session.wants({"T": "b", "S": "SPY"})
    assert not session.wants({"T": "success"})


QUOTE_T = datetime(2026, 3, 4, 10, 0, 1, 250000, tzinfo=timezone(timedelta(hours=-5)))
QUOTE = {
    "S": "AAPL",
    "T": "q",
    "bx": "V",
    "bp": Decimal("189.55"),
    "bs": 3,
    "ax": "V",
    "ap": 189.6,
    "as": 2,
    "c": ["R"],
    "t": QUOTE_T,
    "z": "C",
}


def test_msgpack_frame_has_timestamp_ext_and_t_first() -> None:
    """msgpack: an array of maps, ``T`` first, ``t`` the Timestamp extension, numbers numeric."""
    frame = encode_data_frame([QUOTE], "msgpack")
    assert isinstance(frame, bytes)
    [decoded] = msgpack.unpackb(frame)
    assert next(iter(decoded)) == "T"
    assert isinstance(decoded["t"], msgpack.Timestamp)
    assert decoded["t"].to_datetime() == QUOTE_T
    assert decoded["bp"] == pytest.approx(189.55)


def test_json_frame_is_text_with_utc_rfc3339() -> None:
    """JSON: a text array; ``t`` as RFC 3339 in UTC ('Z'), as Alpaca sends it."""
    frame = encode_data_frame([QUOTE], "json")
    assert isinstance(frame, str)
    [decoded] = json.loads(frame)
    assert decoded["t"] == "2026-03-04T15:00:01.250000Z"
    assert decoded["bp"] == pytest.approx(189.55)
    assert next(iter(decoded)) == "T"


def test_trading_frame_is_binary_json_or_msgpack() -> None:
    """Trading frames are binary: JSON bytes by default, msgpack on request (§3.1)."""
    message = {"stream": "listening", "data": {"streams": ["trade_updates"]}}
    assert json.loads(encode_trading_frame(message, "json")) == message
    assert msgpack.unpackb(encode_trading_frame(message, "msgpack")) == message


def test_codec_negotiation_and_client_decoding() -> None:
    """The handshake Content-Type picks the codec; client frames decode by frame type."""
    assert codec_for("application/msgpack") == "msgpack"
    assert codec_for("Application/MsgPack; charset=binary") == "msgpack"
    assert codec_for(None) == "json"
    assert decode_client_frame(WSMsgType.TEXT, '{"action":"auth"}') == {"action": "auth"}
    packed = msgpack.packb({"action": "auth"})
    assert decode_client_frame(WSMsgType.BINARY, packed) == {"action": "auth"}
    assert decode_client_frame(WSMsgType.BINARY, b'{"action":"auth"}') == {"action": "auth"}
    with pytest.raises(ValueError):
        decode_client_frame(WSMsgType.TEXT, "{not json")
