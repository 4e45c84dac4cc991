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
:func:`handle_data_message`, :func:`encode_data_frame`, ...); :class:`StreamHub` is the thin
aiohttp shell that owns the sockets, fans engine events out and lets the admin API drop them.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import json
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from aiohttp import WSMsgType, web

__all__ = [
    "DATA_CHANNELS",
    "Codec",
    "DataSession",
    "StreamHub",
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


# ------------------------------------------------------------------------------- aiohttp shell

_ids = itertools.count(1)


@dataclass(eq=False, slots=True)
class _Connection:
    """One open websocket and its outgoing queue (items: ("control"|"data"|"close", message)).

    ``closing`` is set once a close is queued (nothing is queued after it); ``cutoff`` is the
    timer that aborts the TCP connection if the client has not taken the close by then.
    """

    kind: StreamKind
    ws: web.WebSocketResponse
    request: web.Request
    codec: Codec
    feed: str = ""
    trading: TradingSession | None = None
    data: DataSession | None = None
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = field(default_factory=asyncio.Queue)
    ident: int = field(default_factory=lambda: next(_ids))
    closing: bool = False
    cutoff: asyncio.TimerHandle | None = None

    def cut(self) -> None:
        """Abort the TCP connection (no close frame; the client sees 1006). A no-op once the
        transport is gone. Needed for a client that stopped reading: a close frame cannot reach
        it, and a graceful ``transport.close()`` would wait for it forever."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Knobs of the streams (§0.4, §4.1, §4.4).

    A client that stops reading (§4.4 ``407 slow client``; Alpaca documents no figures, so the
    model is websockets' server: writes back up into the socket buffers, then into a bounded
    queue): once ``slow_client_backlog`` messages wait for one connection, the backlog is
    discarded, a market-data client is sent ``407 slow client``, and the connection is closed;
    a client that has not taken the close after ``slow_client_timeout`` seconds is cut (TCP
    abort). Memory per connection is therefore bounded, and nobody else waits for it: the
    engine's fan-out only ever queues without awaiting.
    """

    symbol_limit: int | None = 30  # free IEX plan: 30 symbols
    auth_timeout: float = 10.0  # seconds to authenticate before `404 auth timeout`
    connections_per_key: int = 1  # `406 connection limit exceeded` beyond this, per feed
    slow_client_backlog: int = 10_000  # messages queued for one connection (each kind)
    slow_client_timeout: float = 1.0  # seconds a hung-up client has to take the close
    # SO_SNDBUF of each stream socket in bytes (None: the kernel's, which autotunes to MBs on
    # loopback); small values make a stalled client back up at once (tests).
    send_buffer: int | None = None

    def __post_init__(self) -> None:
        if self.slow_client_backlog < 1:
            raise ValueError("slow_client_backlog must be >= 1")
        if not self.slow_client_timeout > 0:  # also refuses NaN
            raise ValueError("slow_client_timeout must be > 0")
        if self.send_buffer is not None and self.send_buffer < 1:
            raise ValueError("send_buffer must be >= 1 byte (None: the kernel's)")


class StreamHub:
    """Owns every websocket: runs the protocols, fans engine events out, drops on request.

    Attach it to the engine with :meth:`attach` (it subscribes to the engine's trade-update and
    market-data listeners) and register :meth:`trading_handler` / :meth:`data_handler` as routes.
    """

    def __init__(
        self,
        credentials_ok: Callable[[str, str], bool],
        options: StreamOptions | None = None,
    ) -> None:
        self._credentials_ok = credentials_ok
        self.options = options or StreamOptions()
        self._connections: set[_Connection] = set()
        self._changed = asyncio.Condition()
        self._detach: list[Callable[[], None]] = []
        # Told which concrete symbols a data connection subscribed to (the venue starts their
        # market if it was not running yet).
        self.on_subscribe: Callable[[set[str]], None] | None = None
        # Told each market-data frame's messages once its bytes are handed to the transport
        # (the reaction bench stamps there: the venue has *written* the quote, issue 14).
        self.on_data_frame_sent: Callable[[list[dict[str, Any]]], None] | None = None
        self._muted_until: dict[StreamKind, float] = {}
        self._refused_until: dict[StreamKind, tuple[float, int]] = {}
        self._closing = False

    # ------------------------------------------------------------------ engine side

    def attach(
        self,
        on_trade_update: Callable[[Callable[[dict[str, Any]], None]], Callable[[], None]],
        on_market_data: Callable[[Callable[[dict[str, Any]], None]], Callable[[], None]],
    ) -> None:
        """Subscribe to the engine's event sources (``Exchange.on_trade_update`` etc.)."""
        self._detach.append(on_trade_update(self.publish_trade_update))
        self._detach.append(on_market_data(self.publish_market_data))

    def detach(self) -> None:
        """Unsubscribe from the engine."""
        while self._detach:
            self._detach.pop()()

    def _refusal(self, kind: StreamKind) -> int | None:
        """The HTTP status new connections of ``kind`` are refused with now (None: accepted)."""
        refused = self._refused_until.get(kind)
        if refused is None or time.monotonic() >= refused[0]:
            return None
        return refused[1]

    def _muted(self, kind: StreamKind) -> bool:
        until = self._muted_until.get(kind)
        return until is not None and time.monotonic() < until

    def publish_trade_update(self, payload: dict[str, Any]) -> None:
        """Forward one engine trade update to every listening trading connection (§3.3)."""
        if self._muted(StreamKind.TRADING):
            return
        message = {"stream": "trade_updates", "data": payload}
        for conn in list(self._connections):
            if conn.trading is not None and conn.trading.listening:
                self._push_or_drop(conn, "control", message)

    def publish_market_data(self, message: dict[str, Any]) -> None:
        """Forward one engine quote/trade/bar to every connection subscribed to it (§4.1)."""
        if self._muted(StreamKind.DATA):
            return
        for conn in list(self._connections):
            if conn.data is not None and conn.data.authenticated and conn.data.wants(message):
                self._push_or_drop(conn, "data", message)

    def _push_or_drop(self, conn: _Connection, item_kind: str, message: dict[str, Any]) -> None:
        """Queue one message for ``conn``; hang up a client whose backlog is full (§4.4).

        Every message to a client goes through here (replies to its own requests too, so a
        client that floods requests and reads nothing is bounded the same way). Never awaits:
        the engine's fan-out must not wait for any client.
        """
        if conn.closing:
            return  # hung up: nothing more is sent
        if conn.queue.qsize() < self.options.slow_client_backlog:
            conn.queue.put_nowait((item_kind, message))
            return
        # 407 slow client (§4.4): what is queued is stale by now; tell the client (if it
        # still reads), then hang up.
        with contextlib.suppress(asyncio.QueueEmpty):
            while True:
                conn.queue.get_nowait()
        notice = data_error(407) if conn.kind is StreamKind.DATA else None
        self._hang_up(conn, notice)

    def _hang_up(self, conn: _Connection, notice: dict[str, Any] | None = None) -> None:
        """Queue ``notice`` (if any) and a close frame, and arm the cut-off: a client that has
        not completed the close within ``slow_client_timeout`` is aborted (it may have stopped
        reading, leaving the writer blocked on a full socket)."""
        if conn.closing:
            return
        conn.closing = True
        if notice is not None:
            conn.queue.put_nowait(("control", notice))
        conn.queue.put_nowait(("close", {}))
        self._arm_cutoff(conn)

    def _arm_cutoff(self, conn: _Connection) -> None:
        if conn.cutoff is None:
            loop = asyncio.get_running_loop()
            conn.cutoff = loop.call_later(self.options.slow_client_timeout, conn.cut)

    # ------------------------------------------------------------------ admin side

    @staticmethod
    def _ready(conn: _Connection) -> bool:
        """Trading: authenticated and listening; data: authenticated."""
        if conn.trading is not None:
            return conn.trading.listening
        return conn.data is not None and conn.data.authenticated

    def count(self, kind: StreamKind | None = None, *, ready: bool = False) -> int:
        """Open connections (optionally of one kind, optionally only ready ones)."""
        return sum(
            1
            for conn in self._connections
            if (kind is None or conn.kind is kind) and (not ready or self._ready(conn))
        )

    def statistics(self) -> dict[str, Any]:
        """Connection counts for the admin API and tests."""
        return {
            kind.value: {
                "connections": self.count(kind),
                "ready": self.count(kind, ready=True),
                "muted": self._muted(kind),
                "refusing": self._refusal(kind) is not None,
                "backlog": max(
                    (c.queue.qsize() for c in self._connections if c.kind is kind), default=0
                ),
            }
            for kind in StreamKind
        }

    async def wait_connections(self, kind: StreamKind, count: int, *, ready: bool = True) -> None:
        """Wait until exactly ``count`` connections of ``kind`` are open (and ready).

        Ready means listening for trade_updates, or authenticated on the market-data stream.
        """
        async with self._changed:
            await self._changed.wait_for(lambda: self.count(kind, ready=ready) == count)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def refuse(self, kind: StreamKind, seconds: float, status: int = 429) -> None:
        """Answer new connections of ``kind`` with HTTP ``status`` for ``seconds`` (open ones
        stay). Alpaca refuses reconnections until it has reaped a dead session: 429 on the
        trading stream's handshake, 406 on market data, for up to ~90 s (ALPACA.md §3.1, §9)."""
        self._refused_until[kind] = (time.monotonic() + seconds, status)

    def mute(self, kind: StreamKind, seconds: float) -> None:
        """Keep the sockets of ``kind`` open but deliver no events for ``seconds`` (§9 silent)."""
        self._muted_until[kind] = time.monotonic() + seconds

    async def drop(self, kind: StreamKind | None = None, *, abort: bool = False) -> int:
        """Close every connection of ``kind`` (all if None); return how many were dropped.

        ``abort`` kills the TCP connection without a close frame (the client sees 1006, like a
        network loss); otherwise a normal close frame (1001 going away) is sent.
        """
        victims = [c for c in self._connections if kind is None or c.kind is kind]
        for conn in victims:
            if abort:
                conn.cut()
            else:
                self._hang_up(conn)
        return len(victims)

    async def shutdown(self) -> None:
        """Close every connection (venue shutdown), all at once: a client that does not take
        its close within ``slow_client_timeout`` is cut rather than waited for."""
        self._closing = True
        async with asyncio.TaskGroup() as closing:
            for conn in list(self._connections):
                closing.create_task(self._close(conn, b"venue shutting down"))
        self.detach()

    async def _close(self, conn: _Connection, message: bytes) -> None:
        """Close ``conn``'s websocket (1001) within ``slow_client_timeout``, else cut it."""
        try:
            async with asyncio.timeout(self.options.slow_client_timeout):
                await conn.ws.close(code=1001, message=message)
        except TimeoutError:
            conn.cut()

    # ------------------------------------------------------------------ sockets

    async def _writer(self, conn: _Connection) -> None:
        """Send queued messages until a close; a client gone away ends it quietly (the reader
        sees the same loss and ends the connection)."""
        with contextlib.suppress(ConnectionError):
            await self._write(conn)

    async def _write(self, conn: _Connection) -> None:
        """Send queued messages: data batched into one array, control messages alone (§4.1)."""
        ws = conn.ws
        while True:
            items = [await conn.queue.get()]
            while not conn.queue.empty():
                items.append(conn.queue.get_nowait())
            batch: list[dict[str, Any]] = []
            for item_kind, message in items:
                if item_kind == "data":
                    batch.append(message)
                    continue
                if batch:
                    await self._send_data(conn, batch)
                    batch = []
                if item_kind == "close":
                    await self._close(conn, b"going away")
                    return
                if conn.kind is StreamKind.TRADING:
                    await ws.send_bytes(encode_trading_frame(message, conn.codec))
                else:
                    await self._send_data(conn, [message])
            if batch:
                await self._send_data(conn, batch)

    async def _send_data(self, conn: _Connection, messages: list[dict[str, Any]]) -> None:
        frame = encode_data_frame(messages, conn.codec)
        # aiohttp hands an uncompressed or small compressed frame to the transport before its
        # first await (it then awaits only a paused transport's drain).
        if isinstance(frame, bytes):
            await conn.ws.send_bytes(frame)
        else:
            await conn.ws.send_str(frame)
        if self.on_data_frame_sent is not None:
            self.on_data_frame_sent(messages)

    def _size_send_buffer(self, request: web.Request) -> None:
        """Apply ``options.send_buffer`` to the connection's socket (before the upgrade)."""
        if self.options.send_buffer is None or request.transport is None:
            return
        sock = request.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.options.send_buffer)

    async def _serve(self, conn: _Connection, reader: Callable[[], Any]) -> None:
        """Run a connection: register, read until closed while its writer sends, clean up.

        The writer is a child in a TaskGroup, so the clean-up waits for it without absorbing a
        cancel of this task: a cancel that arrives while the writer winds down still ends the
        connection cancelled (STYLE: CancelledError is always re-raised), and a crash of the
        writer ends the connection and propagates (aiohttp logs it) instead of leaving a
        client that silently receives nothing.
        """
        self._connections.add(conn)
        try:
            await self._notify()
            async with asyncio.TaskGroup() as tasks:
                writer = tasks.create_task(self._writer(conn), name=f"sim-ws-writer-{conn.ident}")
                try:
                    await reader()
                finally:
                    writer.cancel()
        finally:
            self._connections.discard(conn)
            # A close aiohttp started itself may wait for a client that stopped reading.
            self._arm_cutoff(conn)
            if not conn.ws.closed:
                await self._close(conn, b"going away")
            await self._notify()

    async def trading_handler(self, request: web.Request) -> web.StreamResponse:
        """``GET /stream``: the trade_updates websocket (§3)."""
        refusal = self._refusal(StreamKind.TRADING)
        if refusal is not None:
            return _refused(refusal)
        self._size_send_buffer(request)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = _Connection(
            kind=StreamKind.TRADING,
            ws=ws,
            request=request,
            codec=codec_for(request.headers.get("Content-Type")),
            trading=TradingSession(),
        )

        async def read() -> None:
            session = conn.trading
            assert session is not None
            async for frame in ws:
                if frame.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                try:
                    msg = decode_client_frame(frame.type, frame.data)
                except ValueError:
                    msg = None
                for reply in handle_trading_message(session, msg, self._credentials_ok):
                    self._push_or_drop(conn, "control", reply)
                await self._notify()

        await self._serve(conn, read)
        return ws

    def _claim(self, conn: _Connection) -> Callable[[str], bool]:
        def claim(key: str) -> bool:
            taken = sum(
                1
                for other in self._connections
                if other is not conn
                and other.kind is StreamKind.DATA
                and other.feed == conn.feed
                and other.data is not None
                and other.data.authenticated
                and other.data.key_id == key
            )
            return taken < self.options.connections_per_key

        return claim

    async def data_handler(self, request: web.Request) -> web.StreamResponse:
        """``GET /v2/{iex,sip,test,...}``: the market-data websocket (§4)."""
        refusal = self._refusal(StreamKind.DATA)
        if refusal is not None:
            return _refused(refusal)
        self._size_send_buffer(request)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = _Connection(
            kind=StreamKind.DATA,
            ws=ws,
            request=request,
            codec=codec_for(request.headers.get("Content-Type")),
            feed=request.path,
            data=DataSession(),
        )
        session = conn.data
        assert session is not None
        claim = self._claim(conn)

        def apply(msg: object) -> None:
            for reply in handle_data_message(
                session,
                msg,
                credentials_ok=self._credentials_ok,
                claim_connection=claim,
                symbol_limit=self.options.symbol_limit,
            ):
                self._push_or_drop(conn, "control", reply)
            if self.on_subscribe is not None and session.authenticated:
                wanted = set().union(*session.subscriptions.values()) - {"*"}
                if wanted:
                    self.on_subscribe(wanted)

        async def read() -> None:
            self._push_or_drop(conn, "control", {"T": "success", "msg": "connected"})
            # Header authentication (§4.1 step 3) counts as an `auth` message.
            key = request.headers.get("APCA-API-KEY-ID")
            secret = request.headers.get("APCA-API-SECRET-KEY")
            if key is not None and secret is not None:
                apply({"action": "auth", "key": key, "secret": secret})
                await self._notify()
            deadline = asyncio.get_running_loop().time() + self.options.auth_timeout
            timed_out = False
            while True:
                timeout: float | None = None
                if not session.authenticated and not timed_out:
                    timeout = deadline - asyncio.get_running_loop().time()
                    if timeout <= 0:
                        # §4.1 step 3: no auth in time -> 404 auth timeout, then hang up.
                        self._hang_up(conn, data_error(404))
                        timed_out = True
                        timeout = None
                try:
                    frame = await ws.receive(timeout=timeout)
                except TimeoutError:
                    continue
                if frame.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    return
                try:
                    msg = decode_client_frame(frame.type, frame.data)
                except ValueError:
                    msg = None
                apply(msg)
                await self._notify()

        await self._serve(conn, read)
        return ws


def _refused(status: int) -> web.Response:
    """The answer to a websocket upgrade while connections are refused (``refuse``)."""
    message = "connection limit exceeded" if status == 406 else "too many requests"
    return web.json_response({"code": status * 100000 + 10000, "message": message}, status=status)
