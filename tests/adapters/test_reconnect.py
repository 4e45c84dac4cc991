"""The one reconnect supervisor both streams share (issue 11 §12)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from execd.adapters.backoff import BackoffPolicy
from execd.adapters.errors import StreamAuthError
from execd.adapters.market_stream import MarketStream, MarketStreamConfig, StreamRefused
from execd.adapters.order_stream import OrderStream, OrderStreamConfig
from execd.adapters.reconnect import Reconnector, ReconnectPolicy

FAST = BackoffPolicy(initial=0.001, factor=2.0, maximum=0.004, jitter=0.0)


def _failing(errors: list[BaseException], done: asyncio.Event) -> Callable[[], Awaitable[None]]:
    """A session that raises the next error each time, and then waits forever."""

    async def session() -> None:
        if not errors:
            done.set()
            await asyncio.Event().wait()
        raise errors.pop(0)

    return session


async def _run_until(
    reconnector: Reconnector, session: Callable[[], Awaitable[None]], done: asyncio.Event
) -> None:
    task = asyncio.create_task(
        reconnector.run(
            session,
            classify=lambda e: "fatal" if isinstance(e, KeyError) else "retry",
            had_data=lambda: False,
            on_disconnect=lambda: None,
            is_auth_refusal=lambda e: isinstance(e, StreamRefused) and e.code == 402,
        )
    )
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_retryable_failures_reconnect_and_are_counted() -> None:
    """Each retryable failure is one reconnect; auth success resets the refusal count."""
    done = asyncio.Event()
    r = Reconnector("test", ReconnectPolicy(FAST))
    errors: list[BaseException] = [
        OSError("reset"),
        StreamRefused(402, "auth failed"),
        TimeoutError(),
    ]
    await _run_until(r, _failing(errors, done), done)
    assert r.reconnects == 3
    assert r.auth_failures == 1
    r.authenticated()
    assert r.auth_failures == 0


async def test_auth_refused_in_a_row_is_fatal() -> None:
    """`max_auth_failures` refusals in a row end the loop with StreamAuthError."""
    r = Reconnector("test", ReconnectPolicy(FAST, max_auth_failures=2))
    session = _failing([StreamRefused(402, "auth failed")] * 2, asyncio.Event())
    with pytest.raises(StreamAuthError):
        await r.run(
            session,
            classify=lambda e: "retry",
            had_data=lambda: False,
            on_disconnect=lambda: None,
            is_auth_refusal=lambda e: isinstance(e, StreamRefused),
        )
    assert r.reconnects == 1


async def test_a_bug_propagates_after_on_disconnect() -> None:
    """A failure classified fatal is raised, and the stream still hears it disconnected."""
    seen: list[str] = []
    r = Reconnector("test", ReconnectPolicy(FAST))
    with pytest.raises(KeyError):
        await r.run(
            _failing([KeyError("bug")], asyncio.Event()),
            classify=lambda e: "fatal",
            had_data=lambda: False,
            on_disconnect=lambda: seen.append("down"),
            is_auth_refusal=lambda e: False,
        )
    assert seen == ["down"]
    assert r.reconnects == 0


def test_both_streams_use_the_one_supervisor() -> None:
    """Market data and trade_updates share `Reconnector` (no near-copies of the loop)."""
    market = MarketStream(MarketStreamConfig(url="ws://127.0.0.1:1", key_id="k", secret_key="s"))
    orders = OrderStream(
        OrderStreamConfig(url="ws://127.0.0.1:1", key_id="k", secret_key="s"), lambda c, u: False
    )
    assert isinstance(market._reconnector, Reconnector)
    assert isinstance(orders._reconnector, Reconnector)
    assert market._reconnector.stream == "market"
    assert orders._reconnector.stream == "trade_updates"
