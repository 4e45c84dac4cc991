"""Review (issue 14, third pass): the venue's open-orders index (`sim.orders.OpenOrders`),
which replaced a scan of every order ever made in the buying-power, wash-trade and
quantity checks, attacked with random order lives: limit and market orders that fill,
partially fill, rest, are replaced (and refused a replace), cancelled twice, or refused.

After every step the index must hold exactly the orders a plain scan finds open, and the
ledger's figures must equal those of a ledger that scans. Found sound: a regression guard.

Found on the way (not a round-three change), fixed: cancelling a replacement order while
its replace is still pending crashed the venue's clock (the test below).
"""

from __future__ import annotations

import contextlib
from datetime import date, time
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from execd.sim.clock import VenueClock
from execd.sim.config import SimConfig
from execd.sim.errors import SimError
from execd.sim.exchange import Exchange
from execd.sim.ledger import Ledger

_SYMBOLS = ("AAPL", "TQQQ")

_steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("submit"),
            st.sampled_from(_SYMBOLS),
            st.sampled_from(["buy", "sell"]),
            st.sampled_from(["market", "limit"]),
            st.integers(1, 30),
            st.integers(-300, 300),  # the limit's distance from the quote, in cents
        ),
        st.tuples(
            st.just("replace"), st.integers(0, 50), st.integers(1, 30), st.integers(-300, 300)
        ),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("advance"), st.integers(1, 40)),
    ),
    min_size=1,
    max_size=25,
)


def _exchange() -> Exchange:
    config = SimConfig(
        scenario="calm",
        start=time(10, 0),
        start_date=date(2026, 3, 4),
        positions={"AAPL": Decimal(10)},
    )
    ex = Exchange(config, VenueClock.from_config(config, monotonic=None))
    ex.advance(1)
    return ex


def _mid(ex: Exchange, symbol: str) -> Decimal:
    q = ex.latest_quotes([symbol])[symbol]
    return (Decimal(str(q["bp"])) + Decimal(str(q["ap"]))) / 2


def _apply(ex: Exchange, step: tuple[Any, ...], made: list[str]) -> None:
    kind = step[0]
    if kind == "submit":
        _, symbol, side, type_, qty, cents = step
        body: dict[str, Any] = {
            "symbol": symbol, "side": side, "type": type_, "qty": qty, "time_in_force": "day",
        }  # fmt: skip
        if type_ == "limit":
            price = _mid(ex, symbol) + Decimal(cents) / 100
            body["limit_price"] = str(max(price, Decimal("0.01")).quantize(Decimal("0.01")))
        made.append(ex.submit_order(body)["id"])
    elif kind == "replace" and made:
        _, index, qty, cents = step
        order_id = made[index % len(made)]
        symbol = ex._orders[order_id].symbol
        price = max(_mid(ex, symbol) + Decimal(cents) / 100, Decimal("0.01"))
        made.append(
            ex.replace_order(
                order_id, {"qty": qty, "limit_price": str(price.quantize(Decimal("0.01")))}
            )["id"]
        )
    elif kind == "cancel" and made:
        ex.cancel_order(made[step[1] % len(made)])
    elif kind == "advance":
        ex.advance(step[1] / 10)


@settings(max_examples=60, deadline=None)
@given(_steps)
def test_review3_the_open_orders_index_equals_a_plain_scan(steps: list[tuple[Any, ...]]) -> None:
    ex = _exchange()
    ledger = ex._ledger
    scanning = Ledger(
        ex._account,
        ex._orders,
        ledger._reference,
        ledger._mark,
        multiplier=ledger.multiplier,
        shorting_enabled=ledger.shorting_enabled,
    )
    made: list[str] = []
    for step in steps:
        with contextlib.suppress(SimError):
            _apply(ex, step, made)
        indexed = {o.id for o in ex._open_orders()}
        assert indexed == {o.id for o in ex._orders.values() if o.is_open}
        assert ledger.held() == scanning.held()
        assert ledger.buying_power() == scanning.buying_power()
        for symbol in _SYMBOLS:
            assert ledger.qty_available(symbol) == scanning.qty_available(symbol)


def test_review3_cancelling_a_pending_replacement_does_not_crash_the_venue() -> None:
    """A leg that replaces its resting limit and, before the venue finished the replace,
    cancels the new id (a stop, a halt, a plan cancel) must get an answer and a venue that
    goes on: here the venue's scheduled `_finish_replace` raises out of `advance` (in the
    server: out of every request that catches the clock up), and nothing ends either order."""
    ex = _exchange()
    price = str((_mid(ex, "TQQQ") - 2).quantize(Decimal("0.01")))
    body = {"symbol": "TQQQ", "side": "buy", "type": "limit", "qty": 5, "time_in_force": "day"}
    old = ex.submit_order({**body, "limit_price": price})["id"]
    ex.advance(0.5)
    new = ex.replace_order(old, {"qty": 6, "limit_price": price})["id"]
    with contextlib.suppress(SimError):  # a refusal (422) would be an honest answer
        ex.cancel_order(new)
    ex.advance(2)
    assert not (ex._orders[old].is_open and ex._orders[new].is_open)
    assert {o.id for o in ex._open_orders()} == {o.id for o in ex._orders.values() if o.is_open}
