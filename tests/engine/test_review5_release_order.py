"""Review 5: the release loop's plan order, attacked (runner `_release_each`).

A buy that does not fit while a sell still works keeps its place in plan order: a later
buy must not take the cash it waits for (`_release_wave`). These tests make the waiting
buy's sizing quote go stale while it waits (its symbol goes silent), and wake the loop
with another sell's fill. The venue's own order log is the judge of what was sent.
"""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal
from pathlib import Path

import pytest

from execd.domain.calendar import EASTERN
from tests.engine.conftest import TAPE_DAY, StartDaemon, TapeQuote, write_tape

pytestmark = pytest.mark.slow


def _steady(bid: str, ask: str, start: float, end: float) -> list[TapeQuote]:
    n = int((end - start) / 0.2)
    return [TapeQuote(start + i * 0.2, Decimal(bid), Decimal(ask)) for i in range(n)]


async def test_a_stale_waiting_buy_keeps_its_place_in_plan_order(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """Cash 9,000. Sells: BETA (fills at t=5 s, when its bid reaches the limit) and DELT
    (limit far above the market: works on). Buys, in plan order: ACME 250 (~10,000: waits
    for the sells' cash) then GAMA 20 (~400: fits). GAMA's quotes start at t=2 s, so ACME
    is priced first (a buy whose first quote comes later waits alone, DESIGN.md). ACME goes
    silent from t=3 s to t=8 s (stale after 1 s). ACME does not fit and holds its place, so
    GAMA waits behind it. BETA's fill wakes the loop at t=5 s with ACME's quote stale: the
    loop used to re-fetch ACME's quote and, in the same wave, release GAMA — with the cash
    ACME was waiting for. Expected: no order for GAMA while ACME, earlier in plan order,
    still waits for cash. (The tape plays from the venue's start, before the plan is
    submitted: its first seconds leave room for a slow daemon start under load.)"""
    tape = write_tape(
        tmp_path / "t.jsonl",
        {
            "ACME": _steady("40.00", "40.02", 0, 3) + _steady("40.00", "40.02", 8, 40),
            "GAMA": _steady("20.00", "20.02", 2, 40),
            "BETA": _steady("30.00", "30.02", 0, 5) + _steady("36.00", "36.02", 5, 40),
            "DELT": _steady("10.00", "10.02", 0, 40),
        },
        start=time(10, 0),
    )
    d = await start_daemon(
        sim={"tape": str(tape), "cash": "9000", "positions": {"BETA": "10", "DELT": "10"}},
        plans={"overlap_buys": True},
        execution={"quote_freshness_seconds": 1.0},
        ladder={"stale_quote_max_wait_seconds": 20.0},
        risk={"max_order_equity_multiple": 5},
    )
    plan_id = "order-stale"
    await d.submit(
        {
            "plan_id": plan_id,
            "legs": [
                {"symbol": "BETA", "side": "sell", "qty": "10", "limit_price": "35.00"},
                {"symbol": "DELT", "side": "sell", "qty": "10", "limit_price": "50.00"},
                {"symbol": "ACME", "side": "buy", "qty": "250"},
                {"symbol": "GAMA", "side": "buy", "qty": "20"},
            ],
        }
    )
    judge_at = datetime.combine(TAPE_DAY, time(10, 0, 9, 500_000), tzinfo=EASTERN)

    async def settled() -> bool:
        # Past ACME's return (t=8 s) by 1.5 s, or GAMA placed: either way, judge.
        if await d.orders(plan_id, leg=3):
            return True
        return d.venue.clock.now() > judge_at

    await d.wait_until(settled, "GAMA placed or ACME back for a second")
    beta = (await d.daemon.engine.status(plan_id)).legs[0]
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
    """Cash 9,000. One sell, BETA (fills at t=5 s). Buys, in plan order: ACME 250
    (~10,000: waits for BETA's cash) then GAMA 20 (~400; quoted from t=2 s, so ACME is
    priced first). ACME goes silent at t=3 s for good. BETA's fill ends the sells with
    ACME's quote stale: ACME is held (re-fetching, its cost still counted before GAMA's),
    so GAMA does not fit beside it — with the sells done it must wait, not be refused nor
    take ACME's cash. ACME's fetch gives up after `stale_quote_max_wait_seconds`
    (unfilled); only then does GAMA start."""
    tape = write_tape(
        tmp_path / "t.jsonl",
        {
            "ACME": _steady("40.00", "40.02", 0, 3),
            "GAMA": _steady("20.00", "20.02", 2, 40),
            "BETA": _steady("30.00", "30.02", 0, 5) + _steady("36.00", "36.02", 5, 40),
        },
        start=time(10, 0),
    )
    d = await start_daemon(
        sim={"tape": str(tape), "cash": "9000", "positions": {"BETA": "10"}},
        plans={"overlap_buys": True},
        execution={"quote_freshness_seconds": 1.0},
        ladder={"stale_quote_max_wait_seconds": 2.0},
        risk={"max_order_equity_multiple": 5},
    )
    plan_id = "order-stale-done"
    await d.submit(
        {
            "plan_id": plan_id,
            "legs": [
                {"symbol": "BETA", "side": "sell", "qty": "10", "limit_price": "35.00"},
                {"symbol": "ACME", "side": "buy", "qty": "250"},
                {"symbol": "GAMA", "side": "buy", "qty": "20"},
            ],
        }
    )

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
