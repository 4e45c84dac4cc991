"""The market stream's values and the pure rules that order its quotes by venue time.

Split from `market_stream` (which re-exports the public names) to keep that module to its
job, the connection and the cache: nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Literal

from execd.adapters.wire import Decoded, QuoteMsg, exact
from execd.domain.quotes import Quote

__all__ = ["MarketStreamStatistics", "QuoteOutage"]


@dataclass(frozen=True, slots=True)
class MarketStreamStatistics:
    """Stream health for the daemon's `health` answer."""

    connected: bool
    connections: int
    reconnects: int
    subscribed: tuple[str, ...]
    #: seconds since the last frame of any kind (None: none yet).
    silence: float | None
    #: per subscribed symbol, seconds since its last quote or trade (None: none yet).
    message_age: dict[str, float | None]
    #: the feed's symbol limit (None: unlimited), learned from the venue after a 405.
    symbol_limit: int | None = None
    #: wanted symbols the limit leaves off the stream (their legs read REST quotes).
    unstreamed: tuple[str, ...] = ()
    #: subscribes the venue refused with 405 `symbol limit exceeded`.
    refused_by_limit: int = 0


@dataclass(frozen=True, slots=True)
class QuoteOutage:
    """Why a symbol's cached quote cannot be vouched for by the connection right now.

    `reason`: ``disconnected`` (no authenticated connection), ``silent`` (nothing at all
    arrived for `silence_timeout`; the watchdog is about to reconnect) or ``reconnected``
    (the connection is back but has not yet delivered a quote for the symbol; the cached
    one is from before the outage). `quote_age` is seconds since the cached quote was
    last known current (None: no quote ever). `recheck_at` is when the answer can change
    without any event (the ``reconnected`` grace ending); None otherwise.
    """

    reason: Literal["disconnected", "silent", "reconnected"]
    quote_age: float | None
    recheck_at: datetime | None = None


_STAMP = attrgetter("t")
_SYMBOL = attrgetter("S")


_QUOTES_ONLY = {QuoteMsg}


def _by_venue_time(messages: Sequence[Decoded]) -> list[QuoteMsg] | None:
    """A frame that holds only quotes, each stamped, sorted by venue time ``t`` (stable:
    ties keep their frame order), so that each symbol's newest quote is its last one; None
    for any other frame. Every step runs in C, and a frame already in time order — every
    frame a live feed sends — costs one comparison per quote."""
    if not messages or set(map(type, messages)) != _QUOTES_ONLY:
        return None
    try:
        ordered: list[QuoteMsg] = sorted(messages, key=_STAMP)  # type: ignore[arg-type]
    except TypeError:  # a quote without `t` among stamped ones (None < datetime)
        return None
    # a lone quote is never compared: its `t` may still be None
    return None if ordered[0].t is None else ordered


def _older(quote: QuoteMsg, than: QuoteMsg, received: datetime) -> bool:
    """Whether `quote` is older by venue time than the cached `than`, received at
    `received` (a quote without ``t`` cannot be ordered and is taken as the newer: its
    receipt time stamps it).

    `than` counts as stamped no later than its receipt, like its `as_of` (`_build`): one
    quote stamped in the future (a bad clock, a corrupt ``t``) must not make every real
    quote after it look older and freeze the symbol's cache until its legs stall.
    """
    t, other = quote.t, than.t
    return t is not None and other is not None and t < min(other, received)


def _build(msg: QuoteMsg, received_at: datetime) -> Quote:
    """The Decimal quote a decision reads. `as_of` is the quote's own timestamp, but never
    in our future: a venue clock a little ahead of ours must not keep a quote fresh for
    longer (no ``t``: its receipt time)."""
    stamped = msg.t or received_at
    return Quote(
        symbol=msg.S,
        bid=exact(msg.bp),
        ask=exact(msg.ap),
        bid_size=exact(msg.bs),
        ask_size=exact(msg.as_),
        venue_time=stamped,
        as_of=min(stamped, received_at),
    )
