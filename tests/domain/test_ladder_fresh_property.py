"""Issue 10 "Done when": a hypothesis property over quote histories, with the quotes' own
timestamps and the venue clock as inputs to the pure core.

*The smart ladder never emits an order priced from a quote older than
`quote_freshness_seconds`, and never emits an uncapped market order unless the plain
market fallback was chosen or legacy mode is on.*
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from execd.domain.ladder import decide
from execd.domain.ladder_types import (
    CancelOrder,
    LadderEvent,
    LadderParams,
    LegSpec,
    LegState,
    OrderFill,
    OrderReplaced,
    OrderType,
    OrderUpdate,
    PlaceOrder,
    QuoteUpdate,
    ReplaceOrder,
    Start,
    TradingStatus,
    Wake,
)
from execd.domain.order_state import OrderEventKind as K
from execd.domain.quotes import Quote
from execd.domain.types import Side, Urgency
from tests.domain.test_ladder import MIDDAY, SESSION

D = Decimal
BOOKS = {
    "ok": ("10.00", "10.01", 1000),
    "wide": ("9.90", "10.10", 1000),
    "thin": ("10.00", "10.01", 10),
    "crossed": ("10.02", "10.01", 1000),
    "empty": ("0", "10.01", 1000),
    "up": ("10.20", "10.21", 1000),
}

steps = st.lists(
    st.one_of(
        st.tuples(st.just("quote"), st.sampled_from(sorted(BOOKS)), st.floats(0, 12)),
        st.tuples(st.just("advance"), st.sampled_from(["0.5", "2", "5.5", "30"]), st.just(0.0)),
        st.tuples(st.just("wake"), st.just(""), st.just(0.0)),
        st.tuples(st.just("ack"), st.just(""), st.just(0.0)),
        st.tuples(st.just("fill"), st.sampled_from(["10", "40"]), st.just(0.0)),
        st.tuples(st.just("halt"), st.sampled_from(["on", "off"]), st.just(0.0)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    steps=steps,
    urgency=st.sampled_from(list(Urgency)),
    symbol=st.sampled_from(["TQQQ", "AAPL"]),
    side=st.sampled_from(list(Side)),
    fallback=st.sampled_from(["collared", "market"]),
    smart=st.booleans(),
    method=st.sampled_from(["replace", "cancel_and_place"]),
)
def test_never_priced_from_a_stale_quote_never_an_unchosen_market_order(
    steps: list[tuple[str, str, float]],
    urgency: Urgency,
    symbol: str,
    side: Side,
    fallback: str,
    smart: bool,
    method: str,
) -> None:
    """Random quote histories (ages 0–12 s on the venue clock, broken books, halts), clock
    jumps, wakes, acks and fills: every limit is priced while the newest quote the ladder
    has is fresh, and a market order appears only when chosen or in legacy mode."""
    params = LadderParams(
        fallback_order=fallback,  # type: ignore[arg-type]
        enable_smart_execution=smart,
        repeg_method=method,  # type: ignore[arg-type]
        gate_wait_seconds=3.0,
        stale_quote_max_wait_seconds=20.0,
        market_open_delay_minutes=0,
    )
    spec = LegSpec("plan-p", 0, symbol, side, D(100), urgency, None, SESSION)
    state = LegState.new(spec)
    now = MIDDAY
    freshness = timedelta(seconds=params.quote_freshness_seconds)
    unacked: list[str] = []  # placed or replacement ids the venue has not acknowledged
    cancels: list[str] = []
    replaces: list[tuple[str, str]] = []
    working: str | None = None

    def feed(event: LadderEvent) -> None:
        nonlocal state, working
        state, actions = decide(state, event, now, params)
        for a in actions:
            if isinstance(a, PlaceOrder | ReplaceOrder):
                if isinstance(a, ReplaceOrder) or a.order_type is OrderType.LIMIT:
                    q = state.last_quote
                    assert q is not None, "a limit priced without a quote"
                    assert now - q.as_of <= freshness, "a limit priced from a stale quote"
                    assert state.halted is None, "a limit priced while halted"
                if isinstance(a, PlaceOrder) and a.order_type is OrderType.MARKET:
                    assert fallback == "market" or not smart, "an unchosen market order"
                    assert state.halted is None or not smart, "a market order while halted"
            if isinstance(a, PlaceOrder):
                unacked.append(a.client_order_id)
            elif isinstance(a, ReplaceOrder):
                replaces.append((a.client_order_id, a.new_client_order_id))
            elif isinstance(a, CancelOrder):
                cancels.append(a.client_order_id)

    feed(Start())
    for kind, arg, age in steps:
        if state.result is not None:
            break
        match kind:
            case "quote":
                bid, ask, size = BOOKS[arg]
                as_of = now - timedelta(seconds=age)
                feed(QuoteUpdate(Quote(symbol, D(bid), D(ask), D(size), D(size), as_of, as_of)))
            case "advance":
                now += timedelta(seconds=float(arg))
            case "wake":
                if state.deadline is not None:
                    now = max(now, state.deadline)
                    feed(Wake())
            case "ack":
                for cid in unacked:
                    working = cid
                    feed(OrderUpdate(cid, K.NEW))
                unacked.clear()
                for old, new in replaces:
                    working = new
                    feed(OrderReplaced(old, new))
                    feed(OrderUpdate(new, K.NEW))
                replaces.clear()
                for cid in cancels:
                    feed(OrderUpdate(cid, K.CANCELED))
                cancels.clear()
            case "fill":
                order = state.order(working) if working else None
                if order is not None and not order.is_terminal:
                    qty = min(D(arg), order.qty - order.executed_qty)
                    if qty > 0:
                        final = qty == order.qty - order.executed_qty
                        feed(
                            OrderFill(
                                working or "", f"e{len(state.fills)}", qty, D("10"), now, final
                            )
                        )
            case "halt":
                feed(TradingStatus(halted=arg == "on", code="H" if arg == "on" else "T"))
    assert state.executed_qty <= D(100)
