"""The leg's quantities computed without generators equal the plain sums, digit for digit."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from execd.domain.ladder_replace import replace
from execd.domain.ladder_types import LegSpec, LegState
from execd.domain.order_state import Execution, OrderState, OrderStatus
from execd.domain.types import Side, Urgency

SPEC = LegSpec("plan-1", 0, "AAPL", Side.BUY, Decimal(100), Urgency.NORMAL, None, None)
AT = datetime(2024, 3, 5, 15, tzinfo=UTC)

# Quantities with every kind of exponent: 1E+2 and 100 are equal, but 0 + 1E+2 is 100.
qtys = st.one_of(
    st.decimals(min_value=0, max_value=10_000, places=4),
    st.sampled_from([Decimal("1E+2"), Decimal("0E-3"), Decimal("5.000"), Decimal(0)]),
)
executions = st.lists(qtys, max_size=3).map(
    lambda qs: tuple(Execution(f"e{i}", q, Decimal(10), AT) for i, q in enumerate(qs))
)
orders = st.builds(
    OrderState,
    client_order_id=st.just("c"),
    qty=st.sampled_from([Decimal(100), Decimal("1E+2"), Decimal("7.5")]),
    status=st.sampled_from(list(OrderStatus)),
    executions=executions,
)


@given(orders=st.lists(orders, max_size=4), stray=executions)
def test_executed_qty_is_the_plain_sum(
    orders: list[OrderState], stray: tuple[Execution, ...]
) -> None:
    """Same value and same representation (exponent) as `sum(..., Decimal(0))` over each."""
    state = replace(LegState.new(SPEC), orders=tuple(orders), stray_fills=stray)
    plain = sum((o.executed_qty for o in orders), Decimal(0)) + sum(
        (e.qty for e in stray), Decimal(0)
    )
    assert str(state.executed_qty) == str(plain)
    assert str(state.remaining) == str(SPEC.qty - plain)
    for o in orders:
        assert str(o.filled_qty) == str(sum((e.qty for e in o.executions), Decimal(0)))
