"""A leg holds while its symbol's quotes are stale because of the market-data connection.

The ladder's answer to "no fresh quote within `quote_wait_seconds`" is a failed validation,
which at normal and high urgency escalates to the market-order fallback (seed 000). That
is right for a symbol that really has no usable quote on a healthy feed; it is wrong when
the feed itself is down: the leg would send a market order blind (issue 5, "Stream
recovery"). So while `MarketStream.outage(symbol)` says the connection cannot vouch for
the symbol's quote, the leg shell does not deliver the ladder's quote-driven deadlines
(`QUOTE`, `REPEG`, `HOLD`: the ones that price or fall back) and does not re-offer the
frozen quote. Deadlines that only cancel and confirm (`CONFIRM`, `FALLBACK`) and every
venue event still go through: a hold never stops a cancel or loses a fill.

When quotes are live again (a quote arrived on the new connection, or the connection has
been back for `quote_wait_seconds` without one) the held deadline is delivered and the
ladder goes on from a fresh quote. A hold never outlasts `stale_quote_max_wait_seconds`
or the leg's deadline (DESIGN.md "Every leg has a deadline"): then the deadlines are
delivered again and the ladder, which prices nothing from a stale quote, ends the leg.
Each hold is logged once as `leg_holding_stale_quotes` and its end as `leg_quotes_resumed`;
`LegRecord.holding_since` shows it in `health`.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime

import structlog

from execd.adapters.market_stream import MarketStream, QuoteOutage
from execd.domain.ladder_types import Timer
from execd.engine.records import LegRecord

_log = structlog.get_logger("execd.leg")

#: Ladder timers whose expiry prices an order or falls back to one.
QUOTE_DRIVEN_TIMERS = frozenset({Timer.QUOTE, Timer.REPEG, Timer.HOLD})


class QuoteHold:
    """One leg's view of its symbol's quote outage; see the module docstring."""

    def __init__(
        self,
        quotes: MarketStream,
        symbol: str,
        grace: float,
        record: LegRecord,
        *,
        max_hold: float = float("inf"),
        deadline: datetime | None = None,
    ) -> None:
        self._quotes = quotes
        self._symbol = symbol
        self._grace = grace
        self._record = record
        self._max_hold = max_hold
        self._deadline = deadline
        self._outage: QuoteOutage | None = None
        self._resumed = False
        # The link changes `check` saw: `changed` is level-triggered against it.
        self._seen_changes: int | None = None

    def check(self, now: datetime) -> QuoteOutage | None:
        """The current outage (None: quotes are live); logs the start and end of a hold."""
        self._seen_changes = self._quotes.link_changes
        outage = self._quotes.outage(self._symbol, self._grace)
        since = self._record.holding_since
        over = (since is not None and (now - since).total_seconds() >= self._max_hold) or (
            self._deadline is not None and now >= self._deadline
        )
        if outage is not None and over:
            # Bounded: deliver the deadlines again; the ladder holds (and ends) on its own.
            if self._outage is not None:
                _log.warning("leg_hold_expired", symbol=self._symbol, reason=outage.reason)
            self._outage = None
            return None
        if outage is not None and self._record.holding_since is None:
            self._record.holding_since = now
            _log.warning(
                "leg_holding_stale_quotes",
                symbol=self._symbol,
                reason=outage.reason,
                quote_age_seconds=outage.quote_age,
            )
        elif outage is None and self._record.holding_since is not None:
            held = (now - self._record.holding_since).total_seconds()
            self._record.holding_since = None
            self._resumed = True
            _log.info("leg_quotes_resumed", symbol=self._symbol, held_seconds=round(held, 3))
        self._outage = outage
        return outage

    def take_resumed(self) -> bool:
        """True once after a hold ended (the leg then feeds the current quote first)."""
        resumed, self._resumed = self._resumed, False
        return resumed

    def holds(self, timer: Timer | None) -> bool:
        """Whether the last `check` found an outage that holds this ladder deadline."""
        return self._outage is not None and timer in QUOTE_DRIVEN_TIMERS

    @property
    def holding(self) -> bool:
        """True while the last `check` found an outage (no quote is re-offered then)."""
        return self._outage is not None

    def timeout(self, now: datetime) -> float | None:
        """Seconds until the hold must be looked at again without any event: the earliest
        of the reconnection grace, the end of `stale_quote_max_wait_seconds` and the leg's
        deadline. Without the last two a data stream that stays down would leave the leg
        (and its resting order) waiting for a wake-up that never comes."""
        if self._outage is None:
            return None
        ends: list[float] = []
        if self._outage.recheck_at is not None:
            ends.append((self._outage.recheck_at - now).total_seconds())
        since = self._record.holding_since
        if since is not None and math.isfinite(self._max_hold):
            ends.append(self._max_hold - (now - since).total_seconds())
        if self._deadline is not None:
            ends.append((self._deadline - now).total_seconds())
        if not ends:
            return None
        return max(min(ends), 0.0) + 0.001

    def changed(self) -> bool:
        """Whether the connection came or went since the last `check`: the leg looks before
        it sleeps, so a change between its check and its sleep (a fast reconnection ending
        the hold) is never missed (review 2, tests/engine/test_review2_leg_waiters.py)."""
        return self._seen_changes is not None and self._seen_changes != self._quotes.link_changes

    def change(self) -> asyncio.Future[None]:
        """The stream's shared future for the next connect or disconnect; never cancel it."""
        return self._quotes.link_change()
