"""Issue 10 against the simulated venue: a silent symbol holds alone, a refused limit is
clamped, the default fallback is capped, and issue 11's runner sizing spends cash."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.engine.conftest import Harness, StartDaemon


def _types(entries: list[dict[str, Any]]) -> list[str]:
    return [e["order"]["type"] for e in entries]


async def test_a_silent_symbol_holds_alone_and_trades_once_quotes_resume(
    start_daemon: StartDaemon,
) -> None:
    """`/sim/quotes/silence` on AAPL while SPY streams: the AAPL leg sends nothing during
    the silence while the SPY leg trades, and completes once AAPL quotes resume.

    The venue has a quote for every symbol from its start (as Alpaca does), stamped then;
    with a 1 s freshness rule the plan is submitted once that quote is stale. The legs are
    marketable so that the test is about the hold, not about a passive leg's patience."""
    d = await start_daemon(
        execution={"quote_freshness_seconds": 1}, better_orders={"apply_to": "all"}
    )
    await d.venue.silence_quotes("AAPL", 5.0)
    began = d.venue.clock.now()
    silent_until = began + timedelta(seconds=5.0)

    async def initial_quote_stale() -> bool:
        return (d.venue.clock.now() - began).total_seconds() > 1.5

    await d.wait_until(initial_quote_stale, "the venue's first AAPL quote to go stale")
    status = await d.submit(
        {
            "plan_id": "silence",
            "legs": [
                {"symbol": "AAPL", "side": "buy", "qty": "5"},
                {"symbol": "SPY", "side": "buy", "qty": "5"},
            ],
        }
    )

    async def spy_filled() -> bool:
        legs = (await d.daemon.engine.status(status.plan_id)).legs
        return legs[1].state == "filled"

    await d.wait_until(spy_filled, "the SPY leg to fill while AAPL is silent")
    assert d.venue.clock.now() < silent_until, "SPY took the whole silence to fill"
    assert await d.orders(status.plan_id, 0) == [], "AAPL traded on a stale quote"
    final = await d.finish(status.plan_id)
    assert final.state == "completed", final.reason
    aapl = await d.orders(status.plan_id, 0)
    assert aapl
    for entry in aapl:
        created = datetime.fromisoformat(entry["order"]["created_at"].replace("Z", "+00:00"))
        assert created >= silent_until, "an AAPL order during the silence"


async def test_labd_with_the_market_fallback_chosen_sends_a_clamped_first_limit(
    start_daemon: StartDaemon,
) -> None:
    """Calm market, normal urgency, plain market fallback explicitly chosen, a 10 bps
    budget: ask + 1 tick is beyond it, so the first order is a LIMIT clamped to the budget
    (never the old escalation to a market order)."""
    d = await start_daemon(
        execution={"fallback_order": "market"}, better_orders={"max_slippage_bps": 10}
    )
    status = await d.submit(
        {"plan_id": "labd", "legs": [{"symbol": "LABD", "side": "buy", "qty": "100"}]}
    )

    async def placed() -> bool:
        return bool(await d.orders(status.plan_id, 0))

    await d.wait_until(placed, "the first LABD order")
    first = (await d.orders(status.plan_id, 0))[0]["order"]
    assert first["type"] == "limit"
    final = await d.finish(status.plan_id)
    arrival = final.legs[0].arrival_mid
    assert arrival is not None
    cost = (Decimal(first["limit_price"]) - arrival) / arrival * 10_000
    assert cost <= 10, f"first limit {first['limit_price']} costs {cost:.2f} bps > 10"


async def test_labd_with_the_default_config_never_sends_a_market_order(
    start_daemon: StartDaemon,
) -> None:
    """The shipped defaults: a LABD buy completes and the venue never sees a market order."""
    d = await start_daemon()
    final = await d.run(
        {"plan_id": "labd-default", "legs": [{"symbol": "LABD", "side": "buy", "qty": "100"}]}
    )
    assert final.state == "completed", final.reason
    history = await d.history()
    assert history["orders"]
    assert "market" not in {e["order"]["type"] for e in history["orders"]}


async def test_an_absurd_buy_is_refused_not_shrunk_to_the_whole_account(
    start_daemon: StartDaemon,
) -> None:
    """Issue 11 item 1 (runner sizing): 1,000,000 TQQQ on a $100k cash account is refused
    with the numbers — never turned into "everything the account has" — while a buy a few
    dollars short of the cash is shrunk within the tolerance. The submit-time fat-finger
    caps (which refuse this plan first by default) are lifted, so that the runner's own
    sizing guard is what is tested: two layers, each enough on its own."""
    no_caps = dict.fromkeys(
        (
            "max_order_notional",
            "max_plan_notional",
            "max_order_equity_multiple",
            "max_plan_equity_multiple",
        )
    )
    d = await start_daemon(sim={"cash": "100000"}, risk=no_caps)
    final = await d.run(
        {"plan_id": "absurd", "legs": [{"symbol": "TQQQ", "side": "buy", "qty": "1000000"}]}
    )
    leg = final.legs[0]
    assert leg.state == "rejected", leg
    assert leg.reason is not None
    assert "insufficient cash" in leg.reason
    assert "refused" in leg.reason
    assert await d.orders("absurd") == []
    # 1,600 TQQQ at ~62.4 plus the reservation's slippage is just over $100k: shrunk.
    near = await d.run(
        {"plan_id": "near", "legs": [{"symbol": "TQQQ", "side": "buy", "qty": "1600"}]}
    )
    leg = near.legs[0]
    assert leg.qty is not None
    assert 1500 < leg.qty < 1600, leg
    assert leg.reason is not None
    assert "shrunk" in leg.reason


async def test_a_halted_symbol_holds_and_trades_once_resumed(start_daemon: StartDaemon) -> None:
    """A trading halt on the `statuses` channel (§4.3, published through the venue's stream
    hub): a plan submitted while AAPL is halted sends nothing for AAPL, and trades once
    trading resumes. The leg is marketable so that the test is about the halt, not about a
    passive leg's patience."""
    d = await start_daemon(better_orders={"apply_to": "all"})
    quotes = d.daemon.engine.quotes
    quotes.subscribe(["AAPL"])  # so that the halt can be seen before the plan exists

    def status(code: str, text: str) -> dict[str, Any]:
        return {"T": "s", "S": "AAPL", "sc": code, "sm": text, "rc": "T12",
                "rm": "Additional Information Requested", "t": d.venue.clock.now(),
                "z": "C"}  # fmt: skip

    async def halted() -> bool:
        # Only a connection subscribed to AAPL's statuses receives it: re-publish until the
        # daemon has seen it (the subscription may still be on its way).
        d.venue.hub.publish_market_data(status("H", "Trading Halt"))
        return quotes.halted("AAPL") is not None

    # a halted book is not quoted (review 11: after a gap in AAPL's statuses, as between a
    # buy's sizing and its leg, a newer quote is what ends a halt the stream cannot see)
    await d.venue.silence_quotes("AAPL", None)
    await d.wait_until(halted, "the daemon to see the halt")

    async def resume() -> None:
        d.venue.hub.publish_market_data(status("T", "Trading Resumption"))
        await d.venue.silence_quotes("AAPL", 0)

    await _buy_through_a_halt(d, "halt", resume)


async def test_the_venues_halt_holds_the_leg_until_it_resumes(start_daemon: StartDaemon) -> None:
    """`/sim/halt` (the venue sends `statuses` `H`, then `T` on `/sim/resume`): a plan for
    the halted symbol sends nothing while halted and completes after the resumption."""
    d = await start_daemon(better_orders={"apply_to": "all"})  # marketable: a short test
    quotes = d.daemon.engine.quotes
    quotes.subscribe(["AAPL"])
    await asyncio.wait_for(quotes.wait_quote("AAPL"), 10)  # the subscription is live
    await d.venue.halt("AAPL")

    async def halted() -> bool:
        return quotes.halted("AAPL") is not None

    await d.wait_until(halted, "the daemon to see the venue's halt")

    async def resume() -> None:
        await d.venue.resume("AAPL")

    await _buy_through_a_halt(d, "vhalt", resume)


async def _buy_through_a_halt(
    d: Harness, plan_id: str, resume: Callable[[], Awaitable[None]]
) -> None:
    """AAPL is halted: a buy submitted now sends nothing for 1.5 s of venue time, then
    `resume()` ends the halt and the plan completes, its first order after the resumption."""
    plan = await d.submit(
        {"plan_id": plan_id, "legs": [{"symbol": "AAPL", "side": "buy", "qty": "5"}]}
    )
    begin = d.venue.clock.now()

    async def later() -> bool:
        return (d.venue.clock.now() - begin).total_seconds() >= 1.5

    await d.wait_until(later, "1.5 s of venue time while halted")
    assert await d.orders(plan.plan_id, 0) == [], "an order into a halted symbol"
    resumed_at = d.venue.clock.now()
    await resume()
    final = await d.finish(plan.plan_id)
    assert final.state == "completed", final.reason
    orders = await d.orders(plan.plan_id, 0)
    assert orders
    first = datetime.fromisoformat(orders[0]["order"]["created_at"].replace("Z", "+00:00"))
    assert first >= resumed_at
