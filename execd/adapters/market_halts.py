"""Which symbols are halted, from the market stream's `statuses` channel (ALPACA.md §4.3).

A halt code marks the symbol halted, a resumption clears it; other statuses (imbalances,
indications, short-sale restrictions) change nothing. DESIGN.md "Fresh quote": a halted
symbol holds its legs like a stale quote.

The channel sends *changes* only, never the current state on subscribe. So a halt is a
fact only while the channel runs for its symbol: once the symbol is unsubscribed, or a new
connection subscribes it again, a resumption in between was never seen and the halt is
`forget`-ten (review 11: it held a later plan's leg as halted until its deadline in a
symbol that traded). Forgetting is the safe error: a symbol still halted has no fresh
quote to price from (the legs hold on that), every order is capped, and the venue refuses
orders in a halted symbol; a halt kept for ever is a silent stall with a false reason.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from execd.adapters.wire import StatusMsg

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

    def get(self, symbol: str) -> StatusMsg | None:
        """The status message that halted `symbol`, while it is halted (None: trading)."""
        return self._halted.get(symbol)

    def on_status(self, message: StatusMsg) -> None:
        """Apply one status message: a halt code sets, a resumption clears (logged once)."""
        symbol, code = message.S, message.sc
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

    def forget(self, symbols: Iterable[str] | None, why: str) -> list[str]:
        """Forget the halts of `symbols` (None: all) whose statuses stopped reaching us
        (module docstring); returns the symbols whose halt was forgotten."""
        if symbols is None:
            symbols = list(self._halted)
        forgotten = [s for s in symbols if self._halted.pop(s, None) is not None]
        if forgotten:
            log.info("symbol_halt_forgotten", stream="market", symbols=forgotten, reason=why)
        return forgotten
