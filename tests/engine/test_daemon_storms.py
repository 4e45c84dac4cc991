"""Issue 5: the real daemon through REST storms — 5xx, lost answers, timeouts, 429 bursts.

The venue (the in-process sim, over loopback) answers order writes with 500 or 504,
either before doing anything or *after* doing it (the order exists although the answer
was an error), delays answers beyond the gateway's request timeout (the first copy then
lands late), or runs out of rate budget. Whatever it does, the plan must end filled with
no order duplicated (each client order id reaches the venue once; the history checker
adds one live order per leg and no over-fill), and execd must stay within its request
budget: the venue counts every trading request it sees.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest
from structlog.testing import capture_logs

from execd.sim.ratelimit import RateDecision, RateLimiter
from tests.engine.conftest import Harness, StartDaemon, runaway, write_tape
from tests.engine.test_daemon_streams import crossing_tape, wait_resting, wait_venue_time

pytestmark = pytest.mark.slow


@dataclass(slots=True)
class CountingLimiter(RateLimiter):
    """The venue's trading rate limiter, also recording every request it counts."""

    seen: list[tuple[float, bool]] = field(default_factory=list)

    def hit(self, key: str, now: float) -> RateDecision:
        decision = RateLimiter.hit(self, key, now)
        self.seen.append((now, decision.allowed))
        return decision


def count_requests(d: Harness, limit: int = 200, window: float = 60.0) -> CountingLimiter:
    """From now on, count the trading requests the venue sees (and limit them so)."""
    limiter = CountingLimiter(limit, window)
    d.venue.services.trading_limiter = limiter
    return limiter


def most_in_window(seen: list[tuple[float, bool]], window: float) -> int:
    """The most requests the venue saw in any `window` seconds (sliding)."""
    times = sorted(t for t, _ in seen)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def runaway_tape(directory: Path) -> dict[str, Any]:
    """ACME (passive) climbs 2¢ every 0.2 s from 50.00 × 50.03: re-pegs by replace, a
    cancel, then the market-order fallback — every kind of order write, in 2 s."""
    tape = write_tape(
        directory / "runaway.jsonl",
        {"ACME": runaway("50.00", spread="0.03", step="0.02")},
        start=time(10, 0),
    )
    return {"tape": str(tape)}


PLAN = {"legs": [{"symbol": "ACME", "side": "buy", "qty": "100"}]}
LADDER = {
    "execution": {"max_repegs_per_order": 2, "fallback_order": "market"},
    "ladder": {"repeg_method": "replace"},
}
"""Two re-pegs by replace (the PATCH path is what these storms test), then the cancel and
the (chosen) plain market order for the remainder."""


async def wait_order(d: Harness, plan_id: str, what: str, test: Callable[[Any], bool]) -> None:
    """Poll the venue's history (a venue-side condition) until one of the plan's orders
    passes `test`."""

    async def found() -> bool:
        return any(test(e["order"]) for e in await d.orders(plan_id))

    await d.wait_until(found, what)


async def assert_filled_once(d: Harness, plan_id: str) -> list[dict[str, Any]]:
    """The plan completed with its 100 shares, every order kind was sent, and no client
    order id reached the venue twice; the plan's orders, oldest first."""
    final = await d.finish(plan_id)
    assert final.state == "completed", final.reason
    assert final.legs[0].filled_qty == 100
    orders = await d.orders(plan_id)
    cids = Counter(e["order"]["client_order_id"] for e in orders)
    assert [cid for cid, n in cids.items() if n > 1] == []
    filled = sum((Decimal(e["order"]["filled_qty"]) for e in orders), Decimal(0))
    assert filled == 100
    assert any(e["order"]["replaces"] for e in orders)  # a PATCH
    assert any(e["order"]["status"] == "canceled" for e in orders)  # a DELETE
    assert orders[-1]["order"]["type"] == "market"  # the fallback POST
    return orders


Moment = Literal["before", "after"]


async def fault_every_write(
    d: Harness, plan_id: str, fault: Callable[[str, str], Awaitable[None]]
) -> None:
    """Put `fault(method, path)` on the plan's first replace and cancel (once the first
    order rests) and on its market order (once a replacement exists)."""
    await wait_order(d, plan_id, "the first order resting", lambda o: o["status"] == "new")
    await fault("PATCH", "/v2/orders/")
    await fault("DELETE", "/v2/orders/")
    await wait_order(d, plan_id, "a replacement", lambda o: o["replaces"] is not None)
    await fault("POST", "/v2/orders")


@pytest.mark.parametrize(("when", "status"), [("before", 500), ("after", 504)])
async def test_order_writes_answered_5xx_are_settled_never_duplicated(
    start_daemon: StartDaemon, tmp_path: Path, when: Moment, status: int
) -> None:
    """A replace, a cancel and the market order are each answered `status` (and the replace
    and cancel the other 5xx), `before` the venue acts or `after` it did — an order that
    exists although the answer was an error — and the look-up that settles the market
    order fails once too. Each uncertain write is settled by client order id (or, for the
    cancel, by re-reading the order), never re-sent blind: every order exists once and
    the plan completes."""
    d = await start_daemon(sim=runaway_tape(tmp_path), **LADDER)
    limiter = count_requests(d)
    other = 504 if status == 500 else 500

    async def fault(method: str, path: str) -> None:
        code = status if method == "POST" else other
        await d.venue.fail_next_requests(method=method, path=path, status=code, when=when)
        if method == "POST":
            await d.venue.fail_next_requests(
                method="GET", path="/v2/orders:by_client_order_id", status=status, when=when
            )

    plan = await d.submit({"plan_id": f"storm-{when}", **PLAN})
    await fault_every_write(d, plan.plan_id, fault)
    await assert_filled_once(d, plan.plan_id)
    assert d.venue.services.faults.pending() == []  # every fault was met
    assert all(allowed for _, allowed in limiter.seen)  # never rate limited


async def test_answers_slower_than_the_request_timeout_land_once(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """A replace, a cancel and the market order are answered after the gateway gave up
    (0.3 s timeout, 0.6 s delay): the first copy lands late, possibly after the gateway
    looked it up, found nothing and sent it again — the venue then refuses the second
    copy by client order id. Every order exists once and the plan completes."""
    d = await start_daemon(
        sim=runaway_tape(tmp_path), gateway={"request_timeout_seconds": 0.3}, **LADDER
    )

    async def fault(method: str, path: str) -> None:
        await d.venue.fail_next_requests(method=method, path=path, delay=0.6)

    plan = await d.submit({"plan_id": "slow", **PLAN})
    await fault_every_write(d, plan.plan_id, fault)
    await assert_filled_once(d, plan.plan_id)
    assert d.venue.services.faults.pending() == []


async def test_rate_limit_bursts_are_waited_out(start_daemon: StartDaemon, tmp_path: Path) -> None:
    """The venue's budget drops to 20 requests a second, and twice another client of the
    account spends the rest of a window (Alpaca's budget is per account, ALPACA.md §0.4),
    so execd's view of what is left is wrong and it meets 429s. It waits for the reset the
    venue announces instead of hammering — at most the requests already in flight are
    refused per burst — and completes with nothing duplicated."""
    d = await start_daemon(sim=runaway_tape(tmp_path), **LADDER)
    limiter = count_requests(d, limit=20, window=1.0)
    key = d.venue.key_id

    def burst() -> None:  # another client of the same account
        while limiter.hit(key, d.venue.services.wall_time()).allowed:
            pass
        limiter.seen.pop()  # its refused request is not execd's

    plan = await d.submit({"plan_id": "burst", **PLAN})
    await wait_order(d, plan.plan_id, "the first order resting", lambda o: o["status"] == "new")
    bursts = 0
    for _ in range(2):
        burst()
        bursts += 1
        await wait_order(d, plan.plan_id, "a replacement", lambda o: o["replaces"] is not None)
    await assert_filled_once(d, plan.plan_id)
    refused = [t for t, allowed in limiter.seen if not allowed]
    assert refused  # execd did meet the limit
    assert len(refused) <= 2 * bursts
    assert most_in_window([(t, a) for t, a in limiter.seen if not a], 1.0) <= 2


async def test_polling_while_the_order_stream_is_down_leaves_room(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """trade_updates is refused while a passive buy rests and then fills, with a poll
    interval of 10 ms and a budget of 40 requests a minute: the poll is stretched to a
    quarter of the budget (one read every 6 s), so it neither exceeds the budget nor
    starves the leg's own reads — the leg learns of the fill when its cancel is refused
    and reads the order, and the plan completes."""
    d = await start_daemon(
        sim=crossing_tape(tmp_path, 1.4, 500),
        gateway={"requests_per_minute": 40, "order_poll_seconds": 0.01},
        execution={"max_repegs_per_order": 2},
    )
    limiter = count_requests(d)
    with capture_logs() as logs:
        plan = await d.submit(
            {"plan_id": "poll-budget", "legs": [{"symbol": "ACME", "side": "buy", "qty": "300"}]}
        )
        await wait_resting(d, plan.plan_id)
        await wait_venue_time(d, 1.0)
        await d.venue.refuse_streams("trading", 30.0)
        await d.venue.drop_streams("trading", abort=True)
        final = await d.finish(plan.plan_id)
    assert final.state == "completed", final.reason
    assert final.legs[0].filled_qty == 300
    started = [line for line in logs if line["event"] == "order_poll_started"]
    assert [line["interval"] for line in started] == [6.0]
    assert len([line for line in logs if line["event"] == "order_poll_read"]) <= 2
    assert most_in_window(limiter.seen, 60.0) <= 40
    assert all(allowed for _, allowed in limiter.seen)
