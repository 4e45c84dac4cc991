"""The venue side of an order's life: routing, matching, fills, cancels, replaces, expiry.

Order life (ALPACA.md §1.9, §10 choices): POST answers ``accepted``; half-way through the ack
latency the order is routed (``pending_new``), after it the order reaches the book (``new`` on the
stream) and matches; each execution is reported after the fill latency (``partial_fill`` /
``fill``). About ``partial_fill_rate`` of eligible orders get a random partial fill whose remainder
is re-evaluated a moment later (§6). Outside its session an order stays ``accepted`` until the
session opens; OPG / CLS orders wait for the open / close itself. A cancel or replace reaches the
book after the ack latency too, so fills can win the race: a cancel then fails
(``order_cancel_rejected``), a replace is rejected (``order_replace_rejected`` for the old order,
``rejected`` for the new one).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from execd.domain.calendar import EASTERN, next_session, session_on
from execd.domain.types import Side
from execd.sim import wire
from execd.sim.orders import NOT_ROUTED, SimOrder
from execd.sim.state import EngineState

_ZERO = Decimal(0)
# After a random partial fill, the remainder is looked at again this many seconds later (sim).
_PARTIAL_REEVALUATE_S = (0.2, 2.0)


class OrderLifecycle(EngineState):
    """The exchange's venue-side order processing (a part of :class:`Exchange`)."""

    # -- sessions ------------------------------------------------------------------------------

    def _routable(self, order: SimOrder, now: datetime) -> bool:
        """Is the order's session open (regular, or extended for extended-hours orders)?

        OPG and CLS orders are routed only by the open and close themselves (§1.3, §6: paper
        fills them like market orders at the open / close quote, no auction)."""
        if order.req.time_in_force in ("opg", "cls"):
            return False
        session = session_on(now.astimezone(EASTERN).date())
        if session is None:
            return False
        if order.req.extended_hours:
            return session.extended_open <= now < session.extended_close
        return session.open <= now < session.close

    def _schedule_session_boundary(self, after: datetime) -> None:
        day = after.astimezone(EASTERN).date()
        for _ in range(10):
            session = session_on(day) or next_session(day)
            for when, kind in (
                (session.extended_open, "extended_open"),
                (session.open, "open"),
                (session.close, "close"),
                (session.extended_close, "extended_close"),
            ):
                if when > after:
                    self._at(when, partial(self._on_boundary, kind, when))
                    return
            day = session.date + timedelta(days=1)

    def _on_boundary(self, kind: str, when: datetime) -> None:
        auction = {"open": "opg", "close": "cls"}.get(kind)
        if auction is not None:
            for order in [o for o in self._orders.values() if o.status == "accepted"]:
                if order.req.time_in_force == auction and order.cancel_requested_at is None:
                    self._route(order, when)
        if kind in ("extended_open", "open"):
            for order in [o for o in self._orders.values() if o.status == "accepted"]:
                if self._routable(order, when) and order.cancel_requested_at is None:
                    self._route(order, when)
        else:
            for order in list(self._orders.values()):
                if order.status not in ("new", "partially_filled", "pending_replace"):
                    continue  # (a replace still on its way is refused: `_expire`)
                if order.req.time_in_force not in ("day", "opg", "cls", "ioc", "fok"):
                    continue
                if (kind == "close") != order.req.extended_hours:
                    self._expire(order)
        self._schedule_session_boundary(when)

    def _expire_remainder(self, order: SimOrder) -> None:
        """Take the unmatched rest out; report `expired` after the pending fills."""
        self._refuse_replace(order)
        self._books[order.symbol].remove(order.id)
        self._drop_waiting(order)
        when = max(self._now, order.last_report_at or self._now)
        self._at(when, partial(self._expire_if_open, order))

    def _expire_if_open(self, order: SimOrder) -> None:
        if order.is_open:
            self._expire(order)

    def _expire(self, order: SimOrder) -> None:
        self._refuse_replace(order)  # the session ended the order: so ends its replace
        now = self._now
        self._books[order.symbol].remove(order.id)
        self._drop_waiting(order)
        order.expired_at = now
        order.transition("expired", now)
        self._emit(order, "expired")
        self._end_legs(order)

    # -- venue-side order processing -----------------------------------------------------------

    def _route(self, order: SimOrder, now: datetime) -> None:
        """Send an accepted order on: `pending_new` half-way, `new` at the book (§1.9, §3.4)."""
        self._at(now + self._ack / 2, partial(self._pending_new, order))
        self._at(now + self._ack, partial(self._arrive, order))

    def _pending_new(self, order: SimOrder) -> None:
        if order.status != "accepted" or order.cancel_requested_at is not None:
            return
        order.transition("pending_new", self._now)
        self._emit(order, "pending_new")

    def _arrive(self, order: SimOrder) -> None:
        """The order reaches the book: `new`, then match."""
        if order.status not in NOT_ROUTED:
            return  # canceled before it was routed
        now = self._now
        if order.req.notional is not None:
            order.working_qty = self._ledger.notional_shares(order.req)
        order.transition("new", now)
        self._emit(order, "new")
        self._work(order)

    def _work(self, order: SimOrder) -> None:
        """Match a freshly arrived (or triggered) order; rest or drop what is left."""
        req, book, now = order.req, self._books[order.symbol], self._now
        if req.type in ("stop", "stop_limit", "trailing_stop") and not order.triggered:
            if req.type == "trailing_stop" and order.hwm is None:
                order.hwm = self._mark(order.symbol)  # the water mark starts at the last trade
            self._stops.setdefault(order.symbol, []).append(order)
            return
        if book.snapshot is None or order.symbol in self._halted:
            self._waiting_market.setdefault(order.symbol, []).append(order)
            return
        inst = book.inst
        limit: int | None = None
        if req.limit_price is not None:
            if req.side is Side.BUY:
                limit = inst.ticks_floor(req.limit_price)
            else:
                limit = inst.ticks_ceil(req.limit_price)
        if req.time_in_force == "fok" and not self._fok_possible(order, limit):
            self._finish_cancel(order)
            return
        cap = self._partial_fill_cap(order, limit)
        fills = book.take(req.side, cap or order.unmatched, limit, now)
        self._execute(order, [(inst.price(p), q) for p, q in fills])
        if order.unmatched <= 0:
            return
        if req.time_in_force in ("opg", "cls"):
            # §6 (F 11664): at the open/close quote only; what did not fill expires.
            self._expire_remainder(order)
            return
        if cap is not None and fills:
            # §6: "if still marketable, the remainder is re-evaluated for a subsequent fill".
            delay = timedelta(seconds=self._fill_rng.uniform(*_PARTIAL_REEVALUATE_S))
            self._at(now + delay, partial(self._reevaluate, order))
            return
        if req.time_in_force in ("ioc", "fok") or limit is None:
            self._cancel_remainder(order)
            return
        book.rest(order.id, req.side, limit, order.unmatched, now)

    def _partial_fill_cap(self, order: SimOrder, limit: int | None) -> Decimal | None:
        """Paper's random partial fill (§6): for an eligible order, about `partial_fill_rate` of
        the time, the whole shares this match may take (fewer than it wants); else None.

        Eligible: marketable now, at least two whole shares left, and not IOC/FOK (whose
        remainder would be cancelled rather than re-evaluated). The depth model still applies on
        top: a capped match can get less than the cap when the book is thin.
        """
        want = order.unmatched
        if order.req.time_in_force in ("ioc", "fok", "opg", "cls") or want < 2:
            return None
        book = self._books[order.symbol]
        if limit is not None and not book.crosses(order.side, limit, self._now):
            return None
        if self._fill_rng.random() >= self._config.partial_fill_rate:
            return None
        return Decimal(self._fill_rng.randint(1, int(want) - 1))

    def _reevaluate(self, order: SimOrder) -> None:
        """The remainder of a random partial fill comes back to the book (§6)."""
        if order.status not in ("new", "partially_filled"):
            return  # filled, cancelled, expired, or being replaced meanwhile
        if order.cancel_requested_at is not None or order.pending_replacement is not None:
            return
        self._work(order)

    def _fok_possible(self, order: SimOrder, limit: int | None) -> bool:
        book = self._books[order.symbol]
        levels = book.levels(order.side is Side.BUY, self._now)
        if limit is None:
            return True
        reachable = sum(
            (
                Decimal(lv.size)
                for lv in levels
                if (lv.price <= limit if order.side is Side.BUY else lv.price >= limit)
            ),
            _ZERO,
        )
        return reachable >= order.unmatched

    def _execute(self, order: SimOrder, fills: list[tuple[Decimal, Decimal]]) -> None:
        """Reserve matched quantity now; report each execution after the fill latency."""
        when = self._now + self._fill_delay
        for price, qty in fills:
            if qty <= 0:
                continue
            order.matched_qty += qty
            order.last_report_at = when
            self._at(when, partial(self._report_fill, order, price, qty))
            self._shrink_exit_pair(order)

    def _report_fill(self, order: SimOrder, price: Decimal, qty: Decimal) -> None:
        now = self._now
        position = self._account.apply_fill(order.symbol, order.side, qty, price)
        order.filled_qty += qty
        order.filled_value += qty * price
        if self._avg_price_lag:
            until = now + self._avg_price_lag
            order.avg_price_hidden_until = until
            self._at(until, partial(self._reveal_avg_price, order, until))
        done = order.remaining <= 0
        if done:
            order.filled_at = now
        if order.status != "pending_replace":
            order.transition("filled" if done else "partially_filled", now)
        execution_id = self._uuid()
        self._activity.record_fill(
            now,
            order_id=order.id,
            symbol=order.symbol,
            side=order.side.value,
            qty=qty,
            price=price,
            cum_qty=order.filled_qty,
            leaves_qty=order.remaining,
            order_status=order.status,
        )
        self._fills.append(
            {
                "execution_id": execution_id,
                "order_id": order.id,
                "client_order_id": order.req.client_order_id,
                "symbol": order.symbol,
                "side": order.side.value,
                "qty": wire.dec(qty),
                "price": wire.dec(price),
                "timestamp": wire.ts(now),
            }
        )
        self._emit(
            order,
            "fill" if done else "partial_fill",
            execution_id=execution_id,
            price=wire.dec(price),
            qty=wire.dec(qty),
            position_qty=wire.dec(position),
        )
        # Our fills are never printed (§6: paper orders are not routed): no trade message, no bar
        # volume, no VWAP. What they took from the book stays taken (the impact model).
        if done and order.legs and order.req.order_class in ("bracket", "oto"):
            self._activate_legs(order)

    def _reveal_avg_price(self, order: SimOrder, until: datetime) -> None:
        if order.avg_price_hidden_until == until:  # not hidden again by a later fill
            order.avg_price_hidden_until = None

    def _cancel_arrive(self, order: SimOrder) -> None:
        if not order.is_open:
            return
        if self._replace_pending(order):
            # The replacement of a replace still in progress: it ends when the replace
            # completes (`_finish_replace`) or is refused (`_replace_arrive`).
            return
        if order.status in NOT_ROUTED:
            self._finish_cancel(order)
            return
        if order.unmatched <= 0:
            # The fills won the race: they will be reported; the cancel is too late.
            self._emit(order, "order_cancel_rejected")
            return
        self._cancel_remainder(order)

    def _cancel_remainder(self, order: SimOrder) -> None:
        """Take the unmatched rest out of the book; report `canceled` after pending fills.

        A pending replace of the order is refused first: the venue ends the order (its OCO
        pair filled, its parent was cancelled), so its replacement must never work."""
        self._refuse_replace(order)
        self._books[order.symbol].remove(order.id)
        self._drop_waiting(order)
        when = max(self._now, order.last_report_at or self._now)
        self._at(when, lambda: self._finish_cancel(order))

    def _finish_cancel(self, order: SimOrder) -> None:
        if not order.is_open:
            return
        self._books[order.symbol].remove(order.id)
        self._drop_waiting(order)
        order.canceled_at = self._now
        order.transition("canceled", self._now)
        self._emit(order, "canceled")
        self._end_legs(order)

    def _drop_waiting(self, order: SimOrder) -> None:
        for table in (self._waiting_market, self._stops):
            waiting = table.get(order.symbol)
            if waiting and order in waiting:
                waiting.remove(order)

    def _replace_arrive(self, old: SimOrder, new: SimOrder) -> None:
        now = self._now
        if old.pending_replacement != new.id:
            return  # the replace was refused already: its order ended with its group
        if old.unmatched <= 0 or not old.is_open:
            # §1.7: the original filled first; the replacement is rejected.
            self._refuse_replace(old)
            return
        if self._replace_rejects > 0:
            # The `reject_next_replaces` fault: the exchange refused the replacement.
            self._replace_rejects -= 1
            self._refuse_replace(old)
            return
        if not self._ledger.replacement_fits(old, new, self._arriving_qty(old, new)):
            # `old` matched while the PATCH was in flight: the replacement's absolute qty
            # no longer fits the position (§1.7, alpacahq/Alpaca-API#165; §1.10 no flip).
            self._refuse_replace(old)
            return
        self._books[old.symbol].remove(old.id)
        self._drop_waiting(old)
        when = max(now, old.last_report_at or now)
        self._at(when, lambda: self._finish_replace(old, new))

    @staticmethod
    def _arriving_qty(old: SimOrder, new: SimOrder) -> Decimal:
        """The shares `new` will work once it replaces `old` (`old` is out of the book):
        its own qty, or without one the rest `old` left (`_finish_replace`)."""
        own = new.unmatched
        return min(own, old.unmatched) if new.rest_of_old else own

    def _refuse_replace(self, old: SimOrder) -> None:
        """End `old`'s pending replace unfinished: the original stays what it was (§1.7:
        "if the old order fills before the replacement reaches the venue, the new order is
        rejected") and the replacement is rejected. Also what happens when the original
        ends first another way — its OCO/bracket pair filled or was cancelled, or the
        session expired it: the group's end wins, nothing of it keeps working (§1.3)."""
        if old.status != "pending_replace" or old.pending_replacement is None:
            return
        now = self._now
        new = self._orders[old.pending_replacement]
        old.pending_replacement = None
        status = "filled" if old.remaining <= 0 else "partially_filled"
        if old.filled_qty == 0 and old.remaining > 0:
            status = "new"
        old.transition(status, now)
        self._emit(old, "order_replace_rejected")
        if new.is_open:
            new.failed_at = now
            new.transition("rejected", now)
            self._emit(new, "rejected")

    def _replace_pending(self, order: SimOrder) -> bool:
        """Whether `order` is the new order of a replace the venue has not finished."""
        if order.replaces is None:
            return False
        old = self._orders[order.replaces]
        return old.status == "pending_replace" and old.pending_replacement == order.id

    def _finish_replace(self, old: SimOrder, new: SimOrder) -> None:
        if old.pending_replacement != new.id:
            return  # refused meanwhile (`_refuse_replace`): the original ended first
        now = self._now
        # A replaced leg keeps its place in its complex order (§1.7: bracket/OCO legs replace).
        new.parent_id, new.legs = old.parent_id, old.legs
        if old.parent_id is not None:
            siblings = self._orders[old.parent_id].legs
            siblings[siblings.index(old.id)] = new.id
        for leg_id in new.legs:
            self._orders[leg_id].parent_id = new.id
        old.replaced_at = now
        old.replaced_by = new.id
        old.transition("replaced", now)
        self._emit(old, "replaced")
        if new.cancel_requested_at is not None:
            # The replacement was cancelled while the replace was pending (§1.8: an order
            # can be cancelled until it is filled, canceled or expired): the replace
            # completes — the old order is gone — and the new one is canceled unrouted.
            self._finish_cancel(new)
            return
        new.transition("accepted", now)
        if new.rest_of_old:
            # Sized at PATCH time from the fills reported then; what the old order matched
            # since (fill latency, the race window) is not worked twice.
            total = old.working_qty if old.working_qty is not None else old.req.qty
            rest = max((total or old.matched_qty) - old.matched_qty, Decimal(0))
            own = new.working_qty if new.working_qty is not None else new.req.qty
            new.working_qty = rest if own is None else min(own, rest)
            if new.unmatched <= 0:
                self._finish_cancel(new)
                return
        partner = self._exit_pair(new)
        if partner is not None:
            # One position, two exits (§1.3): a partial fill of the partner while the
            # replace was pending shrank the old order; the replacement (sized at PATCH
            # time) sells no more than the partner has left either.
            self._fit_to_pair(new, partner)
            if not new.is_open or new.unmatched <= 0:
                return
        if self._routable(new, now):
            self._arrive(new)

    # -- events --------------------------------------------------------------------------------

    def _log(self, order: SimOrder, event: str, now: datetime) -> None:
        order.events.append({"event": event, "timestamp": wire.ts(now), "status": order.status})

    def _emit(self, order: SimOrder, event: str, **extra: str | None) -> None:
        """Send a trade_updates payload (`order` is the order after the event) and record it."""
        now = self._now
        payload: dict[str, Any] = {
            "event": event,
            "timestamp": wire.ts(now),
            "order": wire.order_json(order),
        }
        payload.update(extra)
        order.events.append(
            {"event": event, "timestamp": payload["timestamp"], "status": order.status, **extra}
        )
        for listener in list(self._trade_listeners):
            listener(payload)
