"""The risk caps as the engine applies them: one shared order-rate window, one set of limits.

The decisions are pure (`execd.domain.risk`); this holds the state they need across legs
(the sliding window of orders sent, on the monotonic clock) and maps the `[risk]` config.
Every place and replace asks `admit` first: a breach is refused before the journal, the
wash-trade check or the venue see anything, and the leg ends with the breach's reason.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import structlog

from execd.config import RiskConfig
from execd.domain.quotes import Quote
from execd.domain.risk import (
    OrderRateWindow,
    RiskBreach,
    RiskLimits,
    check_order,
    check_rate,
)
from execd.domain.types import Side

_log = structlog.get_logger("execd.risk")


def risk_limits(config: RiskConfig) -> RiskLimits:
    return RiskLimits(
        max_order_notional=config.max_order_notional,
        max_plan_notional=config.max_plan_notional,
        max_orders_per_minute=config.max_orders_per_minute,
        max_order_equity_multiple=config.max_order_equity_multiple,
        max_plan_equity_multiple=config.max_plan_equity_multiple,
    )


class RiskGuard:
    """Admits or refuses each order about to be sent, over every leg of every plan."""

    def __init__(self, limits: RiskLimits, monotonic: Callable[[], float]) -> None:
        self.limits = limits
        self._monotonic = monotonic
        self._window = OrderRateWindow(limits.max_orders_per_minute)
        self._reference: dict[str, Quote] = {}
        self.equity: Decimal | None = None
        """The account's equity as last read (at each submit); the order cap's multiple
        applies to it. None until the first read: only the dollar cap applies."""

    def remember(self, quotes: dict[str, Quote]) -> None:
        """The quotes a plan was valued with at submit: a market order whose symbol has no
        streamed quote yet (legacy mode does not wait for one) is valued with them rather
        than refused as unvaluable. A reference for a fat-finger cap, not for pricing."""
        self._reference.update(quotes)

    def admit(
        self,
        side: Side,
        symbol: str,
        qty: Decimal,
        limit_price: Decimal | None,
        quote: Quote | None,
    ) -> RiskBreach | None:
        """None and the order is counted as sent; else the breach (nothing counted)."""
        now = self._monotonic()
        if quote is None:
            quote = self._reference.get(symbol)
        breach = check_rate(self._window, now) or check_order(
            self.limits, side, symbol, qty, limit_price, quote, self.equity
        )
        if breach is not None:
            _log.error("risk_limit_breached", limit=breach.limit, reason=breach.reason)
            return breach
        self._window.record(now)
        return None
