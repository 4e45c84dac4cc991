"""msgspec structs for the two websocket streams, and their decoders.

Why msgspec and not alpaca-py's pydantic models: a busy quote stream delivers
thousands of messages a second, and a pydantic model per quote costs about 20× a
msgspec struct (DESIGN.md "The venue"). The trading stream's money fields (fills) are
`Decimal` straight from the wire: msgspec reads JSON numbers and strings exactly, and
msgpack float64 values by their shortest repr (``150.01`` stays ``Decimal("150.01")``,
never ``150.009999…``). Market data is the hot path (issue 14: building Decimals was a
third of the ingest cost): `QuoteMsg` and `TradeMsg` keep the wire's numbers as floats
bounded in C at decode, and `exact` turns one into the same Decimal by the same
shortest-repr rule when a decision reads it (`MarketStream.quote`, the VWAP).
Timestamps decode from RFC 3339 strings with a UTC offset (nanoseconds rounded to
microseconds) and from the msgpack Timestamp extension −1 alike (ALPACA.md §4.2).

Market data (ALPACA.md §4.3): every frame is an array of maps tagged by ``T``. Only
the types execd uses are structs; the rest (bars, corrections, …) are skipped without
failing the frame, and one bad message never fails the others (`MarketDecoder`).

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

Positive = Annotated[float, msgspec.Meta(gt=0, le=sys.float_info.max)]
"""A trade print's price or size: finite and above zero, checked in C while decoding like
`Finite` (a zero print is no trade either). A NaN once reached ``Decimal('NaN') > 0``,
which raises, and killed the stream (review 2); ±inf poisoned the VWAP. A print that fails
the bounds becomes an `InvalidTrade`."""

Stamp = Annotated[datetime, msgspec.Meta(tz=True)]
"""A venue timestamp: an RFC 3339 string without a UTC offset decodes naive, and a naive
time compared with the aware receipt time raises TypeError on every read of the cache
(review 2). Refused at decode; the msgpack Timestamp extension is always UTC."""


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
    t: Stamp | None = None
    # Not modelled, so not decoded (msgspec skips unknown keys cheaply): bx/ax (exchange
    # codes), c (conditions, a list per quote), z (tape). Nothing in execd reads them.


class TradeMsg(msgspec.Struct, tag_field="T", tag="t"):
    """One trade print: the input of the per-symbol VWAP.

    Price and size are bounded floats like a quote's (`Positive`, checked in C); `exact`
    gives their Decimals when the VWAP records the print.
    """

    S: str
    p: Positive
    s: Positive
    t: Stamp | None = None
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
    t: Stamp | None = None
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


class _LooseTrade(msgspec.Struct, tag_field="T", tag="t"):
    """A trade print without `TradeMsg`'s bounds (see `_LooseQuote`)."""

    S: str
    p: float
    s: float
    t: datetime | None = None


class _LooseStatus(msgspec.Struct, tag_field="T", tag="s"):
    """A status without its timestamp: a halt stamped without a UTC offset still halts."""

    S: str
    sc: str
    sm: str | None = None
    rc: str | None = None
    rm: str | None = None
    z: str | None = None


class InvalidQuote(msgspec.Struct):
    """A quote whose price or size is NaN, infinite or negative, or whose time has no UTC
    offset: never cached (the previous NBBO stays), only logged with its fields as
    received (`repr`)."""

    S: str
    fields: dict[str, str]


class InvalidTrade(msgspec.Struct):
    """A trade print whose price or size is NaN, infinite or not above zero, or whose time
    has no UTC offset: never added to the VWAP, only logged with its fields (`repr`)."""

    S: str
    fields: dict[str, str]


class BrokenMessage(msgspec.Struct):
    """One message of a frame that does not decode even loosely (a quote with
    ``"bp": null``, an element that is no tagged map): skipped and logged, while the rest
    of its frame is applied (review 2: a broken quote once dropped a halt beside it)."""

    tag: str | None
    error: str
    raw: bytes


Decoded = MarketMsg | InvalidQuote | InvalidTrade | BrokenMessage

_KNOWN_TAGS = frozenset({"success", "error", "subscription", "q", "t", "s"})


class _Tagged(msgspec.Struct):
    T: str


Codec = Literal["msgpack", "json"]


class MarketDecoder:
    """Decodes one market-data frame into the messages execd cares about.

    The fast path decodes the whole frame against the tagged union in one call. A frame
    that fails it (a type execd does not model, a bad number, a broken message) falls
    back to decoding each message alone: unknown types are skipped, a quote or trade with
    a bad number becomes an `InvalidQuote`/`InvalidTrade`, a message that does not decode
    at all becomes a `BrokenMessage`, and every other message of the frame still lands.
    """

    def __init__(self, codec: Codec) -> None:
        self.codec: Codec = codec
        module = msgspec.json if codec == "json" else msgspec.msgpack
        self._fast: Callable[[bytes], list[MarketMsg]] = module.Decoder(list[MarketMsg]).decode
        self._raw: Callable[[bytes], list[msgspec.Raw]] = module.Decoder(list[msgspec.Raw]).decode
        self._one: Callable[[msgspec.Raw], MarketMsg] = module.Decoder(MarketMsg).decode
        self._tag: Callable[[msgspec.Raw], _Tagged] = module.Decoder(_Tagged).decode
        self._loose_quote: Callable[[msgspec.Raw], _LooseQuote] = module.Decoder(_LooseQuote).decode
        self._loose_trade: Callable[[msgspec.Raw], _LooseTrade] = module.Decoder(_LooseTrade).decode
        self._loose_status: Callable[[msgspec.Raw], _LooseStatus] = module.Decoder(
            _LooseStatus
        ).decode

    def decode(self, frame: bytes | str) -> list[Decoded]:
        """All modelled messages of one frame, in order (see the class docstring for what
        a bad message becomes).

        Raises `msgspec.DecodeError` only for a frame that is not an array at all.
        """
        data = frame.encode() if isinstance(frame, str) else frame
        try:
            return self._fast(data)  # type: ignore[return-value]  # list is invariant
        except msgspec.ValidationError:
            pass
        out: list[Decoded] = []
        for raw in self._raw(data):
            try:
                tag = self._tag(raw).T
            except msgspec.DecodeError as exc:
                out.append(BrokenMessage(None, str(exc), bytes(raw)))
                continue
            if tag not in _KNOWN_TAGS:
                continue
            try:
                out.append(self._one(raw))
            except msgspec.DecodeError as exc:
                out.append(self._salvage(tag, raw, exc))
        return out

    def _salvage(self, tag: str, raw: msgspec.Raw, error: msgspec.DecodeError) -> Decoded:
        """What is left of a message that failed its struct: the invalid quote or trade
        to log, a status without its bad timestamp (a halt must still halt), or the
        broken message itself."""
        try:
            if tag == "q":
                quote = self._loose_quote(raw)
                fields = {"bp": quote.bp, "ap": quote.ap, "bs": quote.bs, "as_": quote.as_}
                return InvalidQuote(quote.S, _reprs(fields, quote.t))
            if tag == "t":
                trade = self._loose_trade(raw)
                return InvalidTrade(trade.S, _reprs({"p": trade.p, "s": trade.s}, trade.t))
            if tag == "s":
                status = self._loose_status(raw)
                return StatusMsg(
                    S=status.S, sc=status.sc, sm=status.sm, rc=status.rc, rm=status.rm, z=status.z
                )
        except msgspec.DecodeError as exc:
            return BrokenMessage(tag, str(exc), bytes(raw))
        return BrokenMessage(tag, str(error), bytes(raw))


def _reprs(numbers: dict[str, float], t: datetime | None) -> dict[str, str]:
    """An invalid message's fields as received, for its log line."""
    return {**{k: repr(v) for k, v in numbers.items()}, "t": repr(t)}


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
