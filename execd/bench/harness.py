"""A virtual-time harness: the real ladder (`decide`) against the simulator's real `Exchange`.

One simulated clock drives both: the exchange runs on a manual `VenueClock` and the harness
moves it forward in `STEP` increments (events inside a step happen at their own times), feeding
the ladder what the daemon's leg coroutine would feed it — quotes as they are published, order
events as the venue emits them, a `Wake` when the ladder's deadline passes — and performing its
actions as the venue's REST API would (`submit_order`, `replace_order`, `cancel_order`). A leg
of 90 venue seconds takes a few milliseconds.

The interface to the venue is deliberately narrow (the Exchange's public methods and its two
listener hooks), so the harness survives the venue's internals changing.

What it leaves out of the daemon (say so whenever its figures are quoted): the REST and stream
round trips (only the venue's own ack/fill latencies and the `STEP` reaction delay remain), the
request budget, the journal, risk admission, the wash-trade clearing before market orders,
reconciliation, and the shell's quote hold (`QuoteHold`: stale-quote and halt waits happen here
only as far as `decide` itself gates on quote age).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from execd.adapters.wire import QuoteMsg, TradeUpdate, exact
from execd.domain.ladder import decide
from execd.domain.ladder_types import (
    CancelFailed,
    CancelOrder,
    Finish,
    LadderEvent,
    LadderParams,
    LegSpec,
    LegState,
    NeedQuote,
    Note,
    OrderFill,
    OrderReplaced,
    OrderType,
    OrderUpdate,
    PlaceFailed,
    PlaceOrder,
    QuoteUpdate,
    ReplaceFailed,
    ReplaceOrder,
    Start,
    Stop,
    WaitUntil,
    Wake,
)
from execd.domain.order_state import OrderEventKind
from execd.domain.quotes import Quote
from execd.domain.types import Side
from execd.sim.clock import VenueClock
from execd.sim.errors import SimError
from execd.sim.exchange import Exchange

STEP = timedelta(milliseconds=2)
"""How often the harness looks at the venue while an order is live or the ladder waits for a
quote: the ladder's reaction delay in virtual time."""
IDLE_STEP = timedelta(milliseconds=50)
"""The step while the ladder only waits on a timer with nothing at the venue (before the open,
the open-assessment wait): it sees the market at this granularity then, never later than its
own deadline."""

_KINDS = {kind.value: kind for kind in OrderEventKind}
_REFUSALS = ("rejected", "order_replace_rejected", "order_cancel_rejected")
_decode_update = msgspec.json.Decoder(TradeUpdate).decode
_decode_quote = msgspec.msgpack.Decoder(QuoteMsg).decode


@dataclass(slots=True)
class LegResult:
    """How one leg went: what filled at what average price, and when it ended."""

    qty: Decimal
    filled: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    started: datetime | None = None
    last_fill: datetime | None = None
    ended: datetime | None = None
    outcome: str = ""
    reason: str = ""
    orders: int = 0
    mid_at_last_fill: Decimal | None = None
    """The venue's mid when the harness saw the last fill (within one `STEP`): splits a leg's
    cost into the market's move since arrival and what it paid against the mid at the time."""

    @property
    def complete(self) -> bool:
        """Every share of the leg filled."""
        return self.filled >= self.qty

    @property
    def avg_price(self) -> Decimal | None:
        """Volume-weighted fill price (None: nothing filled)."""
        return self.notional / self.filled if self.filled else None

    def seconds(self, opens: datetime | None = None) -> float | None:
        """Start (or the session's open, if later) to last fill, in venue seconds (None: nothing
        filled). A leg submitted before the open cannot trade before it: that wait is not the
        ladder's time to complete."""
        if self.started is None or self.last_fill is None:
            return None
        began = self.started if opens is None else max(self.started, opens)
        return (self.last_fill - began).total_seconds()


@dataclass(slots=True)
class _Venue:
    """The venue as the leg sees it: its latest quote and its inbox of order events."""

    exchange: Exchange
    symbol: str
    quote: Quote | None = None
    updates: list[dict[str, Any]] = field(default_factory=list)

    def on_market(self, message: dict[str, Any]) -> None:
        if message.get("T") != "q" or message.get("S") != self.symbol:
            return
        msg = _decode_quote(msgspec.msgpack.encode(message))
        t = msg.t
        assert t is not None
        # as_of = the quote's own venue time: DESIGN.md's "fresh quote" rule.
        self.quote = Quote(
            self.symbol, exact(msg.bp), exact(msg.ap), exact(msg.bs), exact(msg.as_), t, t
        )

    def on_trade(self, payload: dict[str, Any]) -> None:
        self.updates.append(payload)


def _body(a: PlaceOrder) -> dict[str, Any]:
    body: dict[str, Any] = {
        "symbol": a.symbol,
        "qty": str(a.qty),
        "side": a.side.value,
        "type": "limit" if a.order_type is OrderType.LIMIT else "market",
        "time_in_force": "day",
        "client_order_id": a.client_order_id,
    }
    if a.order_type is OrderType.LIMIT:
        body["limit_price"] = str(a.limit_price)
    return body


def run_ladder(
    exchange: Exchange, clock: VenueClock, spec: LegSpec, params: LadderParams, limit: timedelta
) -> LegResult:
    """Run one leg's ladder to its `Finish` (or `limit` venue time, then a `Stop`)."""
    venue = _Venue(exchange, spec.symbol)
    exchange.on_market_data(venue.on_market)
    exchange.on_trade_update(venue.on_trade)
    # The daemon's quote cache holds the latest quote when a leg starts: hand it over. The REST
    # answer has the stream's fields without the stream's type and symbol keys.
    quotes = exchange.latest_quotes([spec.symbol])
    if spec.symbol in quotes:
        venue.on_market({"T": "q", "S": spec.symbol, **quotes[spec.symbol]})
    now = clock.now()
    result = LegResult(spec.qty, started=now)
    end_at = now + limit
    order_ids: dict[str, str] = {}
    cids: dict[str, str] = {}
    counted: dict[str, Decimal] = {}
    state = LegState.new(spec)
    pending: list[LadderEvent] = [Start()]
    last_fed: Quote | None = None
    stopped = False
    while True:
        while pending:
            event = pending.pop(0)
            state, actions = decide(state, event, now, params)
            for action in actions:
                match action:
                    case PlaceOrder():
                        try:
                            order = exchange.submit_order(_body(action))
                        except SimError as exc:
                            cid = action.client_order_id
                            pending.append(PlaceFailed(cid, exc.status, str(exc)))
                            continue
                        order_ids[action.client_order_id] = order["id"]
                        cids[order["id"]] = action.client_order_id
                        result.orders += 1
                    case ReplaceOrder():
                        old, new = action.client_order_id, action.new_client_order_id
                        body = {
                            "qty": str(action.qty),
                            "limit_price": str(action.limit_price),
                            "client_order_id": new,
                        }
                        try:
                            order = exchange.replace_order(order_ids[old], body)
                        except SimError as exc:
                            pending.append(ReplaceFailed(old, new, exc.status, str(exc)))
                            continue
                        order_ids[new] = order["id"]
                        cids[order["id"]] = new
                        result.orders += 1
                    case CancelOrder():
                        cid = action.client_order_id
                        if cid not in order_ids:
                            pending.append(PlaceFailed(cid, 404, "order not found at the venue"))
                            continue
                        try:
                            exchange.cancel_order(order_ids[cid])
                        except SimError as exc:
                            pending.append(CancelFailed(cid, exc.status, str(exc)))
                    case Finish():
                        result.outcome, result.reason = action.outcome.value, action.reason
                        result.ended = now
                        return result
                    case WaitUntil() | NeedQuote() | Note():
                        pass
        # Wait for the next input, stepping venue time.
        while not pending:
            idle = state.awaiting is None and not any_live(state)
            step = IDLE_STEP if idle else STEP
            now = now + step
            if idle and state.deadline is not None and state.deadline > now - step:
                now = min(now, state.deadline)
            exchange.advance_to(now)
            for payload in venue.updates:
                translated = _translate(payload, cids, counted, result)
                if translated is not None:
                    pending.append(translated)
                if isinstance(translated, OrderFill) and venue.quote is not None:
                    result.mid_at_last_fill = venue.quote.mid
            venue.updates.clear()
            if pending:
                break
            if state.deadline is not None and now >= state.deadline:
                pending.append(Wake())
                break
            q = venue.quote
            if q is not None and (last_fed is None or _market(q) != _market(last_fed)):
                pending.append(QuoteUpdate(q))
                last_fed = q
                break
            if q is not None and state.awaiting is not None:
                after = state.quote_after
                if after is None or q.as_of > after:
                    pending.append(QuoteUpdate(q))
                    last_fed = q
                    break
            if now >= end_at and not stopped:
                stopped = True
                pending.append(Stop("bench time limit"))
                break
            if now >= end_at + timedelta(minutes=5):
                result.outcome, result.reason, result.ended = "abandoned", "no finish", now
                return result


def any_live(state: LegState) -> bool:
    """True while any of the leg's orders may still fill (the venue can report at any step)."""
    return any(not o.is_terminal for o in state.orders)


def _market(q: Quote) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    return (q.bid, q.ask, q.bid_size, q.ask_size)


def _translate(
    payload: Mapping[str, Any],
    cids: Mapping[str, str],
    counted: dict[str, Decimal],
    result: LegResult,
) -> LadderEvent | None:
    update = _decode_update(msgspec.json.encode(payload))
    order = update.order
    cid = cids.get(order.id, order.client_order_id)
    kind = update.event
    if kind in ("fill", "partial_fill"):
        known = counted.get(cid, Decimal(0))
        qty = update.qty if update.qty is not None else order.filled_qty - known
        price = update.price if update.price is not None else order.filled_avg_price
        if qty <= 0 or price is None:
            return None
        counted[cid] = known + qty
        at = update.timestamp
        assert at is not None
        result.filled += qty
        result.notional += qty * price
        result.last_fill = at
        execution_id = update.execution_id or f"{order.id}:{known + qty}"
        return OrderFill(cid, execution_id, qty, price, at, final=kind == "fill")
    if kind == "replaced":
        successor = cids.get(order.replaced_by) if order.replaced_by else None
        return OrderReplaced(cid, successor)
    status = _KINDS.get(kind)
    if status is None:
        return None
    return OrderUpdate(cid, status, kind if kind in _REFUSALS else "")


def run_market(
    exchange: Exchange, clock: VenueClock, symbol: str, side: Side, qty: Decimal
) -> LegResult:
    """The baseline: one plain market order for the whole quantity, followed to its end."""
    venue = _Venue(exchange, symbol)
    exchange.on_trade_update(venue.on_trade)
    now = clock.now()
    result = LegResult(qty, started=now)
    body = {
        "symbol": symbol,
        "qty": str(qty),
        "side": side.value,
        "type": "market",
        "time_in_force": "day",
        "client_order_id": "bench-market",
    }
    order = exchange.submit_order(body)
    cids = {order["id"]: "bench-market"}
    counted: dict[str, Decimal] = {}
    end_at = now + timedelta(minutes=5)
    while now < end_at:
        now = now + STEP
        exchange.advance_to(now)
        for payload in venue.updates:
            event = _translate(payload, cids, counted, result)
            if isinstance(event, OrderUpdate) and event.kind in (
                OrderEventKind.CANCELED,
                OrderEventKind.EXPIRED,
                OrderEventKind.REJECTED,
            ):
                result.ended = now
                return result
        venue.updates.clear()
        if result.complete:
            result.ended = now
            return result
    result.ended = now
    return result
