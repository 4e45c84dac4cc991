"""A connection's clean-up never absorbs a cancel (STYLE: ``CancelledError`` is always re-raised).

``StreamHub._serve`` reads until the client is done, then stops the connection's writer and
waits for it. A cancel of the serving task that lands in that wait (the venue closing just as a
client leaves) must end the task cancelled; it used to be swallowed with the writer's own
``CancelledError``, so the task returned normally with its cancel request still counted.

The hub, its writer and the websocket are real, over loopback; only the reader is the test's,
so that the cancel lands exactly there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web

from execd.sim.streams import DataSession, StreamKind
from execd.sim.streams_hub import StreamHub, _Connection
from tests.sim.conftest import DEADLINE, within

Reader = Callable[[web.WebSocketResponse], Awaitable[None]]


class _Served:
    """A one-route aiohttp app whose websocket handler runs ``hub._serve`` with a given reader
    and records how the serving task ended: "cancelled", "returned" or "raised <type>"."""

    def __init__(self, reader: Reader) -> None:
        self.hub = StreamHub(lambda key, secret: True)
        self.reader = reader
        self.outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.url = ""

    async def handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = _Connection(
            kind=StreamKind.DATA, ws=ws, request=request, codec="json", data=DataSession()
        )
        try:
            await self.hub._serve(conn, lambda: self.reader(ws))
        except asyncio.CancelledError:
            self.outcome.set_result("cancelled")
            raise
        except Exception as exc:
            self.outcome.set_result(f"raised {type(exc).__name__}")
            raise
        self.outcome.set_result("returned")
        return ws


@contextlib.asynccontextmanager
async def served(reader: Reader) -> AsyncIterator[_Served]:
    """Run a :class:`_Served` app for ``reader`` on a loopback port."""
    app_state = _Served(reader)
    app = web.Application()
    app.router.add_get("/ws", app_state.handler)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        app_state.url = f"ws://127.0.0.1:{runner.addresses[0][1]}/ws"
        yield app_state
    finally:
        await runner.cleanup()


async def cancelled_as_it_returns(ws: web.WebSocketResponse) -> None:
    """A reader whose task is cancelled just as it finishes: the cancel is delivered at the
    clean-up's first wait, the one for the writer."""
    task = asyncio.current_task()
    assert task is not None
    task.cancel()


async def read_until_closed(ws: web.WebSocketResponse) -> None:
    """The ordinary reader's shape: read until the websocket closes."""
    async for _ in ws:
        pass


async def test_a_cancel_during_the_writer_wait_ends_the_connection_cancelled() -> None:
    """The serving task ends cancelled, the connection is deregistered and the client sees
    its socket closed."""
    async with (
        served(cancelled_as_it_returns) as app,
        aiohttp.ClientSession() as http,
        http.ws_connect(app.url) as client,
    ):
        assert await within(app.outcome) == "cancelled"
        await within(app.hub.wait_connections(StreamKind.DATA, 0, ready=False))
        closing = await client.receive(timeout=DEADLINE)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_a_writer_that_crashes_ends_the_connection_loudly() -> None:
    """A bug in the writer (here: a message the encoder cannot encode) ends the connection
    and propagates out of the handler (aiohttp logs it), instead of leaving a client that
    silently receives nothing until it hangs up itself."""
    async with (
        served(read_until_closed) as app,
        aiohttp.ClientSession() as http,
        http.ws_connect(app.url) as client,
    ):
        await within(app.hub.wait_connections(StreamKind.DATA, 1, ready=False))
        [conn] = app.hub._connections
        conn.queue.put_nowait(("data", {"T": "q", "S": "SPY", "bad": object()}))
        closing = await client.receive(timeout=DEADLINE)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert await within(app.outcome) == "raised ExceptionGroup"
        await within(app.hub.wait_connections(StreamKind.DATA, 0, ready=False))
