"""Review (issue 14, second pass): the leg's deferred reaping of its cancelled waiters.

`LegRunner._next_inputs` now checks what is ready (`_ready_inputs`, which also reads the
connection's outage through `QuoteHold.check`), *then* awaits the last wait's cancelled
waiters (`_reap_waiters`, at least one loop turn), and only then arms new waiters. One of
them, `QuoteHold.wait_change`, is edge-triggered (it waits for the *next* connect or
disconnect). A link change that lands in the reaping turn is therefore never heard: a leg
held by a data-stream outage keeps holding after the stream is back, until its quote, its
hold limit or its deadline wakes it. (Before, the waiters were awaited before the readiness
check, so no turn separated the check from the new wait.)

Fixed by making the wait level-triggered: `QuoteHold.check` reads the stream's
`link_changes` count and `wait_change` returns at once when it moved since, so no window
exists between the check and the wait, whatever the leg awaits in between (the reap stays
where it is: before the check it would put a loop turn back between an input and the
reaction to it).

Round three (the doorbell, tests/engine/test_leg_doorbell.py): the waiter tasks and their
reap are gone; the leg sleeps on one future. The window is now between the readiness check
and that sleep, and `LegRunner._sleep` looks at `QuoteHold.changed` before sleeping; the
hook below sits in front of it.

The race is one loop turn wide; the test makes the reconnection land in it by holding the
reap until the stream is connected again (a timing hook, not a fake: venue, daemon, stream
and leg are real). The symbol is quiet meanwhile, so no quote wakes the leg by chance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from execd.engine.leg import LegRunner
from tests.engine.conftest import StartDaemon
from tests.engine.test_daemon_streams import STREAMS, crossing_tape, wait_resting

pytestmark = pytest.mark.slow


async def test_review2_a_reconnection_during_the_reap_ends_the_hold_in_time(
    start_daemon: StartDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A passive buy rests; its symbol goes quiet; the data stream drops and comes back at
    once. With `quote_wait_seconds` = 2 s the hold ends about 2 s after the reconnection
    (the "reconnected" grace). It must not wait for the 30 s hold limit."""
    ladder = {
        **STREAMS["ladder"],
        "stale_quote_max_wait_seconds": 30.0,
        "passive_patience_normal_seconds": 60.0,
    }
    d = await start_daemon(sim=crossing_tape(tmp_path, 999.0, 0), **{**STREAMS, "ladder": ladder})
    status = await d.submit(
        {"plan_id": "reap-race", "legs": [{"symbol": "ACME", "side": "buy", "qty": "300"}]}
    )
    await wait_resting(d, status.plan_id)

    original: Callable[[LegRunner, float | None], Awaitable[None]] = LegRunner._sleep
    armed = asyncio.Event()

    async def sleep_after_reconnection(self: LegRunner, seconds: float | None) -> None:
        # The leg woke to the drop: let the link come back now, between the leg's readiness
        # check and its sleep, exactly where a fast reconnection can land. (Round three:
        # the hook moved from the reap, which is gone, to the sleep that replaced it.)
        if armed.is_set() and not self._ports.quotes.connected:
            armed.clear()
            await self._ports.quotes.wait_connected()
        await original(self, seconds)

    monkeypatch.setattr(LegRunner, "_sleep", sleep_after_reconnection)
    await d.venue.silence_quotes("ACME", None)
    armed.set()
    await d.venue.refuse_streams("data", 0.3)
    await d.venue.drop_streams("data", abort=True)
    await d.venue.wait_streams(data=0)

    async def holding() -> bool:
        return bool((await d.daemon.engine.health()).legs_holding)

    await d.wait_until(holding, "the leg holding")
    await d.venue.wait_streams(data=1)
    assert not armed.is_set(), "the hook never ran: the race was not reproduced"

    async def released() -> bool:
        return not await holding()

    try:
        await asyncio.wait_for(d.wait_until(released, "the hold ending"), 8.0)
    finally:
        await d.daemon.engine.cancel(status.plan_id)
