"""Transaction-cost maths: signs, benchmarks, the market-order comparison, VWAP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.domain.quotes import Quote
from execd.domain.tca import (
    Fill,
    VwapAccumulator,
    average_price,
    far_touch,
    leg_report,
    plan_savings,
    round_bps,
    round_usd,
    slippage_bps,
    vwap_between,
)
from execd.domain.types import Side

T0 = datetime(2026, 3, 9, 14, 40, tzinfo=UTC)
D = Decimal

prices = st.decimals(min_value=D("0.0001"), max_value=D("5000"), places=4)
sizes = st.decimals(min_value=D("0.0001"), max_value=D("100000"), places=4)
sides = st.sampled_from(Side)


def _quote(bid: str, ask: str, at: datetime = T0) -> Quote:
    return Quote("AAPL", D(bid), D(ask), D(100), D(100), at, at)


def _fill(qty: str, price: str, quote: Quote | None = None, seconds: int = 0) -> Fill:
    return Fill(D(qty), D(price), T0 + timedelta(seconds=seconds), quote)


def test_slippage_buy_and_sell_examples() -> None:
    """Buying 10¢ over a $100 benchmark costs 10 bps; selling 10¢ under it costs 10 bps too."""
    assert slippage_bps(Side.BUY, D("100.10"), D("100")) == D("10")
    assert slippage_bps(Side.SELL, D("99.90"), D("100")) == D("10")
    assert slippage_bps(Side.BUY, D("99.90"), D("100")) == D("-10")


def test_slippage_rejects_non_positive_benchmark() -> None:
    """A zero benchmark (an empty book side) cannot be measured against."""
    with pytest.raises(ValueError, match="benchmark must be > 0"):
        slippage_bps(Side.BUY, D("1"), D("0"))


def test_far_touch() -> None:
    """A buy takes the ask, a sell hits the bid."""
    q = _quote("10.00", "10.02")
    assert far_touch(Side.BUY, q) == D("10.02")
    assert far_touch(Side.SELL, q) == D("10.00")


def test_buy_leg_report_worked_example() -> None:
    """A two-fill buy measured against every benchmark, checked by hand."""
    arrival = _quote("100.00", "100.10")
    fills = [
        _fill("60", "100.06", _quote("100.01", "100.09")),
        _fill("40", "100.08", _quote("100.02", "100.10"), seconds=2),
    ]
    r = leg_report("AAPL", Side.BUY, arrival, fills, D("100.07"), requested_qty=D("100"))
    assert r.filled_qty == D("100")
    assert r.fill_count == 2
    assert r.avg_price == D("100.068")
    assert r.notional == D("10006.80")
    assert r.arrival_mid == D("100.05")
    assert round_bps(r.vs_arrival_mid_bps or D(0)) == D("1.80")  # 0.018 / 100.05
    expected_mid = (
        D(60) * (D("0.01") * 10_000 / D("100.05")) + D(40) * (D("0.02") * 10_000 / D("100.06"))
    ) / 100
    assert r.vs_fill_mid_bps == expected_mid
    assert r.vs_fill_touch_bps is not None
    assert r.vs_fill_touch_bps < 0  # both fills beat the ask at the time
    assert round_bps(r.vs_vwap_bps or D(0)) == D("-0.20")
    assert r.market_order_price == D("100.10")
    assert r.saving_vs_market_usd == D("3.200")
    assert round_bps(r.saving_vs_market_bps or D(0)) == D("3.20")
    assert r.beat_market_order is True
    assert r.fill_ratio == D(1)


def test_sell_leg_report_mirrors_buy() -> None:
    """A sell above the bid saves money against a market order at the bid."""
    arrival = _quote("50.00", "50.04")
    r = leg_report("TQQQ", Side.SELL, arrival, [_fill("10", "50.01", arrival)])
    assert r.market_order_price == D("50.00")
    assert r.saving_vs_market_usd == D("0.10")
    assert r.saving_vs_market_bps == D("2")
    assert r.vs_arrival_mid_bps == D("0.01") * 10_000 / D("50.02")
    assert r.vs_fill_touch_bps == D("-2")  # sold 1¢ above the bid
    assert r.fill_ratio is None


def test_fill_worse_than_market_order_is_negative_saving() -> None:
    """A buy filled above the arrival ask is reported as a loss, not hidden."""
    r = leg_report("AAPL", Side.BUY, _quote("10.00", "10.01"), [_fill("5", "10.03")])
    assert r.saving_vs_market_usd == D("-0.10")
    assert r.beat_market_order is False


def test_report_without_fills_or_quotes() -> None:
    """Missing inputs give None benchmarks, never a fake zero."""
    r = leg_report("AAPL", Side.BUY, None, [])
    assert r.avg_price is None
    assert r.filled_qty == 0
    assert r.vs_arrival_mid_bps is None
    assert r.vs_fill_mid_bps is None
    assert r.vs_vwap_bps is None
    assert r.saving_vs_market_usd is None
    assert r.beat_market_order is None


def test_empty_book_side_gives_no_benchmark() -> None:
    """A zero ask at arrival has no mid and no market-order price for a buy."""
    r = leg_report("AAPL", Side.BUY, _quote("10.00", "0"), [_fill("1", "10.02")])
    assert r.arrival_mid is None
    assert r.market_order_price is None
    assert r.vs_fill_mid_bps is None  # the fill had no quote either


def test_fills_without_quotes_are_left_out_of_nbbo_benchmarks() -> None:
    """Only fills with a quote count towards the NBBO-at-fill slippage, weighted by qty."""
    q = _quote("20.00", "20.02")
    fills = [_fill("10", "20.01", q), _fill("90", "25.00")]
    r = leg_report("AAPL", Side.BUY, q, fills)
    assert r.vs_fill_mid_bps == D(0)
    assert r.vs_fill_touch_bps == D("-0.01") * 10_000 / D("20.02")


def test_fill_validation() -> None:
    """Fills with non-positive qty or price, or a naive time, are refused."""
    with pytest.raises(ValueError, match="qty"):
        Fill(D(0), D(1), T0)
    with pytest.raises(ValueError, match="price"):
        Fill(D(1), D(-1), T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        Fill(D(1), D(1), datetime(2026, 3, 9, 10, 0))


def test_plan_savings_sums_legs() -> None:
    """Plan savings add up dollars and weight bps by market-order notional."""
    buy = leg_report("A", Side.BUY, _quote("9.99", "10.00"), [_fill("100", "9.99")])
    sell = leg_report("B", Side.SELL, _quote("20.00", "20.02"), [_fill("50", "20.01")])
    none = leg_report("C", Side.BUY, None, [_fill("1", "5")])
    total = plan_savings([buy, sell, none])
    assert total.legs_measured == 2
    assert total.saving_usd == D("1.50")
    assert total.market_order_notional == D("2000.00")
    assert total.saving_bps == D("7.5")
    assert plan_savings([]).saving_bps is None


def test_rounding_helpers() -> None:
    """Display rounding is banker's rounding."""
    assert round_bps(D("1.125")) == D("1.12")
    assert round_usd(D("3.205")) == D("3.20")
    assert round_usd(D("-0.015")) == D("-0.02")


def test_vwap_accumulator_and_interval() -> None:
    """The running VWAP and an interval VWAP from two marks."""
    acc = VwapAccumulator()
    assert acc.vwap is None
    acc.add(D("10"), D("100"))
    start = acc.mark()
    acc.add(D("11"), D("100"))
    acc.add(D("12"), D("300"))
    assert acc.volume == D("500")
    assert acc.vwap == D("11.4")
    assert vwap_between(start, acc.mark()) == D("11.75")
    assert vwap_between(start, start) is None
    with pytest.raises(ValueError, match="precedes"):
        vwap_between(acc.mark(), start)


def test_vwap_rejects_broken_prints() -> None:
    """Non-positive price or size is a broken print, not a trade."""
    acc = VwapAccumulator()
    with pytest.raises(ValueError, match="price"):
        acc.add(D(0), D(1))
    with pytest.raises(ValueError, match="size"):
        acc.add(D(1), D(0))
    assert acc.volume == 0


@pytest.mark.parametrize(
    ("price", "size"),
    [("Infinity", "1"), ("-Infinity", "1"), ("NaN", "1"), ("sNaN", "1"), ("10", "Infinity"),
     ("10", "NaN")],
)  # fmt: skip
def test_vwap_refuses_non_finite_prints(price: str, size: str) -> None:
    """Review 2: one infinite print made every later VWAP Infinity/NaN, and a NaN raised
    `InvalidOperation` from the comparison. Refused with a ValueError; the totals stay."""
    acc = VwapAccumulator()
    acc.add(D("10"), D("2"))
    with pytest.raises(ValueError, match="finite"):
        acc.add(D(price), D(size))
    assert acc.volume == 2
    assert acc.vwap == D("10")


@given(sides, prices, prices)
def test_slippage_sign_symmetry(side: Side, price: Decimal, benchmark: Decimal) -> None:
    """A buy and a sell at the same price have opposite slippage."""
    assert slippage_bps(side, price, benchmark) == -slippage_bps(side.opposite, price, benchmark)


@given(sides, prices)
def test_slippage_zero_at_benchmark(side: Side, price: Decimal) -> None:
    """Trading exactly at the benchmark costs nothing."""
    assert slippage_bps(side, price, price) == 0


@given(st.lists(st.tuples(sizes, prices), min_size=1, max_size=20))
def test_average_price_between_min_and_max(raw: list[tuple[Decimal, Decimal]]) -> None:
    """The qty-weighted average fill price lies between the lowest and highest fill."""
    fills = [Fill(q, p, T0) for q, p in raw]
    avg = average_price(fills)
    assert avg is not None
    assert min(p for _, p in raw) <= avg <= max(p for _, p in raw)


@given(sides, st.lists(st.tuples(sizes, prices), min_size=1, max_size=10), prices, prices)
def test_saving_dollars_and_bps_agree(
    side: Side, raw: list[tuple[Decimal, Decimal]], bid: Decimal, spread: Decimal
) -> None:
    """Saving in dollars equals saving in bps times the market-order notional."""
    arrival = Quote("X", bid, bid + spread, D(1), D(1), T0, T0)
    r = leg_report("X", side, arrival, [Fill(q, p, T0) for q, p in raw])
    assert r.saving_vs_market_usd is not None
    assert r.saving_vs_market_bps is not None
    assert r.market_order_price is not None
    implied = r.saving_vs_market_bps * r.market_order_price * r.filled_qty / 10_000
    assert abs(implied - r.saving_vs_market_usd) <= abs(r.saving_vs_market_usd) * D("1e-20") + D(
        "1e-20"
    )
    assert (r.saving_vs_market_usd > 0) == (r.saving_vs_market_bps > 0)


@given(st.lists(st.tuples(prices, sizes), min_size=1, max_size=30), st.integers(0, 30))
def test_interval_vwap_equals_vwap_of_the_interval(
    trades: list[tuple[Decimal, Decimal]], split: int
) -> None:
    """The VWAP between two marks is the VWAP of exactly the trades in between."""
    acc = VwapAccumulator()
    fresh = VwapAccumulator()
    split = min(split, len(trades))
    for price, size in trades[:split]:
        acc.add(price, size)
    start = acc.mark()
    for price, size in trades[split:]:
        acc.add(price, size)
        fresh.add(price, size)
    assert vwap_between(start, acc.mark()) == fresh.vwap
    vwap = acc.vwap
    assert vwap is not None
    assert min(p for p, _ in trades) <= vwap <= max(p for p, _ in trades)
