"""Which symbols are halted, from the market stream's `statuses` channel (ALPACA.md §4.3).

A halt code marks the symbol halted, a resumption clears it; other statuses (imbalances,
indications, short-sale restrictions) change nothing. DESIGN.md "Fresh quote": a halted
symbol holds its legs like a stale quote.

The channel sends *changes* only, never the current state on subscribe. So a halt is a
fact only while the channel runs for its symbol: once the symbol is unsubscribed, or the
connection drops, a resumption in between is never seen (review 11: the old halt held a
later plan's leg until its deadline in a symbol that traded). Such a halt is `suspect`:
it still holds the legs, and it ends at the first sign that the symbol trades again, a
quote stamped later than the last one before the gap (a halted book is not quoted), or
any new status for the symbol. Forgetting it at once would be wrong the other way: the
engine unsubscribes and re-subscribes a buy's symbol between its sizing and its leg, and a
quote from just before the halt is still fresh for a few seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import structlog

from execd.adapters.wire import QuoteMsg, StatusMsg

log = structlog.get_logger(__name__)

#: Trading-status codes (§4.3 `sc`) that halt trading in a symbol: CTA "2" trading halt,
#: "5" no open / no resume; UTP "H" trading halt, "P" volatility (LULD) pause. "Q"
#: (quotation resumption) re-opens quoting only and keeps the halt.
HALT_CODES = frozenset({"2", "5", "H", "P", "Q"})
#: Codes that resume trading: CTA "3" resume, UTP "T" trading resumption.
RESUME_CODES = frozenset({"3", "T"})


class Halts:
    """The symbols halted now, each with the status message that halted it."""

    def __init__(self) -> None:
        self._halted: dict[str, StatusMsg] = {}
        #: halted symbols whose statuses had a gap -> the venue time of their last quote
        #: before it (None: none); empty unless a halt meets a gap (the hot path asks)
        self.suspects: dict[str, datetime | None] = {}

    def get(self, symbol: str) -> StatusMsg | None:
        """The status message that halted `symbol`, while it is halted (None: trading)."""
        return self._halted.get(symbol)

    def on_status(self, message: StatusMsg) -> None:
        """Apply one status message: a halt code sets, a resumption clears (logged once)."""
        symbol, code = message.S, message.sc
        self.suspects.pop(symbol, None)  # the channel speaks for it again
        if code in HALT_CODES:
            if symbol not in self._halted:
                log.warning(
                    "symbol_halted",
                    stream="market",
                    symbol=symbol,
                    status_code=code,
                    status=message.sm,
                    reason_code=message.rc,
                    reason=message.rm,
                )
            self._halted[symbol] = message
        elif code in RESUME_CODES and symbol in self._halted:
            del self._halted[symbol]
            log.info(
                "symbol_resumed",
                stream="market",
                symbol=symbol,
                status_code=code,
                status=message.sm,
            )

    def suspect(self, symbols: Iterable[str] | None, last_quote: Mapping[str, QuoteMsg]) -> None:
        """The statuses of `symbols` (None: all) stop reaching us (an unsubscribe sent, a
        dropped connection): their halts become suspect (module docstring)."""
        for symbol in self._halted if symbols is None else symbols:
            if symbol in self._halted and symbol not in self.suspects:
                quote = last_quote.get(symbol)
                self.suspects[symbol] = None if quote is None else quote.t

    def quoting(self, latest: Mapping[str, QuoteMsg]) -> list[str]:
        """New quotes arrived: a suspect halt whose symbol is quoted again, later than before
        the gap, is over; returns the symbols whose halt ended so."""
        ended = []
        for symbol in self.suspects.keys() & latest.keys():
            before, t = self.suspects[symbol], latest[symbol].t
            if before is None or (t is not None and t > before):
                ended.append(symbol)
        for symbol in ended:
            del self.suspects[symbol]
            del self._halted[symbol]
            log.info(
                "symbol_halt_forgotten",
                stream="market",
                symbol=symbol,
                reason="quoted again after its statuses had a gap",
            )
        return ended
