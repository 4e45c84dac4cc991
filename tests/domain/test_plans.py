"""Plan validation: every rule, with the exact message a user sees."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.domain.plans import MAX_LEGS, Plan, PlanError, parse_plan, parse_plan_json
from execd.domain.types import Side, Urgency

D = Decimal


def _new_id() -> str:
    return "generated-1"


def _plan(*legs: object, **top: Any) -> dict[str, Any]:
    return {"legs": list(legs), **top}


def _leg(symbol: object = "AAPL", side: str = "buy", **fields: Any) -> dict[str, Any]:
    if "qty" not in fields and "notional" not in fields:
        fields["qty"] = "1"
    return {"symbol": symbol, "side": side, **fields}


def _errors(raw: object) -> tuple[str, ...]:
    with pytest.raises(PlanError) as info:
        parse_plan(raw, _new_id)
    return info.value.errors


def _one_error(raw: object) -> str:
    errors = _errors(raw)
    assert len(errors) == 1, errors
    return errors[0]


EXAMPLE = {
    "plan_id": "rebalance-2026-03-09",
    "urgency": "normal",
    "legs": [
        {"symbol": "TQQQ", "side": "sell", "qty": "10"},
        {
            "symbol": "AAPL",
            "side": "buy",
            "notional": "1500.00",
            "urgency": "low",
            "limit_price": "190.50",
        },
    ],
}


def test_example_plan_parses() -> None:
    """The documented wire example parses into exact values with indices and urgencies."""
    plan = parse_plan(EXAMPLE, _new_id)
    assert plan.plan_id == "rebalance-2026-03-09"
    assert plan.urgency is Urgency.NORMAL
    sell, buy = plan.legs
    assert (sell.index, sell.symbol, sell.side, sell.qty) == (0, "TQQQ", Side.SELL, D("10"))
    assert sell.notional is None
    assert sell.urgency is Urgency.NORMAL  # inherited from the plan
    assert sell.own_urgency is None
    assert (buy.index, buy.notional, buy.limit_price) == (1, D("1500"), D("190.5"))
    assert buy.urgency is Urgency.LOW
    assert buy.is_notional
    assert buy.label == "legs[1]"
    assert plan.sells() == (sell,)
    assert plan.buys() == (buy,)
    assert plan.symbols() == {"TQQQ", "AAPL"}
    assert len(plan) == 2
    assert list(plan) == [sell, buy]


def test_missing_plan_id_is_generated_by_the_caller() -> None:
    """Without a plan_id the caller's generator supplies one (and is called only then)."""
    calls: list[int] = []

    def gen() -> str:
        calls.append(1)
        return "xyz:1"

    assert parse_plan(_plan(_leg()), gen).plan_id == "xyz:1"
    assert parse_plan(_plan(_leg(), plan_id=None), gen).plan_id == "xyz:1"
    assert parse_plan(_plan(_leg(), plan_id="given"), gen).plan_id == "given"
    assert len(calls) == 2


def test_invalid_generated_plan_id_is_a_bug_not_a_user_error() -> None:
    """A generator producing a bad id raises ValueError, not PlanError."""
    with pytest.raises(ValueError, match="generated plan id") as info:
        parse_plan(_plan(_leg()), lambda: "has space")
    assert not isinstance(info.value, PlanError)


@pytest.mark.parametrize("plan_id", ["", "a" * 65, "has space", "slash/no", "trailing\n", 7])
def test_bad_plan_id(plan_id: object) -> None:
    """plan_id: 1–64 letters, digits and -_.: only."""
    assert _one_error(_plan(_leg(), plan_id=plan_id)) == (
        "plan_id: must be 1–64 characters of letters, digits and -_.:"
    )


def test_plan_id_limits_accepted() -> None:
    """The longest allowed id and every allowed punctuation mark pass."""
    plan_id = "A-b_c.d:" + "9" * 56
    assert parse_plan(_plan(_leg(), plan_id=plan_id), _new_id).plan_id == plan_id


def test_default_urgency_and_case_insensitive_choices() -> None:
    """Urgency defaults to normal; side and urgency accept any case."""
    plan = parse_plan(_plan(_leg(side="BUY", urgency="High")), _new_id)
    assert plan.urgency is Urgency.NORMAL
    assert plan.legs[0].side is Side.BUY
    assert plan.legs[0].urgency is Urgency.HIGH
    high = parse_plan(_plan(_leg(), urgency="high"), _new_id)
    assert high.legs[0].urgency is Urgency.HIGH


def test_bad_urgency() -> None:
    """Urgency is one of low, normal, high, at plan and leg level."""
    assert _one_error(_plan(_leg(), urgency="asap")) == (
        "urgency: must be one of low, normal, high, got 'asap'"
    )
    assert _one_error(_plan(_leg(urgency=3))) == (
        "legs[0].urgency: must be one of low, normal, high, got 3"
    )


def test_bad_side() -> None:
    """Side is buy or sell."""
    assert _one_error(_plan(_leg(), _leg("MSFT", side="short"))) == (
        "legs[1].side: must be one of buy, sell, got 'short'"
    )
    assert _one_error(_plan(_leg(side=" buy"))) == (
        "legs[0].side: must be one of buy, sell, got ' buy'"
    )


def test_legs_count() -> None:
    """A plan has 1–500 legs, in a list."""
    assert _one_error(_plan()) == "legs: must contain at least 1 leg"
    assert _one_error({"legs": "AAPL"}) == "legs: must be a list of legs"
    assert _one_error({}) == 'plan: give "legs" (orders) or "targets" (weights of equity)'
    many = [_leg(f"S{i}") for i in range(MAX_LEGS + 1)]
    assert _one_error(_plan(*many)) == "legs: at most 500 legs, got 501"
    assert len(parse_plan(_plan(*many[:MAX_LEGS]), _new_id)) == MAX_LEGS


def test_symbol_normalised_and_validated() -> None:
    """Symbols are upper-cased, nothing else; anything outside the pattern is refused
    (surrounding spaces and non-ASCII letters included, issue 11 §9)."""
    assert parse_plan(_plan(_leg("brk.b")), _new_id).legs[0].symbol == "BRK.B"
    assert _one_error(_plan(_leg(" BRK.B "))).startswith("legs[0].symbol: ' BRK.B '")
    assert _one_error(_plan(_leg("\ufb01"))).startswith("legs[0].symbol:")  # "ﬁ" → "FI"
    assert _one_error(_plan(_leg("ＴＱＱＱ"))).startswith("legs[0].symbol:")
    assert _one_error(_plan(_leg("1AB"))) == (
        "legs[0].symbol: '1AB' is not a valid symbol (a letter, then up to 9 letters,"
        " digits or dots)"
    )
    assert _one_error(_plan(_leg("ABCDEFGHIJK"))).startswith("legs[0].symbol: 'ABCDEFGHIJK'")
    assert _one_error(_plan(_leg(42))) == "legs[0].symbol: must be a string"
    assert _one_error(_plan({"side": "buy", "qty": "1"})) == "legs[0].symbol: is required"


def test_exactly_one_of_qty_or_notional() -> None:
    """A leg sizes by qty or by notional, never both, never neither."""
    assert _one_error(_plan({"symbol": "A", "side": "buy"})) == (
        "legs[0]: one of qty or notional is required"
    )
    assert _one_error(_plan(_leg(qty="1", notional="10"))) == (
        "legs[0]: give qty or notional, not both"
    )


@pytest.mark.parametrize(
    ("qty", "message"),
    [
        ("0", "legs[0].qty: must be > 0"),
        ("-1", "legs[0].qty: must be > 0"),
        (0, "legs[0].qty: must be > 0"),
        ("1.0000000001", "legs[0].qty: at most 9 decimal places, got 1.0000000001"),
        ("1e-10", "legs[0].qty: at most 9 decimal places, got 0.0000000001"),
        ("ten", "legs[0].qty: 'ten' is not a number (ASCII digits, no spaces)"),
        ("NaN", "legs[0].qty: 'NaN' is not a number (ASCII digits, no spaces)"),
        ("1_000", "legs[0].qty: '1_000' is not a number (ASCII digits, no spaces)"),
        (True, "legs[0].qty: must be a number, not a boolean"),
        ([1], "legs[0].qty: must be a number (a JSON string or number)"),
        (float("inf"), "legs[0].qty: must be a finite number"),
        ("1e10", "legs[0].qty: must be less than 10000000000"),
        ("\u0661", "legs[0].qty: '\u0661' is not a number (ASCII digits, no spaces)"),
        (" 1 ", "legs[0].qty: ' 1 ' is not a number (ASCII digits, no spaces)"),
        ("\uff11", "legs[0].qty: '\uff11' is not a number (ASCII digits, no spaces)"),
    ],
)
def test_bad_qty(qty: object, message: str) -> None:
    """qty: a positive number with at most 9 decimals."""
    assert _one_error(_plan(_leg(qty=qty))) == message


@pytest.mark.parametrize(
    ("notional", "message"),
    [
        ("0", "legs[0].notional: must be > 0"),
        ("10.001", "legs[0].notional: at most 2 decimal places, got 10.001"),
        (10.001, "legs[0].notional: at most 2 decimal places, got 10.001"),
    ],
)
def test_bad_notional(notional: object, message: str) -> None:
    """notional: positive dollars and cents."""
    assert _one_error(_plan({"symbol": "A", "side": "buy", "notional": notional})) == message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10", D("10")),
        (10, D("10")),
        (0.1, D("0.1")),  # the float's repr, not its binary value 0.1000000000000000055…
        (1.23456789, D("1.23456789")),
        ("1.500000000000", D("1.5")),  # trailing zeros are not precision
        ("1e2", D("100")),
    ],
)
def test_numbers_become_exact_decimals(raw: object, expected: Decimal) -> None:
    """Strings and JSON numbers both become exact Decimals, in canonical form."""
    qty = parse_plan(_plan(_leg(qty=raw)), _new_id).legs[0].qty
    assert qty == expected
    assert str(qty) == str(expected)


def test_json_text_floats_are_exact() -> None:
    """parse_plan_json decodes JSON floats straight to Decimal (no float at all)."""
    plan = parse_plan_json(
        '{"legs": [{"symbol": "A", "side": "buy", "qty": 0.123456789, "limit_price": 0.0001}]}',
        _new_id,
    )
    assert plan.legs[0].qty == D("0.123456789")
    assert plan.legs[0].limit_price == D("0.0001")


def test_json_text_errors() -> None:
    """Malformed JSON and NaN literals are plan errors with a message, not tracebacks."""
    with pytest.raises(PlanError) as info:
        parse_plan_json("{not json", _new_id)
    assert info.value.errors[0].startswith("plan: not valid JSON")
    with pytest.raises(PlanError) as info:
        parse_plan_json('{"legs": [{"symbol": "A", "side": "buy", "qty": NaN}]}', _new_id)
    assert info.value.errors == ("legs[0].qty: must be a finite number",)


@pytest.mark.parametrize(
    ("price", "message"),
    [
        ("0", "legs[0].limit_price: must be > 0"),
        ("190.505", "legs[0].limit_price: 190.505 is off the tick grid"),
        ("1.001", "legs[0].limit_price: 1.001 is off the tick grid"),
        ("0.12345", "legs[0].limit_price: 0.12345 is off the tick grid"),
        ("10000000", "legs[0].limit_price: must be less than 10000000"),
    ],
)
def test_bad_limit_price(price: str, message: str) -> None:
    """limit_price: positive and on Alpaca's tick grid (2 decimals ≥ $1, 4 below)."""
    error = _one_error(_plan(_leg(limit_price=price)))
    assert error.startswith(message)
    if "tick grid" in message:
        assert error.endswith("(2 decimals at or above $1, 4 below $1)")


@pytest.mark.parametrize("price", ["190.50", "1", "0.9999", "0.0001", "1.00"])
def test_limit_price_on_grid_accepted(price: str) -> None:
    """Prices on the grid pass unchanged in value."""
    assert parse_plan(_plan(_leg(limit_price=price)), _new_id).legs[0].limit_price == D(price)


def test_unknown_fields_rejected() -> None:
    """Typos are errors, at plan and leg level, not silently ignored."""
    assert _errors(_plan(_leg(limit="1"), urgent=True)) == (
        "legs[0].limit: unknown field",
        "urgent: unknown field",
    )


def test_non_object_inputs() -> None:
    """A plan or a leg that is not an object is named as such."""
    assert _one_error([1]) == "plan: must be an object"
    assert _one_error(_plan(_leg(), "AAPL")) == "legs[1]: must be an object"


def test_buy_and_sell_of_one_symbol_rejected() -> None:
    """A buy and a sell of the same symbol are refused, naming both legs (wash-trade risk)."""
    raw = _plan(_leg("AAPL", "sell"), _leg("MSFT"), _leg("aapl", "buy"))
    assert _one_error(raw) == (
        "legs[2].symbol: AAPL is bought in legs[2] and sold in legs[0] (wash-trade risk);"
        " net them into one leg"
    )


def test_same_symbol_twice_on_one_side_rejected() -> None:
    """The same symbol twice on one side is refused, naming both legs."""
    assert _one_error(_plan(_leg("AAPL"), _leg("AAPL", notional="10"))) == (
        "legs[1].symbol: AAPL appears twice on the buy side (legs[0] and legs[1]);"
        " merge them into one leg"
    )


def test_all_leg_errors_reported_at_once() -> None:
    """Every broken field is reported in one PlanError, in leg order."""
    errors = _errors(_plan(_leg(qty="0"), _leg("B", side="hold"), _leg("C", limit_price="1.001")))
    assert errors == (
        "legs[0].qty: must be > 0",
        "legs[1].side: must be one of buy, sell, got 'hold'",
        "legs[2].limit_price: 1.001 is off the tick grid (2 decimals at or above $1, 4 below $1)",
    )


def test_plan_error_is_a_value_error_with_a_readable_message() -> None:
    """PlanError is a ValueError whose str lists the messages and mentions no pydantic."""
    with pytest.raises(ValueError, match=r"invalid plan: legs\[0\]\.qty: must be > 0") as info:
        parse_plan(_plan(_leg(qty="0")), _new_id)
    assert "pydantic" not in str(info.value).lower()
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_sells_and_buys_keep_plan_order() -> None:
    """sells() and buys() keep the submitted order and the original indices."""
    plan = parse_plan(_plan(_leg("A"), _leg("B", "sell"), _leg("C"), _leg("D", "sell")), _new_id)
    assert [leg.index for leg in plan.sells()] == [1, 3]
    assert [leg.index for leg in plan.buys()] == [0, 2]


def test_wire_round_trip_of_example() -> None:
    """to_wire gives the submitted shape back (decimals as canonical strings)."""
    wire = parse_plan(EXAMPLE, _new_id).to_wire()
    assert wire == {
        "plan_id": "rebalance-2026-03-09",
        "urgency": "normal",
        "legs": [
            {"symbol": "TQQQ", "side": "sell", "qty": "10"},
            {
                "symbol": "AAPL",
                "side": "buy",
                "notional": "1500",
                "urgency": "low",
                "limit_price": "190.5",
            },
        ],
    }


_symbols = st.from_regex(r"\A[A-Z][A-Z0-9]{0,4}\Z")
_qty = st.decimals(min_value=D("0.000000001"), max_value=D("1000000"), places=9)
_legs = st.lists(
    st.fixed_dictionaries(
        {"symbol": _symbols, "side": st.sampled_from(["buy", "sell"])},
        optional={"urgency": st.sampled_from(["low", "normal", "high"])},
    ).flatmap(lambda d: _qty.map(lambda q: {**d, "qty": str(q)})),
    min_size=1,
    max_size=8,
    unique_by=lambda d: d["symbol"],
)


@given(_legs, st.sampled_from(["low", "normal", "high"]))
def test_round_trip_property(legs: list[dict[str, str]], urgency: str) -> None:
    """Any valid plan survives to_wire → parse_plan unchanged, with effective urgencies."""
    plan = parse_plan({"urgency": urgency, "legs": legs}, _new_id)
    assert parse_plan(plan.to_wire(), _new_id) == plan
    for leg, raw in zip(plan.legs, legs, strict=True):
        assert leg.urgency.value == raw.get("urgency", urgency)
        assert leg.qty == D(raw["qty"])


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["legs", "symbol", "side", "qty", "notional", "urgency", "plan_id", "x"]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=12,
)


@given(_json)
def test_arbitrary_input_gives_plan_or_plan_error(raw: object) -> None:
    """Whatever arrives, parse_plan returns a Plan or raises PlanError with messages."""
    result: Plan | PlanError
    try:
        result = parse_plan(raw, _new_id)
    except PlanError as exc:
        result = exc
    if isinstance(result, PlanError):
        assert result.errors
        assert all(": " in message for message in result.errors)
    else:
        assert result.legs


def test_configured_default_urgency_applies_only_when_plan_names_none() -> None:
    """`execution.default_urgency` fills a plan without urgency; an explicit one wins."""
    from execd.domain.plans import parse_plan
    from execd.domain.types import Urgency

    legs = [{"symbol": "SPY", "side": "buy", "qty": "1"}]
    plain = parse_plan({"plan_id": "p", "legs": legs}, lambda: "x", Urgency.LOW)
    assert plain.urgency is Urgency.LOW
    assert plain.legs[0].urgency is Urgency.LOW
    explicit = parse_plan(
        {"plan_id": "p", "urgency": "high", "legs": legs}, lambda: "x", Urgency.LOW
    )
    assert explicit.legs[0].urgency is Urgency.HIGH
