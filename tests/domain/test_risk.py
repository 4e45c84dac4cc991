"""Risk limits: each cap at, below and above its limit; refusals name their numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.domain.plans import Plan, parse_plan
from execd.domain.quotes import Quote
from execd.domain.risk import (
    RATE_WINDOW_SECONDS,
    OrderRateWindow,
    RiskBreach,
    RiskLimits,
    WorkingLeg,
    check_order,
    check_plan,
    check_rate,
    leg_notional,
    order_notional,
    plan_notional,
    wash_conflicts,
)
from execd.domain.types import Side

D = Decimal
T0 = datetime(2025, 3, 3, 14, 31, tzinfo=UTC)
NO_CAPS = RiskLimits()


def _quote(symbol: str = "TQQQ", bid: str = "122.46", ask: str = "122.47") -> Quote:
    return Quote(
        symbol=symbol,
        bid=D(bid),
        ask=D(ask),
        bid_size=D(100),
        ask_size=D(100),
        venue_time=T0,
        as_of=T0,
    )


def _plan(*legs: dict[str, Any]) -> Plan:
    return parse_plan({"plan_id": "p1", "legs": list(legs)}, lambda: "unused")


def _leg(symbol: str, side: str, **fields: str) -> dict[str, Any]:
    return {"symbol": symbol, "side": side, **fields}


# ------------------------------------------------------------------- order notional


def test_limit_order_is_valued_at_its_limit() -> None:
    """qty × limit, whatever the quote says: the limit is what the order may trade at."""
    assert order_notional(Side.BUY, D(500), D("122.469"), None) == D("61234.500")
    assert order_notional(Side.SELL, D(500), D("100"), _quote()) == D(50000)


def test_market_order_is_valued_at_the_far_side() -> None:
    """A market buy takes the ask, a market sell the bid."""
    quote = _quote(bid="10.00", ask="10.05")
    assert order_notional(Side.BUY, D(10), None, quote) == D("100.50")
    assert order_notional(Side.SELL, D(10), None, quote) == D("100.00")


def test_market_order_without_a_usable_quote_cannot_be_valued() -> None:
    """No quote, or nobody on the side the order takes: None, never zero."""
    assert order_notional(Side.BUY, D(10), None, None) is None
    one_sided = _quote(bid="0", ask="10.05")
    assert order_notional(Side.SELL, D(10), None, one_sided) is None
    assert order_notional(Side.BUY, D(10), None, one_sided) == D("100.50")


@pytest.mark.parametrize(("qty", "limit"), [(D(0), D(1)), (D(-1), D(1)), (D(1), D(0))])
def test_nonsense_orders_are_bugs(qty: Decimal, limit: Decimal) -> None:
    """A zero or negative qty or limit would value to ≤ 0 and pass every cap: refuse loudly."""
    with pytest.raises(ValueError):
        order_notional(Side.BUY, qty, limit, None)


# ---------------------------------------------------------------------- check_order


ORDER_CAP = RiskLimits(max_order_notional=D(50_000))


@pytest.mark.parametrize(
    ("qty", "breach"),
    [(D(499), False), (D(500), False), (D("500.000000001"), True)],
    ids=["below", "at", "above"],
)
def test_order_cap_at_below_above(qty: Decimal, breach: bool) -> None:
    """500 × $100 = $50,000 exactly is allowed; a billionth of a share more is not."""
    got = check_order(ORDER_CAP, Side.BUY, "TQQQ", qty, D(100), None)
    assert (got is not None) is breach


def test_order_breach_names_the_numbers() -> None:
    """The reason reads on its own: the notional, the order and the cap."""
    got = check_order(ORDER_CAP, Side.BUY, "TQQQ", D(500), D("122.469"), None)
    assert got == RiskBreach(
        "max_order_notional",
        "order notional $61,234.50 (buy 500 TQQQ @ 122.469)"
        " exceeds risk.max_order_notional $50,000",
    )


def test_market_order_breach_names_the_quote_side() -> None:
    """A market sell is valued at the bid, and the reason says so."""
    got = check_order(ORDER_CAP, Side.SELL, "TQQQ", D(500), None, _quote())
    assert got is not None
    assert got.reason == (
        "order notional $61,230.00 (sell 500 TQQQ @ bid 122.46, market)"
        " exceeds risk.max_order_notional $50,000"
    )


def test_market_order_within_cap_passes() -> None:
    """A market buy valued at the ask below the cap is allowed."""
    assert check_order(ORDER_CAP, Side.BUY, "TQQQ", D(400), None, _quote()) is None


def test_unvaluable_market_order_is_a_breach_while_capped() -> None:
    """An order of unknown size is never waved through a cap."""
    got = check_order(ORDER_CAP, Side.BUY, "TQQQ", D(1), None, None)
    assert got == RiskBreach(
        "max_order_notional",
        "cannot value a market order without a quote (buy 1 TQQQ; no quote);"
        " risk.max_order_notional $50,000",
    )
    one_sided = check_order(ORDER_CAP, Side.SELL, "TQQQ", D(1), None, _quote(bid="0"))
    assert one_sided is not None
    assert "no bid quoted" in one_sided.reason


def test_no_order_cap_never_breaches() -> None:
    """Unset cap: even an unvaluable market order passes (there is nothing to compare)."""
    assert check_order(NO_CAPS, Side.BUY, "TQQQ", D(10**9), None, None) is None
    assert check_order(NO_CAPS, Side.BUY, "TQQQ", D(10**9), D(9999), None) is None


def test_quote_for_another_symbol_is_a_bug() -> None:
    """Valuing TQQQ at AAPL's price would be a silent wrong answer."""
    with pytest.raises(ValueError, match="AAPL"):
        check_order(ORDER_CAP, Side.BUY, "TQQQ", D(1), None, _quote("AAPL"))


@given(
    qty=st.decimals(min_value="0.000000001", max_value="100000", places=9),
    limit=st.decimals(min_value="0.0001", max_value="5000", places=4),
    cap=st.decimals(min_value="0.01", max_value="10000000", places=2),
)
def test_order_breach_iff_notional_above_cap(qty: Decimal, limit: Decimal, cap: Decimal) -> None:
    """A limit order breaches exactly when qty × limit > cap; nothing is clipped."""
    got = check_order(RiskLimits(max_order_notional=cap), Side.SELL, "X", qty, limit, None)
    assert (got is not None) == (qty * limit > cap)


@pytest.mark.parametrize(
    "fields",
    [
        {"max_order_notional": D(0)},
        {"max_plan_notional": D(-1)},
        {"max_plan_notional": D("NaN")},
        {"max_orders_per_minute": 0},
    ],
)
def test_non_positive_caps_are_mapping_bugs(fields: dict[str, Any]) -> None:
    """A cap of 0 would refuse everything while looking like a real setting."""
    with pytest.raises(ValueError):
        RiskLimits(**fields)


# ----------------------------------------------------------------------- check_plan


QUOTES = {
    "TQQQ": _quote("TQQQ", bid="50.00", ask="50.10"),
    "AAPL": _quote("AAPL", bid="190.00", ask="190.50"),
}
# Gross $6,500: sell 100 TQQQ valued at the bid ($5,000) and buy $1,500 of AAPL.
MIXED = _plan(
    _leg("TQQQ", "sell", qty="100"),
    _leg("AAPL", "buy", notional="1500"),
)


def test_plan_notional_is_gross_of_notional_and_qty_legs() -> None:
    """Sells and buys both add: $5,000 of TQQQ sold (at the bid) + $1,500 of AAPL bought."""
    pairs = [(leg, QUOTES.get(leg.symbol)) for leg in MIXED]
    assert plan_notional(pairs) == D(6500)


def test_qty_leg_is_valued_at_the_far_side_even_with_a_limit() -> None:
    """A limit bounds a buy from above but a sell from below; the far side is one rule."""
    plan = _plan(_leg("AAPL", "buy", qty="10", limit_price="200.00"))
    assert leg_notional(plan.legs[0], QUOTES["AAPL"]) == D("1905.00")


def test_notional_leg_needs_no_quote() -> None:
    """A dollar leg is worth its dollars; a qty leg without a quote is unvalued."""
    assert leg_notional(MIXED.legs[1], None) == D(1500)
    assert leg_notional(MIXED.legs[0], None) is None
    assert plan_notional([(leg, None) for leg in MIXED]) is None


@pytest.mark.parametrize(
    ("cap", "breach"),
    [(D(6501), False), (D(6500), False), (D("6499.99"), True)],
    ids=["below", "at", "above"],
)
def test_plan_cap_at_below_above(cap: Decimal, breach: bool) -> None:
    """$6,500 of plan against a cap of $6,501 / $6,500 / $6,499.99."""
    got = check_plan(RiskLimits(max_plan_notional=cap), MIXED, QUOTES)
    assert bool(got) is breach


def test_plan_breach_names_the_numbers() -> None:
    """The plan refusal shows the total and how it splits into buys and sells."""
    got = check_plan(RiskLimits(max_plan_notional=D(5000)), MIXED, QUOTES)
    assert got == [
        RiskBreach(
            "max_plan_notional",
            "plan notional $6,500.00, gross of buys $1,500.00 and sells $5,000.00,"
            " exceeds risk.max_plan_notional $5,000",
        )
    ]


def test_missing_quote_for_qty_leg_is_left_to_the_order_check() -> None:
    """A qty leg with no price at all is valued when its order is priced (`check_order`):
    a symbol not quoted yet holds its own leg, it does not refuse the plan."""
    assert check_plan(RiskLimits(max_plan_notional=D(10_000)), MIXED, {}) == []


def test_valued_legs_alone_over_the_plan_cap_say_at_least() -> None:
    """Some legs unvalued and the rest already too big: both facts are reported."""
    got = check_plan(RiskLimits(max_plan_notional=D(1000)), MIXED, {})
    assert [b.limit for b in got] == ["max_plan_notional"]
    assert got[0].reason.startswith("plan notional at least $1,500.00 (1 leg unvalued)")


STALE = {"TQQQ": "TQQQ's latest quote is 6.0s old"}
"""TQQQ has only a stale quote: it is left out of `quotes` and named in `stale`."""


def test_stale_only_leg_with_no_order_cap_refuses_under_a_plan_cap() -> None:
    """Nothing bounds the orders of a leg whose price is unknown now: the plan cap cannot
    be checked, so the plan is refused, naming the leg and the quote's age."""
    got = check_plan(RiskLimits(max_plan_notional=D(10_000)), MIXED, {}, stale=STALE)
    assert [b.limit for b in got] == ["max_plan_notional"]
    assert "(legs[0]: TQQQ's latest quote is 6.0s old)" in got[0].reason, got[0].reason


@pytest.mark.parametrize(
    ("plan_cap", "breach"),
    [(D(6500), False), (D("6499.99"), True)],
    ids=["bound-fits", "bound-exceeds"],
)
def test_stale_only_leg_counts_at_the_order_cap(plan_cap: Decimal, breach: bool) -> None:
    """Each order of the stale leg is held to the order cap ($5,000) when priced, so the
    plan may reach $1,500 + $5,000 = $6,500 at most."""
    limits = RiskLimits(max_order_notional=D(5000), max_plan_notional=plan_cap)
    got = check_plan(limits, MIXED, {}, stale=STALE)
    assert bool(got) is breach
    if breach:
        assert got[0].reason.startswith("plan notional could reach $6,500.00"), got[0].reason


def test_stale_only_leg_is_not_a_breach_under_only_an_order_cap() -> None:
    """No plan cap: the leg's orders are checked one by one when priced, as before."""
    assert check_plan(RiskLimits(max_order_notional=D(2000)), MIXED, {}, stale=STALE) == []


def test_missing_quote_is_not_a_breach_under_only_an_order_cap() -> None:
    """The leg's orders are checked one by one when placed; nothing to refuse at submit."""
    assert check_plan(RiskLimits(max_order_notional=D(10_000)), MIXED, {}) == []


def test_leg_over_order_cap_refuses_the_plan() -> None:
    """A leg is sent as one order, so a leg above the order cap would fail later anyway."""
    got = check_plan(RiskLimits(max_order_notional=D(2000)), MIXED, QUOTES)
    assert got == [
        RiskBreach(
            "max_order_notional",
            "legs[0] notional $5,000.00 (sell 100 TQQQ @ bid 50)"
            " exceeds risk.max_order_notional $2,000;"
            " a leg is sent as one order, so its first order would be refused",
        )
    ]
    notional_leg = check_plan(RiskLimits(max_order_notional=D(1000)), MIXED, QUOTES)
    assert "legs[1] notional $1,500.00 (buy $1,500 of AAPL)" in notional_leg[1].reason


def test_no_caps_never_breach_a_plan() -> None:
    """Unset caps: even a plan nobody can value passes."""
    assert check_plan(NO_CAPS, MIXED, {}) == []


# ----------------------------------------------------------------------- order rate


def test_uncapped_window_always_allows() -> None:
    """No cap: every order is allowed, and the count is still kept for statistics."""
    window = OrderRateWindow(None)
    for t in range(1000):
        assert window.allows(t / 100)
        window.record(t / 100)
    assert window.count(10.0) == 1000
    assert check_rate(window, 10.0) is None


@pytest.mark.parametrize(("sent", "allowed"), [(2, True), (3, False)], ids=["below", "at"])
def test_rate_cap_below_and_at(sent: int, allowed: bool) -> None:
    """With a cap of 3, a third order is allowed (reaching the cap), a fourth is not."""
    window = OrderRateWindow(3)
    for t in range(sent):
        window.record(float(t))
    assert window.allows(10.0) is allowed


def test_rate_window_slides() -> None:
    """An order counts for 60 s after it was sent; at exactly 60 s it has left the window."""
    window = OrderRateWindow(2)
    window.record(0.0)
    window.record(30.0)
    assert not window.allows(59.9)
    assert window.count(59.9) == 2
    assert window.allows(RATE_WINDOW_SECONDS)
    assert window.count(60.0) == 1
    window.record(60.0)
    assert not window.allows(89.9)
    assert window.count(90.0) == 1
    assert window.count(1000.0) == 0


def test_rate_breach_names_the_numbers() -> None:
    """The leg's end reason says how many orders went out and what the cap is."""
    window = OrderRateWindow(2)
    window.record(1.0)
    window.record(2.0)
    assert check_rate(window, 3.0) == RiskBreach(
        "max_orders_per_minute",
        "2 orders in the last 60 s; risk.max_orders_per_minute is 2",
    )
    assert check_rate(window, 61.0) is None


def test_out_of_order_reading_is_clamped_to_the_latest() -> None:
    """A reading taken before an await may arrive late; it is recorded at the latest time."""
    window = OrderRateWindow(5)
    window.record(100.0)
    window.record(50.0)  # read as 100.0: kept in the window until 160, not 110
    assert window.count(159.0) == 2
    assert window.count(100.0) == 2  # an earlier query is answered as of the latest
    assert window.count(160.0) == 0


def test_rate_window_memory_is_bounded() -> None:
    """Recording far past the cap keeps at most the cap; `allows` is unaffected."""
    window = OrderRateWindow(5)
    for _ in range(10_000):
        window.record(1.0)
    assert window.count(1.0) == 5
    assert not window.allows(1.0)
    assert window.allows(61.0)


def test_rate_cap_must_be_positive() -> None:
    """A zero cap would refuse every order while looking configured."""
    with pytest.raises(ValueError):
        OrderRateWindow(0)


# Half-second steps are exact in binary, so the model compares the same floats.
_steps = st.lists(
    st.tuples(st.integers(min_value=0, max_value=180).map(lambda n: n / 2), st.booleans()),
    max_size=200,
)


@given(cap=st.one_of(st.none(), st.integers(min_value=1, max_value=8)), steps=_steps)
def test_window_matches_a_model(cap: int | None, steps: list[tuple[float, bool]]) -> None:
    """count is min(orders in the last 60 s, cap) and never exceeds what was recorded;
    allows is exactly "fewer than the cap in the last 60 s"."""
    window = OrderRateWindow(cap)
    recorded: list[float] = []
    now = 0.0
    for delta, send in steps:
        now += delta
        in_window = sum(1 for t in recorded if t > now - RATE_WINDOW_SECONDS)
        count = window.count(now)
        assert count <= in_window
        assert count == (in_window if cap is None else min(in_window, cap))
        assert window.allows(now) == (cap is None or in_window < cap)
        assert (check_rate(window, now) is None) == window.allows(now)
        if send:
            window.record(now)
            recorded.append(now)


# ------------------------------------------------------------------ equity-relative caps

EQUITY_CAPS = RiskLimits(
    max_order_notional=D(1_000_000),
    max_plan_notional=D(5_000_000),
    max_order_equity_multiple=D(1),
    max_plan_equity_multiple=D(2),
)


def test_fat_finger_plan_is_refused_against_equity() -> None:
    """Issue 11 §1: a billion TQQQ on a $100k account breaches both the order and the plan
    cap, each reason naming the cap that binds (the equity multiple) and the numbers."""
    plan = _plan(_leg("TQQQ", "buy", qty="1000000000"))
    got = check_plan(EQUITY_CAPS, plan, QUOTES, equity=D(100_000))
    assert [b.limit for b in got] == ["max_order_equity_multiple", "max_plan_equity_multiple"]
    assert "exceeds risk.max_order_equity_multiple 1 x equity $100,000.00 = $100,000.00" in (
        got[0].reason
    )
    assert "$50,100,000,000.00" in got[0].reason
    assert got[1].reason.endswith(
        "risk.max_plan_equity_multiple 2 x equity $100,000.00 = $200,000.00"
    )


def test_absolute_cap_binds_when_lower_than_the_equity_multiple() -> None:
    """On a $10M account the absolute $1M order cap is the lower one and is named."""
    plan = _plan(_leg("AAPL", "buy", notional="1500000"))
    got = check_plan(EQUITY_CAPS, plan, QUOTES, equity=D(10_000_000))
    assert [b.limit for b in got] == ["max_order_notional"]
    assert "risk.max_order_notional $1,000,000" in got[0].reason


def test_full_rotation_fits_twice_equity() -> None:
    """Selling everything and buying something else is 2x equity gross: allowed at 2."""
    plan = _plan(_leg("TQQQ", "sell", qty="1000"), _leg("AAPL", "buy", notional="50000"))
    assert check_plan(EQUITY_CAPS, plan, QUOTES, equity=D(50_000)) == []


def test_negative_equity_refuses_every_order() -> None:
    """An account under water may not trade a cent through the equity cap."""
    got = check_order(EQUITY_CAPS, Side.BUY, "TQQQ", D(1), D(50), None, equity=D(-5))
    assert got is not None
    assert got.limit == "max_order_equity_multiple"


def test_equity_unknown_leaves_the_absolute_caps() -> None:
    """Without an equity reading only the dollar caps apply (the engine always reads it)."""
    assert check_order(EQUITY_CAPS, Side.BUY, "TQQQ", D(10_000), D(50), None) is None
    got = check_order(EQUITY_CAPS, Side.BUY, "TQQQ", D(30_000), D(50), None)
    assert got is not None
    assert got.limit == "max_order_notional"


# ------------------------------------------------------------------------ wash trades


def test_opposite_side_of_another_working_plan_conflicts() -> None:
    """A sell of TQQQ beside another plan's working buy of TQQQ is named; same side is
    not a wash, nor is the plan's own id (a resubmission is answered elsewhere)."""
    plan = _plan(_leg("TQQQ", "sell", qty="1"), _leg("AAPL", "buy", qty="1"))
    working = [
        WorkingLeg("other", "legs[3]", "TQQQ", Side.BUY),
        WorkingLeg("other", "legs[4]", "AAPL", Side.BUY),
        WorkingLeg(plan.plan_id, "legs[0]", "TQQQ", Side.BUY),
    ]
    assert wash_conflicts(plan, working) == [
        "legs[0]: sell TQQQ while plan other legs[3] is still buying it (potential wash"
        " trade); wait for that plan or cancel it"
    ]
    assert wash_conflicts(plan, []) == []


class _CountedSymbol(str):
    """A symbol that counts the comparisons made with it."""

    compared = 0
    __hash__ = str.__hash__

    def __eq__(self, other: object) -> bool:
        _CountedSymbol.compared += 1
        return str.__eq__(self, other)


def test_wash_check_compares_symbols_through_an_index_not_every_pair() -> None:
    """The fourth 500-leg plan beside three working ones: the check looks each leg's symbol
    up among the working legs, O(legs + working), not every pair (750,000 comparisons
    in the 2,000-leg benchmark's submit, twice per submit: a stall of the daemon's loop);
    the conflicts are still found, in plan order then working order."""
    legs = [_leg(f"S{i:04d}", "buy", qty="1") for i in range(500)]
    legs[7] = _leg("S1007", "sell", qty="1")
    plan = _plan(*legs)
    working = [
        WorkingLeg(f"w{i // 500}", f"legs[{i % 500}]", _CountedSymbol(f"S{i:04d}"), Side.BUY)
        for i in range(1500)
    ]
    working.append(WorkingLeg("late", "legs[9]", _CountedSymbol("S1007"), Side.BUY))
    _CountedSymbol.compared = 0
    assert wash_conflicts(plan, working) == [
        "legs[7]: sell S1007 while plan w2 legs[7] is still buying it (potential wash"
        " trade); wait for that plan or cancel it",
        "legs[7]: sell S1007 while plan late legs[9] is still buying it (potential wash"
        " trade); wait for that plan or cancel it",
    ]
    assert _CountedSymbol.compared <= 2 * (len(working) + len(legs))


def test_a_refusal_over_many_stale_legs_names_a_few_and_counts_the_rest() -> None:
    """500 legs without a fresh quote made a refusal of tens of kilobytes (scale bench): the
    reason names the first five legs and says how many more, whatever the plan's size."""
    legs = [{"symbol": f"S{i:03d}", "side": "buy", "qty": "10"} for i in range(500)]
    stale = {f"S{i:03d}": f"S{i:03d}'s latest quote is 6.0s old" for i in range(500)}
    limits = RiskLimits(max_order_notional=D(5000), max_plan_notional=D(10_000))
    [breach] = check_plan(limits, _plan(*legs), {}, stale=stale)
    assert "legs[4]: S004's latest quote is 6.0s old" in breach.reason
    assert "S005" not in breach.reason
    assert "and 495 more" in breach.reason
    assert len(breach.reason) < 600, len(breach.reason)
    [unbounded] = check_plan(RiskLimits(max_plan_notional=D(10_000)), _plan(*legs), {}, stale=stale)
    assert "and 495 more" in unbounded.reason
    assert len(unbounded.reason) < 600, len(unbounded.reason)
