"""Issue 5, "Stream recovery": the real daemon while its websockets fail, against the sim.

Each test scripts a flat ACME market (50.00 × 50.05: a passive buy rests at 50.01) with one
moment where sellers cross down to 50.01, so a fill happens at a known venue time, and puts
a stream outage around that moment: the connections are aborted (the client sees 1006) and
reconnections refused for a while (as Alpaca does until it reaps the dead session,
ALPACA.md §9), or the sockets stay open and fall silent (the "silent socket"). The venue's
own history is the judge: what it filled is what the plan reports, exactly once; no order
reaches it while the quotes are stale; the plan still ends filled; and the history checker
(one live order per leg, no over-fill, nothing left working) runs after every test.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from execd.control.protocol import PlanStatus
from execd.domain.calendar import EASTERN
from tests.engine.conftest import DEADLINE, TAPE_DAY, Harness, StartDaemon, TapeQuote, write_tape

pytestmark = pytest.mark.slow

ORIGIN = datetime.combine(TAPE_DAY, time(10, 0), tzinfo=EASTERN)
"""Venue time 0 of the scripted tapes."""

BID, ASK, LIMIT = Decimal("50.00"), Decimal("50.05"), Decimal("50.01")


def crossing_tape(
    directory: Path, cross_at: float, cross_size: int, name: str = "acme.jsonl"
) -> dict[str, Any]:
    """ACME flat at 50.00 × 50.05 for 30 s, except 0.1 s from `cross_at` when the ask drops
    to 50.01 for `cross_size` shares: a passive buy resting at 50.01 fills that much (never,
    when `cross_at` is beyond the tape)."""
    quotes = []
    for i in range(300):
        at = i / 10
        crossing = cross_at <= at < cross_at + 0.1
        ask, size = (LIMIT, cross_size) if crossing else (ASK, 500)
        quotes.append(TapeQuote(at, BID, ask, 500, size))
    tape = write_tape(directory / name, {"ACME": quotes}, start=time(10, 0))
    return {"tape": str(tape)}


STREAMS: dict[str, dict[str, Any]] = {
    # Poll often so the tests are short (polling may take a quarter of the budget, so the
    # budget is larger than Alpaca's: the tests send a few dozen requests in all).
    "gateway": {
        "order_poll_seconds": 0.4,
        "requests_per_minute": 600,
        "request_timeout_seconds": 2.0,
    },
    # A flat market: the passive limit keeps its price, re-peg rounds pass unchanged.
    "execution": {"max_repegs_per_order": 3},
    # ... re-checked every 0.5 s, crossing after 2 s (the passive style's own patience,
    # issue 10 item 6, is minutes by default).
    "ladder": {"passive_timeout_seconds": 0.5, "passive_patience_normal_seconds": 2.0},
}


def venue_seconds(d: Harness) -> float:
    """Venue time since the tape's start."""
    return (d.venue.clock.now() - ORIGIN).total_seconds()


async def wait_venue_time(d: Harness, seconds: float) -> None:
    """Poll the venue clock (a venue-side condition) until `seconds` into the tape."""

    async def reached() -> bool:
        return venue_seconds(d) >= seconds

    await d.wait_until(reached, f"venue time {seconds}")


async def wait_resting(d: Harness, plan_id: str) -> dict[str, Any]:
    """The leg's first order once the venue has it working (status `new`)."""
    found: list[dict[str, Any]] = []

    async def resting() -> bool:
        orders = await d.orders(plan_id, 0)
        found[:] = orders
        return bool(orders) and orders[0]["order"]["status"] == "new"

    await d.wait_until(resting, "the first limit resting at the venue")
    return found[0]


def fills_of(history: Mapping[str, Any], order_ids: set[str]) -> list[dict[str, Any]]:
    return [f for f in history["fills"] if f["order_id"] in order_ids]


def created_between(orders: list[dict[str, Any]], start: datetime, end: datetime) -> list[str]:
    """Client order ids of the orders the venue created in (start, end]."""
    return [
        e["order"]["client_order_id"]
        for e in orders
        if start < datetime.fromisoformat(e["order"]["created_at"]) <= end
    ]


def events(logs: Sequence[Mapping[str, Any]], name: str, **fields: Any) -> Iterator[int]:
    """Indexes of the captured log lines named `name` whose fields match."""
    for i, line in enumerate(logs):
        if line["event"] == name and all(line.get(k) == v for k, v in fields.items()):
            yield i


async def test_both_streams_aborted_mid_ladder_hold_then_complete(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """Both websockets die without a close frame while a passive buy rests, and stay refused
    for a second; sellers fill 100 of the 300 shares meanwhile. The leg holds (it says so in
    the log and in `health`) and sends nothing while quotes are stale; the fill is counted
    once, from REST, while trade_updates is still down; after the reconnection the ladder
    goes on and the plan completes with exactly what the venue filled."""
    d = await start_daemon(sim=crossing_tape(tmp_path, 1.4, 100), **STREAMS)
    with capture_logs() as logs:
        status = await d.submit(
            {"plan_id": "drop", "legs": [{"symbol": "ACME", "side": "buy", "qty": "300"}]}
        )
        first = await wait_resting(d, status.plan_id)
        assert Decimal(first["order"]["limit_price"]) == LIMIT
        await wait_venue_time(d, 1.0)
        await d.venue.refuse_streams("all", 1.0)
        await d.venue.drop_streams("all", abort=True)
        dropped_at = d.venue.clock.now()
        await d.venue.wait_streams(trading=0, data=0)

        async def holding() -> bool:
            health = await d.daemon.engine.health()
            return bool(health.legs_holding)

        await d.wait_until(holding, "the leg holding in health")
        health = await d.daemon.engine.health()
        assert health.stale_quote_symbols == ("ACME",)
        assert health.legs_holding == ("drop[0] ACME",)
        assert not health.market_data_connected
        await d.venue.wait_streams(data=1)
        data_back_at = d.venue.clock.now()
        final = await d.finish(status.plan_id)

        async def trade_updates_back() -> bool:
            # the plan may complete (its fill read over REST) before trade_updates is back
            # from its backoff: keep capturing until the daemon says it reconnected
            back = events(logs, "stream_connected", stream="trade_updates", connection=2)
            return next(back, None) is not None

        await d.wait_until(trade_updates_back, "trade_updates reconnected")

    history = await d.history()
    orders = await d.orders(status.plan_id)
    ids = {e["order"]["id"] for e in orders}
    venue_filled = sum((Decimal(f["qty"]) for f in fills_of(history, ids)), Decimal(0))
    assert final.state == "completed", final.reason
    assert final.legs[0].filled_qty == venue_filled == 300
    # The crossing filled the resting limit during the outage, at its price.
    during = [
        f
        for f in fills_of(history, {first["order"]["id"]})
        if dropped_at < datetime.fromisoformat(f["timestamp"]) < data_back_at
    ]
    assert [(f["qty"], f["price"]) for f in during] == [("100", "50.01")]
    # Nothing reached the venue while the quotes were stale.
    assert created_between(orders, dropped_at, data_back_at) == []
    # The log says so: a hold, its end, and no order in between; the fill came from the
    # REST poll before trade_updates was back.
    held = next(events(logs, "leg_holding_stale_quotes", symbol="ACME"))
    resumed = next(events(logs, "leg_quotes_resumed", symbol="ACME"))
    assert held < resumed
    sent = [*events(logs, "order_placed"), *events(logs, "order_replace_sent")]
    assert not [i for i in sent if held < i < resumed]
    reconnected = next(events(logs, "stream_connected", stream="trade_updates", connection=2))
    polled = next(events(logs, "order_partially_filled"))
    assert str(logs[polled]["execution_id"]).startswith("reconciled:")
    assert polled < reconnected
    assert logs[held]["quote_age_seconds"] is not None
    # After the hold the ladder decides from the quote of the new connection, not the old.
    after = next(i for i in range(resumed, len(logs)) if "quote_age_s" in logs[i])
    assert logs[after]["quote_age_s"] < 0.5, logs[after]


async def test_order_stream_down_fill_is_picked_up_by_polling(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """Only trade_updates dies (quotes keep flowing) and stays refused while the resting
    limit fills completely: the REST poll finds the fill, the leg and the plan finish
    before the stream is back, and the fill is counted once.

    The refusal lasts as long as the test may wait for the plan (`DEADLINE`) and is lifted
    once the test has looked: a refusal of a fixed second raced the poll on a loaded
    machine (the jittered reconnect got in before the pick-up and the health check found
    the stream back; a slow answer to the poll's read shows it every time)."""
    d = await start_daemon(sim=crossing_tape(tmp_path, 1.4, 500), **STREAMS)
    with capture_logs() as logs:
        status = await d.submit(
            {"plan_id": "poll", "legs": [{"symbol": "ACME", "side": "buy", "qty": "300"}]}
        )
        first = await wait_resting(d, status.plan_id)
        await wait_venue_time(d, 1.0)
        await d.venue.refuse_streams("trading", DEADLINE)
        await d.venue.drop_streams("trading", abort=True)
        await d.venue.wait_streams(trading=0)
        final = await d.finish(status.plan_id)
        health = await d.daemon.engine.health()
        assert not health.trade_updates_connected  # finished before the stream came back
        await d.venue.refuse_streams("trading", 0)

    assert final.state == "completed", final.reason
    assert final.legs[0].filled_qty == 300
    history = await d.history()
    assert [(f["qty"], f["price"]) for f in fills_of(history, {first["order"]["id"]})] == [
        ("300", "50.01")
    ]
    assert len(await d.orders(status.plan_id)) == 1
    assert next(events(logs, "order_poll_started")) < next(events(logs, "order_filled"))


@dataclass
class SilentRun:
    """One run of the silent-socket scenario (`_silent_sockets_run`)."""

    d: Harness
    final: PlanStatus
    logs: list[MutableMapping[str, Any]]
    at_mute: int
    """How many log lines there were when the test muted the sockets."""
    muted_at: datetime
    orders: list[dict[str, Any]]
    history: dict[str, Any]


SILENT_LEAD = 1.0
"""Venue seconds between the mute and the crossing: room for a loaded loop's lag."""

SILENT_SECONDS = 2.5
"""How long the sockets stay silent: the crossing falls 1 s after the mute begins and its
fill report must be dropped, so the silence outlasts it by 1.5 s of loop lag."""


async def _silent_sockets_run(
    start_daemon: StartDaemon, directory: Path, cross_at: float
) -> SilentRun:
    """The scenario of `test_silent_sockets_hold_and_lose_no_fill` with the crossing at
    `cross_at` venue seconds: the sockets are muted `SILENT_LEAD` before it. The passive
    limit's patience outlasts the crossing (it must still rest then) and runs out during
    the silence, so the leg crosses for the remainder once quotes are back."""
    settings = {
        **STREAMS,
        "gateway": {**STREAMS["gateway"], "market_data_silence_seconds": 0.5},
        "ladder": {**STREAMS["ladder"], "passive_patience_normal_seconds": cross_at + 0.5},
    }
    tape = crossing_tape(directory, cross_at, 100, name=f"acme-{cross_at}.jsonl")
    d = await start_daemon(sim=tape, **settings)
    with capture_logs() as logs:
        status = await d.submit(
            {"plan_id": "mute", "legs": [{"symbol": "ACME", "side": "buy", "qty": "300"}]}
        )
        await wait_resting(d, status.plan_id)
        await wait_venue_time(d, cross_at - SILENT_LEAD)
        await d.venue.mute_streams("all", SILENT_SECONDS)
        muted_at, at_mute = d.venue.clock.now(), len(logs)
        final = await d.finish(status.plan_id, scripted=cross_at + SILENT_SECONDS)
    return SilentRun(
        d, final, logs, at_mute, muted_at, await d.orders(status.plan_id), await d.history()
    )


def _fill_lost_in_silence(run: SilentRun) -> bool:
    """Whether the run is the scenario: the crossing filled the resting limit (100 at 50.01)
    while the sockets were silent, and the daemon never heard of it on the stream.

    A loaded machine can miss the window from either side: the limit placed after the
    crossing (the daemon started late), or the mute sent after it. Then no fill was lost
    and the run proves nothing; it is no failure of the daemon either. With the guarded
    defect the fill *is* lost (the window was hit) and the run is judged."""
    ids = {e["order"]["id"] for e in run.orders}
    end = run.muted_at + timedelta(seconds=SILENT_SECONDS)
    lost = [
        f
        for f in fills_of(run.history, ids)
        if (f["qty"], f["price"]) == ("100", str(LIMIT))
        and run.muted_at < datetime.fromisoformat(f["timestamp"]) < end
    ]
    heard = [
        line
        for line in run.logs
        if line["event"] == "order_partially_filled"
        and not str(line["execution_id"]).startswith("reconciled:")
    ]
    return bool(lost) and not heard


async def test_silent_sockets_hold_and_lose_no_fill(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """Both sockets stay open but deliver nothing for 2.5 s (the silent socket of ALPACA.md
    §9) while 100 of 300 shares fill. The market-data watchdog reconnects and the leg holds
    meanwhile; the fill event is lost on the silent trade_updates socket, yet the leg counts
    those shares (from the venue's own cumulative quantity) before it sizes anything else,
    so the plan ends with exactly 300 shares, none twice.

    The tape's crossing is at a fixed venue time and the mute comes 1 s before it. A run
    that missed that window on a loaded machine (no fill lost: `_fill_lost_in_silence`) is
    run again with the crossing 3 s later, up to three times, instead of failing the
    judge on a scenario that did not happen (the CI flake: the crossing at 1.4 s landed
    before a mute sent at 1.0 s)."""
    run = None
    for attempt in range(3):
        if run is not None:
            await run.d.check()
            await run.d.stop()
        run = await _silent_sockets_run(start_daemon, tmp_path, 3.0 + 3 * attempt)
        if _fill_lost_in_silence(run):
            break
    assert run is not None
    final, logs, orders, history = run.final, run.logs, run.orders, run.history

    assert final.state == "completed", final.reason
    ids = {e["order"]["id"] for e in orders}
    venue_filled = sum((Decimal(f["qty"]) for f in fills_of(history, ids)), Decimal(0))
    assert final.legs[0].filled_qty == venue_filled == 300
    assert _fill_lost_in_silence(run), "no run had the crossing's fill lost in the silence"
    # The silence is noticed after `market_data_silence_seconds`; from then until the mute
    # ends nothing is sent.
    quiet = (
        run.muted_at + timedelta(seconds=0.6),
        run.muted_at + timedelta(seconds=SILENT_SECONDS),
    )
    assert created_between(orders, *quiet) == []
    # The watchdog noticed the silence and the leg held through it. Which of the two comes
    # first is a race of two timers on the same threshold (the watchdog's on the loop's
    # clock, the leg's check of the stream's last frame), so the order is not judged.
    assert next(events(logs[run.at_mute :], "stream_silent", stream="market"), None) is not None
    resumed = run.at_mute + next(events(logs[run.at_mute :], "leg_quotes_resumed"))
    held = [i for i in events(logs, "leg_holding_stale_quotes") if i < resumed]
    assert held, "the leg did not hold while the sockets were silent"
    # The lost fill surfaced as a gap in the venue's cumulative quantity and was counted
    # from REST, before the remainder was sized.
    gap = next(events(logs, "fill_gap_detected"))
    counted = next(events(logs, "order_partially_filled"))
    assert gap < counted
    assert str(logs[counted]["execution_id"]).startswith("reconciled:")


async def test_silent_order_stream_over_a_cancel_is_resolved_by_asking(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """trade_updates falls silent (open, delivering nothing) before the leg cancels its limit
    to fall back, so the `canceled` confirmation and then the market order's fill are
    lost. When its confirmation is overdue, and when the venue refuses to cancel a filled
    order, the leg asks the venue: it goes on to the market order for the remainder and
    finishes filled while the socket is still silent, instead of re-sending cancels into
    the void until it gives up UNRESOLVED."""
    d = await start_daemon(
        sim=crossing_tape(tmp_path, 99.0, 0),
        gateway=STREAMS["gateway"],
        execution={"max_repegs_per_order": 1, "fallback_order": "market"},
        ladder={
            "confirm_timeout_seconds": 1.0,
            "fallback_timeout_seconds": 1.0,
            "passive_timeout_seconds": 0.5,
            "passive_patience_normal_seconds": 1.0,
        },
    )
    status = await d.submit(
        {"plan_id": "quiet", "legs": [{"symbol": "ACME", "side": "buy", "qty": "300"}]}
    )
    await wait_resting(d, status.plan_id)
    await d.venue.mute_streams("trading", 5.0)
    final = await d.finish(status.plan_id)
    assert d.venue.statistics()["trading"]["muted"]  # resolved by asking, not by the stream
    assert final.state == "completed", final.reason
    assert final.legs[0].filled_qty == 300
    orders = await d.orders(status.plan_id)
    assert [(e["order"]["type"], e["order"]["status"]) for e in orders] == [
        ("limit", "canceled"),
        ("market", "filled"),
    ]
    assert orders[1]["order"]["qty"] == "300"


async def test_halt_works_while_both_streams_are_silent(start_daemon: StartDaemon) -> None:
    """`halt` is the kill switch even with both websockets silent: it cancels over REST, and
    the venue lists no open order afterwards."""
    d = await start_daemon(better_orders={"normal_timeout_seconds": 30.0})
    resting = {"symbol": "AAPL", "side": "buy", "qty": "5", "limit_price": "150.00"}
    await d.submit({"plan_id": "halt-silent", "legs": [resting]})

    async def working() -> bool:
        return any(e["order"]["status"] == "new" for e in await d.orders("halt-silent"))

    await d.wait_until(working, "an order resting in the book")
    await d.venue.mute_streams("all", 10.0)
    state = await d.daemon.engine.halt()
    assert state.halted
    assert state.canceled_orders == 1
    assert d.venue.exchange.list_orders(status="open", limit=50) == []
    await d.daemon.engine.resume()
