"""Webhook notifications (issue 13 item 6): a JSON POST per event, out of trading's way.

`WebhookSender.offer` is called from the event hub (synchronously, on the loop): it
turns the events worth telling a person into small JSON documents and puts them on a
bounded queue — it never awaits and never raises. One supervised task (`run`) POSTs
each document to each configured URL with a timeout and a bounded number of tries
(exponential backoff between them). A URL that keeps failing costs at most
``max_attempts × (timeout + backoff)`` per event; a full queue drops the newest event.
Every outcome is logged (the URL is never logged: it often carries a token).

Events sent (``"event"`` in the body):

- ``plan_finished``: state, reason, and per leg what filled, its slippage and the saving
  against a market order (the plan's summary);
- ``leg_fallback``: a leg's ladder reached its fallback (step 4);
- ``risk_refused``: a risk cap refused a leg's order;
- ``halt`` / ``resume``;
- ``stream_down``: a stream down longer than `notify.stream_down_seconds`;
- ``journal_unhealthy``: a journal transaction failed (at most one per minute).
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec
import structlog

from execd.control.protocol import LegStatus, PlanStatus
from execd.domain import display
from execd.engine.events import DaemonEvent

_log = structlog.get_logger("execd.webhooks")

#: Daemon events that are sent as they are (their fields are the body).
_DAEMON_EVENTS = frozenset({"halt", "resume", "stream_down", "journal_unhealthy"})


def _leg_summary(leg: LegStatus) -> dict[str, Any]:
    return {
        "leg": leg.index,
        "symbol": leg.symbol,
        "side": leg.side.value,
        "state": leg.state,
        "qty": display.qty(leg.qty),
        "filled_qty": display.qty(leg.filled_qty),
        "avg_fill_price": display.derived_price(leg.avg_fill_price),
        "slippage_vs_arrival_mid_bps": display.bps(leg.slippage_bps),
        "saving_vs_market_usd": display.usd(leg.saving_vs_market_usd),
        "fallback_fired": leg.fallback_fired,
        "reason": leg.reason,
    }


def plan_summary(plan: PlanStatus) -> dict[str, Any]:
    """A finished plan as the webhook tells it."""
    savings = [leg.saving_vs_market_usd for leg in plan.legs if leg.saving_vs_market_usd]
    return {
        "plan_id": plan.plan_id,
        "state": plan.state,
        "reason": plan.reason,
        "legs_filled": sum(1 for leg in plan.legs if leg.state == "filled"),
        "legs": [_leg_summary(leg) for leg in plan.legs],
        "saving_vs_market_usd": display.usd(sum(savings, Decimal(0))) if savings else None,
    }


def body_for(event: DaemonEvent) -> dict[str, Any] | None:
    """The JSON body for `event`, or None when it is not one we notify."""
    base: dict[str, Any] = {"event": event.name, "at": display.eastern(event.at)}
    watch = event.watch
    if event.name == "plan_finished" and event.plan is not None:
        return {**base, **plan_summary(event.plan)}
    if event.name == "leg_finished" and watch is not None and watch.leg is not None:
        leg = watch.leg
        if leg.reason is not None and leg.reason.startswith("risk limit"):
            return {**base, "event": "risk_refused", "plan_id": watch.plan_id, **_leg_summary(leg)}
        return None
    if event.name == "leg_fallback":
        return {**base, **event.fields}
    if event.name in _DAEMON_EVENTS:
        return {**base, **event.fields}
    return None


def text_for(body: dict[str, Any]) -> tuple[str, str]:
    """(title, text) of an event for a chat or e-mail service."""
    event = body["event"]
    if event == "plan_finished":
        legs = body.get("legs", [])
        saving = body.get("saving_vs_market_usd")
        text = (
            f"plan {body['plan_id']} {body['state']}: {body['legs_filled']}/{len(legs)} legs "
            f"filled" + ("" if saving is None else f"; saved ${saving} vs market orders")
        )
        if body.get("reason"):
            text += f" ({body['reason']})"
        return f"execd: plan {body['state']}", text
    fields = ", ".join(f"{k}={v}" for k, v in body.items() if k not in ("event", "legs"))
    return f"execd: {event.replace('_', ' ')}", fields


def _apprise(urls: Sequence[str]) -> Any:
    """An apprise client for `urls` (the config validated them and the import)."""
    # apprise's plugins import the deprecated imghdr (3.11), lazily, on the first add()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise

        client = apprise.Apprise()
        for url in urls:
            client.add(url)
    return client


class WebhookSender:
    """Queue and deliver webhook notifications; see the module docstring."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        apprise_urls: Sequence[str] = (),
        timeout: float = 5.0,
        max_attempts: int = 3,
        queue_size: int = 100,
        backoff: float = 1.0,
        on_delivery: Callable[[str], None] | None = None,
    ) -> None:
        self._urls = tuple(urls)
        self._timeout = timeout
        self._attempts = max_attempts
        self._backoff = backoff
        self._apprise_urls = tuple(apprise_urls)
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(queue_size)
        self._fallback_seen: set[tuple[str, int]] = set()
        self._on_delivery = on_delivery

    @property
    def enabled(self) -> bool:
        """True when at least one URL is configured."""
        return bool(self._urls or self._apprise_urls)

    def offer(self, event: DaemonEvent) -> None:
        """Queue `event` if it is one we notify (hub subscriber: never blocks, never raises)."""
        if not self.enabled:
            return
        body = body_for(event)
        watch = event.watch
        if body is None and watch is not None and watch.leg is not None:
            leg = watch.leg
            key = (watch.plan_id, leg.index)
            if leg.fallback_fired and key not in self._fallback_seen:
                self._fallback_seen.add(key)
                body = body_for(
                    DaemonEvent(
                        "leg_fallback",
                        event.at,
                        fields={"plan_id": watch.plan_id, **_leg_summary(leg)},
                    )
                )
        if body is None:
            return
        try:
            self._queue.put_nowait(body)
        except asyncio.QueueFull:
            _log.warning("notify_dropped", event_name=body["event"], queued=self._queue.qsize())

    async def run(self) -> None:
        """Deliver queued events until cancelled (one at a time, URL by URL)."""
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        notifier = _apprise(self._apprise_urls) if self._apprise_urls else None
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                body = await self._queue.get()
                try:
                    data = msgspec.json.encode(body)
                    for index, url in enumerate(self._urls):
                        await self._deliver(session, index, url, data)
                    if notifier is not None:
                        await self._deliver_apprise(notifier, body)
                except Exception as exc:  # one bad event must not stop the next ones
                    self._count("failed")
                    _log.error("notify_crashed", event_name=body.get("event"), error=repr(exc))

    async def _deliver_apprise(self, notifier: Any, body: dict[str, Any]) -> None:
        """The event as a short text through apprise (its own threads: the loop never
        blocks; each service has apprise's own connect/read timeouts)."""
        title, text = text_for(body)
        try:
            ok = bool(await notifier.async_notify(title=title, body=text))
        except Exception as exc:  # a notification must never break the daemon
            ok = False
            _log.warning("notify_failed", webhook="apprise", error=repr(exc))
        self._count("sent" if ok else "failed")
        if not ok:
            _log.error("notify_gave_up", webhook="apprise")

    async def _deliver(
        self, session: aiohttp.ClientSession, index: int, url: str, body: bytes
    ) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                async with session.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as answer:
                    if answer.status < 300:
                        self._count("sent")
                        return
                    error = f"HTTP {answer.status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            _log.warning("notify_failed", webhook=index, attempt=attempt, error=error)
            if attempt < self._attempts:
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))  # retry backoff
        self._count("failed")
        _log.error("notify_gave_up", webhook=index, attempts=self._attempts)

    def _count(self, outcome: str) -> None:
        if self._on_delivery is not None:
            self._on_delivery(outcome)
