"""Scripted Alpaca websocket fakes on loopback for the stream shells' tests.

Not the simulated venue: they speak just enough of ALPACA.md §3 and §4 — the
handshakes, error messages, subscription echoes and data frames — for a test to
drive a stream through connects, drops, refusals and silence, and to observe what
the client sent. Each fake records its connections; `wait_*` helpers wait on events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed


@dataclass
class FakeDataStream:
    """Market-data fake (§4): connected → auth → subscribe → arrays of messages."""

    key_id: str = "KEY"
    secret_key: str = "SECRET"
    #: error to answer the auth message with (e.g. 406, 402); None: authenticate.
    refuse_auth: list[tuple[int, str]] = field(default_factory=list)
    url: str = ""
    connections: int = 0
    open_now: int = 0
    max_open: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    subscribed: set[str] = field(default_factory=set)
    codecs: list[str] = field(default_factory=list)
    _current: ServerConnection | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def _encode(self, conn: ServerConnection, messages: list[dict[str, Any]]) -> bytes | str:
        if conn.request is not None and conn.request.headers.get("Content-Type") == (
            "application/msgpack"
        ):
            return msgspec.msgpack.encode(messages)
        return msgspec.json.encode(messages).decode()

    def _decode(self, frame: bytes | str) -> dict[str, Any]:
        if isinstance(frame, bytes):
            decoded: dict[str, Any] = msgspec.msgpack.decode(frame)
        else:
            decoded = msgspec.json.decode(frame)
        return decoded

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, what: str, predicate: Any) -> None:
        """Wait (event-driven) until `predicate()` holds; fails after 5 s with `what`."""
        try:
            async with asyncio.timeout(5), self._changed:
                await self._changed.wait_for(predicate)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None

    async def handler(self, conn: ServerConnection) -> None:
        self.connections += 1
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        headers = conn.request.headers if conn.request is not None else {}
        self.codecs.append("msgpack" if headers.get("Content-Type") else "json")
        try:
            await conn.send(self._encode(conn, [{"T": "success", "msg": "connected"}]))
            auth = self._decode(await conn.recv())
            self.received.append(auth)
            if self.refuse_auth:
                code, msg = self.refuse_auth.pop(0)
                await conn.send(self._encode(conn, [{"T": "error", "code": code, "msg": msg}]))
                await conn.close()
                return
            await conn.send(self._encode(conn, [{"T": "success", "msg": "authenticated"}]))
            self.subscribed = set()
            self._current = conn
            await self._notify()
            async for frame in conn:
                message = self._decode(frame)
                self.received.append(message)
                if message.get("action") == "subscribe":
                    self.subscribed |= set(message.get("quotes", []))
                elif message.get("action") == "unsubscribe":
                    self.subscribed -= set(message.get("quotes", []))
                echo = {"T": "subscription", "quotes": sorted(self.subscribed),
                        "trades": sorted(self.subscribed), "bars": []}  # fmt: skip
                await conn.send(self._encode(conn, [echo]))
                await self._notify()
        except ConnectionClosed:
            pass
        finally:
            self.open_now -= 1
            if self._current is conn:
                self._current = None
            await self._notify()

    async def send(self, messages: list[dict[str, Any]]) -> None:
        """Send one frame to the current connection."""
        conn = self._current
        assert conn is not None, "no client connected"
        await conn.send(self._encode(conn, messages))

    async def drop(self) -> None:
        """Kill the current connection without a close handshake (the client sees 1006)."""
        conn = self._current
        assert conn is not None
        conn.transport.abort()
        await self.wait_for("the drop", lambda: self._current is None)

    @property
    def live(self) -> bool:
        """A client is authenticated right now."""
        return self._current is not None


@dataclass
class FakeTradingStream:
    """trade_updates fake (§3): authenticate → authorization, listen → listening."""

    key_id: str = "KEY"
    secret_key: str = "SECRET"
    binary: bool = True
    url: str = ""
    connections: int = 0
    refuse: int = 0
    _current: ServerConnection | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, what: str, predicate: Any) -> None:
        """Wait (event-driven) until `predicate()` holds; fails after 5 s with `what`."""
        try:
            async with asyncio.timeout(5), self._changed:
                await self._changed.wait_for(predicate)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None

    async def _send(self, conn: ServerConnection, message: dict[str, Any]) -> None:
        data = msgspec.json.encode(message)
        await conn.send(data if self.binary else data.decode())

    async def handler(self, conn: ServerConnection) -> None:
        self.connections += 1
        try:
            auth = msgspec.json.decode(await conn.recv())
            ok = auth["data"] == {"key_id": self.key_id, "secret_key": self.secret_key}
            if self.refuse > 0:
                self.refuse -= 1
                ok = False
            status = "authorized" if ok else "unauthorized"
            answer = {"status": status, "action": "authenticate"}
            await self._send(conn, {"stream": "authorization", "data": answer})
            if not ok:
                await conn.close()
                return
            listen = msgspec.json.decode(await conn.recv())
            assert listen["action"] == "listen"
            await self._send(conn, {"stream": "listening", "data": listen["data"]})
            self._current = conn
            await self._notify()
            async for _ in conn:
                pass
        except ConnectionClosed:
            pass
        finally:
            if self._current is conn:
                self._current = None
            await self._notify()

    async def send_raw(self, frame: bytes | str) -> None:
        """Send a frame as is (for malformed-frame tests)."""
        assert self._current is not None
        await self._current.send(frame)

    async def update(self, data: dict[str, Any]) -> None:
        """Send one trade_updates event."""
        assert self._current is not None, "no client listening"
        await self._send(self._current, {"stream": "trade_updates", "data": data})

    async def drop(self) -> None:
        """Kill the current connection (1006 on the client)."""
        conn = self._current
        assert conn is not None
        conn.transport.abort()
        await self.wait_for("the drop", lambda: self._current is None)

    @property
    def live(self) -> bool:
        """A client is listening right now."""
        return self._current is not None


@contextlib.asynccontextmanager
async def running(fake: FakeDataStream | FakeTradingStream, path: str) -> AsyncIterator[Any]:
    """Serve `fake` on 127.0.0.1 at an ephemeral port; sets `fake.url`."""
    server: Server = await serve(fake.handler, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    fake.url = f"ws://127.0.0.1:{port}{path}"
    try:
        yield fake
    finally:
        server.close()
        await server.wait_closed()
