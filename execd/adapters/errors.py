"""Typed errors raised by the adapters, so callers branch on meaning, not on HTTP codes.

The tree::

    AdapterError
    ├── VenueRefused            403/422 (and other 4xx): the venue understood and said no.
    │   └── Unauthorized        401: wrong keys; retrying will not help.
    ├── NotFound                404: no such order / position / asset.
    ├── RateLimited             429 that outlived its retries (ALPACA.md §0.4).
    │   └── SendExpired         an order write never sent: its pricing quote went stale.
    ├── SendWithdrawn           an order write never sent: its caller withdrew it (a
    │                           stopped leg) while it waited for the request budget.
    ├── VenueUnavailable        5xx, timeouts, resets on a request that is safe to
    │                           repeat, after the retries ran out.
    ├── OutcomeUnknown          a write (POST/PATCH/DELETE) whose effect could not be
    │                           established: the order may or may not exist. The caller
    │                           must reconcile (by client order id) before acting again.
    ├── MalformedResponse       the venue answered something alpaca-py's models reject.
    └── StreamError             a websocket stream gave up for good.
        └── StreamAuthError     the stream's credentials were refused repeatedly.

`VenueRefused` keeps Alpaca's code and message verbatim (ALPACA.md §0.5), because the
text carries the meaning: ``insufficient qty available for order (...)``, ``order is
already in "filled" state`` (a cancel that lost to a fill: treat as filled), ``unable
to replace order, order isn't sent to exchange yet`` (retry the replace later), and the
HTTP status is more reliable than the code prefix (``40010001`` arrives with 422).
"""

from __future__ import annotations

from typing import Any


class AdapterError(Exception):
    """Base of every error the adapters raise on purpose."""


class VenueRefused(AdapterError):
    """The venue answered 4xx: the request was understood and refused.

    `status` is the HTTP status, `code` Alpaca's 8-digit code (None when the body had
    none), `message` Alpaca's message verbatim and `body` the whole decoded body (the
    buying-power refusal adds ``buying_power`` and ``cost_basis``, ALPACA.md §0.5).
    """

    def __init__(
        self, status: int, code: int | None, message: str, body: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body or {}

    @property
    def already_filled(self) -> bool:
        """True for ``order is already in "filled" state``: a cancel or replace lost to a fill."""
        return 'already in "filled" state' in self.message


class Unauthorized(VenueRefused):
    """401: the API keys were refused (ALPACA.md §0.2)."""


class NotFound(AdapterError):
    """404: the order, position or asset does not exist (ALPACA.md §0.5)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class RateLimited(AdapterError):
    """429 even after waiting for the budget and retrying (ALPACA.md §0.4)."""


class SendExpired(RateLimited):
    """An order write never sent: its first send would have come after `send_within`.

    The quote that priced the order went stale while the write waited for the request
    budget or for 429s ("not processed", ALPACA.md §0.4), so no copy of it reached the
    venue and none ever will: the order does not exist. The caller re-prices from a fresh
    quote (DESIGN.md "Fresh quote"). A leg's window also ends at its last send before the
    session's close (`domain.deadline.last_send`): a later copy could reach the venue
    after the close. Never raised once a copy may have reached the venue.
    """


class SendWithdrawn(AdapterError):
    """An order write never sent: its caller withdrew it (`Withdrawal`) before it went out.

    A stopped leg (plan cancel, halt, shutdown) must not wait for a request-budget grant
    only to send nothing, nor send a new price after the stop: its queued write leaves the
    line at once. Raised only while no copy can have reached the venue (waiting for a grant,
    or granted and not yet sent); the order does not exist.
    """


class VenueUnavailable(AdapterError):
    """5xx or network failure on a request whose repetition is harmless, retries spent."""


class OutcomeUnknown(AdapterError):
    """A write whose effect is unknown: the order may exist at the venue or not.

    Raised only after looking the order up by client order id failed too. The caller
    must not place a new order for the same quantity until a reconciliation
    (``GET /v2/orders:by_client_order_id`` or the trade_updates stream) says what
    happened; re-sending the *same* client order id is always safe because Alpaca
    rejects a duplicate with 422 (ALPACA.md §0.5).
    """

    def __init__(self, operation: str, client_order_id: str | None, order_id: str | None) -> None:
        super().__init__(
            f"{operation} outcome unknown (client_order_id={client_order_id}, order_id={order_id})"
        )
        self.operation = operation
        self.client_order_id = client_order_id
        self.order_id = order_id


class MalformedResponse(AdapterError):
    """A 2xx answer that alpaca-py's models (or our structs) could not parse."""


class StreamError(AdapterError):
    """A stream stopped for a reason retrying cannot fix."""


class StreamAuthError(StreamError):
    """The stream's credentials were refused on consecutive attempts (§3.2, §4.4 code 402)."""
