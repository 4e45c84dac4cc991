"""The asyncio client against a real server: typed answers, refusals, not-running, watch."""

from __future__ import annotations

import asyncio
import socket
from decimal import Decimal

import pytest

from execd.control.client import (
    START_HINT,
    ControlClient,
    ControlConnectionError,
    DaemonNotRunning,
    request,
)
from execd.control.protocol import ControlError, PlanStatus, WatchEvent
from tests.control.fakes import FakeEngine, plan_doc, running_server, short_tmpdir


async def test_not_running_without_a_socket_says_how_to_start() -> None:
    """No socket file: DaemonNotRunning naming the path and `execd run` / systemctl."""
    with short_tmpdir() as tmp:
        path = tmp / "execd.sock"
        with pytest.raises(DaemonNotRunning) as caught:
            await request(path, "health")
        message = str(caught.value)
        assert "execd is not running" in message
        assert str(path) in message
        assert "execd run" in message
        assert "systemctl start execd" in message
        assert START_HINT in message


async def test_not_running_with_a_stale_socket() -> None:
    """A socket file nobody listens on is also 'not running', not a raw ECONNREFUSED."""
    with short_tmpdir() as tmp:
        path = tmp / "execd.sock"
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(str(path))
        stale.close()
        with pytest.raises(DaemonNotRunning, match="nothing listens"):
            await request(path, "health")


async def test_typed_operations_round_trip() -> None:
    """Each typed call returns its model, with decimals parsed back from strings."""
    async with running_server() as (server, _), ControlClient(server.path) as client:
        accepted = await client.submit(plan_doc("p1"))
        assert accepted.state == "accepted"
        assert accepted.legs[1].qty == Decimal("20")
        assert await client.status("p1") == accepted
        assert [p.plan_id for p in await client.plans()] == ["p1"]
        health = await client.health()
        assert health.quote_age_seconds["TQQQ"] == pytest.approx(0.12)
        assert (await client.halt()).halted is True
        assert (await client.resume()).halted is False
        canceled = await client.cancel("p1")
        assert canceled.state == "canceled"


async def test_daemon_refusal_raises_control_error_and_the_client_goes_on() -> None:
    """A refusal is a ControlError with the daemon's code; the same client keeps working."""
    async with running_server() as (server, _), ControlClient(server.path) as client:
        with pytest.raises(ControlError) as caught:
            await client.status("ghost")
        assert caught.value.code == "not_found"
        assert "ghost" in caught.value.message
        with pytest.raises(ControlError) as unknown:
            await client.request("teleport")
        assert unknown.value.code == "unknown_op"
        assert (await client.health()).halted is False


async def test_forbidden_peer_gets_the_reason() -> None:
    """A refused uid sees `forbidden`, not a hang or a bare EOF."""
    async with running_server(allowed_uids={12345}) as (server, _):
        with pytest.raises(ControlError) as caught:
            await request(server.path, "health")
        assert caught.value.code == "forbidden"


async def test_watch_yields_events_then_the_final_status() -> None:
    """`watch` yields WatchEvents in order and ends with the plan's final PlanStatus."""
    async with running_server() as (server, _), ControlClient(server.path) as client:
        await client.submit(plan_doc("p1", legs=1))
        items = [item async for item in client.watch("p1")]
        *events, final = items
        assert all(isinstance(e, WatchEvent) for e in events)
        assert [e.event for e in events if isinstance(e, WatchEvent)] == [
            "snapshot",
            "leg_started",
            "leg_finished",
        ]
        assert isinstance(final, PlanStatus)
        assert final.state == "completed"
        assert final.legs[0].avg_fill_price == Decimal("50.01")
        assert (await client.health()).halted is False


async def test_leaving_a_watch_early_closes_the_connection_cleanly() -> None:
    """Breaking out of a watch drops the connection; the next request reconnects."""
    engine = FakeEngine(watch_gate=asyncio.Event())
    async with running_server(engine) as (server, _), ControlClient(server.path) as client:
        await client.submit(plan_doc("p1", legs=1))
        stream = client.watch("p1")
        first = await anext(stream)
        assert isinstance(first, WatchEvent)
        await stream.aclose()
        assert (await client.health()).halted is False


async def test_daemon_closing_mid_request_is_a_connection_error() -> None:
    """If the daemon goes away before answering, the client says so instead of hanging."""
    with short_tmpdir() as tmp:
        path = tmp / "execd.sock"
        accepted = asyncio.Event()

        async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()
            await writer.wait_closed()
            accepted.set()

        server = await asyncio.start_unix_server(hang_up, path=str(path))
        async with server:
            with pytest.raises(ControlConnectionError, match="closed the connection"):
                await request(path, "health")
            await accepted.wait()


async def test_timeout_is_a_connection_error() -> None:
    """A daemon that never answers hits the client's timeout with a clear message."""
    with short_tmpdir() as tmp:
        path = tmp / "execd.sock"
        never = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await never.wait()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_unix_server(silent, path=str(path))
        async with server, ControlClient(path, timeout=0.05) as client:
            with pytest.raises(ControlConnectionError, match="did not answer 'health'"):
                await client.health()
            never.set()


async def test_submit_waits_through_starting() -> None:
    """A daemon still reconciling answers `starting` (having done nothing): `submit` asks
    again and gets the plan accepted; with a timeout too short it gives the reason."""
    engine = FakeEngine(starting_answers=2)
    async with running_server(engine) as (server, _), ControlClient(server.path) as client:
        accepted = await client.submit(plan_doc("after-start"))
        assert accepted.state == "accepted"
        assert engine.submitted == ["after-start"]
    engine = FakeEngine(starting_answers=100)
    async with running_server(engine) as (server, _):
        async with ControlClient(server.path, timeout=0.2) as client:
            with pytest.raises(ControlError) as refused:
                await client.submit(plan_doc("never"))
        assert refused.value.code == "starting"
        assert "recovering 2 orders" in refused.value.message
