"""The real `execd run` as a child process, spoken to the way systemd and a user speak to it.

The simulated venue runs in the test process (tests/process.py), so these tests see the
daemon only from outside: sd_notify datagrams on a socket the test binds, JSON log lines on
stdout, the control socket, the exit code, and the venue's record of orders.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from datetime import date, time
from decimal import Decimal

import pytest

from execd.control.protocol import PlanStatus
from execd.domain.ids import parse_client_order_id, plan_key
from execd.sim.config import SimConfig
from execd.sim.venue import SimVenue
from tests.process import DEADLINE, DaemonProcess

WATCHDOG_USEC = 200_000
"""WatchdogSec=0.2 s: the daemon pings every 0.1 s."""


@pytest.fixture
async def venue() -> AsyncIterator[SimVenue]:
    """A calm market at 10:00 on a plain Wednesday, outliving any daemon started on it."""
    config = SimConfig(scenario="calm", seed=1, start=time(10, 0), start_date=date(2026, 3, 4))
    async with SimVenue(config) as running:
        yield running


async def test_sd_notify_ready_watchdog_stopping(venue: SimVenue) -> None:
    """READY=1 (with a STATUS) comes from the daemon's own pid once the control socket
    listens; WATCHDOG=1 pings follow; SIGTERM gives STOPPING=1 and exit code 0."""
    async with DaemonProcess.for_venue(venue, watchdog_usec=WATCHDOG_USEC) as daemon:
        await daemon.start()
        ready = await daemon.wait_notification("READY", "1")
        assert ready.pid == daemon.pid, "NotifyAccess=main: only the main pid may notify"
        assert ready.control_socket_listening, "READY=1 before the control socket listened"
        assert ready.fields.get("STATUS"), ready
        async with daemon.client() as client:
            health = await client.health()
        assert health.trade_updates_connected
        assert health.venue == "sim"

        pings = [await daemon.wait_notification("WATCHDOG", "1", count=n) for n in (1, 2, 3)]
        assert all(ping.at >= ready.at for ping in pings), "watchdog pings before READY=1"

        assert await daemon.sigterm() == 0, daemon.output_tail()
        stopping = await daemon.wait_notification("STOPPING", "1")
        assert stopping.fields.get("STATUS"), stopping
        assert stopping.at >= pings[-1].at
        notes = daemon.notifications()
        assert {note.pid for note in notes} == {daemon.pid}
        assert not daemon.stray_notifications
        assert not daemon.socket_path.exists(), "the control socket file was left behind"
        events = [line["event"] for line in daemon.log_events()]
        ready_at, signal_at = events.index("daemon_ready"), events.index("signal_received")
        assert ready_at < signal_at < events.index("daemon_stopped"), events


async def test_one_leg_plan_through_the_control_socket(venue: SimVenue) -> None:
    """A plan submitted over the socket of a daemon subprocess fills, and the venue agrees."""
    plan = {
        "plan_id": "process-one-leg",
        "urgency": "normal",
        "legs": [{"symbol": "TQQQ", "side": "buy", "qty": "10"}],
    }
    async with DaemonProcess.for_venue(venue) as daemon:
        await daemon.start()
        final: PlanStatus | None = None
        async with daemon.client() as client, asyncio.timeout(DEADLINE):
            accepted = await client.submit(plan)
            assert accepted.plan_id == "process-one-leg"
            async for item in client.watch(accepted.plan_id):
                if isinstance(item, PlanStatus):
                    final = item
        assert final is not None
        assert final.state == "completed", final
        assert final.legs[0].filled_qty == Decimal(10)

        key = plan_key("process-one-leg")
        orders = [
            entry["order"]
            for entry in (await venue.history())["orders"]
            if (parts := parse_client_order_id(entry["order"]["client_order_id"]))
            and parts.plan_key == key
        ]
        assert orders, "the venue saw no order of the plan"
        assert sum(Decimal(order["filled_qty"]) for order in orders) == Decimal(10)
        assert all(order["status"] in ("filled", "canceled", "replaced") for order in orders)
        finished = await daemon.wait_log("leg_finished", plan_id="process-one-leg")
        assert finished["symbol"] == "TQQQ"

        assert await daemon.sigterm() == 0, daemon.output_tail()


async def test_restart_after_kill9_reuses_socket_and_journal(venue: SimVenue) -> None:
    """The harness's restart path: SIGKILL leaves a stale socket file; the second start of the
    same configuration binds the same socket path, keeps the same journal and becomes ready."""
    async with DaemonProcess.for_venue(venue) as daemon:
        await daemon.start()
        first_pid = daemon.pid
        opened = await daemon.wait_log("journal_opened")
        assert opened["path"] == str(daemon.journal_path)
        daemon.kill9()
        assert await daemon.wait_exit() == -signal.SIGKILL
        assert daemon.socket_path.exists(), "SIGKILL cannot clean up: the file stays"

        await daemon.start()
        assert daemon.runs == 2
        assert daemon.pid != first_pid
        await daemon.wait_log("daemon_ready")  # stdout may lag the READY=1 datagram
        assert [line["event"] for line in daemon.log_events()].count("daemon_ready") == 1
        reopened = await daemon.wait_log("journal_opened")
        assert reopened["path"] == str(daemon.journal_path)
        async with daemon.client() as client:
            health = await client.health()
        assert health.trade_updates_connected
        assert await daemon.sigterm() == 0, daemon.output_tail()
        assert [n.fields.get("READY") for n in daemon.notifications(all_runs=True)].count("1") == 2


async def test_status_line_follows_the_work(venue: SimVenue) -> None:
    """STATUS= is a live summary: a resting plan shows as one plan working."""
    plan = {
        "plan_id": "status-line",
        "legs": [{"symbol": "AAPL", "side": "buy", "qty": "5", "limit_price": "150.00"}],
    }
    async with DaemonProcess.for_venue(
        venue, better_orders={"normal_timeout_seconds": 30.0}
    ) as daemon:
        await daemon.start()
        async with daemon.client() as client:
            await client.submit(plan)
        loop = asyncio.get_running_loop()
        end = loop.time() + DEADLINE
        statuses: list[str] = []
        while not any("1 plans working" in s for s in statuses):
            assert loop.time() < end, f"no live STATUS= line: {statuses}"
            await daemon.wait_notification("STATUS", None, count=len(statuses) + 1)
            statuses = [n.fields["STATUS"] for n in daemon.notifications() if "STATUS" in n.fields]
        assert await daemon.sigterm() == 0, daemon.output_tail()


@pytest.mark.parametrize("working_orders", ["cancel", "leave"])
async def test_sigterm_with_a_working_order(venue: SimVenue, working_orders: str) -> None:
    """SIGTERM with an order resting: exit code 0 either way; `cancel` leaves nothing open,
    `leave` keeps the order working and the next start adopts it (no new order), whose own
    SIGTERM (cancel) then cancels it."""
    plan_id = f"sigterm-{working_orders}"
    plan = {
        "plan_id": plan_id,
        "legs": [{"symbol": "AAPL", "side": "buy", "qty": "5", "limit_price": "150.00"}],
    }
    async with DaemonProcess.for_venue(
        venue,
        better_orders={"normal_timeout_seconds": 30.0},
        shutdown={"working_orders": working_orders},
    ) as daemon:
        await daemon.start()
        async with daemon.client() as client:
            await client.submit(plan)
        await daemon.wait_log("leg_order_placed")
        assert await daemon.sigterm() == 0, daemon.output_tail()
        still_open = venue.exchange.list_orders(status="open", limit=50)
        if working_orders == "cancel":
            assert still_open == []
            return
        assert len(still_open) == 1
        daemon.config_path.write_text(
            daemon.config_path.read_text().replace('"leave"', '"cancel"'), encoding="utf-8"
        )
        await daemon.start()
        async with daemon.client() as client:
            status = await client.status(plan_id)
        assert status.state == "working"
        assert status.legs[0].client_order_ids == (still_open[0]["client_order_id"],)
        assert await daemon.sigterm() == 0, daemon.output_tail()
        assert venue.exchange.list_orders(status="open", limit=50) == []
        key = plan_key(plan_id)
        orders = [
            e
            for e in (await venue.history())["orders"]
            if (p := parse_client_order_id(e["order"]["client_order_id"])) and p.plan_key == key
        ]
        assert len(orders) == 1, "the left order was placed again instead of adopted"
