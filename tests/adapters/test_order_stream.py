"""The trade_updates stream against a scripted loopback fake (tests/adapters/fake_streams.py)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from execd.adapters.backoff import BackoffPolicy
from execd.adapters.errors import StreamAuthError
from execd.adapters.order_stream import OrderStream, OrderStreamConfig
from execd.adapters.wire import TradeUpdate

from .conftest import DEADLINE, wait_until
from .fake_streams import FakeTradingStream, running

T0 = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
OURS = "xd-0123456789ab-0-1"


def order(cid: str = OURS, status: str = "new", filled: str = "0") -> dict[str, Any]:
    """A §1.4 order object as trade_updates carries it."""
    return {
        "id": "0b0e5f0e-3a4e-4c55-9a0f-6f6c3b1e2d11", "client_order_id": cid,
        "created_at": "2026-03-04T15:00:01.123456789Z",
        "updated_at": "2026-03-04T15:00:02.5Z", "submitted_at": "2026-03-04T15:00:01.1Z",
        "symbol": "TQQQ", "asset_class": "us_equity", "qty": "10", "filled_qty": filled,
        "filled_avg_price": None if filled == "0" else "62.43", "order_class": "",
        "type": "limit", "side": "buy", "time_in_force": "day", "limit_price": "62.44",
        "status": status, "extended_hours": False, "replaces": None, "replaced_by": None,
    }  # fmt: skip


def fill(cid: str = OURS, execution_id: str = "e-1") -> dict[str, Any]:
    """A §3.3 partial_fill event."""
    return {
        "event": "partial_fill", "execution_id": execution_id,
        "timestamp": "2026-03-04T15:00:02.5Z", "price": "62.43", "qty": "3",
        "position_qty": "3", "order": order(cid, "partially_filled", "3"),
    }  # fmt: skip


class Recorder:
    """The engine's side: a router that owns only OURS, and a reconcile hook."""

    def __init__(self) -> None:
        self.routed: list[TradeUpdate] = []
        self.journal: list[TradeUpdate] = []
        self.reconciled: list[datetime | None] = []
        self.log: list[str] = []
        self.reconcile_gate: asyncio.Event | None = None

    def route(self, client_order_id: str, update: TradeUpdate) -> bool:
        if client_order_id != OURS:
            return False
        self.routed.append(update)
        self.log.append(f"event:{update.execution_id}")
        return True

    async def on_reconnected(self, down_since: datetime | None) -> None:
        self.reconciled.append(down_since)
        if self.reconcile_gate is not None:
            await self.reconcile_gate.wait()
        self.log.append("reconciled")


def make_stream(fake: FakeTradingStream, recorder: Recorder) -> OrderStream:
    """A stream with millisecond backoff wired to the recorder."""
    return OrderStream(
        OrderStreamConfig(
            url=fake.url,
            key_id=fake.key_id,
            secret_key=fake.secret_key,
            backoff=BackoffPolicy(initial=0.01, maximum=0.02),
        ),
        recorder.route,
        on_update=recorder.journal.append,
        on_reconnected=recorder.on_reconnected,
        clock=lambda: T0,
        rand=random.Random(5).random,
    )


@contextlib.asynccontextmanager
async def started(stream: OrderStream) -> AsyncIterator[asyncio.Task[None]]:
    """Run the stream as a supervised task for the block; a crash fails the test."""
    task = asyncio.create_task(stream.run(), name="order-stream")
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def fake() -> AsyncIterator[FakeTradingStream]:
    """A fresh trade_updates fake on loopback."""
    async with running(FakeTradingStream(), "/stream") as served:
        yield served


@pytest.mark.parametrize("binary", [True, False])
async def test_events_are_decoded_and_routed(fake: FakeTradingStream, binary: bool) -> None:
    """authenticate → listen; a fill in a binary or text frame reaches the router exactly."""
    fake.binary = binary
    recorder = Recorder()
    stream = make_stream(fake, recorder)
    async with started(stream):
        await asyncio.wait_for(stream.wait_connected(), DEADLINE)
        assert recorder.reconciled == [None]
        await fake.update(fill())
        await wait_until(lambda: len(recorder.routed) == 1)
    update = recorder.routed[0]
    assert (update.event, update.qty, update.price, update.position_qty) == (
        "partial_fill",
        Decimal(3),
        Decimal("62.43"),
        Decimal(3),
    )
    assert update.order.filled_qty == Decimal(3)
    assert recorder.journal == recorder.routed


async def test_unrouted_updates_are_counted_not_lost(fake: FakeTradingStream) -> None:
    """An order no leg owns still reaches the journal hook and the unrouted counter."""
    recorder = Recorder()
    stream = make_stream(fake, recorder)
    async with started(stream):
        await asyncio.wait_for(stream.wait_connected(), DEADLINE)
        await fake.update(fill(cid="manual-order-1"))
        await wait_until(lambda: stream.statistics().unrouted == 1)
    assert recorder.routed == []
    assert recorder.journal[0].client_order_id == "manual-order-1"


async def test_reconnect_reconciles_before_dispatching(fake: FakeTradingStream) -> None:
    """After a drop: reconnect, reconcile (given down_since), then route new events."""
    recorder = Recorder()
    stream = make_stream(fake, recorder)
    async with started(stream):
        await asyncio.wait_for(stream.wait_connected(), DEADLINE)
        await fake.update(fill(execution_id="e-1"))
        await wait_until(lambda: len(recorder.routed) == 1)

        recorder.reconcile_gate = asyncio.Event()
        await fake.drop()
        await fake.wait_for("reconnect", lambda: fake.live)
        await wait_until(lambda: len(recorder.reconciled) == 2)
        assert not stream.connected
        await fake.update(fill(execution_id="e-2"))  # arrives while reconciling
        recorder.reconcile_gate.set()
        await wait_until(lambda: len(recorder.routed) == 2)
    assert recorder.reconciled == [None, T0]
    assert recorder.log == ["reconciled", "event:e-1", "reconciled", "event:e-2"]
    assert stream.statistics().reconnects == 1


async def test_undecodable_update_forces_reconnect_and_reconcile(fake: FakeTradingStream) -> None:
    """A trade update without its order cannot be routed: reconnect so reconcile covers it."""
    recorder = Recorder()
    stream = make_stream(fake, recorder)
    async with started(stream):
        await asyncio.wait_for(stream.wait_connected(), DEADLINE)
        await fake.send_raw(b'{"stream":"trade_updates","data":{"event":"fill"}}')
        await wait_until(lambda: len(recorder.reconciled) == 2 and stream.connected)
    assert fake.connections == 2


async def test_null_data_frame_is_ignored_with_a_log(fake: FakeTradingStream) -> None:
    """`data: null` (Alpaca-API#110) neither crashes nor reconnects the stream."""
    recorder = Recorder()
    stream = make_stream(fake, recorder)
    async with started(stream):
        await asyncio.wait_for(stream.wait_connected(), DEADLINE)
        await fake.send_raw(b'{"stream":"trade_updates","data":null}')
        await fake.update(fill())
        await wait_until(lambda: len(recorder.routed) == 1)
    assert fake.connections == 1


async def test_repeated_unauthorized_is_fatal(fake: FakeTradingStream) -> None:
    """Refused authorization three times in a row ends run() with StreamAuthError."""
    fake.refuse = 3
    stream = make_stream(fake, Recorder())
    with pytest.raises(StreamAuthError):
        await asyncio.wait_for(stream.run(), DEADLINE)
    assert fake.connections == 3


async def test_one_unauthorized_then_recovers(fake: FakeTradingStream) -> None:
    """A single refusal is retried with backoff; the next attempt listens."""
    fake.refuse = 1
    recorder = Recorder()
    stream = make_stream(fake, recorder)
    async with started(stream):
        await asyncio.wait_for(stream.wait_connected(), DEADLINE)
    assert fake.connections == 2
