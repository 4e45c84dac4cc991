"""Client order ids: deterministic, short, parseable, and only ours match."""

from hypothesis import given
from hypothesis import strategies as st

from execd.domain.ids import (
    client_order_id,
    is_execd_order,
    leg_order_prefix,
    parse_client_order_id,
)

plan_ids = st.from_regex(r"[A-Za-z0-9\-_.:]{1,64}", fullmatch=True)


@given(plan_ids, st.integers(0, 999), st.integers(0, 999_999))
def test_round_trip_and_length(plan_id: str, leg: int, attempt: int) -> None:
    """An id parses back to its leg and attempt and fits Alpaca's old 48-char limit."""
    cid = client_order_id(plan_id, leg, attempt)
    assert len(cid) <= 48
    assert cid.startswith(leg_order_prefix(plan_id, leg))
    parts = parse_client_order_id(cid)
    assert parts is not None
    assert (parts.leg_index, parts.attempt) == (leg, attempt)


def test_deterministic() -> None:
    """The same plan, leg and attempt always give the same id (crash recovery relies on it)."""
    assert client_order_id("plan-1", 3, 2) == client_order_id("plan-1", 3, 2)
    assert client_order_id("plan-1", 3, 2) != client_order_id("plan-2", 3, 2)


def test_foreign_orders_are_not_ours() -> None:
    """Orders placed by anything else are never mistaken for execd's."""
    assert not is_execd_order("my-strategy-order-1")
    assert not is_execd_order("xd-zzzz-1-1")
    assert not is_execd_order("5f3c2a9e-7d9b-4b7a-9c1e-0d8a6b3e2f10")
