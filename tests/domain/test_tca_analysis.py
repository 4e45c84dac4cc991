"""Issue 13 item 2: TCA figures against hand-computed cases, and the report's number format."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.domain import display
from execd.domain.quotes import Quote
from execd.domain.tca import Fill
from execd.domain.tca_analysis import (
    Bucket,
    CompletedAt,
    LegInput,
    analyse_leg,
    group,
    summarise,
    time_bucket,
)
from execd.domain.types import Side

D = Decimal
T0 = datetime(2026, 5, 11, 14, 0, tzinfo=UTC)  # 10:00 EDT


def q(bid: str, ask: str, bid_size: str = "100", ask_size: str = "200") -> Quote:
    return Quote("X", D(bid), D(ask), D(bid_size), D(ask_size), T0, T0)


def fill(qty: str, px: str, after: float, quote: Quote | None = None) -> Fill:
    return Fill(D(qty), D(px), T0 + timedelta(seconds=after), quote)


def leg(**kw: object) -> LegInput:
    base: dict[str, object] = {
        "plan_id": "p",
        "leg_index": 0,
        "symbol": "X",
        "side": Side.BUY,
        "urgency": "normal",
        "style": "marketable",
        "requested_qty": D("100"),
        "state": "filled",
        "started_at": T0,
        "finished_at": T0 + timedelta(seconds=9),
        "repegs": 0,
        "fallback_fired": False,
        "fills": (),
        "arrival": None,
    }
    base.update(kw)
    return LegInput(**base)  # type: ignore[arg-type]


def test_buy_partially_filled_at_several_prices() -> None:
    """50 @ 10.02, 30 @ 10.03, 20 @ 10.04 of 150 against 10.00 × 10.04: avg 10.027."""
    a = analyse_leg(
        leg(
            requested_qty=D("150"),
            state="unfilled",
            arrival=q("10.00", "10.04"),
            plan_arrival=q("9.98", "10.02"),
            fills=(
                fill("50", "10.02", 1.5, q("10.01", "10.03")),
                fill("30", "10.03", 2.0, q("10.02", "10.04")),
                fill("20", "10.04", 4.25),
            ),
        )
    )
    assert a.tca.avg_price == D("10.027")
    # (10.027 − 10.02) / 10.02 × 10⁴
    assert display.bps(a.tca.vs_arrival_mid_bps) == "6.99"
    # vs the plan-acceptance mid 10.00: 0.027 / 10 × 10⁴
    assert a.vs_plan_arrival_mid_bps == D("27")
    # half-spread 0.02; (10.04 − 10.027) / 0.02
    assert a.spread_capture == D("0.65")
    # NBBO at fill, per fill, qty-weighted over fills that have one (the 20 has none):
    # 50 × (10.02 − 10.02)/10.02 + 30 × (10.03 − 10.03)/10.03 → 0 vs mid
    assert a.tca.vs_fill_mid_bps == 0
    # vs the touch at fill: 50 × (10.02 − 10.03)/10.03 + 30 × (10.03 − 10.04)/10.04, / 80
    expected = (
        (D(50) * (D("10.02") - D("10.03")) / D("10.03") + D(30) * D("-0.01") / D("10.04"))
        * 10_000
        / 80
    )
    assert a.tca.vs_fill_touch_bps is not None
    assert abs(a.tca.vs_fill_touch_bps - expected) < D("1E-20")
    assert display.bps(a.tca.vs_fill_touch_bps) == "-9.97"
    assert a.market_order is not None
    assert (a.market_order.price, a.market_order.beyond_displayed_qty) == (D("10.04"), D(0))
    assert a.saving_vs_market_usd == D("1.300")
    assert display.bps(a.saving_vs_market_bps) == "12.95"
    assert a.time_to_first_fill_seconds == D("1.5")
    assert a.time_to_complete_seconds is None  # not complete
    assert a.completed_at is CompletedAt.UNFILLED


def test_sell_completed_by_fallback_worse_than_the_touch() -> None:
    """300 sold @ 19.99 against 20.00 × 20.02 (100 shown at the bid): the market order
    walks 200 beyond the displayed size; capture −1 (a full half-spread beyond the bid)."""
    a = analyse_leg(
        leg(
            side=Side.SELL,
            requested_qty=D("300"),
            arrival=q("20.00", "20.02", bid_size="100"),
            fills=(fill("300", "19.99", 7),),
            repegs=2,
            fallback_fired=True,
        )
    )
    assert display.bps(a.tca.vs_arrival_mid_bps) == "10.00"  # (20.01 − 19.99)/20.01
    assert a.spread_capture == D(-1)
    assert a.market_order is not None
    assert (a.market_order.displayed_qty, a.market_order.beyond_displayed_qty) == (D(100), D(200))
    assert a.saving_vs_market_usd == D("-3.00")
    assert a.completed_at is CompletedAt.FALLBACK
    assert a.time_to_complete_seconds == D(7)


def test_sub_dollar_prices_keep_their_tick() -> None:
    """1000 @ 0.5003 against 0.5000 × 0.5004: 2 bps vs mid, prices to $0.0001."""
    a = analyse_leg(leg(arrival=q("0.5000", "0.5004"), fills=(fill("1000", "0.5003", 1),)))
    assert display.bps(a.tca.vs_arrival_mid_bps) == "2.00"  # 0.0001 / 0.5002
    assert display.price(a.tca.avg_price) == "0.5003"
    assert display.derived_price(a.tca.arrival_mid) == "0.50020"
    assert a.spread_capture == D("0.5")


def test_leg_without_fills_has_no_figures_and_does_not_weigh() -> None:
    """No fills: every figure None (never 0), and the plan's averages ignore it."""
    empty = analyse_leg(leg(state="unfilled", arrival=q("10", "10.02")))
    assert empty.tca.avg_price is None
    assert empty.spread_capture is None
    assert empty.saving_vs_market_usd is None
    assert empty.time_to_first_fill_seconds is None
    assert empty.completed_at is CompletedAt.UNFILLED
    full = analyse_leg(leg(arrival=q("10.00", "10.02"), fills=(fill("100", "10.02", 1),)))
    s = summarise([empty, full])
    assert (s.legs, s.completed, s.completion_rate) == (2, 1, D("0.5"))
    assert s.vs_arrival_mid_bps == full.tca.vs_arrival_mid_bps


def test_plan_summary_is_notional_weighted() -> None:
    """Two legs: bps weighted by dollars filled, savings summed, rates over legs."""
    a = analyse_leg(leg(arrival=q("10.00", "10.04"), fills=(fill("100", "10.02", 1),)))
    b = analyse_leg(
        leg(
            side=Side.SELL,
            requested_qty=D("300"),
            arrival=q("20.00", "20.02"),
            fills=(fill("300", "19.99", 2),),
            fallback_fired=True,
        )
    )
    s = summarise([a, b])
    assert s.filled_notional == D("1002") + D("5997")
    assert a.tca.vs_arrival_mid_bps == 0
    assert b.tca.vs_arrival_mid_bps is not None
    assert s.vs_arrival_mid_bps == b.tca.vs_arrival_mid_bps * D("5997") / D("6999")
    assert s.saving_vs_market_usd == D("2.00") + D("-3.00")
    # −1.00 over the market order's 1004 + 6000 dollars
    assert s.saving_vs_market_bps == D("-1.00") * 10_000 / D("7004")
    assert s.fallback_rate == D("0.5")
    by_side = group([a, b], lambda x: x.leg.side.value)
    assert list(by_side) == ["buy", "sell"]
    assert by_side["sell"].fallbacks == 1


@pytest.mark.parametrize(
    ("utc", "close", "bucket"),
    [
        (datetime(2026, 5, 11, 13, 29, tzinfo=UTC), time(16), Bucket.PRE_OPEN),
        (datetime(2026, 5, 11, 13, 31, tzinfo=UTC), time(16), Bucket.WAIT_FOR_SPREADS),
        (datetime(2026, 1, 12, 14, 31, tzinfo=UTC), time(16), Bucket.WAIT_FOR_SPREADS),  # EST
        (datetime(2026, 5, 11, 13, 33, tzinfo=UTC), time(16), Bucket.NORMAL),
        (datetime(2026, 5, 11, 16, 0, tzinfo=UTC), time(16), Bucket.REGULAR),
        (datetime(2026, 5, 11, 19, 45, tzinfo=UTC), time(16), Bucket.LAST_30),
        (datetime(2026, 11, 27, 17, 45, tzinfo=UTC), time(13), Bucket.LAST_30),  # half day
        (datetime(2026, 5, 11, 20, 1, tzinfo=UTC), time(16), Bucket.AFTER_CLOSE),
    ],
)
def test_time_of_day_buckets_are_eastern(utc: datetime, close: time, bucket: Bucket) -> None:
    """Buckets follow the market's clock, DST and half days included."""
    assert time_bucket(utc, close) is bucket


def test_display_never_prints_minus_zero_or_long_decimals() -> None:
    """The two symptoms the issue quotes, and the stated precisions."""
    assert display.bps(D("1.605394124257505217530903837")) == "1.61"
    assert display.bps(D("-0.001")) == "0.00"
    assert display.bps(D("-0")) == "0.00"
    assert display.usd(D("-0.004")) == "0.00"
    assert display.price(D("10.005")) == "10.00"  # half-even to the tick
    assert display.derived_price(D("10.005")) == "10.005"
    assert display.qty(D("10.000")) == "10"
    assert display.qty(D("1E+2")) == "100"
    assert display.eastern(T0) == "2026-05-11T10:00:00.000-04:00"
    assert display.eastern_short(T0) == "2026-05-11 10:00:00 EDT"


@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**6), max_value=10**6))
def test_display_bps_is_plain_two_place_text(value: Decimal) -> None:
    """Any finite value: two decimals, plain notation, no '-0.00'."""
    text = display.bps(value)
    assert text is not None
    assert text != "-0.00"
    assert "E" not in text
    assert len(text.split(".")[1]) == 2
