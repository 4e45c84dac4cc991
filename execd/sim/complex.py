"""Bracket, OCO and OTO orders (ALPACA.md §1.1, §1.3): the legs and how they move together.

* **bracket**: an entry (market or limit) with a take-profit limit and a stop-loss (stop, or
  stop-limit with `stop_loss.limit_price`) on the other side. The exits wait in `held` until the
  entry has filled completely, then both work; one exit filling cancels the other, and a partial
  take-profit fill shrinks the stop-loss to what is left (§1.3).
* **oco**: exit-only: the order itself is the take-profit limit, its one leg the stop-loss; both
  work at once, one filling cancels the other.
* **oto**: an entry with one exit (take-profit or stop-loss), held until the entry fills.

Cancelling (or the expiry of) a parent ends its held legs with it, and an OCO's pair together.
An exit whose replace is still pending when its group ends has the replace refused (the
replacement `rejected`, as when the original fills first, §1.7): it never outlives its group.
Complex orders are exempt from the wash-trade check (§7). The legs are orders of their own (own
ids, events and `held` → `new` life); GET /v2/orders?nested=true rolls them up under `legs`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from execd.domain.types import Side
from execd.sim.orders import HELD, OrderRequest, SimOrder
from execd.sim.state import EngineState


class ComplexOrders(EngineState):
    """The exchange's complex-order rules (a part of :class:`Exchange`)."""

    def _make_legs(self, parent: SimOrder, now: datetime) -> list[SimOrder]:
        """Create a complex order's legs (take profit first); bracket/OTO legs wait `held`."""
        req = parent.req
        if req.order_class == "simple":
            return []
        exit_side = req.side if req.order_class == "oco" else req.side.opposite
        specs: list[OrderRequest] = []
        if req.take_profit is not None and req.order_class != "oco":
            specs.append(self._leg(req, exit_side, "limit", req.take_profit, None))
        if req.stop_loss is not None:
            kind = "stop" if req.stop_loss_limit is None else "stop_limit"
            specs.append(self._leg(req, exit_side, kind, req.stop_loss_limit, req.stop_loss))
        legs = []
        status = "accepted" if req.order_class == "oco" else HELD
        for spec in specs:
            leg = SimOrder(self._uuid(), spec, parent.asset_id, now, status=status, updated_at=now)
            leg.parent_id = parent.id
            parent.legs.append(leg.id)
            self._orders[leg.id] = leg
            self._open_orders.add(leg)
            legs.append(leg)
        return legs

    def _leg(
        self,
        parent: OrderRequest,
        side: Side,
        kind: str,
        limit: Decimal | None,
        stop: Decimal | None,
    ) -> OrderRequest:
        return replace(
            parent,
            side=side,
            type=kind,
            limit_price=limit,
            stop_price=stop,
            client_order_id=self._uuid(),
            take_profit=None,
            stop_loss=None,
            stop_loss_limit=None,
        )

    def _activate_legs(self, parent: SimOrder) -> None:
        """The entry filled completely: its held exits start working (§1.3)."""
        for leg_id in parent.legs:
            leg = self._orders[leg_id]
            if leg.status != HELD:
                continue
            leg.transition("accepted", self._now)
            if self._routable(leg, self._now):
                self._route(leg, self._now)

    def _exit_pair(self, order: SimOrder) -> SimOrder | None:
        """The other exit of a bracket's or OCO's pair (None for simple orders and OTO)."""
        if order.req.order_class == "oco" and order.parent_id is None:
            return self._orders[order.legs[0]] if order.legs else None
        if order.parent_id is None:
            return None
        parent = self._orders[order.parent_id]
        if parent.req.order_class == "oco":
            return parent
        if parent.req.order_class != "bracket":
            return None
        others = [self._orders[i] for i in parent.legs if i != order.id]
        return others[0] if others else None

    def _shrink_exit_pair(self, order: SimOrder) -> None:
        """One exit matched: the other may only sell what is left (one position, two exits)."""
        other = self._exit_pair(order)
        if other is None or not other.is_open:
            return
        self._fit_to_pair(other, order)

    def _fit_to_pair(self, order: SimOrder, partner: SimOrder) -> None:
        """Let `order` sell at most what its exit `partner` has left unmatched.

        Never grows `order` (a partner replaced at a qty read before its fills were
        reported may claim more than is left; the shrink already applied stays). An
        order with nothing left to sell has its rest cancelled."""
        total = partner.working_qty if partner.working_qty is not None else partner.req.qty
        left = max((total or partner.matched_qty) - partner.matched_qty, Decimal(0))
        own = order.working_qty if order.working_qty is not None else order.req.qty
        fitted = order.matched_qty + left
        order.working_qty = fitted if own is None else min(own, fitted)
        resting = self._books[order.symbol].resting(order.id)
        if resting is not None:
            resting.remaining = order.unmatched
        if order.unmatched <= 0:
            self._cancel_remainder(order)

    def _end_legs(self, parent: SimOrder) -> None:
        """A parent ended (cancelled, expired): held legs end with it, an OCO's pair too."""
        for leg_id in parent.legs:
            leg = self._orders[leg_id]
            if leg.status == HELD:
                leg.canceled_at = self._now
                leg.transition("canceled", self._now)
                self._emit(leg, "canceled")
            elif leg.is_open and parent.req.order_class == "oco":
                self._cancel_remainder(leg)
