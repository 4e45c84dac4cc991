"""What a leg writes to the journal (issue 5): the write-ahead rule for its orders.

Split from leg.py (one job). The intent of every place and replace is awaited on disk
before the request leaves (`intent`); the venue's answer is recorded after (`ack`), a
certain refusal closes the order (`refusal`), and every execution is recorded before the
ladder counts it (`fill`). A crash therefore never leaves an order the journal does not
know of. Failures are logged here; only `intent` changes what the leg does (it is fed to
the ladder as a refusal: without a journal execd does not trade).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import structlog

from execd.adapters.journal import DuplicateIntent, Journal, JournalError
from execd.domain.ids import parse_client_order_id
from execd.domain.ladder_types import LadderEvent, LegSpec, OrderFill, PlaceFailed, ReplaceFailed
from execd.domain.order_state import OrderStatus
from execd.domain.quotes import Quote
from execd.engine.clock import Clock

_log = structlog.get_logger("execd.leg")

UNKNOWN_OUTCOME = 599
"""Status fed to the ladder when the venue's answer is unknown: not 4xx, so not definitive."""

RISK_REFUSED = 460
"""Status fed to the ladder for an order a risk cap refused: never sent, so definitive (4xx).
An unassigned HTTP code, so it is never confused with a venue's answer."""

JOURNAL_FAILED = 424
"""Status fed to the ladder when the intent could not be journaled: the request was never
sent (4xx: the order certainly does not exist), and without a journal execd does not trade."""

REPLACE_UNSAFE = 462
"""Status fed to the ladder for a PATCH execd chose not to send because the old order
filled more than the leg has counted (or could not be re-read): never sent, so
definitive (4xx); the ladder then cancels, confirms and places the true remainder."""


class LegJournal:
    """One leg's journal writes; see the module docstring."""

    def __init__(self, journal: Journal, spec: LegSpec, clock: Clock) -> None:
        self._journal = journal
        self._spec = spec
        self._clock = clock

    async def intent(
        self,
        cid: str,
        *,
        kind: Literal["place", "replace"],
        order_type: str,
        qty: Decimal,
        limit_price: Decimal | None,
        replaces: str | None = None,
    ) -> tuple[int, str] | None:
        """Put the intent on disk before the request leaves; (status, message) to feed
        the ladder instead of sending when that is impossible."""
        parts = parse_client_order_id(cid)
        if parts is None:  # the ladder only makes execd ids; never send one we cannot file
            return JOURNAL_FAILED, f"not an execd client order id: {cid}"
        try:
            await self._journal.record_intent(
                cid,
                plan_id=self._spec.plan_id,
                leg_index=self._spec.leg_index,
                attempt=parts.attempt,
                kind=kind,
                order_type=order_type,
                side=self._spec.side,
                qty=qty,
                limit_price=limit_price,
                at=self._clock.now(),
                replaces_client_order_id=replaces,
            )
        except DuplicateIntent as exc:
            # The id was intended before (a restart): the order may exist. Never resend;
            # the ladder resolves an unknown outcome by look-up and cancel.
            _log.error("order_intent_duplicate", client_order_id=cid, error=str(exc))
            return UNKNOWN_OUTCOME, str(exc)
        except (JournalError, ValueError) as exc:
            _log.error("journal_intent_failed", client_order_id=cid, error=str(exc))
            return JOURNAL_FAILED, f"journal write failed, order not sent: {exc}"
        return None

    async def refusal(self, event: LadderEvent) -> None:
        """An order the venue certainly does not have (a 4xx answer, or absent at look-up)
        is closed in the journal, so a restart does not look for it again."""
        match event:
            # `not_sent`: never sent (its quote went stale in a 429 storm, or the leg
            # stopped while it waited for the budget): gone, not refused by the venue.
            case PlaceFailed(
                client_order_id=cid, status=status, message=message, not_sent=not_sent
            ):
                pass
            case ReplaceFailed(
                new_client_order_id=cid, status=status, message=message, not_sent=not_sent
            ):
                pass
            case _:
                return
        if not 400 <= status < 500 or status in (RISK_REFUSED, JOURNAL_FAILED, REPLACE_UNSAFE):
            return  # unknown outcome, or refused before any intent was written
        try:
            await self._journal.record_event(
                cid,
                None,
                "not_sent" if not_sent else "refused",
                self._clock.now(),
                {"status": status, "message": message},
                status=OrderStatus.CANCELED if not_sent else OrderStatus.REJECTED,
            )
        except (JournalError, ValueError) as exc:
            _log.error("journal_refusal_failed", client_order_id=cid, error=str(exc))

    async def ack(self, cid: str, order_id: str, status: str) -> None:
        try:
            await self._journal.record_ack(cid, order_id, status, self._clock.now())
        except (JournalError, ValueError) as exc:
            # The venue has the order and the intent is on disk: a restart finds it by
            # client order id. Say so loudly; do not stop the leg for it.
            _log.error("journal_ack_failed", client_order_id=cid, error=str(exc))

    async def fill(
        self, fill: OrderFill, *, cumulative: Decimal | None, quote: Quote | None
    ) -> None:
        """Record an execution before the ladder counts it (once, by execution id), with
        the order's cumulative filled quantity after it and the NBBO it arrived in."""
        try:
            await self._journal.record_fill(
                fill.execution_id,
                fill.client_order_id,
                fill.qty,
                fill.price,
                fill.timestamp,
                cumulative=cumulative,
                quote=quote,
            )
        except (JournalError, ValueError) as exc:
            _log.error(
                "journal_fill_failed",
                client_order_id=fill.client_order_id,
                execution_id=fill.execution_id,
                qty=str(fill.qty),
                price=str(fill.price),
                error=str(exc),
            )
