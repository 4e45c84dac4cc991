"""A complex order's exit in `pending_replace` when its group ends (ALPACA.md §1.3, §1.7).

Last session's crash had a twin here: when an OCO's other exit filled, or its parent was
cancelled or expired, `_end_legs` / `_shrink_exit_pair` cancelled a leg whose replace was
still pending, and the scheduled end of that replace then raised out of
`Exchange.advance` (a `canceled` order cannot become `replaced`) — out of every REST call
that catches the venue's clock up. Semantics kept (§1.7, "a 200 does not guarantee the
replace"): the group's end wins, the old exit ends with its group and the replacement is
rejected (`order_replace_rejected` on the old, `rejected` on the new) — exactly as when the
original fills first. Nothing of the group keeps working, the position is never oversold.
"""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal
from typing import Any

import pytest

from execd.sim.clock import VenueClock
from execd.sim.config import SimConfig
from execd.sim.errors import SimError
from execd.sim.exchange import Exchange

TERMINAL = {"filled", "canceled", "expired", "replaced", "rejected"}


def _exchange(**overrides: Any) -> Exchange:
    fields: dict[str, Any] = {
        "scenario": "fast",
        "seed": 8,
        "start_date": date(2026, 3, 4),
        "start": time(10, 0),
        "symbols": ("SPY",),
        "cash": Decimal("10000000"),
        "partial_fill_rate": 0.0,
        "positions": {"SPY": Decimal(10)},
    }
    fields.update(overrides)
    config = SimConfig(**fields)
    ex = Exchange(config, VenueClock.from_config(config, monotonic=None))
    ex.advance(1.0)
    return ex


def _oco(ex: Exchange, take_profit: Decimal, stop: Decimal) -> tuple[str, str]:
    oco = ex.submit_order(
        {
            "symbol": "SPY",
            "side": "sell",
            "type": "limit",
            "qty": 10,
            "time_in_force": "day",
            "order_class": "oco",
            "take_profit": {"limit_price": str(take_profit)},
            "stop_loss": {"stop_price": str(stop)},
        }
    )
    [leg] = oco["legs"]
    ex.advance(0.5)  # both exits routed (`new`): a replace is allowed
    assert ex.get_order(leg["id"])["status"] == "new"
    return str(oco["id"]), str(leg["id"])


def _bid(ex: Exchange) -> Decimal:
    return Decimal(str(ex.latest_quotes(["SPY"])["SPY"]["bp"]))


def _open(ex: Exchange) -> list[dict[str, Any]]:
    return list(ex.list_orders(status="open", limit=500))


@pytest.mark.parametrize("cancel_first", [False, True])
def test_cancelling_an_oco_while_its_stop_leg_replace_is_pending_ends_the_group(
    cancel_first: bool,
) -> None:
    """DELETE the OCO's take profit in the instant of a PATCH of its stop leg (either first):
    the venue keeps running and every order of the group ends, nothing fills. Cancel first
    used to complete the replace after the group had ended and leave the new stop working
    alone (an unpaired stop on the position); the other order used to raise."""
    ex = _exchange()
    bid = _bid(ex)
    parent, leg = _oco(ex, bid + Decimal(5), bid - Decimal(5))
    events: list[dict[str, Any]] = []
    ex.on_trade_update(events.append)
    if cancel_first:
        ex.cancel_order(parent)
    new = ex.replace_order(leg, {"stop_price": str(bid - Decimal(6))})["id"]
    assert ex.get_order(leg)["status"] == "pending_replace"
    if not cancel_first:
        ex.cancel_order(parent)
    ex.advance(1.0)
    assert _open(ex) == []
    statuses = (ex.get_order(parent)["status"], ex.get_order(leg)["status"])
    assert statuses in (("canceled", "canceled"), ("canceled", "replaced"))
    if statuses[1] == "canceled":  # the group ended first: the replace is refused
        assert ex.get_order(new)["status"] == "rejected"
        assert (leg, "order_replace_rejected") in [(e["order"]["id"], e["event"]) for e in events]
    else:  # the replace completed first; the group's cancel then ended the new stop
        assert ex.get_order(new)["status"] == "canceled"
    assert ex.positions()[0]["qty"] == "10"


def test_a_held_bracket_exit_cannot_be_replaced() -> None:
    """A held exit is not at the exchange (§1.3): a replace is refused like one of an
    `accepted` order, so no replacement can outlive a cancelled entry."""
    ex = _exchange(positions={})
    ask = Decimal(str(ex.latest_quotes(["SPY"])["SPY"]["ap"]))
    parent = ex.submit_order(
        {
            "symbol": "SPY",
            "side": "buy",
            "type": "limit",
            "limit_price": str(ask - Decimal(5)),
            "qty": 10,
            "time_in_force": "day",
            "order_class": "bracket",
            "take_profit": {"limit_price": str(ask)},
            "stop_loss": {"stop_price": str(ask - Decimal(10))},
        }
    )
    tp, _ = parent["legs"]
    ex.advance(1.0)
    assert ex.get_order(tp["id"])["status"] == "held"
    with pytest.raises(SimError) as refused:
        ex.replace_order(tp["id"], {"limit_price": str(ask + 1)})
    assert refused.value.status == 422


def test_an_oco_that_expires_at_the_close_with_a_pending_replace_ends_cleanly() -> None:
    """The session closes while the stop leg's replace is pending: the group expires, the
    replacement is rejected, the venue's clock runs on."""
    ex = _exchange(start=time(15, 59, 57))
    bid = _bid(ex)
    parent, leg = _oco(ex, bid + Decimal(5), bid - Decimal(5))
    ex.advance(1.499)  # 15:59:59.999: the replace is still on its way at the close
    new = ex.replace_order(leg, {"stop_price": str(bid - Decimal(6))})
    ex.advance(0.0005)
    assert ex.get_order(leg)["status"] == "pending_replace"
    ex.advance(2.0)
    assert ex.get_order(parent)["status"] == "expired"
    assert ex.get_order(leg)["status"] in ("expired", "canceled")
    assert ex.get_order(new["id"])["status"] == "rejected"
    assert _open(ex) == []


def test_a_simple_order_that_expires_with_a_pending_replace_ends_cleanly() -> None:
    """The same race without a complex order: a day limit replaced in the last instant of
    the session expires; its replacement is rejected, never left working."""
    ex = _exchange(start=time(15, 59, 58))
    bid = _bid(ex)
    order = ex.submit_order(
        {
            "symbol": "SPY",
            "side": "sell",
            "type": "limit",
            "qty": 3,
            "limit_price": str(bid + Decimal(5)),
            "time_in_force": "day",
        }
    )
    ex.advance(0.999)  # 15:59:59.999
    new = ex.replace_order(order["id"], {"limit_price": str(bid + Decimal(6))})
    ex.advance(0.0005)
    assert ex.get_order(order["id"])["status"] == "pending_replace"
    ex.advance(2.0)
    assert ex.get_order(order["id"])["status"] == "expired"
    assert ex.get_order(new["id"])["status"] == "rejected"
    assert _open(ex) == []


def test_an_oco_exit_that_fills_while_the_other_is_being_replaced_ends_the_pair() -> None:
    """The take profit fills while the stop leg is (nearly always) in `pending_replace`: the
    stop leg is re-priced at every chance until the market reaches the take profit. The
    venue never raises, the pair ends with one exit filled and nothing working, and the
    position is sold once, never short."""
    ex = _exchange(scenario="fast")
    bid = _bid(ex)
    parent, leg = _oco(ex, bid + Decimal("0.10"), bid - Decimal(5))
    current, raced = leg, 0
    stop = bid - Decimal(5)
    for _ in range(20_000):
        if ex.get_order(parent)["status"] in TERMINAL:
            break
        order = ex.get_order(current)
        if order["status"] == "new":
            stop -= Decimal("0.01")
            current = ex.replace_order(current, {"stop_price": str(stop)})["id"]
        elif order["status"] == "replaced":
            current = order["replaced_by"]
        raced += ex.get_order(leg)["status"] == "pending_replace"
        ex.advance(0.002)
    ex.advance(1.0)
    assert ex.get_order(parent)["status"] == "filled"
    assert _open(ex) == []
    assert ex.positions() == []
    assert raced > 0


def test_the_price_lag_fault_hides_filled_avg_price_for_its_time() -> None:
    """`set_avg_price_lag`: a fill's order reads `filled_avg_price: null` (REST and the
    fill event) for the lag, then shows it; 0 shows every hidden price at once."""
    ex = _exchange(positions={})
    events: list[dict[str, Any]] = []
    ex.on_trade_update(events.append)
    ex.set_avg_price_lag(2.0)
    body = {"symbol": "SPY", "side": "buy", "type": "market", "qty": 2, "time_in_force": "day"}
    first = ex.submit_order(body)["id"]
    ex.advance(0.5)
    order = ex.get_order(first)
    assert (order["status"], order["filled_avg_price"]) == ("filled", None)
    [fill] = [e for e in events if e["event"] == "fill"]
    assert fill["order"]["filled_avg_price"] is None
    assert fill["price"] is not None, "the execution's own price is never hidden"
    ex.advance(2.0)
    assert ex.get_order(first)["filled_avg_price"] is not None
    second = ex.submit_order(body)["id"]
    ex.advance(0.5)
    assert ex.get_order(second)["filled_avg_price"] is None
    ex.set_avg_price_lag(0.0)
    assert ex.get_order(second)["filled_avg_price"] is not None
