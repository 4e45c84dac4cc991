"""The leg's doorbell (issue 14, round three): one future per sleep, rung by every input.

A leg used to run a task per input for every wait (inbox, wake-up, overflow, link change,
REST re-read) and cancel them all when one finished: half the daemon's time at 2,000 legs.
What must not regress with the cheaper wait:

* level-triggered: a ring while the leg is not asleep makes its next sleep return at once,
  and an input source already done means no sleep at all (for each source);
* a sleep that ends (by its timer, a ring or a cancel) leaves no callback on the stream's
  shared futures — a leg waiting all day on a quiet symbol must not pile them up;
* a cancelled sleep is prompt and leaves no task behind;
* end to end, in the real daemon: a leg reacts to an order update and to a status on its
  symbol within as many loop turns as before, or fewer (turns are counted, not timed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from execd.adapters.market_stream import MarketStream
from execd.domain.ids import client_order_id
from execd.engine.doorbell import Doorbell
from execd.engine.leg import LegRunner
from execd.engine.router import Inbox, OrderRouter
from tests.engine.conftest import DEADLINE, StartDaemon
from tests.engine.test_daemon_streams import STREAMS, crossing_tape, wait_resting


class CountingFuture(asyncio.Future[None]):
    """A real future that counts the callbacks it holds (the stream's are plain futures;
    the count is what a `_callbacks` peek would give, without the private attribute)."""

    def __init__(self) -> None:
        super().__init__()
        self.held = 0

    def add_done_callback(self, fn: Any, *, context: Any = None) -> None:
        self.held += 1
        super().add_done_callback(fn, context=context)

    def remove_done_callback(self, fn: Any) -> int:
        removed = super().remove_done_callback(fn)
        self.held -= removed
        return removed


async def test_a_ring_while_awake_makes_the_next_sleep_return_at_once() -> None:
    bell = Doorbell()
    bell.ring()  # e.g. an inbox delivery while the leg performs an action
    await asyncio.wait_for(bell.sleep(None, ()), DEADLINE)
    bell.reset()  # the leg is about to look at its inputs: earlier rings are answered
    sleeper = asyncio.ensure_future(bell.sleep(None, ()))
    await asyncio.sleep(0)
    assert not sleeper.done()
    bell.ring()
    await asyncio.wait_for(sleeper, DEADLINE)


async def test_a_source_done_before_the_sleep_means_no_sleep() -> None:
    arrived = CountingFuture()
    arrived.set_result(None)
    await asyncio.wait_for(Doorbell().sleep(None, (CountingFuture(), arrived)), DEADLINE)


async def test_each_source_wakes_the_sleeper_and_keeps_no_callback() -> None:
    """A quote arrival, a link change: each wakes the sleep, and afterwards neither the
    one that fired nor the other holds a callback of this leg."""
    for which in (0, 1):
        sources = (CountingFuture(), CountingFuture())
        bell = Doorbell()
        sleeper = asyncio.ensure_future(bell.sleep(None, sources))
        await asyncio.sleep(0)
        assert [s.held for s in sources] == [1, 1]
        sources[which].set_result(None)
        await asyncio.wait_for(sleeper, DEADLINE)
        assert sources[1 - which].held == 0


async def test_many_timed_out_sleeps_leave_no_callbacks_on_a_quiet_symbol() -> None:
    quiet = CountingFuture()
    bell = Doorbell()
    for _ in range(200):
        await bell.sleep(0.0, (quiet,))
        bell.reset()
    assert quiet.held == 0
    assert not quiet.done()


async def test_a_cancelled_sleep_is_prompt_and_leaves_nothing_behind() -> None:
    quiet = CountingFuture()
    before = asyncio.all_tasks()
    sleeper = asyncio.ensure_future(Doorbell().sleep(3600.0, (quiet,)))
    await asyncio.sleep(0)
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(sleeper, DEADLINE)
    assert quiet.held == 0
    assert not quiet.cancelled(), "a shared future was cancelled with the sleeper"
    assert asyncio.all_tasks() <= before


async def test_the_inbox_rings_on_delivery_and_on_overflow() -> None:
    router: OrderRouter[str] = OrderRouter()
    inbox: Inbox[str] = router.register("p", 0)
    rings: list[int] = []
    inbox.bell = lambda: rings.append(inbox.queue.qsize())
    router.route("someone-elses-order", "x")  # unrouted: no leg to ring
    assert rings == []
    ours = client_order_id("p", 0, 1)
    router.route(ours, "first")
    assert rings == [1]
    for _ in range(inbox.queue.maxsize):
        router.route(ours, "more")
    assert inbox.overflowed.is_set()
    assert len(rings) == 1 + inbox.queue.maxsize


# ------------------------------------------------------------------ the real daemon


class Turns:
    """Counts event-loop iterations: a task that yields once per iteration."""

    def __init__(self) -> None:
        self.now = 0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            self.now += 1
            await asyncio.sleep(0)

    def __enter__(self) -> Turns:
        self._task = asyncio.ensure_future(self._tick())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def test_the_leg_wakes_to_an_update_and_a_status_within_two_loop_turns(
    start_daemon: StartDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the router's delivery of an order update (or the stream's resolution of the
    symbol's arrival, here by a halt) to the leg's sleep returning: at most two loop turns,
    for every input that came while the leg slept (one that comes while it is busy with a
    request is heard at its next look, by design). The task-per-source wait took three
    turns for an update (the queue waiter's task, `asyncio.wait`'s callback, the leg:
    measured with an earlier form of this test) and two for a quote or status."""
    d = await start_daemon(sim=crossing_tape(tmp_path, 999.0, 0), **STREAMS)
    inputs: list[tuple[str, int]] = []  # (kind, turn) of each input while the leg sleeps
    woke: dict[str, list[int]] = {"update": [], "arrival": []}  # turns from input to wake
    asleep: list[bool] = []
    real_sleep: Callable[[LegRunner, float | None], Awaitable[None]] = LegRunner._sleep
    real_register: Callable[..., Inbox[Any]] = OrderRouter.register
    real_arrived: Callable[[MarketStream, str], None] = MarketStream._arrived

    with Turns() as turns:

        def register(self: OrderRouter[Any], plan_id: str, index: int) -> Inbox[Any]:
            # the router's delivery is the put into the leg's queue
            inbox = real_register(self, plan_id, index)
            put = inbox.queue.put_nowait

            def put_nowait(update: Any) -> None:
                if asleep:
                    inputs.append(("update", turns.now))
                put(update)

            inbox.queue.put_nowait = put_nowait  # type: ignore[method-assign,assignment]
            return inbox

        def arrival(self: MarketStream, symbol: str) -> None:
            if asleep:
                inputs.append(("arrival", turns.now))
            real_arrived(self, symbol)

        async def sleep(self: LegRunner, seconds: float | None) -> None:
            inputs.clear()
            asleep.append(True)
            try:
                await real_sleep(self, seconds)
            finally:
                asleep.pop()
            if inputs:
                kind, turn = inputs[0]
                woke[kind].append(turns.now - turn)

        monkeypatch.setattr(OrderRouter, "register", register)
        monkeypatch.setattr(MarketStream, "_arrived", arrival)
        monkeypatch.setattr(LegRunner, "_sleep", sleep)
        status = await d.submit(
            {"plan_id": "turns", "legs": [{"symbol": "ACME", "side": "buy", "qty": "300"}]}
        )
        await wait_resting(d, status.plan_id)
        await d.venue.halt("ACME")
        await d.venue.resume("ACME")
        await d.daemon.engine.cancel(status.plan_id)
        await d.finish(status.plan_id)
    assert woke["update"] or woke["arrival"], "no input came while the leg slept"
    assert all(t <= 2 for t in woke["update"]), woke
    assert all(t <= 2 for t in woke["arrival"]), woke
