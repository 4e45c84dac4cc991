"""What a leg has counted of its orders' executions, and the translation that keeps it.

Split from leg.py (one job): turning the venue's word about one of the leg's orders — a
`trade_updates` event, or the order as a REST read returns it — into the `LadderEvent`
the ladder hears, while counting every share exactly once. Two sources report the same
shares: the stream's per-execution events and the order's *cumulative* `filled_qty`
(a reconciliation after an inbox overflow or a stream outage turns it into a synthetic
fill). Both are deduplicated here against one count per order (`counted`), so a late
stream event for shares a reconciliation already counted never counts twice (LESSONS.md:
re-pegging more than the remainder).

No I/O and no awaits: the leg does the reads and hands the answers in. What this module
learns that the leg must act on — the venue knows of shares no event told us about — is
reported through `on_gap` (the leg then re-reads its orders before going on).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import structlog

from execd.adapters.wire import TradeUpdate
from execd.domain.ladder_types import LadderEvent, OrderFill, OrderReplaced, OrderUpdate
from execd.domain.order_state import OrderEventKind, OrderState, unseen_fill_price
from execd.domain.quotes import Quote

if TYPE_CHECKING:
    from alpaca.trading.models import Order

_log = structlog.get_logger("execd.leg")

_STATUS_KINDS = {kind.value: kind for kind in OrderEventKind}


class LegExecutions:
    """One leg's order ids and counted executions; see the module docstring.

    `quote` reads the quote cache's NBBO for the leg's symbol (kept with each fill for
    TCA), `now` the venue clock (a fill's time when the venue gives none), `on_gap` is
    called whenever the venue reports shares that were not counted from an event.
    """

    def __init__(
        self,
        quote: Callable[[], Quote | None],
        now: Callable[[], datetime],
        on_gap: Callable[[], None],
    ) -> None:
        self._quote = quote
        self._now = now
        self._on_gap = on_gap
        self._order_ids: dict[str, str] = {}
        self._cids_by_order_id: dict[str, str] = {}
        self._venue_cum: dict[str, Decimal] = {}
        self._cum_after: dict[str, Decimal] = {}  # execution id -> the order's cumulative
        self._quote_at_fill: dict[str, Quote | None] = {}

    # ------------------------------------------------------------------ order ids

    def remember(self, cid: str, order_id: str) -> None:
        """Know the venue's id of one of our orders (and the way back)."""
        self._order_ids[cid] = order_id
        self._cids_by_order_id[order_id] = cid

    def order_id(self, cid: str) -> str | None:
        """The venue's id of `cid` if it is known here (None: ask the venue)."""
        return self._order_ids.get(cid)

    # ------------------------------------------------------------------ counts

    def adopt(self, cid: str, counted: Decimal) -> None:
        """Start from what a restart found already executed of `cid`."""
        self._venue_cum[cid] = counted

    def counted(self, cid: str) -> Decimal:
        """The shares of `cid` counted so far (from events and reconciliations)."""
        return self._venue_cum.get(cid, Decimal(0))

    def take_cumulative(self, execution_id: str) -> Decimal | None:
        """The order's cumulative filled quantity after this execution (for the journal),
        once: it is forgotten as it is taken."""
        return self._cum_after.pop(execution_id, None)

    def quote_at(self, execution_id: str) -> Quote | None:
        """The cache's NBBO when this execution arrived (None when there was none)."""
        return self._quote_at_fill.get(execution_id)

    # ------------------------------------------------------------------ translation

    def translate(self, update: TradeUpdate) -> LadderEvent | None:
        """The ladder event for one trade update; None when it has none to hear."""
        order = update.order
        cid = order.client_order_id
        self.remember(cid, order.id)
        kind = update.event
        if kind in ("fill", "partial_fill"):
            return self._fill(update)
        if order.filled_qty > self.counted(cid):
            # The order reports shares no fill event told us about (a silent socket drops
            # events, ALPACA.md §9). Its status must not move the ladder on first: a
            # confirmed cancel would size the next order from a remainder that is too big.
            # Re-read the order; the reconciliation counts the shares, then the status.
            _log.warning(
                "fill_gap_detected",
                client_order_id=cid,
                order_event=kind,
                filled_qty=str(order.filled_qty),
                counted=str(self.counted(cid)),
            )
            self._on_gap()
            return None
        if kind == "replaced":
            successor = None
            if order.replaced_by is not None:
                successor = self._cids_by_order_id.get(order.replaced_by)
            return OrderReplaced(cid, successor)
        status_kind = _STATUS_KINDS.get(kind)
        if status_kind is None:
            _log.warning("order_update_unknown_event", event_name=kind, client_order_id=cid)
            return None
        return OrderUpdate(cid, status_kind, _reason(update))

    def _fill(self, update: TradeUpdate) -> OrderFill | None:
        order = update.order
        cid = order.client_order_id
        cumulative = order.filled_qty
        known = self.counted(cid)
        if cumulative <= known:
            _log.info("fill_already_counted", client_order_id=cid, filled_qty=str(cumulative))
            return None
        qty = update.qty if update.qty is not None else cumulative - known
        qty = min(qty, cumulative - known)
        price = update.price if update.price is not None else order.filled_avg_price
        if price is None or qty <= 0:
            _log.error("fill_without_price", client_order_id=cid, event=update.event)
            self._on_gap()
            return None
        # Count exactly this execution; shares the venue reports beyond it belong to events
        # we never saw (an overflow, an outage): reconciliation prices and adds them.
        self._venue_cum[cid] = known + qty
        self._cum_after[update.execution_id or f"{order.id}:{known + qty}"] = known + qty
        if cumulative > known + qty:
            missing = cumulative - known - qty
            _log.warning("fill_gap_detected", client_order_id=cid, missing=str(missing))
            self._on_gap()
        execution_id = update.execution_id or f"{order.id}:{known + qty}"
        self._quote_at_fill[execution_id] = self._quote()
        at = update.timestamp or self._now()
        _log.info("order_filled", qty=str(qty), price=str(price), final=update.event == "fill")
        return OrderFill(cid, execution_id, qty, price, at, final=update.event == "fill")

    def reconciled(self, tracked: OrderState, order: Order) -> list[LadderEvent]:
        """The events that bring the ladder's view of `tracked` up to the venue's `order`
        (a REST read): the shares not yet counted as one synthetic fill, then the status."""
        cid = tracked.client_order_id
        self.remember(cid, str(order.id))
        events: list[LadderEvent] = []
        filled = Decimal(str(order.filled_qty or 0))
        known = self.counted(cid)
        status = str(order.status.value)
        if filled > known and order.filled_avg_price is None:
            _log.error("reconcile_fill_unpriced", client_order_id=cid)
            self._on_gap()
        elif filled > known:
            price = unseen_fill_price(
                Decimal(str(order.filled_avg_price or 0)), filled, tracked.executions
            )
            self._venue_cum[cid] = filled
            execution_id = f"reconciled:{order.id}:{known}-{filled}"
            self._cum_after[execution_id] = filled
            self._quote_at_fill[execution_id] = self._quote()
            events.append(
                OrderFill(
                    cid,
                    execution_id,
                    filled - known,
                    price,
                    self._now(),
                    final=status == "filled",
                )
            )
        if status == "replaced":
            successor = self._cids_by_order_id.get(str(order.replaced_by))
            events.append(OrderReplaced(cid, successor))
        elif status in ("canceled", "expired", "rejected", "new"):
            events.append(OrderUpdate(cid, _STATUS_KINDS[status]))
        return events


def _reason(update: TradeUpdate) -> str:
    if update.event in ("rejected", "order_replace_rejected", "order_cancel_rejected"):
        return update.event
    return ""
