"""Routes order updates from the one trade_updates stream to the leg that owns the order.

A leg registers under (plan, leg index); every update whose client order id parses to that
pair goes to the leg's bounded inbox, whatever the attempt number, so a replacement order
is routed before the leg has even heard back from its PATCH. The stream never blocks on a
slow leg (STYLE.md rule 7): when an inbox is full the update is dropped *and the leg is
flagged*, and the leg reconciles its orders over REST before acting again. Updates for
orders that no leg owns are logged, never silently dropped (and the daemon's
`OrphanSweeper` cancels execd's live ones).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import structlog

from execd.domain.ids import parse_client_order_id, plan_key

_log = structlog.get_logger(__name__)

T = TypeVar("T")

INBOX_SIZE = 1024


@dataclass(slots=True)
class Inbox(Generic[T]):
    """One leg's queue of order updates, plus the overflow flag and the leg's doorbell.

    `bell` is rung after every delivery (and every overflow): the leg sleeps on one
    future that every input rings, instead of a task per input source (issue 14).
    """

    queue: asyncio.Queue[T] = field(default_factory=lambda: asyncio.Queue(INBOX_SIZE))
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)
    bell: Callable[[], None] | None = None

    def ring(self) -> None:
        if self.bell is not None:
            self.bell()


class OrderRouter(Generic[T]):
    """client_order_id → the owning leg's inbox."""

    def __init__(self) -> None:
        self._inboxes: dict[tuple[str, int], Inbox[T]] = {}
        self.unrouted = 0
        #: called with (plan_id, leg_index) after a leg unregisters (the orphan sweeper's
        #: `released`: the leg's orders still live are its to cancel). Must not block.
        self.on_unregister: Callable[[str, int], None] | None = None

    def register(self, plan_id: str, leg_index: int) -> Inbox[T]:
        key = (plan_key(plan_id), leg_index)
        if key in self._inboxes:
            raise ValueError(f"leg already registered: {plan_id}[{leg_index}]")
        inbox: Inbox[T] = Inbox()
        self._inboxes[key] = inbox
        return inbox

    def unregister(self, plan_id: str, leg_index: int) -> None:
        if self._inboxes.pop((plan_key(plan_id), leg_index), None) is None:
            return
        if self.on_unregister is not None:
            self.on_unregister(plan_id, leg_index)

    def owns(self, client_order_id: str) -> bool:
        """True while a registered leg owns the order (the orphan sweeper's last check)."""
        parts = parse_client_order_id(client_order_id)
        return parts is not None and (parts.plan_key, parts.leg_index) in self._inboxes

    def route(self, client_order_id: str, update: T) -> bool:
        """Deliver one update; False when no registered leg owns the order."""
        parts = parse_client_order_id(client_order_id)
        inbox = None if parts is None else self._inboxes.get((parts.plan_key, parts.leg_index))
        if inbox is None:
            self.unrouted += 1
            _log.info(
                "order_update_unrouted",
                client_order_id=client_order_id,
                ours=parts is not None,
            )
            return False
        try:
            inbox.queue.put_nowait(update)
        except asyncio.QueueFull:
            inbox.overflowed.set()
            _log.warning("order_update_inbox_full", client_order_id=client_order_id)
        inbox.ring()
        return True
