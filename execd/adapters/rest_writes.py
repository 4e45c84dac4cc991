"""Order writes over REST — place, replace, cancel — and the rule that they never happen twice.

The part of the REST gateway that can spend the account, so it is kept apart from the
reads: everything here is about sending one order write exactly once, or saying plainly
that its outcome is unknown.

alpaca-py defines the wire format: its request models (`MarketOrderRequest`,
`LimitOrderRequest`, `ReplaceOrderRequest`) build every body. They type prices as
floats, so after `to_request_fields()` the body's ``qty``/``notional``/``limit_price``
are overwritten with exact decimal strings — nothing execd sends goes through a binary
float (Alpaca accepts strings, ALPACA.md §0.3).

A write whose answer is lost is never repeated blind. ``POST /v2/orders`` that times
out, is reset or answers 5xx is resolved by asking for the order by its client order
id first: if the venue has it, that is the answer; only when the venue says 404 is
the same request (same client order id) sent again — and Alpaca's "client_order_id
must be unique" (§0.5) turns even an unlucky resend into a refusal, which is itself
resolved by the same look-up. ``PATCH`` is resolved the same way through the *new*
client order id (§1.7). ``DELETE`` is resolved by re-reading the order (§1.8). When
the look-up itself cannot be done, the caller gets `OutcomeUnknown` and must
reconcile before acting. A 429 on a write is repeated after the budget's wait,
because Alpaca rejects it before processing it.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import structlog

from execd.adapters.budget import Priority, QueuePlace, Withdrawal
from execd.adapters.errors import (
    NotFound,
    OutcomeUnknown,
    RateLimited,
    SendExpired,
    SendWithdrawn,
    VenueRefused,
    VenueUnavailable,
)
from execd.adapters.rest_answers import NoAnswer, NotSent, answer_error, parse_model
from execd.adapters.rest_http import RestHttp
from execd.domain.order_state import is_live_status
from execd.domain.types import Side

with warnings.catch_warnings():
    # alpaca/trading/__init__.py imports its stream module, which imports the deprecated
    # websockets.legacy (SDK code, not ours; execd's streams use websockets' asyncio API).
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.models import Order
    from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, ReplaceOrderRequest

# The gateway's modules log under one name, as the single module did.
log = structlog.get_logger("execd.adapters.rest")

#: `Order` is alpaca-py's model every write answers with (re-exported by `rest`).
__all__ = ["Order", "OrderWrites", "wire_decimal"]

#: a cancel that landed: the order is cancelled, or its cancel is pending (§1.8).
_CANCELLING = frozenset({"canceled", "pending_cancel"})
_ALREADY_CANCELED = 'already in "canceled" state'


def wire_decimal(value: Decimal) -> str:
    """A Decimal as Alpaca wants it: plain notation, never an exponent (§0.3)."""
    if not value.is_finite():
        raise ValueError(f"not a finite number: {value}")
    return format(value, "f")


class OrderWrites(RestHttp):
    """``POST``/``PATCH``/``DELETE`` of orders, each settled by a look-up when unsure."""

    async def submit_order(
        self,
        *,
        symbol: str,
        side: Side,
        client_order_id: str,
        qty: Decimal | None = None,
        notional: Decimal | None = None,
        limit_price: Decimal | None = None,
        time_in_force: str = "day",
        extended_hours: bool = False,
        send_within: float | None = None,
        withdraw: Withdrawal | None = None,
        queue_place: QueuePlace | None = None,
    ) -> Order:
        """``POST /v2/orders`` (§1.1): a limit order when `limit_price` is given, else market.

        Never creates two orders: see the module docstring. Raises `VenueRefused`
        (403/422, e.g. ``insufficient qty available for order …``), `RateLimited`,
        or `OutcomeUnknown`. `send_within` (seconds from now, when its price comes from a
        quote): the order is not sent for the first time after it (`SendExpired`).
        `withdraw` set while no copy can have been sent (waiting for the budget, or only
        429s back): the order is not sent (`SendWithdrawn`); set once a copy may have
        left (a lost answer), no copy is sent again and the outcome is `OutcomeUnknown`.
        `queue_place`: asked again after a `SendExpired`, the order waits for the budget
        where it first waited (`QueuePlace`), not at the end of the line.
        """
        common: dict[str, Any] = {
            "symbol": symbol,
            "side": OrderSide(side.value),
            "qty": qty,
            "notional": notional,
            "time_in_force": TimeInForce(time_in_force),
            "client_order_id": client_order_id,
            "extended_hours": extended_hours or None,
        }
        request = (
            MarketOrderRequest(**common)
            if limit_price is None
            else LimitOrderRequest(**common, limit_price=limit_price)
        )
        body: dict[str, Any] = request.to_request_fields()
        _exact(body, qty=qty, notional=notional, limit_price=limit_price)
        return await self._write_order(
            "submit_order",
            "POST",
            "/v2/orders",
            body,
            client_order_id,
            Priority.NEW_ORDER,
            send_within=send_within,
            withdraw=withdraw,
            queue_place=queue_place,
        )

    async def replace_order(
        self,
        order_id: str,
        qty: Decimal | None,
        limit_price: Decimal | None,
        client_order_id: str,
        *,
        send_within: float | None = None,
        withdraw: Withdrawal | None = None,
        queue_place: QueuePlace | None = None,
    ) -> Order:
        """``PATCH /v2/orders/{id}`` (§1.7): the answer is the *new* order (new id).

        `qty` must be whole shares (Alpaca cannot change a fractional qty). A 200 does
        not guarantee the replace: it can still be rejected on the stream if the old
        order fills first. Resolved by the new `client_order_id` when the answer is
        lost. Raises `VenueRefused` (e.g. ``unable to replace order, order isn't sent
        to exchange yet``), `NotFound`, `RateLimited`, `OutcomeUnknown`, and
        `SendExpired`/`SendWithdrawn` and keeps `queue_place` as `submit_order` does.
        """
        if qty is not None and qty != qty.to_integral_value():
            raise ValueError(f"replace qty must be whole shares, got {qty}")
        request = ReplaceOrderRequest(
            qty=int(qty) if qty is not None else None,
            limit_price=limit_price,
            client_order_id=client_order_id,
        )
        body: dict[str, Any] = request.to_request_fields()
        _exact(body, qty=qty, notional=None, limit_price=limit_price)
        return await self._write_order(
            "replace_order",
            "PATCH",
            f"/v2/orders/{order_id}",
            body,
            client_order_id,
            Priority.REPLACE,
            send_within=send_within,
            withdraw=withdraw,
            queue_place=queue_place,
        )

    async def cancel_order(self, order_id: str) -> None:
        """``DELETE /v2/orders/{id}`` (§1.8): returns once the venue accepted the cancel.

        The final ``canceled`` arrives on the stream. Raises `VenueRefused` (422 —
        `.already_filled` for ``order is already in "filled" state``: a fill, not a
        failure), `NotFound`, `RateLimited`, `OutcomeUnknown`. A lost answer is
        resolved by re-reading the order: ``canceled``/``pending_cancel`` means done; a
        terminal status is reported as the venue itself words it; any other status is
        live (`is_live_status`: ``done_for_day`` too, which trades again the next day,
        §1.9) and gets the DELETE again.
        """
        path = f"/v2/orders/{order_id}"
        delays = self._delays()
        ambiguous = False
        last: Exception = RateLimited("cancel_order rate limited")
        for attempt in range(1, self._config.write_attempts + 1):
            try:
                answer = await self._attempt(
                    "DELETE", self._config.trading_url, path, Priority.CANCEL
                )
            except NoAnswer as exc:
                ambiguous, last = True, exc
            else:
                if answer.status < 300:
                    return
                if answer.status >= 500:
                    ambiguous, last = True, answer_error(answer)
                elif answer.status == 429:
                    last = answer_error(answer)
                else:
                    error = answer_error(answer)
                    if isinstance(error, VenueRefused) and _ALREADY_CANCELED in error.message:
                        return  # dead already: our earlier DELETE, or the venue's own cancel
                    raise error
            if not ambiguous:
                if attempt == self._config.write_attempts:
                    break
                await self._sleep(next(delays), "cancel_order", attempt, last)
                continue
            # The DELETE may or may not have landed: the order itself says which.
            await self._sleep(next(delays), "cancel_order", attempt, last)
            order = await self._resolve_read(
                "cancel_order", f"/v2/orders/{order_id}", None, order_id, Priority.CANCEL
            )
            if order is None:
                raise NotFound(f"order {order_id} not found after an unanswered cancel")
            status = str(order.status.value)
            log.info(
                "order_outcome_resolved", operation="cancel_order", order_id=order_id, status=status
            )
            if status in _CANCELLING:
                return
            if not is_live_status(status):  # filled, expired, replaced, rejected
                raise VenueRefused(422, None, f'order is already in "{status}" state')
            ambiguous = False  # still open, so the DELETE did not land: send it again
            if attempt == self._config.write_attempts:
                last = VenueUnavailable(f"cancel of {order_id} not accepted; order is {status}")
                break
        if ambiguous:
            raise OutcomeUnknown("cancel_order", None, order_id) from last
        raise last

    async def _write_order(
        self,
        operation: str,
        method: str,
        path: str,
        body: Mapping[str, Any],
        client_order_id: str,
        priority: Priority,
        *,
        send_within: float | None = None,
        withdraw: Withdrawal | None = None,
        queue_place: QueuePlace | None = None,
    ) -> Order:
        """POST or PATCH that yields an order, resolved by client order id when unsure.

        A 429 is a definite "not processed" (ALPACA.md §0.4): it is sent again as soon as
        the budget grants a slot (the budget backs off after it), without using up one of
        the `write_attempts`, until the write window closes (issue 11 §6: a storm of 429s
        used to exhaust the attempts and end the leg).

        While no copy can have reached the venue (nothing sent yet, or only 429s back),
        the write is not sent after `send_within` seconds: `SendExpired`, the order
        does not exist; likewise once `withdraw` is set (`SendWithdrawn`). Once an
        attempt's fate is unknown the exactly-once rules above apply unchanged (the same
        body, resolved by client order id) and `send_within` no longer applies. The
        withdrawal still stops the resending: an uncertain attempt is always settled by a
        look-up before another copy is sent, and a stopped leg's write sends no further
        copy (review 4: a cancelled or halted plan's place used to be re-sent after the
        look-up's 404). But a 404 only proves the venue has not processed the lost copy
        *yet*: the write then ends `OutcomeUnknown`, never `SendWithdrawn` (review 6: a
        late PATCH landed after the replace was called unsent). If the look-up finds it,
        it is the leg's order, returned as usual (the stopping leg cancels it).
        """
        delays = self._delays()
        ambiguous = False
        last: Exception = RateLimited(f"{operation} rate limited")
        loop = asyncio.get_running_loop()
        closes = loop.time() + self._config.write_window
        send_by = None if send_within is None else loop.time() + send_within
        attempt = sent = 0
        while attempt < self._config.write_attempts:
            attempt += 1
            sent += 1
            if sent > 1 and loop.time() > closes:
                log.error(
                    "order_write_window_closed",
                    operation=operation,
                    client_order_id=client_order_id,
                    attempts=sent - 1,
                )
                break
            try:
                answer = await self._attempt(
                    method,
                    self._config.trading_url,
                    path,
                    priority,
                    body=body,
                    send_by=None if ambiguous else send_by,
                    # Every earlier uncertain copy was looked up and found absent (below).
                    withdraw=withdraw,
                    place=queue_place,
                )
            except SendWithdrawn as exc:
                if ambiguous:
                    # An earlier copy may have left. A look-up's 404 only says the venue
                    # has not processed it *yet* (a lost answer can still be on its way):
                    # withdrawn or not, its outcome is unknown, never "not sent" (review 6).
                    log.warning(
                        "order_write_withdrawn_uncertain",
                        operation=operation,
                        client_order_id=client_order_id,
                        sent=sent - 1,
                    )
                    raise OutcomeUnknown(operation, client_order_id, None) from exc
                log.info(
                    "order_write_withdrawn",
                    operation=operation,
                    client_order_id=client_order_id,
                    sent=sent - 1,
                )
                raise
            except SendExpired:
                log.info(  # routine under a backlog; the ladder prices it again
                    "order_write_expired",
                    operation=operation,
                    client_order_id=client_order_id,
                    sent=sent - 1,
                )
                raise
            except NotSent as exc:
                # Never left (no connection): not uncertain, so no look-up — sent again
                # after the backoff, like any attempt (issue 14: unsent orders on an
                # overloaded venue made a storm of look-ups that timed out in turn).
                last = exc
                log.warning(
                    "order_write_not_sent",
                    operation=operation,
                    client_order_id=client_order_id,
                    attempt=attempt,
                    reason=str(exc),
                )
            except NoAnswer as exc:
                ambiguous, last = True, exc
            else:
                if answer.status < 300:
                    return parse_model(Order, answer.json())
                error = answer_error(answer)
                if answer.status >= 500:
                    ambiguous, last = True, error
                elif answer.status == 429:
                    last = error
                    if not ambiguous:
                        attempt -= 1  # not processed: the budget's backoff is the wait
                        log.warning(
                            "order_write_rate_limited",
                            operation=operation,
                            client_order_id=client_order_id,
                            sent=sent,
                        )
                        continue
                else:
                    if ambiguous:
                        # An earlier attempt may have landed: a duplicate client order id
                        # (422) or "pending_replace" refusal is then our own order.
                        found = await self._resolve_by_client_id(
                            operation, client_order_id, priority
                        )
                        if found is not None:
                            return found
                    raise error
            if ambiguous:
                log.warning(
                    "order_outcome_uncertain",
                    operation=operation,
                    client_order_id=client_order_id,
                    attempt=attempt,
                    reason=str(last),
                )
                await asyncio.sleep(next(delays))
                found = await self._resolve_by_client_id(operation, client_order_id, priority)
                if found is not None:
                    return found
                if attempt == self._config.write_attempts:
                    break
                # The venue says it has no such order: sending the same client order id
                # again is safe (a late first copy would make this one a 422 duplicate).
                log.info(
                    "order_resent",
                    operation=operation,
                    client_order_id=client_order_id,
                    attempt=attempt + 1,
                )
            elif attempt < self._config.write_attempts:
                await self._sleep(next(delays), operation, attempt, last)
        if ambiguous:
            raise OutcomeUnknown(operation, client_order_id, None) from last
        if isinstance(last, NotSent):
            # No copy left: the order does not exist; the leg sends it anew, priced afresh.
            raise SendExpired(f"{operation}: not sent, no connection to the venue") from last
        if isinstance(last, RateLimited):
            # Every answer was a 429 ("not processed", ALPACA.md §0.4): no copy exists, so
            # the order is not sent rather than refused, and the leg sends it anew (priced
            # afresh) until its deadline — a long storm never ends a leg (issue 11 §6).
            raise SendExpired(
                f"{operation}: not sent, rate limited until the write window closed"
            ) from last
        raise last

    async def _resolve_by_client_id(
        self, operation: str, client_order_id: str, priority: Priority
    ) -> Order | None:
        order = await self._resolve_read(
            operation,
            "/v2/orders:by_client_order_id",
            {"client_order_id": client_order_id},
            client_order_id,
            priority,
        )
        log.info(
            "order_outcome_resolved",
            operation=operation,
            client_order_id=client_order_id,
            found=order is not None,
            order_id=None if order is None else str(order.id),
        )
        return order

    async def _resolve_read(
        self,
        operation: str,
        path: str,
        params: Mapping[str, str] | None,
        key: str,
        priority: Priority,
    ) -> Order | None:
        """Read an order to settle an uncertain write.

        None when the venue says 404; `OutcomeUnknown` when it cannot be read at all.
        """
        try:
            answer = await self._read(path, params, priority=priority)
        except NotFound:
            return None
        except (VenueUnavailable, RateLimited) as exc:
            raise OutcomeUnknown(operation, key, None) from exc
        return parse_model(Order, answer.json())


def _exact(
    body: dict[str, Any],
    *,
    qty: Decimal | None,
    notional: Decimal | None,
    limit_price: Decimal | None,
) -> None:
    """Replace alpaca-py's float renderings with exact decimal strings (§0.3)."""
    for name, value in (("qty", qty), ("notional", notional), ("limit_price", limit_price)):
        if value is not None:
            body[name] = wire_decimal(value)
