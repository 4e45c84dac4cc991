"""The Unix-socket server over real sockets: permissions, stale sockets, peers, errors, watch."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from execd.control.protocol import MAX_LINE_BYTES
from execd.control.server import ControlServer, ControlSocketError, serve
from tests.control.fakes import FakeEngine, plan_doc, running_server, short_tmpdir

_LIMIT = 8 * 1024 * 1024


class Conn:
    """A raw client connection: write bytes, read answer lines as parsed JSON."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def line(self) -> dict[str, Any]:
        raw = await self.reader.readuntil(b"\n")
        doc: dict[str, Any] = json.loads(raw)
        return doc

    async def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        await self.send(json.dumps(request).encode() + b"\n")
        return await self.line()


@asynccontextmanager
async def connect(path: Path) -> AsyncIterator[Conn]:
    reader, writer = await asyncio.open_unix_connection(str(path), limit=_LIMIT)
    try:
        yield Conn(reader, writer)
    finally:
        writer.close()
        await writer.wait_closed()


# --- the socket file ------------------------------------------------------------------------


async def test_socket_is_0600_in_a_new_0700_directory() -> None:
    """The socket file is owner-only and the directory it creates is owner-only."""
    async with running_server() as (server, _):
        assert stat.S_ISSOCK(server.path.lstat().st_mode)
        assert stat.S_IMODE(server.path.lstat().st_mode) == 0o600
        assert stat.S_IMODE(server.path.parent.stat().st_mode) == 0o700


async def test_group_socket_is_0660_owned_by_the_group() -> None:
    """With a socket group the file is 0660 and belongs to that group."""
    gid = os.getegid()
    async with running_server(group=gid) as (server, _):
        st = server.path.lstat()
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert st.st_gid == gid


async def test_socket_file_is_removed_on_close() -> None:
    """A clean close leaves no socket file behind."""
    async with running_server() as (server, _):
        path = server.path
    assert not path.exists()


async def test_stale_socket_from_a_dead_daemon_is_replaced() -> None:
    """A socket file nobody listens on (a crashed daemon's) is replaced, not an error."""
    with short_tmpdir() as tmp:
        path = tmp / "execd.sock"
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dead.bind(str(path))
        dead.close()  # the file stays, nobody listens: ECONNREFUSED
        async with ControlServer(FakeEngine(), path), connect(path) as conn:
            assert (await conn.ask({"op": "health"}))["ok"] is True


async def test_refuses_to_start_when_another_daemon_answers() -> None:
    """Starting a second daemon on a live socket fails and leaves the first one serving."""
    async with running_server() as (server, _):
        with pytest.raises(ControlSocketError, match="already serving"):
            await ControlServer(FakeEngine(), server.path).start()
        async with connect(server.path) as conn:
            assert (await conn.ask({"op": "health"}))["ok"] is True


async def test_refuses_to_replace_a_regular_file() -> None:
    """A path holding something other than a socket is never deleted."""
    with short_tmpdir() as tmp:
        path = tmp / "execd.sock"
        path.write_text("not a socket")
        with pytest.raises(ControlSocketError, match="not a socket"):
            await ControlServer(FakeEngine(), path).start()
        assert path.read_text() == "not a socket"


async def test_serve_signals_readiness_and_stops_on_cancel() -> None:
    """`serve` sets `ready` once bound (the daemon's handshake) and cleans up when cancelled."""
    with short_tmpdir() as tmp:
        path = tmp / "execd.sock"
        ready = asyncio.Event()
        task = asyncio.create_task(serve(FakeEngine(), path, ready=ready))
        await ready.wait()
        async with connect(path) as conn:
            assert (await conn.ask({"op": "health"}))["ok"] is True
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not path.exists()


async def test_serve_startup_failure_propagates_in_a_task_group() -> None:
    """A failed start raises out of the TaskGroup instead of leaving the ready-waiter hanging."""
    async with running_server() as (server, _):
        ready = asyncio.Event()

        async def daemon() -> None:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(serve(FakeEngine(), server.path, ready=ready))
                await ready.wait()

        with pytest.raises(ExceptionGroup) as caught:
            await daemon()
        assert caught.group_contains(ControlSocketError)
        assert not ready.is_set()


# --- peers ----------------------------------------------------------------------------------


async def test_peer_with_a_disallowed_uid_is_refused() -> None:
    """SO_PEERCRED: a uid outside allowed_uids gets one `forbidden` line and is disconnected."""
    not_me = os.geteuid() + 4242
    async with running_server(allowed_uids={not_me}) as (server, _), connect(server.path) as conn:
        answer = await conn.line()
        assert answer["ok"] is False
        assert answer["error"]["code"] == "forbidden"
        assert str(os.geteuid()) in answer["error"]["message"]
        assert await conn.reader.read() == b""


async def test_allowed_peer_is_served() -> None:
    """The daemon's own uid is allowed by default."""
    async with running_server() as (server, _), connect(server.path) as conn:
        answer = await conn.ask({"op": "health"})
        assert answer["ok"] is True
        assert answer["result"]["request_budget_left"] == 187


# --- requests and errors --------------------------------------------------------------------


async def test_bad_lines_get_errors_and_the_connection_goes_on() -> None:
    """Invalid JSON, unknown op, missing field: each answered, then a good request works."""
    async with running_server() as (server, _), connect(server.path) as conn:
        await conn.send(b"{oops\n")
        assert (await conn.line())["error"]["code"] == "invalid_json"
        assert (await conn.ask({"op": "fly"}))["error"]["code"] == "unknown_op"
        assert (await conn.ask({"op": "cancel"}))["error"]["code"] == "invalid_request"
        assert (await conn.ask({"nop": 1}))["error"]["code"] == "invalid_request"
        assert (await conn.ask({"op": "health"}))["ok"] is True


async def test_line_over_one_mebibyte_is_refused_and_the_connection_survives() -> None:
    """A 1 MiB + 1 line gets `line_too_long`; the next request on the same connection works."""
    async with running_server() as (server, _), connect(server.path) as conn:
        huge = json.dumps({"op": "submit", "plan": {"pad": "x" * MAX_LINE_BYTES}}).encode()
        await conn.send(huge + b"\n")
        answer = await conn.line()
        assert answer["error"]["code"] == "line_too_long"
        assert "1048576" in answer["error"]["message"]
        assert (await conn.ask({"op": "health"}))["ok"] is True


async def test_line_of_exactly_one_mebibyte_is_accepted() -> None:
    """The limit is inclusive: a request of exactly 1 MiB is read and answered."""
    async with running_server() as (server, engine), connect(server.path) as conn:
        doc = plan_doc("big")
        base = len(json.dumps({"op": "submit", "plan": {**doc, "pad": ""}}).encode())
        doc["pad"] = "x" * (MAX_LINE_BYTES - base)
        line = json.dumps({"op": "submit", "plan": doc}).encode()
        assert len(line) == MAX_LINE_BYTES
        await conn.send(line + b"\n")
        assert (await conn.line())["ok"] is True
        assert engine.submitted == ["big"]


async def test_pipelined_requests_are_answered_in_order() -> None:
    """Several lines in one write get their answers in the same order."""
    async with running_server() as (server, _), connect(server.path) as conn:
        await conn.send(b'{"op":"halt"}\n{"op":"health"}\n{"op":"resume"}\n')
        assert (await conn.line())["result"] == {
            "halted": True,
            "canceled_orders": 3,
            "still_working": [],
            "listing_failed": False,
            "refused": None,
        }
        assert (await conn.line())["result"]["halted"] is True
        assert (await conn.line())["result"]["halted"] is False


async def test_handler_refusals_keep_their_code() -> None:
    """The engine's ControlError codes reach the client unchanged."""
    async with running_server() as (server, _), connect(server.path) as conn:
        assert (await conn.ask({"op": "status", "plan_id": "nope"}))["error"]["code"] == "not_found"
        bad = await conn.ask({"op": "submit", "plan": {"legs": []}})
        assert bad["error"]["code"] == "invalid_plan"
        await conn.ask({"op": "halt"})
        halted = await conn.ask({"op": "submit", "plan": plan_doc()})
        assert halted["error"]["code"] == "halted"


async def test_resubmitting_a_plan_id_returns_the_existing_plan() -> None:
    """Submitting an existing plan_id answers that plan and starts nothing new."""
    async with running_server() as (server, engine), connect(server.path) as conn:
        first = await conn.ask({"op": "submit", "plan": plan_doc("p1")})
        again = await conn.ask({"op": "submit", "plan": plan_doc("p1", legs=4)})
        assert again["result"] == first["result"]
        assert engine.submitted == ["p1"]


async def test_status_without_id_lists_every_plan() -> None:
    """`status` with no plan_id answers a list of plans."""
    async with running_server() as (server, _), connect(server.path) as conn:
        await conn.ask({"op": "submit", "plan": plan_doc("a")})
        await conn.ask({"op": "submit", "plan": plan_doc("b")})
        listed = await conn.ask({"op": "status"})
        assert [p["plan_id"] for p in listed["result"]] == ["a", "b"]
        one = await conn.ask({"op": "status", "plan_id": "b"})
        assert one["result"]["plan_id"] == "b"


async def test_handler_crash_answers_internal_and_is_logged(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bug in the engine answers `internal`, logs the traceback, and the server goes on."""
    engine = FakeEngine(crash_on={"cancel"})
    async with running_server(engine) as (server, _), connect(server.path) as conn:
        await conn.ask({"op": "submit", "plan": plan_doc("p1")})
        answer = await conn.ask({"op": "cancel", "plan_id": "p1"})
        assert answer["error"]["code"] == "internal"
        assert "cancel" in answer["error"]["message"]
        assert (await conn.ask({"op": "health"}))["ok"] is True
    out = capsys.readouterr().out
    assert "control_handler_failed" in out
    assert "fake engine bug in cancel" in out


async def test_unterminated_last_line_is_answered_at_eof() -> None:
    """A client that sends one request without a newline and shuts down still gets its answer."""
    async with running_server() as (server, _), connect(server.path) as conn:
        await conn.send(b'{"op":"health"}')
        conn.writer.write_eof()
        assert (await conn.line())["ok"] is True


# --- watch ----------------------------------------------------------------------------------


async def test_watch_streams_events_until_the_plan_ends_then_the_final_status() -> None:
    """`watch` sends one event line per progress event, then the final plan status."""
    async with running_server() as (server, _), connect(server.path) as conn:
        await conn.ask({"op": "submit", "plan": plan_doc("p1", legs=2)})
        await conn.send(b'{"op":"watch","plan_id":"p1"}\n')
        events = []
        while "event" in (line := await conn.line()):
            events.append(line["event"])
        assert [e["event"] for e in events] == [
            "snapshot",
            "snapshot",
            "leg_started",
            "leg_finished",
            "leg_started",
            "leg_finished",
        ]
        assert [e["seq"] for e in events] == list(range(6))
        assert line["ok"] is True
        assert line["result"]["state"] == "completed"
        assert (await conn.ask({"op": "health"}))["ok"] is True


async def test_watch_unknown_plan_is_not_found() -> None:
    """Watching a plan that does not exist answers `not_found` at once."""
    async with running_server() as (server, _), connect(server.path) as conn:
        answer = await conn.ask({"op": "watch", "plan_id": "ghost"})
        assert answer["error"]["code"] == "not_found"


async def test_watch_crash_answers_internal() -> None:
    """A watch generator that raises a bug ends the stream with `internal`."""
    engine = FakeEngine(crash_on={"watch"})
    async with running_server(engine) as (server, _), connect(server.path) as conn:
        await conn.ask({"op": "submit", "plan": plan_doc("p1")})
        answer = await conn.ask({"op": "watch", "plan_id": "p1"})
        assert answer["error"]["code"] == "internal"


async def test_close_ends_open_watches() -> None:
    """Closing the server ends a watch that is waiting for events (no leaked task)."""
    engine = FakeEngine(watch_gate=asyncio.Event())
    async with running_server(engine) as (server, _), connect(server.path) as conn:
        await conn.ask({"op": "submit", "plan": plan_doc("p1", legs=1)})
        await conn.send(b'{"op":"watch","plan_id":"p1"}\n')
        assert (await conn.line())["event"]["event"] == "snapshot"
        await server.close()
        assert engine.watch_closed.is_set()
        assert await conn.reader.read() == b""


async def test_client_leaving_mid_watch_closes_the_handlers_stream() -> None:
    """A watcher that disconnects releases the engine's generator once the next event is sent."""
    engine = FakeEngine(watch_gate=asyncio.Event())
    async with running_server(engine) as (server, _):
        async with connect(server.path) as conn:
            await conn.ask({"op": "submit", "plan": plan_doc("p1", legs=1)})
            await conn.send(b'{"op":"watch","plan_id":"p1"}\n')
            assert (await conn.line())["event"]["event"] == "snapshot"
        assert engine.watch_gate is not None
        engine.watch_gate.set()
        await asyncio.wait_for(engine.watch_closed.wait(), timeout=10)
        async with connect(server.path) as conn:
            assert (await conn.ask({"op": "health"}))["ok"] is True
