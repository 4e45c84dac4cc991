"""The venue's two websockets: ``trade_updates`` at ``/stream`` and market data at ``/v2/{feed}``.

Both follow Alpaca's wire protocol (ALPACA.md §3 and §4) closely enough that alpaca-py's
``TradingStream`` and ``StockDataStream`` work against them unchanged.

Trading stream (§3, §12.1): the client sends
``{"action":"authenticate","data":{"key_id","secret_key"}}`` and gets
``{"stream":"authorization","data":{"status":"authorized"|"unauthorized","action":"authenticate"}}``;
``listen`` before authenticating is answered ``unauthorized`` with ``"action":"listen"``; a
``listen`` with ``{"streams":["trade_updates"]}`` is answered ``listening`` and from then on every
engine event arrives as ``{"stream":"trade_updates","data":{...}}``. Like paper, the server sends
**binary** frames holding JSON (alpaca-py ``json.loads`` both); a client that connects with
``Content-Type: application/msgpack`` gets msgpack frames instead. The venue keeps the socket open
after a failed authentication (alpaca-py closes it and backs off itself). Choice for the open
question in §10.6: the trading stream has no connection limit and no header auth.

Market-data stream (§4): ``[{"T":"success","msg":"connected"}]`` on connect; ``auth`` within
``auth_timeout`` seconds (else ``404 auth timeout`` and close) or handshake headers; ``subscribe``/
``unsubscribe`` are additive/subtractive and answered with the full ``subscription`` echo
(``corrections``/``cancelErrors`` follow ``trades``); data arrives as arrays of ``q``/``t``/``b``
maps, batched when several are ready, control messages always alone. Frames are JSON text by
default and msgpack binary — with ``t`` as the msgpack Timestamp extension — when the handshake
carries ``Content-Type: application/msgpack`` (as alpaca-py always does); client frames are
decoded by frame type (text = JSON, binary = msgpack). Errors (§4.4): 400 invalid syntax,
401 not authenticated, 402 auth failed, 403 already authenticated, 404 auth timeout,
405 symbol limit exceeded (subscriptions unchanged), 406 connection limit exceeded (one
authenticated connection per key and feed by default; the socket stays open so the client may
re-send ``auth``, as the Go SDK does), 407 slow client (backlog overflow, then close; see
:class:`StreamOptions`), 410 invalid subscribe action for this feed. A ``*`` subscription does
not count against the symbol limit.

The protocol decisions are pure functions (:func:`handle_trading_message`,
:func:`handle_data_message`, :func:`encode_data_frame`, ...) and do no I/O;
:class:`execd.sim.streams_hub.StreamHub` is the thin aiohttp shell that owns the sockets, fans
engine events out, bounds slow clients and lets the admin API drop them.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from aiohttp import WSMsgType

__all__ = [
    "DATA_CHANNELS",
    "Codec",
    "DataSession",
    "StreamKind",
    "TradingSession",
    "data_error",
    "decode_client_frame",
    "encode_data_frame",
    "encode_trading_frame",
    "handle_data_message",
    "handle_trading_message",
]

# Subscribable stock channels (§4.1) and the server-managed ones that mirror `trades`.
DATA_CHANNELS: tuple[str, ...] = (
    "trades",
    "quotes",
    "bars",
    "updatedBars",
    "dailyBars",
    "statuses",
    "lulds",
    "imbalances",
)
_MIRRORED = ("corrections", "cancelErrors")
# Channels other feeds have (crypto/options/news) — valid syntax, wrong feed: 410 (§4.4).
_FOREIGN_CHANNELS = frozenset({"orderbooks", "news"})
# Which channel a data message of type `T` belongs to (§4.3).
_CHANNEL_OF_TYPE = {
    "t": "trades",
    "q": "quotes",
    "b": "bars",
    "u": "updatedBars",
    "d": "dailyBars",
    "s": "statuses",
    "l": "lulds",
    "i": "imbalances",
    "c": "corrections",
    "x": "cancelErrors",
}

_DATA_ERRORS: dict[int, str] = {
    400: "invalid syntax",
    401: "not authenticated",
    402: "auth failed",
    403: "already authenticated",
    404: "auth timeout",
    405: "symbol limit exceeded",
    406: "connection limit exceeded",
    407: "slow client",
    409: "insufficient subscription",
    410: "invalid subscribe action for this feed",
    500: "internal error",
}

MSGPACK = "application/msgpack"


class StreamKind(enum.StrEnum):
    """Which websocket a connection is on (the admin API drops them by kind)."""

    TRADING = "trading"
    DATA = "data"


Codec = Literal["json", "msgpack"]

_json_numbers = msgspec.json.Encoder(decimal_format="number")
_msgpack_numbers = msgspec.msgpack.Encoder(decimal_format="number")
_json_strings = msgspec.json.Encoder()
_msgpack_strings = msgspec.msgpack.Encoder()


def codec_for(content_type: str | None) -> Codec:
    """Alpaca switches both streams to msgpack when the handshake says so (§3.1, §4.2)."""
    if content_type and content_type.split(";")[0].strip().lower() == MSGPACK:
        return "msgpack"
    return "json"


def decode_client_frame(kind: WSMsgType, data: str | bytes) -> object:
    """Decode one client message: text frames are JSON, binary frames msgpack (JSON fallback).

    Raises ``ValueError`` for anything undecodable (the caller answers ``400 invalid syntax``).
    """
    try:
        if kind is WSMsgType.TEXT:
            return json.loads(data)
        raw = data if isinstance(data, bytes) else data.encode()
        try:
            return msgspec.msgpack.decode(raw)
        except msgspec.DecodeError:
            return json.loads(raw)
    except (ValueError, msgspec.DecodeError) as exc:
        raise ValueError("invalid syntax") from exc


def _wire_data_message(msg: Mapping[str, Any], codec: Codec) -> dict[str, Any]:
    """`T` first (the Go SDK insists, §4.2); in JSON, times as RFC 3339 UTC like Alpaca's."""
    if codec == "msgpack" and isinstance(msg, dict) and next(iter(msg), None) == "T":
        return msg  # already in wire order (`wire.quote_message`); only encoded, never changed
    out: dict[str, Any] = {"T": msg.get("T")}
    out.update(msg)
    if codec == "json":
        for key in ("t", "created_at", "updated_at"):
            value = out.get(key)
            if isinstance(value, datetime):
                out[key] = value.astimezone(UTC)
    return out


def encode_data_frame(messages: Iterable[Mapping[str, Any]], codec: Codec) -> str | bytes:
    """One market-data frame: a JSON text array, or a msgpack array with Timestamp ``t`` (§4.2)."""
    body = [_wire_data_message(m, codec) for m in messages]
    if codec == "msgpack":
        return _msgpack_numbers.encode(body)
    return _json_numbers.encode(body).decode()


def encode_trading_frame(message: Mapping[str, Any], codec: Codec) -> bytes:
    """One trading-stream frame; always binary, as paper sends it (§3.1, §12.1)."""
    if codec == "msgpack":
        return _msgpack_strings.encode(message)
    return _json_strings.encode(message)


def data_error(code: int) -> dict[str, Any]:
    """A market-data control error message (§4.4)."""
    return {"T": "error", "code": code, "msg": _DATA_ERRORS[code]}


# --------------------------------------------------------------------------- trading protocol


@dataclass(slots=True)
class TradingSession:
    """Per-connection state of the trade_updates protocol."""

    authenticated: bool = False
    key_id: str | None = None
    streams: tuple[str, ...] = ()

    @property
    def listening(self) -> bool:
        """Whether engine events should be forwarded to this connection."""
        return self.authenticated and "trade_updates" in self.streams


def _authorization(status: str, action: str) -> dict[str, Any]:
    return {"stream": "authorization", "data": {"status": status, "action": action}}


def handle_trading_message(
    session: TradingSession,
    msg: object,
    credentials_ok: Callable[[str, str], bool],
) -> list[dict[str, Any]]:
    """Apply one client message to ``session``; return the replies (§3.2)."""
    if not isinstance(msg, dict):
        return [{"stream": "error", "data": {"error_message": "invalid syntax"}}]
    action = msg.get("action")
    data = msg.get("data")
    if action in ("authenticate", "auth"):
        key = data.get("key_id") if isinstance(data, dict) else None
        secret = data.get("secret_key") if isinstance(data, dict) else None
        if isinstance(key, str) and isinstance(secret, str) and credentials_ok(key, secret):
            session.authenticated = True
            session.key_id = key
            return [_authorization("authorized", "authenticate")]
        return [_authorization("unauthorized", "authenticate")]
    if action == "listen":
        if not session.authenticated:
            return [_authorization("unauthorized", "listen")]
        streams = data.get("streams") if isinstance(data, dict) else None
        if not isinstance(streams, list):
            return [{"stream": "error", "data": {"error_message": "invalid syntax"}}]
        # `listen` replaces the whole set; only trade_updates exists on this socket (§3.2).
        session.streams = tuple(s for s in streams if s == "trade_updates")
        return [{"stream": "listening", "data": {"streams": list(session.streams)}}]
    return [{"stream": "error", "data": {"error_message": "unrecognized action"}}]


# ----------------------------------------------------------------------- market-data protocol


@dataclass(slots=True)
class DataSession:
    """Per-connection state of the market-data protocol."""

    authenticated: bool = False
    key_id: str | None = None
    subscriptions: dict[str, set[str]] = field(
        default_factory=lambda: {channel: set() for channel in DATA_CHANNELS}
    )

    def echo(self) -> dict[str, Any]:
        """The full ``subscription`` message (§4.1 step 6)."""
        out: dict[str, Any] = {"T": "subscription"}
        for channel in DATA_CHANNELS:
            out[channel] = sorted(self.subscriptions[channel])
        for channel in _MIRRORED:
            out[channel] = sorted(self.subscriptions["trades"])
        return out

    def wants(self, msg: Mapping[str, Any]) -> bool:
        """Whether a data message matches this connection's subscriptions."""
        channel = _CHANNEL_OF_TYPE.get(str(msg.get("T")))
        if channel is None:
            return False
        if channel in _MIRRORED:
            channel = "trades"
        symbols = self.subscriptions[channel]
        return "*" in symbols or msg.get("S") in symbols

    def symbol_count(self, subscriptions: Mapping[str, set[str]] | None = None) -> int:
        """Distinct concrete symbols across channels (``*`` is free, see module docstring)."""
        subs = self.subscriptions if subscriptions is None else subscriptions
        return len(set().union(*subs.values()) - {"*"})


def _parse_channels(msg: Mapping[str, Any]) -> dict[str, list[str]] | int:
    """The channel → symbols part of a (un)subscribe message, or an error code."""
    out: dict[str, list[str]] = {}
    for key, value in msg.items():
        if key == "action":
            continue
        if key in _FOREIGN_CHANNELS:
            if value:
                return 410
            continue
        if key not in DATA_CHANNELS:
            return 400
        if not isinstance(value, list) or not all(
            isinstance(s, str) and s and s.strip() == s for s in value
        ):
            return 400
        out[key] = value
    return out


def handle_data_message(
    session: DataSession,
    msg: object,
    *,
    credentials_ok: Callable[[str, str], bool],
    claim_connection: Callable[[str], bool],
    symbol_limit: int | None,
) -> list[dict[str, Any]]:
    """Apply one client message to ``session``; return the control replies (§4.1, §4.4).

    ``claim_connection(key)`` asks the hub for the key's connection slot (406 when taken).
    """
    if not isinstance(msg, dict):
        return [data_error(400)]
    action = msg.get("action")
    if action == "auth":
        if session.authenticated:
            return [data_error(403)]
        key, secret = msg.get("key"), msg.get("secret")
        if not (isinstance(key, str) and isinstance(secret, str) and credentials_ok(key, secret)):
            return [data_error(402)]
        if not claim_connection(key):
            return [data_error(406)]
        session.authenticated = True
        session.key_id = key
        return [{"T": "success", "msg": "authenticated"}]
    if action in ("subscribe", "unsubscribe"):
        if not session.authenticated:
            return [data_error(401)]
        parsed = _parse_channels(msg)
        if isinstance(parsed, int):
            return [data_error(parsed)]
        updated = {channel: set(symbols) for channel, symbols in session.subscriptions.items()}
        for channel, symbols in parsed.items():
            if action == "subscribe":
                updated[channel].update(symbols)
            else:
                updated[channel].difference_update(symbols)
        if (
            action == "subscribe"
            and symbol_limit is not None
            and session.symbol_count(updated) > symbol_limit
        ):
            return [data_error(405)]
        session.subscriptions = updated
        return [session.echo()]
    return [data_error(400)]
