"""Review 8: a PATCH *with* a qty, and the old order matches while the replace is in flight.

The PATCH qty check (`ledger.qty_available`) counts what the old order has matched at the
moment of the PATCH. But the old order rests in the book until the replacement reaches
the exchange (`ack_latency_s` later) and goes on matching there; the replacement's qty is
absolute (§1.7), so working it on top of what the old order matched meanwhile sold more
than the account held, and the account's guard raised
`RuntimeError: sell fill of N would flip SPY` out of `Exchange.advance`, i.e. out of
every REST call that catches the venue's clock up (the venue is dead), where ALPACA.md
§1.10 says a sell never flips the position (and §1.7: the replacement is rejected, or
works only what the original left). The daemon always sends `qty` on a PATCH, so this is
its path whenever a re-peg meets a trade. Seed 4 of the calm tape is one where the
resting sell trades within the 3 s acknowledgement.

The exchange now checks a closing replacement again when it arrives and refuses one that
no longer fits (`order_replace_rejected` / `rejected`, as Alpaca refuses insufficient
qty); the original goes on working what it had left.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from execd.sim.errors import SimError
from tests.sim.test_complex_replace import _exchange

D = Decimal
SHARES = 2000


def test_a_sell_matched_while_its_patch_is_in_flight_never_over_sells() -> None:
    ex = _exchange(seed=4, scenario="calm", ack_latency_s=3.0, positions={"SPY": D(SHARES)})
    events: list[dict[str, Any]] = []
    ex.on_trade_update(events.append)
    ask = D(str(ex.latest_quotes(["SPY"])["SPY"]["ap"]))
    price = str(ask + D("0.02"))
    order = ex.submit_order(
        {"symbol": "SPY", "side": "sell", "type": "limit", "qty": SHARES,
         "time_in_force": "day", "limit_price": price}
    )  # fmt: skip
    ex.advance(3.5)  # acknowledged, resting, nothing matched yet
    old = ex._orders[order["id"]]
    assert old.status == "new"
    assert old.matched_qty == 0
    # The honest PATCH: the whole position is available when it is sent.
    ex.replace_order(order["id"], {"qty": str(SHARES), "limit_price": price})
    for _ in range(30):  # the venue's clock catches up as REST calls would make it
        ex.advance(0.1)
    ex.advance(60.0)
    assert old.matched_qty > 0, "the old order did not trade in flight: the probe is void"
    sold = sum((D(e["qty"]) for e in events if e["event"] in ("fill", "partial_fill")), D(0))
    assert sold <= SHARES
    assert all(D(p["qty"]) >= 0 for p in ex.positions())
    # Alpaca's answer to a replacement that no longer fits (§1.7): refused, and the
    # original goes on working what it had left.
    kinds = [(e["event"], e["order"]["id"]) for e in events]
    assert ("order_replace_rejected", order["id"]) in kinds
    assert any(k == "rejected" and i != order["id"] for k, i in kinds)
    assert ("replaced", order["id"]) not in kinds
    assert old.status in ("partially_filled", "filled")


def _sold(events: list[dict[str, Any]], side: str) -> Decimal:
    fills = [e for e in events if e["event"] in ("fill", "partial_fill")]
    return sum((D(e["qty"]) for e in fills if e["order"]["side"] == side), D(0))


def test_a_cover_matched_while_its_patch_is_in_flight_never_flips_long() -> None:
    """The mirror: a buy covering a short, PATCHed at its full size while it trades (seed
    37: the cover trades part of its size within the 3 s acknowledgement)."""
    ex = _exchange(seed=37, scenario="calm", ack_latency_s=3.0, positions={})
    events: list[dict[str, Any]] = []
    ex.on_trade_update(events.append)
    ex.submit_order(
        {"symbol": "SPY", "side": "sell", "type": "market", "qty": SHARES, "time_in_force": "day"}
    )
    ex.advance(5.0)
    assert ex._account.qty("SPY") == -SHARES, "the short did not open: the probe is void"
    bid = D(str(ex.latest_quotes(["SPY"])["SPY"]["bp"]))
    price = str(bid - D("0.02"))
    order = ex.submit_order(
        {"symbol": "SPY", "side": "buy", "type": "limit", "qty": SHARES,
         "time_in_force": "day", "limit_price": price}
    )  # fmt: skip
    ex.advance(3.5)
    old = ex._orders[order["id"]]
    assert old.matched_qty == 0
    ex.replace_order(order["id"], {"qty": str(SHARES), "limit_price": price})
    for _ in range(30):
        ex.advance(0.1)
    ex.advance(60.0)
    assert 0 < old.matched_qty < SHARES, "no partial match in flight: the probe is void"
    assert _sold(events, "buy") <= SHARES
    assert all(D(p["qty"]) <= 0 for p in ex.positions())
    assert ("order_replace_rejected", order["id"]) in [
        (e["event"], e["order"]["id"]) for e in events
    ]


@pytest.mark.parametrize("first", ["sell", "buy"])
def test_no_order_opens_a_side_while_the_other_sides_opening_order_is_open(first: str) -> None:
    """Flat, margin: a short sell rests; a buy that does not cross it would fill first and the
    short sell would then flip the long it opened (the venue raised 'would flip', seed 0).
    ALPACA.md §1.10: pending opposite-side orders without a position → 403."""
    ex = _exchange(seed=0, scenario="calm", ack_latency_s=0.2, positions={})
    quote = ex.latest_quotes(["SPY"])["SPY"]
    far = {"sell": D(str(quote["ap"])) + D("0.03"), "buy": D(str(quote["bp"])) - D("0.01")}
    second = "buy" if first == "sell" else "sell"
    ex.submit_order(
        {"symbol": "SPY", "side": first, "type": "limit", "qty": 100,
         "time_in_force": "day", "limit_price": str(far[first])}
    )  # fmt: skip
    with pytest.raises(SimError) as refused:
        ex.submit_order(
            {"symbol": "SPY", "side": second, "type": "limit", "qty": 60,
             "time_in_force": "day", "limit_price": str(far[second])}
        )  # fmt: skip
    assert refused.value.status == 403
    ex.advance(600.0)  # the resting order trades on; the venue raised here before
