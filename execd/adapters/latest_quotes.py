"""The market-data REST API's latest-quotes answer (ALPACA.md §5), as exact `Quote`s.

Parsed with msgspec, not alpaca-py's data `Quote`, whose prices are floats: a quote prices
orders and must stay exact. `RestGateway.latest_quotes` asks for up to `LATEST_QUOTES_CHUNK`
symbols per read (``GET /v2/stocks/quotes/latest?symbols=A,B,...``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

import msgspec

from execd.domain.quotes import Quote

LATEST_QUOTES_CHUNK = 200
"""Symbols per read. Alpaca documents no maximum; 200 keeps the URL near 1-2 KB, far below
common 8 KB request-line limits, and a 2,000-symbol universe at 10 reads."""


class _Body(msgspec.Struct):
    bp: Decimal
    bs: Decimal
    ap: Decimal
    as_: Decimal = msgspec.field(name="as")
    t: datetime | None = None


class _Answer(msgspec.Struct):
    quotes: dict[str, _Body]


_decoder = msgspec.json.Decoder(_Answer)


def parse_latest_quotes(body: bytes, asked: Iterable[str], received: datetime) -> dict[str, Quote]:
    """The quotes of the `asked` symbols in a ``{"quotes": {...}}`` answer received at
    `received` (venue-corrected). `as_of` is each quote's own ``t`` capped at receipt, so it
    is judged like a streamed quote (DESIGN.md "Fresh quote"); one without ``t`` is stamped
    at receipt. A symbol the answer omits (no quote yet), or that was not asked for, is left
    out: never valued at zero. Raises `msgspec.DecodeError` on a malformed answer."""
    quotes = _decoder.decode(body).quotes
    found: dict[str, Quote] = {}
    for symbol in asked:
        q = quotes.get(symbol)
        if q is None:
            continue
        stamped = q.t or received
        found[symbol] = Quote(
            symbol=symbol,
            bid=q.bp,
            ask=q.ap,
            bid_size=q.bs,
            ask_size=q.as_,
            venue_time=stamped,
            as_of=min(stamped, received),
        )
    return found
