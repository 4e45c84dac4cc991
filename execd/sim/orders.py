"""Order values and the engine's mutable order record.

Status changes happen in one place (:meth:`SimOrder.transition`), which refuses to leave a terminal
state: a late event for a finished order is a bug in the engine, not a venue race.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from execd.domain.types import Side

TERMINAL = frozenset({"filled", "canceled", "expired", "replaced", "rejected"})
# A bracket/OTO exit waits in `held` until its entry has filled (§1.3, §1.9).
HELD = "held"
# Alpaca does not document which statuses `status=open` lists; every non-terminal one (§1.5).
NOT_ROUTED = frozenset({"accepted", "pending_new"})


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A validated order request (POST body, or a replace merged over its original)."""

    symbol: str
    side: Side
    type: str
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    extended_hours: bool
    client_order_id: str
    # trailing_stop only: exactly one of them (§1.1).
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    # simple | bracket | oco | oto (§1.1); the exits of a complex order (§1.3).
    order_class: str = "simple"
    take_profit: Decimal | None = None  # take_profit.limit_price
    stop_loss: Decimal | None = None  # stop_loss.stop_price
    stop_loss_limit: Decimal | None = None  # stop_loss.limit_price (a stop-limit exit)


@dataclass(slots=True)
class SimOrder:
    """One order's full state as the venue reports it."""

    id: str
    req: OrderRequest
    asset_id: str
    created_at: datetime
    status: str = "accepted"
    updated_at: datetime | None = None
    filled_at: datetime | None = None
    expired_at: datetime | None = None
    canceled_at: datetime | None = None
    failed_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    filled_qty: Decimal = Decimal(0)
    filled_value: Decimal = Decimal(0)
    # Quantity the venue has matched but not yet reported (fill latency).
    matched_qty: Decimal = Decimal(0)
    # Shares to work: qty, or for a notional order the shares its notional bought at arrival.
    working_qty: Decimal | None = None
    # Price used for the buying-power hold of a market buy (far side at submission, §1.10).
    ref_price: Decimal | None = None
    cancel_requested_at: datetime | None = None
    pending_replacement: str | None = None
    # A replacement whose PATCH named no qty: it works the rest of the old order, as the
    # venue knows it when the replace completes (`_finish_replace`), not as read at PATCH.
    rest_of_old: bool = False
    last_report_at: datetime | None = None
    # The `avg_price_lag` fault: `filled_avg_price` reads null until this venue time.
    avg_price_hidden_until: datetime | None = None
    triggered: bool = False
    # trailing_stop: the high-water mark (sell) or low-water mark (buy) since it was working.
    hwm: Decimal | None = None
    # Complex orders (§1.3): a leg's parent, a parent's legs (take profit first).
    parent_id: str | None = None
    legs: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def symbol(self) -> str:
        return self.req.symbol

    @property
    def side(self) -> Side:
        return self.req.side

    @property
    def trailing_stop_price(self) -> Decimal | None:
        """A trailing stop's current stop (§1.3: sell hwm − trail, buy hwm + trail), else None."""
        req = self.req
        if req.type != "trailing_stop" or self.hwm is None:
            return None
        sign = -1 if self.side is Side.SELL else 1
        if req.trail_price is not None:
            return self.hwm + sign * req.trail_price
        pct = req.trail_percent or Decimal(0)
        return self.hwm * (1 + sign * pct / 100)

    @property
    def is_open(self) -> bool:
        """Not in a terminal state."""
        return self.status not in TERMINAL

    @property
    def unmatched(self) -> Decimal:
        """Shares the venue may still match (unknown for a notional order before arrival)."""
        total = self.working_qty if self.working_qty is not None else self.req.qty
        return max(Decimal(0), (total or Decimal(0)) - self.matched_qty)

    @property
    def remaining(self) -> Decimal:
        """Shares not yet reported filled."""
        total = self.working_qty if self.working_qty is not None else self.req.qty
        return max(Decimal(0), (total or Decimal(0)) - self.filled_qty)

    @property
    def avg_price(self) -> Decimal | None:
        """Volume-weighted average fill price (None before the first fill)."""
        if self.filled_qty == 0:
            return None
        return self.filled_value / self.filled_qty

    def transition(self, status: str, now: datetime) -> None:
        """Change status, refusing to leave a terminal state."""
        if self.status in TERMINAL and status != self.status:
            raise RuntimeError(f"order {self.id} is {self.status}; cannot become {status}")
        self.status = status
        self.updated_at = now


class OpenOrders:
    """The orders not in a terminal state, in the order they were made.

    Buying power, wash-trade and quantity checks run on every submission over the open
    orders; scanning every order ever made instead made a 2,000-leg run quadratic in the
    venue (issue 14). A terminal status is final (`SimOrder.transition`), so an order is
    dropped the first time it is seen terminal and the view is exact.
    """

    def __init__(self) -> None:
        self._open: dict[str, SimOrder] = {}

    def add(self, order: SimOrder) -> None:
        """A new order (every order the venue makes passes here)."""
        if order.is_open:
            self._open[order.id] = order

    def __call__(self) -> list[SimOrder]:
        """The open orders now (a copy: callers may change orders while iterating)."""
        closed = [key for key, order in self._open.items() if not order.is_open]
        for key in closed:
            del self._open[key]
        return list(self._open.values())
