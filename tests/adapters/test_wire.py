"""Decoding stream frames into msgspec structs, with Alpaca's own message shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest

from execd.adapters.wire import (
    Authorization,
    BrokenMessage,
    Codec,
    ErrorMsg,
    Ignored,
    InvalidQuote,
    InvalidTrade,
    Listening,
    MarketDecoder,
    QuoteMsg,
    StatusMsg,
    SubscriptionMsg,
    SuccessMsg,
    TradeMsg,
    TradeUpdate,
    decode_trading,
    encode_market,
    exact,
)

T0 = datetime(2024, 3, 5, 15, 0, 1, 123456, tzinfo=UTC)

QUOTE = {
    "T": "q",
    "S": "AMD",
    "bx": "U",
    "bp": 87.66,
    "bs": 1,
    "ax": "Q",
    "ap": 87.68,
    "as": 4,
    "t": "2021-02-22T15:51:45.335689322Z",
    "c": ["R"],
    "z": "C",
}
TRADE = {
    "T": "t",
    "i": 96921,
    "S": "AAPL",
    "x": "D",
    "p": 126.55,
    "s": 1,
    "t": "2021-02-22T15:51:44.208Z",
    "c": ["@", "I"],
    "z": "C",
}
BAR = {"T": "b", "S": "SPY", "o": 388.985, "h": 389.13, "l": 388.975, "c": 389.12, "v": 49378,
       "t": "2021-02-22T19:15:00Z", "n": 100, "vw": 389.0}  # fmt: skip


def test_json_quote_and_trade_decode_exactly() -> None:
    """JSON numbers become exact Decimals (quotes through `exact`, as the cache reads them);
    nanosecond timestamps round to microseconds."""
    frame = msgspec.json.encode([QUOTE, TRADE])
    quote, trade = MarketDecoder("json").decode(frame)
    assert isinstance(quote, QuoteMsg)
    assert (quote.S, exact(quote.bp), exact(quote.ap), exact(quote.bs), exact(quote.as_)) == (
        "AMD",
        Decimal("87.66"),
        Decimal("87.68"),
        Decimal(1),
        Decimal(4),
    )
    assert quote.t == datetime(2021, 2, 22, 15, 51, 45, 335689, tzinfo=UTC)
    assert isinstance(trade, TradeMsg)
    assert (exact(trade.p), exact(trade.s), trade.i) == (Decimal("126.55"), Decimal(1), 96921)


def test_msgpack_quote_with_timestamp_extension() -> None:
    """msgpack float64 prices keep their shortest repr; ext −1 timestamps become datetimes."""
    frame = msgspec.msgpack.encode([{**QUOTE, "t": T0, "bp": 150.01, "ap": 150.03}])
    assert frame.find(b"\xd7\xff") != -1 or frame.find(b"\xc7\x0c\xff") != -1
    (quote,) = MarketDecoder("msgpack").decode(frame)
    assert isinstance(quote, QuoteMsg)
    assert exact(quote.bp) == Decimal("150.01")
    assert str(exact(quote.ap)) == "150.03"
    assert quote.t == T0


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_control_messages(codec: str) -> None:
    """connected / authenticated / error 406 / subscription echo decode (§4.1, §4.4)."""
    enc = msgspec.json.encode if codec == "json" else msgspec.msgpack.encode
    dec = MarketDecoder("json" if codec == "json" else "msgpack")
    assert dec.decode(enc([{"T": "success", "msg": "connected"}])) == [SuccessMsg("connected")]
    assert dec.decode(enc([{"T": "error", "code": 406, "msg": "connection limit exceeded"}])) == [
        ErrorMsg(406, "connection limit exceeded")
    ]
    sub = {
        "T": "subscription",
        "trades": ["AAPL"],
        "quotes": ["AMD", "CLDR"],
        "bars": ["*"],
        "updatedBars": [],
        "dailyBars": [],
        "statuses": [],
        "lulds": [],
        "corrections": ["AAPL"],
        "cancelErrors": ["AAPL"],
    }
    (msg,) = dec.decode(enc([sub]))
    assert msg == SubscriptionMsg(trades=["AAPL"], quotes=["AMD", "CLDR"], bars=["*"])


def test_unmodelled_types_are_skipped_not_fatal() -> None:
    """A batch with a bar between a quote and a trade yields the quote and the trade."""
    frame = msgspec.json.encode([QUOTE, BAR, TRADE])
    kinds = [type(m) for m in MarketDecoder("json").decode(frame)]
    assert kinds == [QuoteMsg, TradeMsg]


def test_broken_quote_is_reported_not_silently_dropped() -> None:
    """A quote without a bid price is not silently dropped: it comes back as a
    `BrokenMessage` (the reader logs ``stream_message_undecodable``), and only it: the
    messages beside it in the frame still decode (review 2: a halt beside it was lost)."""
    broken = {k: v for k, v in QUOTE.items() if k != "bp"}
    nulled = {**QUOTE, "bp": None}
    halt = {"T": "s", "S": "SPY", "sc": "H", "t": "2021-02-22T15:51:44Z"}
    out = MarketDecoder("json").decode(msgspec.json.encode([broken, halt, nulled, 7, TRADE]))
    assert [type(m) for m in out] == [BrokenMessage, StatusMsg, BrokenMessage, BrokenMessage,
                                      TradeMsg]  # fmt: skip
    assert [m.tag for m in out if isinstance(m, BrokenMessage)] == ["q", "q", None]


def test_a_frame_that_is_not_an_array_is_an_error() -> None:
    """Nothing of such a frame can be applied: the reader logs it whole."""
    with pytest.raises(msgspec.DecodeError):
        MarketDecoder("json").decode(b'{"T": "q"}')
    with pytest.raises(msgspec.DecodeError):
        MarketDecoder("json").decode(b"[{")


_FINITE_BAD: list[dict[str, object]] = [
    {"p": 0},
    {"s": -1},
    {"p": -0.0},
    {"t": "2021-02-22T15:51:44.208"},
]
_NON_FINITE: list[dict[str, object]] = [
    {"p": float("nan")},
    {"p": float("inf")},
    {"s": float("-inf")},
    {"s": float("nan")},
]


@pytest.mark.parametrize(
    ("codec", "bad"),
    [("json", bad) for bad in _FINITE_BAD]
    + [("msgpack", bad) for bad in _FINITE_BAD + _NON_FINITE],  # JSON has no NaN/inf
)
def test_a_bad_trade_print_is_invalid_not_fatal(codec: Codec, bad: dict[str, object]) -> None:
    """Trade prices and sizes are bounded at decode like quotes' (finite, > 0), and a time
    without UTC offset is refused: the print becomes an `InvalidTrade` (logged
    ``stream_trade_invalid``), the good print beside it stays."""
    enc = msgspec.json.encode if codec == "json" else msgspec.msgpack.encode
    out = MarketDecoder(codec).decode(enc([{**TRADE, **bad}, TRADE]))
    assert [type(m) for m in out] == [InvalidTrade, TradeMsg]


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_a_time_without_utc_offset_is_refused(codec: Codec) -> None:
    """A naive ``t`` would be cached and break every aware comparison (review 2): the quote
    is invalid; a halt keeps its effect and only loses the timestamp."""
    enc = msgspec.json.encode if codec == "json" else msgspec.msgpack.encode
    naive = "2021-02-22T15:51:45.335689"
    halt = {"T": "s", "S": "SPY", "sc": "H", "sm": "Trading Halt", "t": naive}
    out = MarketDecoder(codec).decode(enc([{**QUOTE, "t": naive}, halt]))
    quote, status = out
    assert isinstance(quote, InvalidQuote)
    assert quote.fields["t"] == repr(datetime.fromisoformat(naive))
    assert status == StatusMsg(S="SPY", sc="H", sm="Trading Halt", t=None)
    offset = MarketDecoder(codec).decode(enc([{**QUOTE, "t": "2021-02-22T10:51:45-05:00"}]))
    assert isinstance(offset[0], QuoteMsg)
    assert offset[0].t == datetime(2021, 2, 22, 15, 51, 45, tzinfo=UTC)


def test_encode_market_auth_msgpack_roundtrip() -> None:
    """Client messages in msgpack are maps alpaca's server reads (§4.2)."""
    msg = {"action": "auth", "key": "k", "secret": "s"}
    packed = encode_market("msgpack", msg)
    assert isinstance(packed, bytes)
    assert msgspec.msgpack.decode(packed) == msg
    assert encode_market("json", msg) == '{"action":"auth","key":"k","secret":"s"}'


ORDER = {
    "id": "0b0e5f0e-3a4e-4c55-9a0f-6f6c3b1e2d11",
    "client_order_id": "xd-0123456789ab-0-1",
    "created_at": "2024-03-05T15:00:01.123456789Z",
    "updated_at": "2024-03-05T15:00:02.500000000Z",
    "submitted_at": "2024-03-05T15:00:01.100000000Z",
    "filled_at": None,
    "replaced_by": None,
    "replaces": None,
    "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
    "symbol": "AAPL",
    "asset_class": "us_equity",
    "notional": None,
    "qty": "10",
    "filled_qty": "3",
    "filled_avg_price": "150.01",
    "order_class": "",
    "order_type": "limit",
    "type": "limit",
    "side": "buy",
    "time_in_force": "day",
    "limit_price": "150.02",
    "stop_price": None,
    "status": "partially_filled",
    "extended_hours": False,
    "legs": None,
}


def test_trade_update_partial_fill_binary_frame() -> None:
    """The §3.3 partial fill, in a binary frame, decodes with Decimal money."""
    frame = msgspec.json.encode(
        {
            "stream": "trade_updates",
            "data": {
                "event": "partial_fill",
                "execution_id": "6c7f0a7a-2f6e-4d44-8f3b-0f2b0e6e9d01",
                "timestamp": "2024-03-05T15:00:02.500000000Z",
                "price": "150.01",
                "qty": "3",
                "position_qty": "3",
                "order": ORDER,
            },
        }
    )
    update = decode_trading(frame)
    assert isinstance(update, TradeUpdate)
    assert update.event == "partial_fill"
    assert (update.qty, update.price, update.position_qty) == (
        Decimal(3),
        Decimal("150.01"),
        Decimal(3),
    )
    assert update.client_order_id == "xd-0123456789ab-0-1"
    assert update.order.filled_qty == Decimal(3)
    assert update.order.limit_price == Decimal("150.02")
    assert update.order.status == "partially_filled"


def test_trade_update_text_frame_new_event_without_fill_fields() -> None:
    """A `new` event in a text frame has no qty/price; a filled order may lack avg price."""
    order = {**ORDER, "status": "new", "filled_qty": "0", "filled_avg_price": None}
    frame = msgspec.json.encode(
        {"stream": "trade_updates", "data": {"event": "new", "order": order}}
    ).decode()
    update = decode_trading(frame)
    assert isinstance(update, TradeUpdate)
    assert update.qty is None
    assert update.timestamp is None
    assert update.order.filled_avg_price is None


def test_authorization_listening_and_null_data() -> None:
    """Handshake answers decode; `data: null` (Alpaca-API#110) is reported, not a crash."""
    auth = decode_trading(
        b'{"stream":"authorization","data":{"status":"authorized","action":"authenticate"}}'
    )
    assert isinstance(auth, Authorization)
    assert auth.data.status == "authorized"
    listening = decode_trading(b'{"stream":"listening","data":{"streams":["trade_updates"]}}')
    assert isinstance(listening, Listening)
    assert listening.data.streams == ["trade_updates"]
    assert decode_trading(b'{"stream":"trade_updates","data":null}') == Ignored(
        "trade_updates", "data is null"
    )


def test_trade_update_without_order_fails_loudly() -> None:
    """An event with no order cannot be routed; decoding raises instead of guessing."""
    with pytest.raises(msgspec.ValidationError):
        decode_trading(b'{"stream":"trade_updates","data":{"event":"fill"}}')
