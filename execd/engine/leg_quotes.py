"""One leg's quote feed: what the ladder hears about its symbol's quotes and trading status.

The quote cache is latest-wins (STYLE.md rule 7), so the leg never queues quotes: it offers
the ladder the newest NBBO when it is news (a changed market) or when the ladder asks for
one (`awaiting`), at most every `REFEED_INTERVAL` for an unchanged quote, so that a ladder
that keeps re-asking cannot spin the loop.

DESIGN.md "Fresh quote": when the stream has nothing fresh for a ladder that waits for a
quote, the latest quote is re-read over the data REST API (at most every
`rest_interval` seconds) and judged by its own timestamp like a streamed one; the newer of
the two is what the ladder hears. Halts and resumptions (the `statuses` channel) become
`TradingStatus` events, once per change.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import structlog

from execd.adapters.errors import AdapterError
from execd.adapters.market_stream import MarketStream
from execd.adapters.rest import RestGateway
from execd.domain.ladder_types import LegState, TradingStatus
from execd.domain.quotes import Quote
from execd.engine.clock import Clock

_log = structlog.get_logger("execd.leg")

REFEED_INTERVAL = 0.25
"""The same quote is offered again to a ladder asking for a fresh one at most this often,
so a ladder that keeps re-asking cannot spin the loop."""


class QuoteFeed:
    """See the module docstring; one per leg, owned by its `LegRunner`."""

    def __init__(
        self,
        symbol: str,
        quotes: MarketStream,
        rest: RestGateway,
        clock: Clock,
        *,
        freshness: float,
        rest_interval: float,
    ) -> None:
        self._symbol = symbol
        self._quotes = quotes
        self._rest = rest
        self._clock = clock
        self._freshness = freshness
        self._rest_interval = rest_interval
        self._halted_fed = False
        self._rest_quote: Quote | None = None
        # Not at once: the stream usually answers within the first interval, and a plan's
        # legs all start together (a burst on the data API's budget otherwise).
        self._rest_due = clock.monotonic() + rest_interval
        self._last_fed: Quote | None = None
        self._last_fed_mono = float("-inf")
        self._seen_at: datetime | None = None

    def status_change(self) -> TradingStatus | None:
        """The symbol's halt or resumption, once per change (MarketStream's `statuses`)."""
        halt = self._quotes.halted(self._symbol)
        if (halt is not None) == self._halted_fed:
            return None
        self._halted_fed = halt is not None
        if halt is None:
            return TradingStatus(halted=False, code="resumed")
        return TradingStatus(halted=True, code=halt.sc, reason=halt.rm or halt.sm or "")

    def cached(self) -> Quote | None:
        """The newest quote known: the stream's, or a newer one re-read over REST."""
        quote = self._quotes.quote(self._symbol)
        extra = self._rest_quote
        if extra is not None and (quote is None or extra.as_of > quote.as_of):
            return extra
        return quote

    def wants_rest(self, state: LegState) -> bool:
        """The ladder waits for a quote and the stream has nothing fresh enough, so the
        data REST API may have one."""
        if state.awaiting is None:
            return False
        quote = self.cached()
        if quote is None:
            return True
        stale = quote.age_seconds(self._clock.now()) > self._freshness
        after = state.quote_after
        return stale or (after is not None and quote.as_of <= after)

    async def reread(self) -> None:
        """Re-read the latest quote over REST, at most every `rest_interval` seconds."""
        delay = self._rest_due - self._clock.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._rest_due = self._clock.monotonic() + self._rest_interval
        try:
            quote = await self._rest.latest_quote(self._symbol)
        except AdapterError as exc:
            _log.info("rest_quote_failed", error=str(exc))
            return
        if quote is None:
            return
        cached = self.cached()
        if cached is None or quote.as_of > cached.as_of:
            _log.info(
                "rest_quote_read",
                bid=str(quote.bid),
                ask=str(quote.ask),
                quote_time=quote.venue_time.isoformat(),
            )
            self._rest_quote = quote

    def offer(self, state: LegState, now: datetime, *, force: bool = False) -> Quote | None:
        """A quote worth feeding: a new message, or the current NBBO when the ladder asks
        (or when `force`d)."""
        quote = self.cached()
        self._seen_at = now
        if quote is None:
            return None
        last = self._last_fed
        is_new = last is None or _market_of(quote) != _market_of(last)
        wanted = state.awaiting is not None and (
            state.quote_after is None or quote.as_of > state.quote_after
        )
        mono = self._clock.monotonic()
        if (
            not force
            and not is_new
            and not (wanted and mono - self._last_fed_mono >= REFEED_INTERVAL)
        ):
            return None
        self._last_fed, self._last_fed_mono = quote, mono
        return quote

    def looked(self, now: datetime) -> None:
        """The leg looked at the symbol without offering its quote (a hold): `arrival`
        then waits for a quote after `now`, not for one it already saw."""
        self._seen_at = now

    def refeed_in(self, state: LegState) -> float | None:
        """Seconds until the cached quote may be offered again to a ladder that asks for
        one (None: it does not ask, or the cache holds nothing new enough)."""
        if state.awaiting is None:
            return None
        quote = self.cached()
        after = state.quote_after
        if quote is None or (after is not None and quote.as_of <= after):
            return None
        since = self._clock.monotonic() - self._last_fed_mono
        return max(REFEED_INTERVAL - since, 0.0) + 0.001

    def arrival(self) -> asyncio.Future[None]:
        """Done when a quote (or status) for the symbol arrives after the last look: the
        stream's shared future (`MarketStream.quote_arrival`) — never cancel it."""
        return self._quotes.quote_arrival(self._symbol, self._seen_at)


def _market_of(quote: Quote) -> tuple[object, ...]:
    return (quote.bid, quote.ask, quote.bid_size, quote.ask_size, quote.venue_time)
