"""Alpaca's order rules at submission, replace and cancel (ALPACA.md §0.5, §1.2–§1.8, §7)."""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal
from typing import Any

import pytest

from execd.sim.clock import VenueClock
from execd.sim.config import SimConfig
from execd.sim.errors import SimError
from execd.sim.exchange import Exchange

DAY = date(2026, 3, 4)  # a plain Wednesday


def make(start: time = time(10, 0), **overrides: Any) -> tuple[Exchange, list[dict[str, Any]]]:
    """A calm venue on a manual clock, advanced one second so every symbol has a quote."""
    fields: dict[str, Any] = {"scenario": "calm", "seed": 3, "start": start, "start_date": DAY}
    fields.update(overrides)
    config = SimConfig(**fields)
    ex = Exchange(config, VenueClock.from_config(config, monotonic=None))
    events: list[dict[str, Any]] = []
    ex.on_trade_update(events.append)
    ex.advance(1.0)
    return ex, events


def order(**fields: Any) -> dict[str, Any]:
    """An order body with defaults (a 1-share AAPL day limit far below the market)."""
    body: dict[str, Any] = {
        "symbol": "AAPL",
        "side": "buy",
        "type": "limit",
        "qty": 1,
        "limit_price": 150,
        "time_in_force": "day",
    }
    body.update(fields)
    return body


def refused(ex: Exchange, body: dict[str, Any]) -> SimError:
    """Submit `body`, expecting a refusal, and return it."""
    with pytest.raises(SimError) as info:
        ex.submit_order(body)
    return info.value


def test_sub_penny_prices_are_refused_with_alpacas_message() -> None:
    """≥ $1 allows 2 decimals and < $1 allows 4; beyond that 422 / 42210000 (§1.2)."""
    ex, _ = make()
    err = refused(ex, order(limit_price="150.123"))
    assert (err.status, err.code) == (422, 42210000)
    assert err.message == (
        "invalid limit_price 150.123. sub-penny increment does not fulfill minimum pricing criteria"
    )
    ex.submit_order(order(symbol="MULN", limit_price="0.4001", qty=100))
    err = refused(ex, order(symbol="MULN", limit_price="0.40015", qty=100))
    assert err.message.startswith("invalid limit_price 0.40015. sub-penny")


def test_fractional_orders_must_be_day_and_fractionable() -> None:
    """Fractional qty needs TIF day (422) and a fractionable asset (403)."""
    ex, _ = make()
    err = refused(ex, order(qty="0.5", time_in_force="gtc"))
    assert (err.status, err.code, err.message) == (
        422,
        42210000,
        "fractional orders must be DAY orders",
    )
    err = refused(ex, order(symbol="MULN", qty="10.5", limit_price="0.40"))
    assert (err.status, err.code, err.message) == (
        403,
        40310000,
        'asset "MULN" is not fractionable',
    )
    ex.submit_order(order(qty="0.5"))


def test_notional_is_market_and_day_only() -> None:
    """Notional orders work only as market day orders (OAS-T)."""
    ex, _ = make()
    body = order(qty=None, notional="100")
    assert refused(ex, body).status == 422
    ok = ex.submit_order(order(qty=None, notional="100", type="market", limit_price=None))
    assert ok["notional"] == "100"
    assert ok["qty"] is None


def test_extended_hours_must_be_day_limit() -> None:
    """extended_hours=true with a market order or non-day TIF is refused verbatim."""
    ex, _ = make()
    err = refused(ex, order(type="market", limit_price=None, extended_hours=True))
    assert (err.status, err.message) == (422, "extended hours order must be DAY limit orders")
    err = refused(ex, order(time_in_force="gtc", extended_hours=True))
    assert err.message == "extended hours order must be DAY limit orders"


def test_unknown_symbol_and_missing_quantity() -> None:
    """Unknown assets and missing qty/notional use Alpaca's recorded texts."""
    ex, _ = make()
    err = refused(ex, order(symbol="ZZZZ"))
    assert (err.status, err.code, err.message) == (422, 42210000, 'asset "ZZZZ" not found')
    err = refused(ex, order(qty=None))
    assert (err.status, err.code, err.message) == (422, 40010001, "qty or notional is required")


def test_client_order_id_is_unique_forever_and_at_most_128_chars() -> None:
    """A canceled order's client id still cannot be reused; 129 characters are too many."""
    ex, _ = make()
    first = ex.submit_order(order(client_order_id="abc-1"))
    ex.advance(0.1)
    ex.cancel_order(first["id"])
    ex.advance(0.1)
    err = refused(ex, order(client_order_id="abc-1"))
    assert (err.status, err.code, err.message) == (422, 40010001, "client_order_id must be unique")
    err = refused(ex, order(client_order_id="x" * 129))
    assert err.message == "client_order_id must be no more than 128 characters"
    ex.submit_order(order(client_order_id="y" * 128))


def test_numbers_arrive_as_strings_or_json_numbers() -> None:
    """alpaca-py sends floats; curl users send strings; both mean the same order (§0.3)."""
    ex, _ = make()
    a = ex.submit_order(order(qty=2.0, limit_price=150.25))
    b = ex.submit_order(order(qty="2", limit_price="150.25"))
    assert (a["qty"], a["limit_price"]) == (b["qty"], b["limit_price"]) == ("2", "150.25")


def test_buying_power_refusal_carries_the_extra_fields() -> None:
    """A buy over buying power is 403 with `buying_power` and `cost_basis` (GH alpaca-py#225)."""
    ex, _ = make(cash=Decimal("1000"), multiplier=1)
    err = refused(ex, order(qty=10, limit_price=150))
    assert (err.status, err.code, err.message) == (403, 40310000, "insufficient buying power")
    assert err.extra == {"buying_power": "1000", "cost_basis": "1500"}
    assert err.body()["cost_basis"] == "1500"


def test_open_buys_hold_buying_power() -> None:
    """An open buy reduces buying power immediately (§1.10)."""
    ex, _ = make(cash=Decimal("2000"), multiplier=1)
    ex.submit_order(order(qty=10, limit_price=150))
    assert ex.account()["buying_power"] == "500"
    assert refused(ex, order(qty=4, limit_price=150)).message == "insufficient buying power"


def test_sells_are_limited_to_position_less_open_sells() -> None:
    """Selling more than held minus open sells is refused with the requested/available text."""
    ex, _ = make(positions={"AAPL": Decimal(10)})
    ex.submit_order(order(side="sell", qty=6, limit_price=250))
    err = refused(ex, order(side="sell", qty=5, limit_price=250))
    assert (err.status, err.code) == (403, 40310000)
    assert err.message == "insufficient qty available for order (requested: 5, available: 4)"
    assert ex.position("AAPL")["qty_available"] == "4"


def test_sell_without_position_is_refused() -> None:
    """A cash account cannot short: a sell with no position has 0 available."""
    ex, _ = make(multiplier=1)
    err = refused(ex, order(side="sell", qty=1, limit_price=250))
    assert err.message == "insufficient qty available for order (requested: 1, available: 0)"


def test_wash_trade_is_refused_when_orders_would_cross() -> None:
    """An opposite-side order that could trade with our own open order is refused (§7)."""
    ex, _ = make(positions={"AAPL": Decimal(10)})
    ex.submit_order(order(side="sell", qty=1, limit_price=200))
    err = refused(ex, order(qty=1, limit_price=200))
    assert (err.status, err.message) == (403, "potential wash trade detected. use complex orders")
    assert refused(ex, order(type="market", limit_price=None)).status == 403
    ex.submit_order(order(qty=1, limit_price="199.99"))  # does not cross: allowed


def test_market_order_outside_the_session_is_queued_until_the_open() -> None:
    """Before 9:30 a market order answers `accepted` and reaches the book at the open."""
    ex, events = make(start=time(9, 29, 50))
    placed = ex.submit_order(order(type="market", limit_price=None))
    assert placed["status"] == "accepted"
    ex.advance(5)
    assert ex.get_order(placed["id"])["status"] == "accepted"
    assert events == []
    ex.advance(6)
    assert [e["event"] for e in events][:2] == ["pending_new", "new"]
    assert ex.get_order(placed["id"])["status"] in ("filled", "partially_filled")


def test_cancel_then_canceled_on_the_stream_and_422_when_filled() -> None:
    """DELETE is accepted, `canceled` follows; cancelling a filled order is 422 (§1.8)."""
    ex, events = make()
    resting = ex.submit_order(order())
    ex.advance(0.1)
    ex.cancel_order(resting["id"])
    ex.advance(0.1)
    assert events[-1]["event"] == "canceled"
    assert events[-1]["order"]["status"] == "canceled"
    filled = ex.submit_order(order(type="market", limit_price=None))
    ex.advance(0.1)
    assert ex.get_order(filled["id"])["status"] == "filled"
    with pytest.raises(SimError) as info:
        ex.cancel_order(filled["id"])
    assert (info.value.status, info.value.message) == (422, 'order is already in "filled" state')
    with pytest.raises(SimError) as info:
        ex.cancel_order("00000000-0000-4000-8000-000000000000")
    assert (info.value.status, info.value.code, info.value.message) == (
        404,
        40410000,
        "order not found",
    )


def test_cancel_all_answers_one_entry_per_open_order() -> None:
    """DELETE /v2/orders: 207 entries with id, HTTP status and the order body."""
    ex, events = make()
    a = ex.submit_order(order())
    b = ex.submit_order(order(limit_price=151))
    ex.advance(0.1)
    result = ex.cancel_all_orders()
    assert {r["id"] for r in result} == {a["id"], b["id"]}
    assert all(r["status"] == 200 and r["body"]["id"] == r["id"] for r in result)
    ex.advance(0.1)
    assert sorted(e["event"] for e in events if e["event"] == "canceled") == ["canceled"] * 2


def test_replace_gives_a_new_id_and_links_both_orders() -> None:
    """PATCH answers a new order (`replaces`); the old one ends `replaced` with `replaced_by`."""
    ex, events = make()
    old = ex.submit_order(order(qty=3))
    with pytest.raises(SimError) as info:
        ex.replace_order(old["id"], {"limit_price": "151"})
    assert info.value.message == "unable to replace order, order isn't sent to exchange yet"
    ex.advance(0.1)
    new = ex.replace_order(old["id"], {"limit_price": "151", "qty": 3})
    assert new["id"] != old["id"]
    assert new["replaces"] == old["id"]
    assert new["limit_price"] == "151"
    ex.advance(0.1)
    after = ex.get_order(old["id"])
    assert (after["status"], after["replaced_by"]) == ("replaced", new["id"])
    assert [e["event"] for e in events][-2:] == ["replaced", "new"]
    assert ex.get_order(new["id"])["status"] == "new"


def test_replace_is_rejected_on_the_stream_when_the_original_fills_first() -> None:
    """A 200 on PATCH is no promise: if the original fills before the replace lands, the new
    order is rejected (§1.7)."""
    ex, events = make(ack_latency_s=0.003, fill_latency_s=0.05)
    quote = ex.latest_quotes(["AAPL"])["AAPL"]
    placed = ex.submit_order(order(limit_price=str(quote["ap"])))
    ex.advance(0.004)  # arrived and matched; fill report still in flight
    new = ex.replace_order(placed["id"], {"limit_price": "150", "qty": 1})
    ex.advance(0.2)
    names = [e["event"] for e in events]
    assert "fill" in names
    assert "order_replace_rejected" in names
    assert ex.get_order(new["id"])["status"] == "rejected"
    assert ex.get_order(placed["id"])["status"] == "filled"


def test_cancelling_the_replacement_of_a_pending_replace_cancels_it_after_the_replace() -> None:
    """A DELETE of the new order while its replace is pending is accepted (§1.8: cancelable
    until filled, canceled or expired; ALPACA.md is silent on this race, so this is the sim's
    choice): the replace completes — the old order ends `replaced` — and the new order ends
    `canceled` without reaching the book. Every status change stays legal."""
    ex, events = make(fill_latency_s=0.05)
    old = ex.submit_order(order(qty=3))
    ex.advance(0.1)
    new = ex.replace_order(old["id"], {"limit_price": "151", "qty": 3})
    ex.cancel_order(new["id"])
    ex.cancel_order(new["id"])  # a retried cancel: still one answer, one `canceled`
    with pytest.raises(SimError):  # §1.7: the old order, pending_replace, refuses a cancel
        ex.cancel_order(old["id"])
    ex.advance(1.0)
    assert ex.get_order(old["id"])["status"] == "replaced"
    assert ex.get_order(new["id"])["status"] == "canceled"
    assert [(e["event"], e["order"]["id"]) for e in events][-2:] == [
        ("replaced", old["id"]),
        ("canceled", new["id"]),
    ]
    assert ex._books["AAPL"].resting(new["id"]) is None
    assert {o.id for o in ex._open_orders()} == set()
    ex.submit_order(order())  # the venue goes on
    ex.advance(0.1)


def test_cancelling_the_replacement_when_the_original_filled_first_leaves_it_rejected() -> None:
    """The other end of the race: the original fills before the replace lands, so the new
    order is rejected (§1.7) and the pending cancel of it has nothing left to do."""
    ex, events = make(ack_latency_s=0.003, fill_latency_s=0.05)
    quote = ex.latest_quotes(["AAPL"])["AAPL"]
    placed = ex.submit_order(order(limit_price=str(quote["ap"])))
    ex.advance(0.004)
    new = ex.replace_order(placed["id"], {"limit_price": "150", "qty": 1})
    ex.cancel_order(new["id"])
    ex.advance(0.2)
    assert ex.get_order(placed["id"])["status"] == "filled"
    assert ex.get_order(new["id"])["status"] == "rejected"
    assert "canceled" not in [e["event"] for e in events]


def test_cancel_that_loses_the_race_to_a_fill_is_rejected() -> None:
    """A cancel reaching the book after the order matched cannot undo the fill."""
    ex, events = make(fill_latency_s=0.05)
    quote = ex.latest_quotes(["AAPL"])["AAPL"]
    placed = ex.submit_order(order(limit_price=str(quote["ap"])))
    ex.advance(0.004)
    ex.cancel_order(placed["id"])
    ex.advance(0.2)
    assert ex.get_order(placed["id"])["status"] == "filled"
    assert "order_cancel_rejected" in [e["event"] for e in events]


def test_injected_rejections_come_first() -> None:
    """reject_next_orders makes the next submissions fail with the given HTTP error."""
    ex, _ = make()
    ex.reject_next_orders(1, 500, "internal server error", 50010000)
    err = refused(ex, order())
    assert (err.status, err.code) == (500, 50010000)
    ex.submit_order(order())
