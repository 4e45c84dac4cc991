"""The daemon's event hub: what happened, for the metrics and the webhooks.

Plans and legs already announce their progress to `watch` clients (`PlanRecord.publish`);
the engine hands every such event here too, and adds the few that are not about a plan
(halt, resume, a stream down, the journal failing). Subscribers are synchronous and must
not block: the metrics only count, the webhook sender only enqueues. A subscriber that
raises is logged and skipped — observing trading must never be able to stop it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from execd.control.protocol import PlanStatus, WatchEvent

_log = structlog.get_logger("execd.events")


@dataclass(frozen=True, slots=True)
class DaemonEvent:
    """One event: a plan/leg progress event (with the plan's status) or a daemon event."""

    name: str
    at: datetime
    watch: WatchEvent | None = None
    plan: PlanStatus | None = None
    fields: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[DaemonEvent], None]


class EventHub:
    """Fan-out of `DaemonEvent`s to subscribers (see the module docstring)."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call `subscriber` for every event from now on."""
        self._subscribers.append(subscriber)

    def emit(self, event: DaemonEvent) -> None:
        """Hand `event` to every subscriber; a failing subscriber is logged, never raised."""
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception as exc:  # observing must never break trading
                _log.error("event_subscriber_failed", event_name=event.name, error=repr(exc))

    def plan_event(self, item: WatchEvent, plan: Callable[[], PlanStatus]) -> None:
        """A plan's progress event (`PlanRecord.publish`); `plan` reads its status lazily."""
        if not self._subscribers:
            return
        status = plan() if item.event == "plan_finished" else None
        self.emit(DaemonEvent(item.event, item.at, watch=item, plan=status))

    def daemon_event(self, name: str, at: datetime, **fields: Any) -> None:
        """An event that is not about one plan (halt, resume, stream_down, ...)."""
        self.emit(DaemonEvent(name, at, fields=fields))
