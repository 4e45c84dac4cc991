"""Pure rules behind issue 15: CSV plans, target weights, schedules and plan identity."""

from __future__ import annotations

import contextlib
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.domain.calendar import EASTERN, TradingSession, next_session, session_on
from execd.domain.plan_csv import parse_plan_csv
from execd.domain.plans import PlanError, document_digest, parse_document, submission_id
from execd.domain.schedule import ScheduleError, plan_schedule
from execd.domain.targets import TargetError, TargetQuote, compute_legs
from execd.domain.types import Side

WED = date(2026, 3, 4)


def _errors(text: str) -> tuple[str, ...]:
    with pytest.raises(PlanError) as refused:
        parse_plan_csv(text)
    return refused.value.errors


# --- CSV ------------------------------------------------------------------------------------


def test_csv_legs_become_the_json_document() -> None:
    """A legs CSV (any column order, blank cells omitted) is the plan's JSON document."""
    text = (
        "Side,Symbol,qty,notional,urgency,limit_price\nsell,tqqq,150,,,\nbuy,SOXL,,4000.00,high,\n"
    )
    assert parse_plan_csv(text) == {
        "legs": [
            {"side": "sell", "symbol": "tqqq", "qty": "150"},
            {"side": "buy", "symbol": "SOXL", "notional": "4000.00", "urgency": "high"},
        ]
    }


def test_csv_weights_become_targets() -> None:
    """symbol,weight is a targets plan; comments and blank lines are skipped."""
    text = "# strategy output\nsymbol,weight\n\nTQQQ,0.40\nspy,0.30\n"
    assert parse_plan_csv(text) == {"targets": {"TQQQ": "0.40", "SPY": "0.30"}}


def test_csv_bad_line_is_named_by_line_and_column() -> None:
    """Every problem names its line and column, all of them at once."""
    text = "symbol,side,qty\nTQQQ,sell,10\nSOXL,buy,-3\nSPY,hold,1\n"
    assert _errors(text) == (
        "plan.csv line 3, column qty: must be > 0",
        "plan.csv line 4, column side: must be one of buy, sell, got 'hold'",
    )


def test_csv_header_and_cross_row_rules() -> None:
    """Unknown columns, a missing column, too many cells and wash trades name the line."""
    assert _errors("symbol,sides,qty\n") == (
        "plan.csv line 1, column 2: unknown column 'sides' (expected symbol, side, qty,"
        " notional, urgency, limit_price)",
        "plan.csv line 1: the header has no 'side' column",
    )
    assert _errors("symbol,side,qty\nA,buy,1,9\n") == (
        "plan.csv line 2: 4 cells, the header has 3",
    )
    wash = _errors("symbol,side,qty\nSPY,buy,1\nSPY,sell,1\n")
    assert wash == (
        "plan.csv: line 3.symbol: SPY is bought in line 2 and sold in line 3 (wash-trade"
        " risk); net them into one leg",
    )
    assert _errors("symbol,weight\nSPY,0.7\nQQQ,0.6\n") == (
        "plan.csv: plan: targets and cash sum to 1.3, more than 1",
    )


@given(st.text(max_size=300))
def test_csv_never_crashes(text: str) -> None:
    """Any text is a document or a PlanError, never another exception."""
    with contextlib.suppress(PlanError):
        parse_plan_csv(text)


# --- targets --------------------------------------------------------------------------------


def _q(bid: str, ask: str) -> TargetQuote:
    return TargetQuote(Decimal(bid), Decimal(ask))


def test_targets_sell_first_whole_shares_and_skip_small_trades() -> None:
    """$100k equity: TQQQ 300 @ 50 ($15k) to 10% sells 100; SPY to 30% buys at the ask;
    a trade under min_trade_notional is not made; AAPL (held, unlisted) is left alone."""
    legs = compute_legs(
        {"TQQQ": Decimal("0.10"), "SPY": Decimal("0.30"), "IBM": Decimal("0.0005")},
        equity=Decimal(100000),
        positions={"TQQQ": Decimal(300), "AAPL": Decimal(50)},
        quotes={"TQQQ": _q("49.99", "50.01"), "SPY": _q("499.9", "500.1"), "IBM": _q("9", "10")},
        fractionable={"TQQQ": False, "SPY": False, "IBM": False},
        min_trade_notional=Decimal(100),
    )
    assert [(leg.symbol, leg.side, leg.qty) for leg in legs] == [
        ("TQQQ", Side.SELL, Decimal(100)),
        ("SPY", Side.BUY, Decimal(59)),  # 30000 / 500.1 = 59.98 → 59, never more
    ]


def test_targets_fractionable_and_liquidation() -> None:
    """Fractionable buys keep 4 decimals (rounded down); liquidate_unlisted sells all of
    a held symbol, to the last fractional share."""
    legs = compute_legs(
        {"SPY": Decimal("0.5")},
        equity=Decimal(1000),
        positions={"AAPL": Decimal("1.5")},
        quotes={"SPY": _q("299", "300"), "AAPL": _q("100", "100.02")},
        fractionable={"SPY": True, "AAPL": True},
        min_trade_notional=Decimal(1),
        liquidate_unlisted=True,
    )
    assert [(leg.symbol, leg.side, leg.qty) for leg in legs] == [
        ("AAPL", Side.SELL, Decimal("1.5")),
        ("SPY", Side.BUY, Decimal("1.6666")),
    ]


def test_targets_refuse_what_they_cannot_size() -> None:
    """No quote, a short position or no equity is an error naming the symbol, not a guess."""
    with pytest.raises(TargetError) as refused:
        compute_legs(
            {"SPY": Decimal("0.5"), "QQQ": Decimal("0.1")},
            equity=Decimal(1000),
            positions={"QQQ": Decimal(-5)},
            quotes={},
            fractionable={},
            min_trade_notional=Decimal(1),
        )
    assert refused.value.errors == (
        "targets.QQQ: the account is short 5 QQQ",
        "targets.SPY: no usable quote to size it",
    )
    with pytest.raises(TargetError):
        compute_legs(
            {},
            equity=Decimal(0),
            positions={},
            quotes={},
            fractionable={},
            min_trade_notional=Decimal(0),
        )


@given(
    weight=st.decimals(min_value=0, max_value=1, places=3),
    held=st.integers(min_value=0, max_value=10_000),
    price=st.decimals(min_value=1, max_value=1000, places=2),
)
def test_targets_never_sell_more_than_held_nor_buy_beyond_the_target(
    weight: Decimal, held: int, price: Decimal
) -> None:
    """Properties: a sell never exceeds the position; a buy never costs more than the gap
    to the target at the ask."""
    equity = Decimal(100000)
    ask = price + Decimal("0.01")
    legs = compute_legs(
        {"X": weight},
        equity=equity,
        positions={"X": Decimal(held)},
        quotes={"X": TargetQuote(price, ask)},
        fractionable={"X": False},
        min_trade_notional=Decimal(0),
    )
    for leg in legs:
        if leg.side is Side.SELL:
            assert leg.qty <= held
        else:
            assert leg.qty * ask <= weight * equity - held * (price + ask) / 2


# --- schedule -------------------------------------------------------------------------------


def _sessions(day: date) -> list[TradingSession]:
    out = [s for s in [session_on(day)] if s is not None]
    return [*out, next_session(day)]


def test_after_the_close_is_held_for_the_next_pre_open() -> None:
    """16:30 on a Wednesday: Thursday 09:25 ET (5 minutes' pre-market lead)."""
    now = datetime(2026, 3, 4, 16, 30, tzinfo=EASTERN)
    schedule = plan_schedule(
        now, _sessions(WED), not_before=None, deadline="15:30", premarket_lead=timedelta(minutes=5)
    )
    assert schedule.session.date == date(2026, 3, 5)
    assert schedule.start_at == datetime(2026, 3, 5, 9, 25, tzinfo=EASTERN)
    assert schedule.deadline == datetime(2026, 3, 5, 15, 30, tzinfo=EASTERN)


def test_weekend_waits_for_monday_and_today_runs_at_once() -> None:
    """Saturday: Monday's pre-open; 08:00 on a trading day: at once (step 0 holds the legs);
    not_before later than that holds it; a past deadline is refused."""
    sat = datetime(2026, 3, 7, 12, 0, tzinfo=EASTERN)
    held = plan_schedule(
        sat,
        _sessions(sat.date()),
        not_before=None,
        deadline=None,
        premarket_lead=timedelta(minutes=5),
    )
    assert held.start_at == datetime(2026, 3, 9, 9, 25, tzinfo=EASTERN)
    morning = datetime(2026, 3, 4, 8, 0, tzinfo=EASTERN)
    lead = timedelta(minutes=5)
    assert (
        plan_schedule(
            morning, _sessions(WED), not_before=None, deadline=None, premarket_lead=lead
        ).start_at
        is None
    )
    later = plan_schedule(
        morning, _sessions(WED), not_before="09:45", deadline=None, premarket_lead=lead
    )
    assert later.start_at == datetime(2026, 3, 4, 9, 45, tzinfo=EASTERN)
    with pytest.raises(ScheduleError):
        plan_schedule(
            morning, _sessions(WED), not_before=None, deadline="07:00", premarket_lead=lead
        )


# --- identity -------------------------------------------------------------------------------


def test_identity_ignores_spelling_and_plan_id_but_not_content() -> None:
    """The digest is of the intent: key order, number spelling, case and the plan_id do not
    change it; a quantity does. The default id also depends on the trading day."""
    a = parse_document({"legs": [{"symbol": "SPY", "side": "buy", "qty": "10"}]})
    b = parse_document({"plan_id": "x", "legs": [{"qty": 10.0, "side": "BUY", "symbol": "spy"}]})
    c = parse_document({"legs": [{"symbol": "SPY", "side": "buy", "qty": "11"}]})
    assert document_digest(a) == document_digest(b) != document_digest(c)
    assert submission_id(a, WED) == submission_id(b, WED) != submission_id(a, date(2026, 3, 5))
    assert submission_id(a, WED).startswith("p-20260304-")


def test_plan_times_are_validated() -> None:
    """not_before/deadline: ET HH:MM[:SS] or RFC 3339 with an offset, deadline after start."""
    legs = [{"symbol": "SPY", "side": "buy", "qty": "1"}]
    for bad in ("9:30", "25:00", "2026-03-05T10:00:00", "tomorrow", "０９:３０"):
        with pytest.raises(PlanError):
            parse_document({"deadline": bad, "legs": legs})
    with pytest.raises(PlanError):
        parse_document({"not_before": "10:00", "deadline": "09:59", "legs": legs})
    ok = parse_document({"not_before": "09:45", "deadline": "2026-03-05T15:30:00Z", "legs": legs})
    assert ok.deadline == "2026-03-05T15:30:00+00:00"


def test_not_before_after_the_close_is_refused() -> None:
    """A plan that would start after its own session closed could only fail: refused."""
    morning = datetime(2026, 3, 4, 8, 0, tzinfo=EASTERN)
    with pytest.raises(ScheduleError, match="after the close"):
        plan_schedule(
            morning,
            _sessions(WED),
            not_before="2030-01-02T10:00:00-05:00",
            deadline=None,
            premarket_lead=timedelta(minutes=5),
        )


def test_hostile_targets_are_refused_with_a_message() -> None:
    """NaN, negative, non-ASCII, duplicated (case-insensitive) and oversized targets."""
    for targets in (
        {"SPY": "NaN"},
        {"SPY": "-0.1"},
        {"SPY": "1.5"},
        {"ＳＰＹ": "0.1"},
        {"SPY": "0.1", "spy": "0.2"},
        {"SPY": "١"},
        {f"S{i}": "0.001" for i in range(501)},
        {},
    ):
        with pytest.raises(PlanError):
            parse_document({"targets": targets})
    with pytest.raises(PlanError):
        parse_document({"targets": {"SPY": "0.5"}, "legs": []})
    with pytest.raises(PlanError):
        parse_document({"legs": [{"symbol": "SPY", "side": "buy", "qty": "1"}], "cash": "0.1"})


@pytest.mark.parametrize("field", ["qty", "notional", "limit_price"])
@pytest.mark.parametrize("text", ["٣", "１", "1_0", "٣.5"])
def test_a_leg_number_in_another_script_is_refused_by_name(field: str, text: str) -> None:
    """Python's Decimal reads "٣" as 3; a plan does not (ASCII digits only), and says which
    field of which leg, as the simulator (and Alpaca) refuse such a number with a 422."""
    leg = {"symbol": "SPY", "side": "buy", "qty": "1", field: text}
    if field == "notional":
        del leg["qty"]
    with pytest.raises(PlanError) as refused:
        parse_document({"legs": [leg]})
    assert any(f"legs[0].{field}" in e and "not a number" in e for e in refused.value.errors), (
        refused.value.errors
    )


def test_a_csv_plan_qty_in_another_script_is_refused() -> None:
    with pytest.raises(PlanError) as refused:
        parse_document(parse_plan_csv("symbol,side,qty\nSPY,buy,٣\n"))
    assert any("qty" in e and "not a number" in e for e in refused.value.errors)
