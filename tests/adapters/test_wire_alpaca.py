"""execd's lean quote struct against alpaca-py's own models, on the same frames.

`QuoteMsg` keeps prices and sizes as floats (the ingest hot path) and `wire.exact` turns them
into Decimals when a decision reads the quote. These properties pin that down: on any
Alpaca-shaped msgpack or JSON quote, the Decimals equal (1) what alpaca-py's `Quote` model
reads from the same frame through the SDK's own stream path, and (2) the exact Decimals the
previous Decimal-typed struct decoded, so nothing a decision sees has changed.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgpack
import msgspec
from hypothesis import given
from hypothesis import strategies as st

from execd.adapters.wire import MarketDecoder, QuoteMsg, exact

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from alpaca.data.models import Quote as AlpacaQuote


class _DecimalQuote(msgspec.Struct, tag_field="T", tag="q"):
    """The struct before issue 14: Decimal fields straight from the wire."""

    S: str
    bp: Decimal
    bs: Decimal
    ap: Decimal
    as_: Decimal = msgspec.field(name="as")


T0 = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)

prices = st.one_of(
    # ≥ $1: cents; < $1: four decimals (Alpaca's tick rules) — up to $99,999.99
    st.integers(100, 9_999_999).map(lambda c: Decimal(c) / 100),
    st.integers(1, 9_999).map(lambda t: Decimal(t) / 10_000),
)
sizes = st.integers(0, 10_000_000)


def _message(bid: Decimal, ask: Decimal, bs: int, as_: int, micros: int) -> dict[str, Any]:
    return {
        "T": "q",
        "S": "AAPL",
        "bx": "V",
        "bp": float(bid),
        "bs": bs,
        "ax": "Q",
        "ap": float(ask),
        "as": as_,
        "c": ["R"],
        "z": "C",
        "t": T0 + timedelta(microseconds=micros),
    }


def _sdk_quote(frame: bytes) -> AlpacaQuote:
    """alpaca-py's stream path: msgpack.unpackb, Timestamp → datetime, then its model."""
    (raw,) = msgpack.unpackb(frame)
    raw["t"] = raw["t"].to_datetime()
    return AlpacaQuote(raw["S"], raw)


@given(prices, prices, sizes, sizes, st.integers(0, 10**9))
def test_msgpack_quote_matches_alpaca_py_and_the_decimal_struct(
    bid: Decimal, ask: Decimal, bs: int, as_: int, micros: int
) -> None:
    """Same frame: execd's struct (through `exact`), alpaca-py's `Quote`, the old Decimal
    struct all read the same prices, sizes and time."""
    frame = msgpack.packb([_message(bid, ask, bs, as_, micros)], datetime=True)
    (ours,) = MarketDecoder("msgpack").decode(frame)
    assert isinstance(ours, QuoteMsg)
    theirs = _sdk_quote(frame)
    (old,) = msgspec.msgpack.decode(frame, type=list[_DecimalQuote])
    assert exact(ours.bp) == bid == old.bp == Decimal(repr(theirs.bid_price))
    assert exact(ours.ap) == ask == old.ap == Decimal(repr(theirs.ask_price))
    assert exact(ours.bs) == Decimal(bs) == old.bs == Decimal(repr(theirs.bid_size))
    assert exact(ours.as_) == Decimal(as_) == old.as_ == Decimal(repr(theirs.ask_size))
    assert ours.t == theirs.timestamp
    assert theirs.symbol == ours.S


@given(prices, prices, sizes, sizes)
def test_json_quote_is_exact(bid: Decimal, ask: Decimal, bs: int, as_: int) -> None:
    """JSON text prices come back as the same Decimals the text says (and the old struct read)."""
    message = {**_message(bid, ask, bs, as_, 0), "t": "2026-03-04T15:00:00Z"}
    text = (
        f'[{{"T":"q","S":"AAPL","bp":{bid},"bs":{bs},"ap":{ask},"as":{as_},"t":"{message["t"]}"}}]'
    )
    (ours,) = MarketDecoder("json").decode(text)
    (old,) = msgspec.json.decode(text, type=list[_DecimalQuote])
    assert isinstance(ours, QuoteMsg)
    assert (exact(ours.bp), exact(ours.ap)) == (bid, ask) == (old.bp, old.ap)
    assert (exact(ours.bs), exact(ours.as_)) == (Decimal(bs), Decimal(as_))


def test_exact_keeps_the_wire_text() -> None:
    """The shortest repr is the wire's text: no float noise, whole sizes stay whole."""
    assert str(exact(150.01)) == "150.01"
    assert str(exact(0.4321)) == "0.4321"
    assert str(exact(300.0)) == "300"
    assert exact(62.43) - exact(62.41) == Decimal("0.02")
