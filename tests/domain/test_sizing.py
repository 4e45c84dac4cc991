"""Sizing never asks for more than the money or the asset allows."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.domain.sizing import (
    account_figure,
    affordable_qty,
    qty_for_notional,
    reservation_price,
    round_qty_down,
    sellable_qty,
)

money = st.decimals(min_value="0.01", max_value="1000000", places=2)
prices = st.decimals(min_value="0.0001", max_value="5000", places=4)


@given(money, prices, st.booleans())
def test_notional_never_overspends(notional: Decimal, price: Decimal, frac: bool) -> None:
    """qty × price never exceeds the notional; whole shares for non-fractionable assets."""
    qty = qty_for_notional(notional, price, frac)
    assert qty * price <= notional
    assert qty >= 0
    if not frac:
        assert qty == qty.to_integral_value()
    assert qty.as_tuple().exponent >= -9  # type: ignore[operator]


def test_notional_examples() -> None:
    """$1,500 of a $190.37 stock: 7 whole shares, or 7.879392761 fractional shares."""
    assert qty_for_notional(Decimal("1500"), Decimal("190.37"), False) == Decimal(7)
    assert qty_for_notional(Decimal("1500"), Decimal("190.37"), True) == Decimal("7.879392761")


def test_fractional_leftover_is_kept_exactly() -> None:
    """A 7.2273576-share exit is not rounded to something the account does not hold."""
    assert round_qty_down(Decimal("7.2273576"), True) == Decimal("7.2273576")
    assert round_qty_down(Decimal("0.3"), False) == 0


@given(
    st.decimals(min_value=1, max_value=10_000, places=0),
    prices,
    money,
    st.booleans(),
)
def test_affordable_never_exceeds_power_or_request(
    qty: Decimal, price: Decimal, power: Decimal, frac: bool
) -> None:
    """The shrunk buy fits the buying power and is never larger than asked."""
    got = affordable_qty(qty, price, power, frac)
    assert 0 <= got <= qty
    assert got * price <= power or (got == qty and qty * price <= power)


def test_last_buy_shrinks_instead_of_failing() -> None:
    """100 shares at $50 with $4,999.99 of power buys 99, not a rejected order."""
    assert affordable_qty(Decimal(100), Decimal(50), Decimal("4999.99"), False) == 99
    assert affordable_qty(Decimal(100), Decimal(50), Decimal("5000"), False) == 100
    assert affordable_qty(Decimal(100), Decimal(50), Decimal("-3"), False) == 0


def test_reservation_covers_the_slippage_budget() -> None:
    """The reservation is the ask plus the budget plus one tick."""
    assert reservation_price(Decimal("100"), Decimal("20"), Decimal("0.01")) == Decimal("100.21")


def test_bad_prices_raise() -> None:
    """A zero price is a bug upstream, not something to size from."""
    with pytest.raises(ValueError, match="price"):
        qty_for_notional(Decimal(1), Decimal(0), True)
    with pytest.raises(ValueError, match="price"):
        affordable_qty(Decimal(1), Decimal(0), Decimal(1), True)


# ---------------------------------------------------------------- fit_buy (issue 11 item 1)


def test_fit_buy_fits_shrinks_within_tolerance_and_refuses_beyond() -> None:
    """A buy that fits is untouched; a few dollars short is shrunk (within 1 % of the
    plan's buys); an absurd quantity is refused, never turned into the whole account."""
    from execd.domain.sizing import fit_buy

    D = Decimal
    fits = fit_buy(D(10), D(100), D(1000), D(1000), D(1), False)
    assert (fits.qty, fits.verdict) == (D(10), "fits")
    # Exactly at the cash is a fit.
    assert fit_buy(D(10), D(100), D(1000), D(5000), D(1), False).verdict == "fits"
    shrunk = fit_buy(D(10), D(100), D(950), D(10_000), D(1), False)
    assert (shrunk.qty, shrunk.verdict, shrunk.shortfall) == (D(9), "shrunk", D(100))
    # The shortfall exactly at the tolerance shrinks; one cent beyond it refuses.
    edge = fit_buy(D(10), D(100), D(900), D(10_000), D(1), False)
    assert (edge.qty, edge.verdict) == (D(9), "shrunk")
    beyond = fit_buy(D(10), D("100.01"), D(900), D(10_000), D(1), False)
    assert (beyond.qty, beyond.verdict) == (D(0), "refused")
    absurd = fit_buy(D(1_000_000_000), D(100), D(100_000), D(100_000_000_000), D(1), False)
    assert (absurd.qty, absurd.verdict) == (D(0), "refused")
    assert fit_buy(D(10), D(100), D(0), D(1000), D(50), False).verdict == "refused"


qtys = st.decimals(min_value="-1000", max_value="1000000", places=9)


@given(qtys, qtys, qtys)
def test_sellable_never_beyond_the_position_or_negative(
    total: Decimal, available: Decimal, committed: Decimal
) -> None:
    free = sellable_qty(total, available, committed)
    assert Decimal(0) <= free
    assert free <= max(available, Decimal(0))
    assert free <= max(total - committed, Decimal(0))


def test_sellable_counts_a_live_orders_shares_once() -> None:
    # 300 held, another plan's live sell order holds 300: nothing is free.
    assert sellable_qty(Decimal(300), Decimal(0), Decimal(300)) == 0
    # It started but its order is not at the venue yet: still nothing free.
    assert sellable_qty(Decimal(300), Decimal(300), Decimal(300)) == 0
    # Someone else's order holds 100 of 300; execd sells nothing else: 200 free.
    assert sellable_qty(Decimal(300), Decimal(200), Decimal(0)) == 200
    # A short position sells nothing.
    assert sellable_qty(Decimal(-10), Decimal(-10), Decimal(0)) == 0


@pytest.mark.parametrize(
    "raw",
    [None, "", " ", "NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", "1,000", "٣", "1e", True],
)
def test_an_unusable_account_figure_is_none(raw: object) -> None:
    assert account_figure(raw) is None


@pytest.mark.parametrize(
    ("raw", "value"), [("100000.5", "100000.5"), ("0", "0"), ("-12.34", "-12.34"), ("1E+3", "1000")]
)
def test_a_finite_account_figure_is_kept(raw: str, value: str) -> None:
    assert account_figure(raw) == Decimal(value)
