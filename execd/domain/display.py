"""How numbers and times leave execd's reports: decimal strings at a stated precision.

`execd report --json` once printed ``"1.605394124257505217530903837"`` and ``"-0"``
(issue 13). Every figure a report shows goes through one of these, so the precision
is the same in the table, the JSON, the CSV and the HTML:

- basis points: 2 decimals; fractions (spread capture, rates): 4 decimals;
- prices: to the tick of their level ($0.01 at or above $1, $0.0001 below); derived
  prices (mids, averages, VWAP) to a tenth of that tick, since a mid between two ticks
  rounded to one of them would misstate the benchmark by half a tick;
- dollars: cents; quantities: exact (plain notation);
- never ``-0``: a value that rounds to zero is ``0`` with the precision's decimals;
- times: US/Eastern (the market's clock) with the zone named.

Rounding is half-even, so a column of rounded figures does not drift when totalled.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from execd.domain.calendar import EASTERN

#: The precision of every kind of figure, as stated in the JSON report's header.
PRECISION = {
    "bps": "0.01",
    "fraction": "0.0001",
    "price": "tick ($0.01 at or above $1, $0.0001 below)",
    "derived_price": "tenth of a tick (mids, averages, VWAP)",
    "usd": "0.01",
    "seconds": "0.001",
}

_ONE_DOLLAR = Decimal(1)


def _fixed(value: Decimal, exponent: Decimal) -> str:
    q = value.quantize(exponent, rounding=ROUND_HALF_EVEN)
    if q.is_zero():
        q = abs(q)  # Decimal keeps the sign of zero: -0.00 must read 0.00
    return format(q, "f")


def tick_of(price: Decimal) -> Decimal:
    """The US equity tick at `price` (Reg NMS rule 612)."""
    return Decimal("0.01") if abs(price) >= _ONE_DOLLAR else Decimal("0.0001")


def bps(value: Decimal | None) -> str | None:
    """Basis points, 2 decimals."""
    return None if value is None else _fixed(value, Decimal("0.01"))


def fraction(value: Decimal | None) -> str | None:
    """A ratio (spread capture, a rate), 4 decimals."""
    return None if value is None else _fixed(value, Decimal("0.0001"))


def price(value: Decimal | None) -> str | None:
    """A quoted or traded price, to its tick."""
    return None if value is None else _fixed(value, tick_of(value))


def price_difference(value: Decimal | None, level: Decimal) -> str | None:
    """A difference of prices (a spread) to the tick of the price `level` it was taken at."""
    return None if value is None else _fixed(value, tick_of(level))


def derived_price(value: Decimal | None) -> str | None:
    """A mid, an average or a VWAP: to a tenth of the tick."""
    return None if value is None else _fixed(value, tick_of(value) / 10)


def usd(value: Decimal | None) -> str | None:
    """Dollars, to the cent."""
    return None if value is None else _fixed(value, Decimal("0.01"))


def qty(value: Decimal | None) -> str | None:
    """A quantity, exact, plain notation, no trailing zeros (``10``, ``0.5``)."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def seconds(value: Decimal | None) -> str | None:
    """Elapsed seconds, to the millisecond."""
    return None if value is None else _fixed(value, Decimal("0.001"))


def eastern(value: datetime | None) -> str | None:
    """ISO 8601 in US/Eastern with its offset (``2026-05-11T09:30:01.250-04:00``)."""
    if value is None:
        return None
    return value.astimezone(EASTERN).isoformat(timespec="milliseconds")


def eastern_short(value: datetime | None) -> str:
    """For a person: ``2026-05-11 09:30:01 EDT`` (the zone abbreviation named)."""
    if value is None:
        return "—"
    return value.astimezone(EASTERN).strftime("%Y-%m-%d %H:%M:%S %Z")
