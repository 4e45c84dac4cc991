"""A PATCH *with* a qty while the old order has matched shares it has not reported yet.

The venue knows the executions it has made, reported or not (fill latency is only the
report's delay). A sell's replacement sized from the position as if those shares were still
held would, once they are reported, sell more than the account holds: the account's guard
raised `RuntimeError: sell fill of N would flip SPY` out of `Exchange.advance` — out of
every REST call that catches the venue's clock up. The daemon always sends `qty` on a
PATCH, so this is its path. An over-sized PATCH must be refused like any sell beyond what
is available (ALPACA.md §1.7 errors: 403 for shares, §1.10: never a flip), and the venue
must go on.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from execd.sim.errors import SimError
from execd.sim.exchange import Exchange
from tests.sim.test_complex_replace import _exchange

D = Decimal


def _partly_matched_sell(ex: Exchange, side: str = "sell") -> tuple[dict[str, Any], Decimal]:
    """A marketable 10-share order of SPY, partly matched and nothing of it reported."""
    quote = ex.latest_quotes(["SPY"])["SPY"]
    price = D(str(quote["bp"])) - 1 if side == "sell" else D(str(quote["ap"])) + 1
    order = ex.submit_order(
        {"symbol": "SPY", "side": side, "type": "limit", "qty": 10, "time_in_force": "day",
         "limit_price": str(price)}
    )  # fmt: skip
    ex.advance(ex._ack.total_seconds() + 0.05)  # arrived and matched; reports 0.5 s away
    matched = ex._orders[order["id"]].matched_qty
    assert ex.get_order(order["id"])["filled_qty"] == "0", "the fills were reported already"
    assert 0 < matched < 10, f"the order did not partly match: {matched}"
    return order, matched


def _sold(events: list[dict[str, Any]]) -> Decimal:
    return sum(
        (D(e["qty"]) for e in events if e["event"] in ("fill", "partial_fill")),
        D(0),
    )


def test_a_patch_with_qty_counts_the_shares_matched_but_not_reported() -> None:
    """A PATCH asking for the whole 10 shares again is refused (403, the shares the venue
    knows are left in `available`), the venue never raises, and the old order goes on."""
    ex = _exchange(partial_fill_rate=1.0)
    ex.set_fill_delay(0.5)
    events: list[dict[str, Any]] = []
    ex.on_trade_update(events.append)
    order, matched = _partly_matched_sell(ex)
    with pytest.raises(SimError) as refused:
        ex.replace_order(order["id"], {"qty": 10, "limit_price": "1.00"})
    assert refused.value.status == 403
    assert refused.value.message.endswith(f"available: {10 - matched})"), refused.value.message
    ex.advance(10.0)  # the fills are reported; the venue does not crash
    assert _sold(events) <= 10
    assert ex.get_order(order["id"])["status"] in ("filled", "partially_filled")


def test_a_patch_of_what_is_left_is_accepted_and_never_flips() -> None:
    """The honest PATCH (qty = what the venue knows is left) is accepted; after every
    report the position is flat, never short."""
    ex = _exchange(partial_fill_rate=1.0)
    ex.set_fill_delay(0.5)
    events: list[dict[str, Any]] = []
    ex.on_trade_update(events.append)
    order, matched = _partly_matched_sell(ex)
    rest = 10 - matched
    quote = ex.latest_quotes(["SPY"])["SPY"]
    new = ex.replace_order(
        order["id"], {"qty": str(rest), "limit_price": str(D(str(quote["bp"])) - 2)}
    )
    assert D(new["qty"]) == rest
    ex.advance(10.0)
    assert _sold(events) == 10
    assert not ex.positions()


def test_a_pending_replace_counts_its_unreported_fills_against_a_second_sell() -> None:
    """While the old order is `pending_replace` its matched-but-unreported shares still
    leave the position: a second sell of the whole position is refused, not over-sold."""
    ex = _exchange(partial_fill_rate=1.0, ack_latency_s=0.2)
    ex.set_fill_delay(0.5)
    events: list[dict[str, Any]] = []
    ex.on_trade_update(events.append)
    order, matched = _partly_matched_sell(ex)
    rest = 10 - matched
    ex.replace_order(order["id"], {"qty": str(rest), "limit_price": "1.00"})
    assert ex.get_order(order["id"])["status"] == "pending_replace"
    with pytest.raises(SimError) as refused:
        ex.submit_order(
            {"symbol": "SPY", "side": "sell", "type": "limit", "qty": str(matched),
             "time_in_force": "day", "limit_price": "1.00"}
        )  # fmt: skip
    assert refused.value.status == 403
    ex.advance(10.0)
    assert _sold(events) <= 10
