"""The aiohttp shell of the venue's two websockets (the protocols: :mod:`execd.sim.streams`).

:class:`StreamHub` owns every open stream socket: it runs the pure protocol functions on what
clients send, fans the engine's trade updates and market data out to the connections that want
them, bounds what waits for a client that stops reading (ALPACA.md §4.4 ``407 slow client``,
see :class:`StreamOptions`) and lets the admin API mute, refuse or drop connections.
Each connection is one aiohttp handler task running :meth:`StreamHub._serve`: a reader and a
writer in one TaskGroup, so nothing outlives the connection and a cancel always propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from execd.sim.streams import (
    Codec,
    DataSession,
    StreamKind,
    TradingSession,
    codec_for,
    data_error,
    decode_client_frame,
    encode_data_frame,
    encode_trading_frame,
    handle_data_message,
    handle_trading_message,
)

__all__ = ["StreamHub", "StreamOptions"]

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
    # The writer is inside a send that began on a full socket (it may be waiting for the
    # client to take bytes; still set after asyncio resumes writing, until the writer runs).
    stuck: bool = False

    def socket_full(self) -> bool:
        """Whether the client's socket is backed up: the kernel's send buffer is full and the
        transport's buffer past its high-water mark (asyncio has paused writing), the writer
        is still in a send that began so, or the transport is gone. Only then does what is
        queued wait *for the client*; otherwise the writer sends the whole backlog on its next
        turn of the loop."""
        transport = self.request.transport
        if self.stuck or transport is None or transport.is_closing():
            return True
        return self.request.protocol.writing_paused

    async def send(self, frame: bytes | str) -> None:
        """Send one frame, marking the connection ``stuck`` while a send that began on a full
        socket is in progress (see :meth:`socket_full`)."""
        self.stuck = self.socket_full()
        try:
            if isinstance(frame, bytes):
                await self.ws.send_bytes(frame)
            else:
                await self.ws.send_str(frame)
        finally:
            self.stuck = False

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
    queue): once ``slow_client_backlog`` messages wait for one connection *behind a full
    socket*, the backlog is discarded, a market-data client is sent ``407 slow client``, and
    the connection is closed; a client that has not taken the close after
    ``slow_client_timeout`` seconds is cut (TCP abort). Memory per connection is therefore
    bounded, and nobody else waits for it: the engine's fan-out only ever queues without
    awaiting.

    The count alone would blame the client for the venue's own lateness: the engine catches
    up to the wall clock in one synchronous fan-out (``Exchange.advance_to``, also on every
    REST request), so after the venue's loop fell behind, a burst larger than the bound is
    queued before any writer runs once, for clients that had nothing waiting (review 11).
    While a client's socket still takes bytes its backlog is the venue's burst, not the
    client's slowness: it is kept, and the writer sends all of it as one frame on its next
    turn (so such a backlog never outgrows one catch-up burst, whose messages the fan-out
    shares between connections).
    """

    symbol_limit: int | None = 30  # free IEX plan: 30 symbols
    auth_timeout: float = 10.0  # seconds to authenticate before `404 auth timeout`
    connections_per_key: int = 1  # `406 connection limit exceeded` beyond this, per feed
    slow_client_backlog: int = 10_000  # messages queued for one connection (each kind)
    slow_client_timeout: float = 1.0  # seconds a hung-up client has to take the close
    # Bytes the venue buffers per stream socket before the backlog starts growing: SO_SNDBUF,
    # the transport's high-water mark and aiohttp's websocket writer limit (None: their
    # defaults, MBs of kernel buffer autotuned on loopback plus 64 KiB each); small values
    # make a stalled client back up at once (tests).
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
        """Queue one message for ``conn``; hang up a client whose backlog is full while its
        socket is backed up (§4.4; why both: :class:`StreamOptions`).

        Every message to a client goes through here (replies to its own requests too, so a
        client that floods requests and reads nothing is bounded the same way). Never awaits:
        the engine's fan-out must not wait for any client.
        """
        if conn.closing:
            return  # hung up: nothing more is sent
        if conn.queue.qsize() < self.options.slow_client_backlog or not conn.socket_full():
            # Below the bound, or a burst of the venue's own (its socket still takes bytes:
            # the writer sends the whole backlog on its next turn; StreamOptions).
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
                    await conn.send(encode_trading_frame(message, conn.codec))
                else:
                    await self._send_data(conn, [message])
            if batch:
                await self._send_data(conn, batch)

    async def _send_data(self, conn: _Connection, messages: list[dict[str, Any]]) -> None:
        frame = encode_data_frame(messages, conn.codec)
        # aiohttp hands an uncompressed or small compressed frame to the transport before its
        # first await (it then awaits only a paused transport's drain).
        await conn.send(frame)
        if self.on_data_frame_sent is not None:
            self.on_data_frame_sent(messages)

    async def _accept(
        self,
        request: web.Request,
        kind: StreamKind,
        *,
        feed: str = "",
        trading: TradingSession | None = None,
        data: DataSession | None = None,
    ) -> _Connection | web.Response:
        """An upgraded connection of `kind`, or the refusal a fault asked for (both
        streams' handlers start so)."""
        refusal = self._refusal(kind)
        if refusal is not None:
            return _refused(refusal)
        ws = self._websocket(request)
        await ws.prepare(request)
        return _Connection(
            kind=kind,
            ws=ws,
            request=request,
            codec=codec_for(request.headers.get("Content-Type")),
            feed=feed,
            trading=trading,
            data=data,
        )

    def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        """The response for an upgrade, its buffering sized by ``options.send_buffer``."""
        size = self.options.send_buffer
        if size is None:
            return web.WebSocketResponse(autoping=True)
        transport = request.transport
        if transport is not None:
            transport.set_write_buffer_limits(high=size)
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        return web.WebSocketResponse(autoping=True, writer_limit=size)

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
        conn = await self._accept(request, StreamKind.TRADING, trading=TradingSession())
        if not isinstance(conn, _Connection):
            return conn
        ws = conn.ws

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
        conn = await self._accept(request, StreamKind.DATA, feed=request.path, data=DataSession())
        if not isinstance(conn, _Connection):
            return conn
        ws = conn.ws
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
