"""The webhook sender's choices, without a network: what is sent, and a full queue."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from execd.config import ConfigError, load_settings
from execd.control.protocol import LegStatus, PlanStatus, WatchEvent
from execd.domain.types import Side, Urgency
from execd.engine.events import DaemonEvent, EventHub
from execd.engine.webhooks import WebhookSender, body_for

AT = datetime(2026, 5, 11, 14, 0, tzinfo=UTC)


def _leg(**kw: object) -> LegStatus:
    base: dict[str, object] = {
        "index": 0,
        "symbol": "TQQQ",
        "side": Side.BUY,
        "qty": Decimal(10),
        "notional": None,
        "urgency": Urgency.NORMAL,
        "state": "working",
        "step": 3,
    }
    base.update(kw)
    return LegStatus(**base)  # type: ignore[arg-type]


def _watch(event: str, leg: LegStatus) -> DaemonEvent:
    item = WatchEvent(plan_id="p", seq=1, at=AT, event=event, plan_state="working", leg=leg)
    return DaemonEvent(event, AT, watch=item)


def test_risk_refusal_and_daemon_events_are_sent_progress_is_not() -> None:
    """A leg ended by a risk cap is `risk_refused`; halt goes as is; a plain update is not."""
    refused = body_for(
        _watch("leg_finished", _leg(state="rejected", reason="risk limit: max_order_notional"))
    )
    assert refused is not None
    assert refused["event"] == "risk_refused"
    assert refused["at"] == "2026-05-11T10:00:00.000-04:00"
    assert body_for(DaemonEvent("halt", AT))["event"] == "halt"  # type: ignore[index]
    assert body_for(_watch("leg_updated", _leg())) is None


async def test_fallback_is_told_once_and_a_full_queue_drops() -> None:
    """The first event showing a fallback queues one `leg_fallback`; later ones do not;
    past queue_size, events are dropped without raising (trading never waits)."""
    sender = WebhookSender(["http://127.0.0.1:9/none"], queue_size=2)
    hub = EventHub()
    hub.subscribe(sender.offer)
    hub.emit(_watch("leg_updated", _leg(fallback_fired=True)))
    hub.emit(_watch("leg_updated", _leg(fallback_fired=True, filled_qty=Decimal(5))))
    queued = sender._queue
    assert queued.qsize() == 1
    body = queued.get_nowait()
    assert (body["event"], body["plan_id"], body["fallback_fired"]) == ("leg_fallback", "p", True)
    for _ in range(5):
        hub.daemon_event("resume", AT)
    assert queued.qsize() == 2


async def test_apprise_urls_get_the_event_as_text() -> None:
    """Through the optional apprise extra: `json://` (apprise's JSON POST) to a local
    server stands in for Telegram/Slack/...; the plan-finished summary arrives as text."""
    pytest.importorskip("apprise")
    from tests.engine.test_daemon_telemetry import _until, webhook_server

    async with webhook_server() as (url, got):
        sender = WebhookSender([], apprise_urls=[url.replace("http://", "json://")])
        hub = EventHub()
        hub.subscribe(sender.offer)
        plan = PlanStatus(
            plan_id="p",
            state="completed",
            submitted_at=AT,
            legs=(_leg(state="filled", filled_qty=Decimal(10)),),
            reason="every leg filled",
        )
        hub.emit(DaemonEvent("plan_finished", AT, plan=plan))
        task = asyncio.create_task(sender.run())
        try:
            await _until(lambda: bool(got) or task.done(), "the apprise POST")
            if task.done():
                raise AssertionError(f"sender ended: {task.exception()!r}")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert got[0]["title"] == "execd: plan completed"
    assert got[0]["message"].startswith("plan p completed: 1/1 legs filled")


def test_apprise_urls_are_checked_at_config_load() -> None:
    """A URL apprise does not understand is a configuration error, not a silent drop."""
    pytest.importorskip("apprise")
    with pytest.raises(ConfigError, match="apprise_urls"):
        load_settings(None, notify={"apprise_urls": ["nonsense"]})


def test_a_failing_subscriber_never_reaches_the_caller() -> None:
    """The hub logs a subscriber's exception and carries on with the others."""
    hub = EventHub()
    seen: list[str] = []

    def broken(_: DaemonEvent) -> None:
        raise RuntimeError("boom")

    hub.subscribe(broken)
    hub.subscribe(lambda e: seen.append(e.name))
    hub.daemon_event("halt", AT)
    assert seen == ["halt"]
