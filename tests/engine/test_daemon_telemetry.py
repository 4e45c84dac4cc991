"""Issue 13 items 5 and 6: the Prometheus endpoint and the webhooks, on the real daemon."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from execd.config import ConfigError, load_settings
from tests.engine.conftest import DEADLINE, StartDaemon

pytestmark = pytest.mark.slow

PLAN = {"plan_id": "observed", "legs": [{"symbol": "TQQQ", "side": "buy", "qty": "10"}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def _until(predicate: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_metrics_endpoint_serves_parsable_text(start_daemon: StartDaemon) -> None:
    """Enabled on loopback: plans/legs by outcome, fills, slippage by urgency, streams,
    quote age, budget, loop lag and journal commit latency, all in the text format."""
    port = free_port()
    d = await start_daemon(metrics={"enabled": True, "listen": f"127.0.0.1:{port}"})
    assert d.daemon.telemetry is not None
    await asyncio.wait_for(d.daemon.telemetry.metrics_ready.wait(), DEADLINE)
    status = await d.run(PLAN)
    assert status.state == "completed", status.reason
    await _until(lambda: d.daemon.telemetry and d.daemon.telemetry.loop_lag is not None, "lag")
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as answer,
    ):
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = await answer.text()
    samples = _samples(text)
    assert samples[("execd_plans_total", (("outcome", "completed"),))] == 1
    assert samples[("execd_legs_total", (("outcome", "filled"),))] == 1
    assert samples[("execd_fills_total", ())] >= 1
    assert samples[("execd_slippage_bps_count", (("urgency", "normal"),))] == 1
    assert samples[("execd_stream_connected", (("stream", "market_data"),))] == 1
    assert samples[("execd_stream_connected", (("stream", "trade_updates"),))] == 1
    assert ("execd_stream_reconnects_total", (("stream", "market_data"),)) in samples
    assert samples[("execd_request_budget_limit", ())] == 190
    assert samples[("execd_rate_limited_total", ())] == 0
    # The market-data API's own budget (latest-quote reads) is shown apart from trading's.
    assert 0 <= samples[("execd_data_budget_remaining", ())] <= 190
    assert samples[("execd_data_rate_limited_total", ())] == 0
    health = await d.daemon.engine.health()
    assert health.data_budget_limit == 190
    assert health.data_budget_left is not None
    assert samples[("execd_journal_commit_seconds_count", ())] > 0
    assert samples[("execd_event_loop_lag_seconds", ())] >= 0
    # per symbol while subscribed; the leg is over, so the family is there without samples
    families = {f.name for f in text_string_to_metric_families(text)}
    assert "execd_quote_age_seconds" in families


async def test_nothing_listens_when_metrics_are_disabled(start_daemon: StartDaemon) -> None:
    """Off by default: the configured port stays closed while the daemon runs."""
    port = free_port()
    d = await start_daemon(metrics={"listen": f"127.0.0.1:{port}"})
    await d.run(PLAN)
    assert d.daemon.telemetry is not None
    assert not d.daemon.telemetry.metrics_ready.is_set()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


@pytest.mark.parametrize("listen", ["0.0.0.0:9464", "192.168.1.5:9464", "[::]:9464", "nope"])
def test_metrics_listen_must_be_loopback(listen: str) -> None:
    """A non-loopback (or malformed) address is a configuration error."""
    with pytest.raises(ConfigError, match="metrics"):
        load_settings(None, metrics={"listen": listen})


@contextlib.asynccontextmanager
async def webhook_server(status: int = 200) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server that records every JSON POST and answers `status`."""
    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/hook", received
    finally:
        await runner.cleanup()


async def test_webhook_receives_plan_finished_despite_a_failing_url(
    start_daemon: StartDaemon,
) -> None:
    """Each event goes to each URL; a URL answering 500 is tried max_attempts times and
    given up, a dead one likewise, and neither delays the plan or the good URL."""
    async with webhook_server(500) as (bad, bad_got), webhook_server() as (good, got):
        dead = f"http://127.0.0.1:{free_port()}/hook"
        d = await start_daemon(
            notify={"webhook_urls": [bad, dead, good], "max_attempts": 2, "timeout_seconds": 1}
        )
        status = await d.run(PLAN)
        assert status.state == "completed", status.reason
        await _until(lambda: any(b["event"] == "plan_finished" for b in got), "the POST")
        [body] = [b for b in got if b["event"] == "plan_finished"]
        assert body["plan_id"] == "observed"
        assert body["state"] == "completed"
        assert body["legs_filled"] == 1
        [leg] = body["legs"]
        assert (leg["symbol"], leg["state"], leg["filled_qty"]) == ("TQQQ", "filled", "10")
        assert body["at"].endswith(("-04:00", "-05:00"))  # US/Eastern
        assert len([b for b in bad_got if b["event"] == "plan_finished"]) == 2
        await d.daemon.engine.halt()
        await _until(lambda: any(b["event"] == "halt" for b in got), "the halt POST")


async def test_a_busy_metrics_port_never_stops_trading(start_daemon: StartDaemon) -> None:
    """The metrics server cannot bind (the port is taken): it is logged and retried, and
    the daemon trades on — observing must never be able to stop trading."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        d = await start_daemon(metrics={"enabled": True, "listen": f"127.0.0.1:{port}"})
        status = await d.run(PLAN)
        assert status.state == "completed", status.reason
        assert d.daemon.telemetry is not None
        assert not d.daemon.telemetry.metrics_ready.is_set()
