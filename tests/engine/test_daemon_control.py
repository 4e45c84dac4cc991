"""Issue 4, "Done when": plans, cancel, halt and resubmission through the real daemon.

Requests go over the daemon's Unix socket with the CLI's own client where the socket is
what is being tested; the venue's order history is the judge of what was sent.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from execd.control.client import ControlClient
from execd.control.protocol import ControlError, ErrorCode, WatchEvent
from execd.domain.ids import is_execd_order
from tests.engine.conftest import Harness, StartDaemon

pytestmark = pytest.mark.slow

# A buy capped far below the market: it rests at the venue until something stops it.
RESTING_AAPL = {"symbol": "AAPL", "side": "buy", "qty": "5", "limit_price": "150.00"}
RESTING_TQQQ = {"symbol": "TQQQ", "side": "buy", "qty": "5", "limit_price": "50.00"}

# Long enough that a capped leg is still working when the test acts on it.
PATIENT = {"better_orders": {"normal_timeout_seconds": 30.0}}


def _working(event: WatchEvent) -> bool:
    return event.leg is not None and event.leg.limit_price is not None


async def _open_orders(d: Harness) -> list[dict[str, Any]]:
    return d.venue.exchange.list_orders(status="open", limit=500)


async def _wait_working(d: Harness, plan_id: str) -> None:
    """Until the plan has an order working at the venue (acknowledged by the book)."""
    await d.events(plan_id, until=_working)

    async def acknowledged() -> bool:
        orders = await d.orders(plan_id)
        return any(e["order"]["status"] == "new" for e in orders)

    await d.wait_until(acknowledged, f"{plan_id}'s order to reach the book")


async def test_invalid_plans_are_rejected_and_nothing_reaches_the_venue(
    start_daemon: StartDaemon,
) -> None:
    """Malformed plans, unknown symbols, fractional shares of a whole-share asset and sells
    beyond the position are refused over the socket with `invalid_plan`; the venue never
    sees an order and the daemon keeps no plan."""
    d = await start_daemon(sim={"positions": {"TQQQ": "10"}})
    bad_plans: list[dict[str, Any]] = [
        {"plan_id": "bad-qty", "legs": [{"symbol": "TQQQ", "side": "buy", "qty": "-3"}]},
        {"plan_id": "bad-side", "legs": [{"symbol": "TQQQ", "side": "hold", "qty": "1"}]},
        {"plan_id": "bad-empty", "legs": []},
        {"plan_id": "bad-symbol", "legs": [{"symbol": "ZZZZ", "side": "buy", "qty": "1"}]},
        {"plan_id": "bad-frac", "legs": [{"symbol": "MULN", "side": "buy", "qty": "1.5"}]},
        {
            "plan_id": "bad-oversell",
            "legs": [
                {"symbol": "AAPL", "side": "buy", "qty": "1"},
                {"symbol": "TQQQ", "side": "sell", "qty": "11"},
            ],
        },
    ]
    async with ControlClient(d.daemon.socket_path) as client:
        for plan in bad_plans:
            with pytest.raises(ControlError) as refused:
                await client.submit(plan)
            assert refused.value.code == ErrorCode.INVALID_PLAN, plan
        assert await client.plans() == []
    history = await d.history()
    assert history["orders"] == []
    assert history["fills"] == []


async def test_cancel_mid_plan_leaves_no_working_order(start_daemon: StartDaemon) -> None:
    """`cancel` while a leg's limit is resting cancels it at the venue and ends the plan
    `canceled`; afterwards the venue lists no open order at all."""
    d = await start_daemon(**PATIENT)
    await d.submit({"plan_id": "to-cancel", "legs": [RESTING_AAPL, RESTING_TQQQ]})
    await _wait_working(d, "to-cancel")
    assert await _open_orders(d)
    async with ControlClient(d.daemon.socket_path) as client:
        status = await client.cancel("to-cancel")
    assert status.state == "canceled"
    assert all(leg.state == "canceled" for leg in status.legs)
    assert await _open_orders(d) == []
    orders = await d.orders("to-cancel")
    assert orders
    assert {e["order"]["status"] for e in orders} == {"canceled"}


async def test_halt_cancels_everything_and_refuses_plans_until_resume(
    start_daemon: StartDaemon,
) -> None:
    """`halt` stops every plan and cancels every working execd order (and only execd's: an
    order placed by hand stays); new plans are refused and send nothing until `resume`,
    after which a plan runs again."""
    d = await start_daemon(**PATIENT)
    manual = d.venue.exchange.submit_order(
        {
            "symbol": "SPY",
            "side": "buy",
            "type": "limit",
            "qty": "1",
            "limit_price": "400.00",
            "time_in_force": "day",
            "client_order_id": "by-hand-1",
        }
    )
    await d.submit({"plan_id": "halt-a", "legs": [RESTING_AAPL]})
    await d.submit({"plan_id": "halt-b", "legs": [RESTING_TQQQ]})
    await _wait_working(d, "halt-a")
    await _wait_working(d, "halt-b")
    async with ControlClient(d.daemon.socket_path) as client:
        halted = await client.halt()
        assert halted.halted
        assert halted.canceled_orders >= 1
        for plan_id in ("halt-a", "halt-b"):
            status = await client.status(plan_id)
            assert status.state == "halted"
        open_now = await _open_orders(d)
        assert [o["client_order_id"] for o in open_now] == [manual["client_order_id"]]
        sent = len((await d.history())["orders"])
        with pytest.raises(ControlError) as refused:
            await client.submit({"plan_id": "halt-c", "legs": [RESTING_AAPL]})
        assert refused.value.code == ErrorCode.HALTED
        assert (await client.health()).halted
        assert len((await d.history())["orders"]) == sent
        assert not (await client.resume()).halted
        status = await client.submit(
            {"plan_id": "after", "legs": [{"symbol": "TQQQ", "side": "buy", "qty": "1"}]}
        )
    d.plans.append(status.plan_id)
    final = await d.finish("after")
    assert final.state == "completed", final.reason
    assert len(await d.orders("after")) >= 1


async def test_resubmitted_plan_id_sends_nothing_new(start_daemon: StartDaemon) -> None:
    """Submitting a plan id again — while it works and after it finished — answers with
    the existing plan and sends no order."""
    d = await start_daemon(**PATIENT)
    plan = {"plan_id": "once", "legs": [RESTING_AAPL]}
    await d.submit(plan)
    await _wait_working(d, "once")
    async with ControlClient(d.daemon.socket_path) as client:
        before = await d.orders("once")
        again = await client.submit(plan)
        assert again.plan_id == "once"
        assert again.state == "working"
        assert await d.orders("once") == before
        await client.cancel("once")
        ids = [e["order"]["id"] for e in await d.orders("once")]
        after_end = await client.submit(plan)
        assert after_end.state == "canceled"
        assert [e["order"]["id"] for e in await d.orders("once")] == ids
        assert await _open_orders(d) == []
        assert len(await client.plans()) == 1


async def test_sells_finish_before_buys_start(start_daemon: StartDaemon) -> None:
    """A plan listing its buy first still sells first: the buy's first order reaches the
    venue only after every order of the sell is done."""
    d = await start_daemon(sim={"positions": {"TQQQ": "100"}})
    plan = {
        "plan_id": "rebalance",
        "legs": [
            {"symbol": "SOXL", "side": "buy", "qty": "20"},
            {"symbol": "TQQQ", "side": "sell", "qty": "50"},
        ],
    }
    status = await d.run(plan)
    assert status.state == "completed", status.reason
    buys = await d.orders("rebalance", 0)
    sells = await d.orders("rebalance", 1)
    assert buys
    assert sells
    sell_done = max(datetime.fromisoformat(e["events"][-1]["timestamp"]) for e in sells)
    first_buy = datetime.fromisoformat(buys[0]["order"]["created_at"])
    assert all(e["order"]["status"] in ("filled", "replaced") for e in sells)
    assert first_buy >= sell_done
    assert sum(Decimal(e["order"]["filled_qty"]) for e in sells) == 50
    positions = {p["symbol"]: Decimal(p["qty"]) for p in d.venue.exchange.positions()}
    assert positions["TQQQ"] == 50
    assert positions["SOXL"] == 20
    assert all(is_execd_order(e["order"]["client_order_id"]) for e in buys + sells)
