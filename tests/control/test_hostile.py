"""Issue 11 §9: hostile input on the control socket gets one clear error line.

Over real sockets: a deeply nested request, idle connections, a flood of connections from
one peer. Strict plan parsing (ASCII decimals and symbols) is in tests/domain/test_plans.py.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from execd.control import server as server_module
from execd.control.protocol import ControlError, ErrorCode, decode_request, nested_too_deep
from tests.control.fakes import running_server
from tests.control.test_server import connect


def test_deep_nesting_is_refused_before_parsing() -> None:
    """100,000 nested arrays: `invalid_request` naming the bound, never a RecursionError."""
    line = b'{"op":"submit","plan":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(ControlError) as refused:
        decode_request(line)
    assert refused.value.code == ErrorCode.INVALID_REQUEST
    assert "nested deeper than" in refused.value.message


def test_brackets_inside_strings_do_not_count() -> None:
    """Depth is structure, not characters: a symbol string full of brackets is not deep."""
    request = decode_request(json.dumps({"op": "status", "plan_id": "[" * 150}).encode())
    assert request is not None


async def test_deep_nesting_gets_one_answer_and_the_socket_serves_on() -> None:
    """The hostile line is answered with one error line; the next request is served."""
    async with running_server() as (server, _), connect(server.path) as conn:
        await conn.send(
            b'{"op":"submit","plan":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001 + b"\n"
        )
        answer = await asyncio.wait_for(conn.line(), 10)
        assert answer["ok"] is False
        assert answer["error"]["code"] == "invalid_request"
        health = await asyncio.wait_for(conn.ask({"op": "health"}), 10)
        assert health["ok"] is True


async def test_idle_connection_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection that sends nothing is closed after the idle timeout (an EOF)."""
    monkeypatch.setattr(server_module, "IDLE_TIMEOUT_SECONDS", 0.2)
    async with running_server() as (server, _), connect(server.path) as conn:
        data = await asyncio.wait_for(conn.reader.read(), 10)
        assert b"idle" in data or data == b""


async def test_connections_per_peer_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond the cap, a new connection from the same uid gets `too_many_connections`."""
    monkeypatch.setattr(server_module, "MAX_CONNECTIONS_PER_PEER", 3)
    async with running_server() as (server, _):
        opened = []
        try:
            for _ in range(3):
                opened.append(await asyncio.open_unix_connection(str(server.path)))
            # The three are served (a request each proves they were accepted and counted).
            for reader, writer in opened:
                writer.write(b'{"op":"health"}\n')
                await writer.drain()
                assert json.loads(await reader.readline())["ok"] is True
            async with connect(server.path) as extra:
                answer = await asyncio.wait_for(extra.line(), 10)
                assert answer["error"]["code"] == "too_many_connections"
        finally:
            for _, writer in opened:
                writer.close()

        # Once they are gone the peer may connect again.
        async def served() -> bool:
            async with connect(server.path) as again:
                return (await again.ask({"op": "health"}))["ok"] is True

        for _ in range(100):
            try:
                if await served():
                    break
            except (KeyError, ConnectionError):
                await asyncio.sleep(0.02)
        else:
            raise AssertionError("the peer could not connect again")


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        (b"[" * 32 + b"]" * 32, False),
        (b"[" * 33 + b"]" * 33, True),
        (b'{"a":' * 33 + b"1" + b"}" * 33, True),
        (b'{"s":"' + b"[" * 100 + b'"}', False),  # brackets inside a string
        (b'{"s":"\\"' + b"[" * 100 + b'"}', False),  # after an escaped quote, still a string
        (b"[]" * 10_000, False),  # wide is not deep
        (b'"' + b"[" * 100, True),  # unterminated string: its brackets count (invalid anyway)
        (b"[" * 100_000, True),  # never closed: the decoder would recurse into every one
    ],
)
def test_nesting_bound_edges(text: bytes, deep: bool) -> None:
    """Exactly 32 levels pass, 33 do not; strings and width never count as depth."""
    assert nested_too_deep(text) is deep
