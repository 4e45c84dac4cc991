"""Review 5: the release loop's plan order, attacked (runner `_release_each`).

A buy that does not fit while a sell still works keeps its place in plan order: a later
buy must not take the cash it waits for (`_release_wave`). These tests make the waiting
buy's sizing quote go stale while it waits (its symbol goes silent), and wake the loop
with another sell's fill. The venue's own order log is the judge of what was sent.

The phases the release loop must see in order — ACME priced before GAMA, GAMA priced
while ACME is fresh, then ACME silent — are driven by the test from the runner's count
of sizing quotes, with the venue's `silence_quotes`. A tape's fixed venue seconds raced
the daemon's start under load: it started 2-4 s into the tape, after GAMA's first quote
and ACME's silence, so GAMA was priced alone and placed, and the judge came before
BETA's fill (the CI flake). Only BETA's fill stays on the tape; a run whose ACME fell
silent too late for it (`BETA_MARGIN`) is run again with BETA later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from execd.control.protocol import LegStatus
from execd.domain.calendar import EASTERN
from tests.engine.conftest import TAPE_DAY, Harness, StartDaemon, TapeQuote, write_tape

pytestmark = pytest.mark.slow

ORIGIN = datetime.combine(TAPE_DAY, time(10, 0), tzinfo=EASTERN)
"""Venue time 0 of the tapes."""

BETA_MARGIN = 1.5
"""Venue seconds ACME is silent before BETA's fill: its quote (freshness 1 s) is stale then."""


def _steady(bid: str, ask: str, start: float, end: float) -> list[TapeQuote]:
    n = int((end - start) / 0.2)
    return [TapeQuote(start + i * 0.2, Decimal(bid), Decimal(ask)) for i in range(n)]


def _tape(directory: Path, beta_at: float, delt: bool) -> Path:
    """ACME, GAMA (and DELT) steady for 40 s; BETA's bid jumps from 30 to 36 at `beta_at`."""
    quotes = {
        "ACME": _steady("40.00", "40.02", 0, 40),
        "GAMA": _steady("20.00", "20.02", 0, 40),
        "BETA": _steady("30.00", "30.02", 0, beta_at) + _steady("36.00", "36.02", beta_at, 40),
    }
    if delt:
        quotes["DELT"] = _steady("10.00", "10.02", 0, 40)
    return write_tape(directory / f"t-{beta_at}.jsonl", quotes, start=time(10, 0))


def _venue_seconds(d: Harness) -> float:
    return (d.venue.clock.now() - ORIGIN).total_seconds()


@dataclass
class Staged:
    """A plan brought to the point the scenario needs (`_stage`)."""

    d: Harness
    plan_id: str
    beta_at: float
    on_time: bool
    """ACME fell silent `BETA_MARGIN` before BETA's fill, with GAMA priced behind it."""


async def _stage(
    start_daemon: StartDaemon,
    directory: Path,
    beta_at: float,
    plan: dict[str, Any],
    **overrides: dict[str, Any],
) -> Staged:
    """Start the daemon on the tape, submit `plan` (BETA sell first, then buys ACME and
    GAMA) and drive the phases: GAMA's quotes are held back until ACME is priced (so ACME
    is looked at first and waits for cash: a buy whose first quote comes later waits alone,
    DESIGN.md); once GAMA is priced too (waiting behind ACME), ACME falls silent for good
    (the test lifts it). `on_time` says whether that happened `BETA_MARGIN` before BETA's
    fill and with GAMA still unreleased; if not, the run proves nothing."""
    delt = any(leg["symbol"] == "DELT" for leg in plan["legs"])
    tape = _tape(directory, beta_at, delt)
    positions = {"BETA": "10", **({"DELT": "10"} if delt else {})}
    d = await start_daemon(
        sim={"tape": str(tape), "cash": "9000", "positions": positions},
        plans={"overlap_buys": True},
        execution={"quote_freshness_seconds": 1.0},
        risk={"max_order_equity_multiple": 5},
        **overrides,
    )
    await d.venue.silence_quotes("GAMA", None)
    await d.submit(plan)
    plan_id = str(plan["plan_id"])
    runner = d.daemon.engine._runners[plan_id]
    gama = len(plan["legs"]) - 1

    async def sized(count: int, what: str) -> None:
        async def done() -> bool:
            return runner.sizing_quotes >= count

        await d.wait_until(done, what)

    await sized(1, "ACME's sizing quote (GAMA's are held back)")
    await d.venue.silence_quotes("GAMA", 0)
    await sized(2, "GAMA's sizing quote")
    await d.venue.silence_quotes("ACME", None)
    silent_at = _venue_seconds(d)
    unreleased = (await d.daemon.engine.status(plan_id)).legs[gama].state == "pending"
    on_time = unreleased and silent_at <= beta_at - BETA_MARGIN
    return Staged(d, plan_id, beta_at, on_time)


async def _abandon(run: Staged) -> None:
    """End a run that missed its window: cancel, check its venue history, stop it."""
    await run.d.daemon.engine.cancel(run.plan_id)
    await run.d.finish(run.plan_id)
    await run.d.check()
    await run.d.stop()


async def _stage_on_time(
    start_daemon: StartDaemon, directory: Path, plan: dict[str, Any], ladder: dict[str, Any]
) -> Staged:
    """`_stage` until a run is on time (BETA 6 s later each time, at most 3 runs): a
    loaded machine can miss the window, and a run that missed it proves nothing."""
    for attempt in range(3):
        run = await _stage(start_daemon, directory, 6.0 + 6 * attempt, plan, ladder=ladder)
        if run.on_time:
            return run
        await _abandon(run)
    raise AssertionError("no run had ACME silent before BETA's fill")


async def test_a_stale_waiting_buy_keeps_its_place_in_plan_order(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """Cash 9,000. Sells: BETA (fills when its bid reaches the limit) and DELT (limit far
    above the market: works on). Buys, in plan order: ACME 250 (~10,000: waits for the
    sells' cash) then GAMA 20 (~400: fits). ACME is priced first; GAMA is priced behind it.
    ACME then goes silent (stale after 1 s). ACME does not fit and holds its place, so GAMA
    waits behind it. BETA's fill wakes the loop with ACME's quote stale: the loop used to
    re-fetch ACME's quote and, in the same wave, release GAMA — with the cash ACME was
    waiting for. Expected: no order for GAMA while ACME, earlier in plan order, still waits
    for cash. ACME's quotes come back 2 s after BETA's fill; the judge waits 1.5 s more."""
    plan_id = "order-stale"
    plan = {
        "plan_id": plan_id,
        "legs": [
            {"symbol": "BETA", "side": "sell", "qty": "10", "limit_price": "35.00"},
            {"symbol": "DELT", "side": "sell", "qty": "10", "limit_price": "50.00"},
            {"symbol": "ACME", "side": "buy", "qty": "250"},
            {"symbol": "GAMA", "side": "buy", "qty": "20"},
        ],
    }
    run = await _stage_on_time(start_daemon, tmp_path, plan, {"stale_quote_max_wait_seconds": 20.0})
    d = run.d

    async def beta_done() -> bool:
        beta = (await d.daemon.engine.status(plan_id)).legs[0]
        return beta.state == "filled" or bool(await d.orders(plan_id, leg=3))

    await d.wait_until(beta_done, "BETA's fill (or an order for GAMA)")
    back_at = ORIGIN + timedelta(seconds=run.beta_at + 2.0)

    async def acme_back() -> bool:
        return bool(await d.orders(plan_id, leg=3)) or d.venue.clock.now() >= back_at

    await d.wait_until(acme_back, "ACME's return (or an order for GAMA)")
    await d.venue.silence_quotes("ACME", 0)
    judge_at = d.venue.clock.now() + timedelta(seconds=1.5)

    async def settled() -> bool:
        # ACME back for 1.5 s, or GAMA placed: either way, judge.
        if await d.orders(plan_id, leg=3):
            return True
        return d.venue.clock.now() > judge_at

    await d.wait_until(settled, "GAMA placed or ACME back for 1.5 s")
    beta: LegStatus = (await d.daemon.engine.status(plan_id)).legs[0]
    acme, gama = await d.orders(plan_id, leg=2), await d.orders(plan_id, leg=3)
    await d.daemon.engine.cancel(plan_id)
    await d.finish(plan_id)
    assert beta.state == "filled", f"the scenario needs BETA's fill to wake the loop: {beta}"
    if gama:
        first_gama = gama[0]["order"]["created_at"]
        first_acme = acme[0]["order"]["created_at"] if acme else None
        assert first_acme is not None, (
            f"GAMA (leg 3) placed at {first_gama} while ACME (leg 2), earlier in plan order,"
            " still waited for cash (no ACME order)"
        )
        assert first_acme <= first_gama, (first_acme, first_gama)


async def test_a_later_buy_waits_for_a_stale_buy_ahead_once_the_sells_are_done(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """Cash 9,000. One sell, BETA (fills when its bid reaches the limit). Buys, in plan
    order: ACME 250 (~10,000: waits for BETA's cash) then GAMA 20 (~400; priced after
    ACME, behind it). ACME then goes silent for good. BETA's fill ends the sells with
    ACME's quote stale: ACME is held (re-fetching, its cost still counted before GAMA's),
    so GAMA does not fit beside it — with the sells done it must wait, not be refused nor
    take ACME's cash. ACME's fetch gives up after `stale_quote_max_wait_seconds`
    (unfilled); only then does GAMA start."""
    plan_id = "order-stale-done"
    plan = {
        "plan_id": plan_id,
        "legs": [
            {"symbol": "BETA", "side": "sell", "qty": "10", "limit_price": "35.00"},
            {"symbol": "ACME", "side": "buy", "qty": "250"},
            {"symbol": "GAMA", "side": "buy", "qty": "20"},
        ],
    }
    run = await _stage_on_time(start_daemon, tmp_path, plan, {"stale_quote_max_wait_seconds": 2.0})
    d = run.d

    async def gama_placed() -> bool:
        return bool(await d.orders(plan_id, leg=2))

    await d.wait_until(gama_placed, "GAMA placed once ACME gave up")
    legs = (await d.daemon.engine.status(plan_id)).legs
    gama = await d.orders(plan_id, leg=2)
    await d.daemon.engine.cancel(plan_id)
    await d.finish(plan_id)
    beta, acme = legs[0], legs[1]
    assert beta.state == "filled", f"the scenario needs BETA's fill: {beta}"
    first_gama = datetime.fromisoformat(gama[0]["order"]["created_at"])
    assert acme.finished_at is not None, (
        f"GAMA (leg 2) placed at {first_gama} while ACME (leg 1), earlier in plan order,"
        f" was still {acme.state}"
    )
    assert first_gama >= acme.finished_at, (first_gama, acme.finished_at)
    assert acme.state == "unfilled", acme
    assert "quote_stale" in (acme.reason or ""), acme
    assert not await d.orders(plan_id, leg=1), "ACME was started from a stale quote"
