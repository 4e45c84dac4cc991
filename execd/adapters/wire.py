"""msgspec structs for the two websocket streams, and their decoders.

Why msgspec and not alpaca-py's pydantic models: a busy quote stream delivers
thousands of messages a second, and a pydantic model per quote costs about 20× a
msgspec struct (DESIGN.md "The venue"). Trade money fields are `Decimal` straight from
the wire: msgspec reads JSON numbers and strings exactly, and msgpack float64 values by
their shortest repr (``150.01`` stays ``Decimal("150.01")``, never ``150.009999…``).
Quotes are the hot path (issue 14: building Decimals was a third of the ingest cost):
`QuoteMsg` keeps the wire's numbers as floats, and `exact` turns one into the same
Decimal by the same shortest-repr rule when a decision reads the quote
(`MarketStream.quote`). Timestamps decode from RFC 3339 strings (nanoseconds rounded to
microseconds) and from the msgpack Timestamp extension −1 alike (ALPACA.md §4.2).

Market data (ALPACA.md §4.3): every frame is an array of maps tagged by ``T``. Only
the types execd uses are structs; the rest (bars, statuses, corrections, …) are
skipped without failing the frame.

Trading stream (ALPACA.md §3.2–3.4): each frame is one JSON object
``{"stream": …, "data": …}``, often in a *binary* frame on paper.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

# -- market data (§4) --------------------------------------------------------


class SuccessMsg(msgspec.Struct, tag_field="T", tag="success"):
    """``{"T":"success","msg":"connected"|"authenticated"}``."""

    msg: str


class ErrorMsg(msgspec.Struct, tag_field="T", tag="error"):
    """``{"T":"error","code":406,"msg":"connection limit exceeded"}`` (§4.4)."""

    code: int
    msg: str


class SubscriptionMsg(msgspec.Struct, tag_field="T", tag="subscription"):
    """The server's full current subscription after each subscribe/unsubscribe."""

    trades: list[str] = msgspec.field(default_factory=list)
    quotes: list[str] = msgspec.field(default_factory=list)
    bars: list[str] = msgspec.field(default_factory=list)


def exact(value: float) -> Decimal:
    """The Decimal a wire number stands for: its shortest repr (``150.01`` → ``150.01``).

    msgpack carries prices as float64 and JSON as decimal text; both decode to the float
    nearest the text, whose shortest repr is that text for every price and size with up
    to 15 significant digits — all of Alpaca's. Whole numbers (sizes) come back whole.
    """
    if value.is_integer():
        return Decimal(int(value))
    return Decimal(repr(value))


Finite = Annotated[float, msgspec.Meta(ge=0, le=sys.float_info.max)]
"""A price or size as the quote stream may carry it: msgpack can carry NaN and ±inf, and a
negative number is no price. msgspec checks the bounds in C while decoding (NaN fails
every comparison); a quote that fails them becomes an `InvalidQuote`."""


class QuoteMsg(msgspec.Struct, tag_field="T", tag="q"):
    """One NBBO update. ``bp``/``ap`` 0 means that side is empty (§4.3).

    Prices and sizes stay floats here (the quote stream's hot path); `exact` gives their
    Decimals. `tests/adapters/test_wire_alpaca.py` checks this struct against alpaca-py's
    own `Quote` model on the same frames.
    """

    S: str
    bp: Finite
    bs: Finite
    ap: Finite
    as_: Finite = msgspec.field(name="as")
    t: datetime | None = None
    # Not modelled, so not decoded (msgspec skips unknown keys cheaply): bx/ax (exchange
    # codes), c (conditions, a list per quote), z (tape). Nothing in execd reads them.


class TradeMsg(msgspec.Struct, tag_field="T", tag="t"):
    """One trade print: the input of the per-symbol VWAP."""

    S: str
    p: Decimal
    s: Decimal
    t: datetime | None = None
    i: int | None = None
    x: str | None = None
    c: list[str] | None = None
    z: str | None = None


class StatusMsg(msgspec.Struct, tag_field="T", tag="s"):
    """A trading status (§4.3, channel `statuses`): `sc` status code, `sm` its message,
    `rc`/`rm` the reason. Halts and resumptions of a symbol arrive here."""

    S: str
    sc: str
    sm: str | None = None
    rc: str | None = None
    rm: str | None = None
    t: datetime | None = None
    z: str | None = None


MarketMsg = SuccessMsg | ErrorMsg | SubscriptionMsg | QuoteMsg | TradeMsg | StatusMsg


class _LooseQuote(msgspec.Struct, tag_field="T", tag="q"):
    """A quote without `QuoteMsg`'s bounds: tells a bad number from a broken message."""

    S: str
    bp: float
    bs: float
    ap: float
    as_: float = msgspec.field(name="as")
    t: datetime | None = None


class InvalidQuote(msgspec.Struct):
    """A quote whose price or size is NaN, infinite or negative: never cached (the
    previous NBBO stays), only logged with its numbers as received (`repr`)."""

    S: str
    fields: dict[str, str]


Decoded = MarketMsg | InvalidQuote

_KNOWN_TAGS = frozenset({"success", "error", "subscription", "q", "t", "s"})


class _Tagged(msgspec.Struct):
    T: str


Codec = Literal["msgpack", "json"]


class MarketDecoder:
    """Decodes one market-data frame into the messages execd cares about.

    The fast path decodes the whole frame against the tagged union in one call; a
    frame holding a type execd does not model (a bar, a status) falls back to
    element-by-element decoding and skips the unknown ones.
    """

    def __init__(self, codec: Codec) -> None:
        self.codec: Codec = codec
        module = msgspec.json if codec == "json" else msgspec.msgpack
        self._fast: Callable[[bytes], list[MarketMsg]] = module.Decoder(list[MarketMsg]).decode
        self._raw: Callable[[bytes], list[msgspec.Raw]] = module.Decoder(list[msgspec.Raw]).decode
        self._one: Callable[[msgspec.Raw], MarketMsg] = module.Decoder(MarketMsg).decode
        self._tag: Callable[[msgspec.Raw], _Tagged] = module.Decoder(_Tagged).decode
        self._loose: Callable[[msgspec.Raw], _LooseQuote] = module.Decoder(_LooseQuote).decode

    def decode(self, frame: bytes | str) -> list[Decoded]:
        """All modelled messages of one frame, in order (a quote with a bad number as an
        `InvalidQuote`).

        Raises `msgspec.DecodeError` for a frame that is not an array of maps, or for
        a known type whose fields are broken (a quote without ``bp``).
        """
        data = frame.encode() if isinstance(frame, str) else frame
        try:
            return self._fast(data)  # type: ignore[return-value]  # list is invariant
        except msgspec.ValidationError:
            pass
        out: list[Decoded] = []
        for raw in self._raw(data):
            tag = self._tag(raw).T
            if tag not in _KNOWN_TAGS:
                continue
            try:
                out.append(self._one(raw))
            except msgspec.ValidationError:
                if tag != "q":
                    raise
                loose = self._loose(raw)  # raises too when the message itself is broken
                numbers = {"bp": loose.bp, "ap": loose.ap, "bs": loose.bs, "as_": loose.as_}
                out.append(InvalidQuote(loose.S, {k: repr(v) for k, v in numbers.items()}))
        return out


def encode_market(codec: Codec, message: Mapping[str, object]) -> bytes | str:
    """Encode a client message (auth, subscribe) as alpaca-py does for that codec."""
    if codec == "json":
        return msgspec.json.encode(message).decode()
    return msgspec.msgpack.encode(message)


# -- trading stream (§3) -------------------------------------------------------


class OrderSnapshot(msgspec.Struct, kw_only=True):
    """The order fields the engine needs from a trade_updates event (§1.4).

    `qty` is None for notional orders; `filled_avg_price` may be null even on a
    "filled" order for a moment (LESSONS.md): take fill prices from the event.
    """

    id: str
    client_order_id: str
    symbol: str | None = None
    side: str | None = None
    type: str | None = None
    qty: Decimal | None = None
    notional: Decimal | None = None
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    limit_price: Decimal | None = None
    status: str
    replaces: str | None = None
    replaced_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class TradeUpdate(msgspec.Struct, kw_only=True):
    """One trade_updates event (§3.3). `qty`/`price` are this execution's, not totals."""

    event: str
    order: OrderSnapshot
    timestamp: datetime | None = None
    execution_id: str | None = None
    qty: Decimal | None = None
    price: Decimal | None = None
    position_qty: Decimal | None = None

    @property
    def client_order_id(self) -> str:
        """The routing key: the order's client order id."""
        return self.order.client_order_id


class AuthorizationData(msgspec.Struct):
    """``{"status":"authorized"|"unauthorized","action":"authenticate"|"listen"}``."""

    status: str
    action: str = ""


class ListeningData(msgspec.Struct):
    """``{"streams":["trade_updates"]}``."""

    streams: list[str] = msgspec.field(default_factory=list)


class _Envelope(msgspec.Struct):
    stream: str
    data: msgspec.Raw = msgspec.Raw(b"null")


class Authorization(msgspec.Struct):
    """The answer to ``authenticate`` (or to a premature ``listen``)."""

    data: AuthorizationData


class Listening(msgspec.Struct):
    """The answer to ``listen``."""

    data: ListeningData


class Ignored(msgspec.Struct):
    """A frame that carries nothing for execd (unknown stream, or ``data: null``,
    Alpaca-API#110); kept so the caller can log it."""

    stream: str
    reason: str


TradingMsg = Authorization | Listening | TradeUpdate | Ignored

_envelope = msgspec.json.Decoder(_Envelope)
_authorization = msgspec.json.Decoder(AuthorizationData)
_listening = msgspec.json.Decoder(ListeningData)
_trade_update = msgspec.json.Decoder(TradeUpdate)


def decode_trading(frame: bytes | str) -> TradingMsg:
    """Decode one trading-stream frame (text or binary JSON).

    Raises `msgspec.DecodeError` for malformed JSON or a trade update missing its
    required fields: such a frame must be seen, not silently skipped.
    """
    envelope = _envelope.decode(frame)
    if bytes(envelope.data) in (b"null", b""):
        return Ignored(envelope.stream, "data is null")
    match envelope.stream:
        case "trade_updates":
            return _trade_update.decode(envelope.data)
        case "authorization":
            return Authorization(_authorization.decode(envelope.data))
        case "listening":
            return Listening(_listening.decode(envelope.data))
        case _:
            return Ignored(envelope.stream, "unknown stream")


def encode_trading(message: Mapping[str, object]) -> str:
    """Encode a client message for the trading stream (text JSON, like alpaca-py)."""
    return msgspec.json.encode(message).decode()
