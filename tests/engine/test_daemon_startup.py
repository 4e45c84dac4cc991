"""Issue 11 §3 and §11: one daemon per journal, and start failures as one clear line.

The daemon runs as a subprocess (tests/process.py) against a venue in the test process,
so the exit code, stderr and the venue's order history are what is judged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, time
from pathlib import Path

import pytest

from execd.control.protocol import ControlError, ErrorCode
from execd.sim.config import SimConfig
from execd.sim.venue import SimVenue
from tests.process import DEADLINE, DaemonProcess, short_tempdir, write_config

pytestmark = pytest.mark.slow

RESTING = {"symbol": "AAPL", "side": "buy", "qty": "1", "limit_price": "1.00"}
"""A buy far below the market: it rests at the venue for as long as the test needs."""


@pytest.fixture
async def venue() -> AsyncIterator[SimVenue]:
    config = SimConfig(scenario="calm", seed=1, start=time(10, 0), start_date=date(2026, 3, 4))
    async with SimVenue(config) as running:
        yield running


async def _poll(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    """Until `predicate` holds, or fail at DEADLINE (yields to the loop between tries)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not await predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _stderr(daemon: DaemonProcess) -> str:
    return daemon.stderr_path.read_text(encoding="utf-8", errors="replace")


async def test_second_daemon_on_the_same_journal_exits_at_once(venue: SimVenue) -> None:
    """A second `execd run` on the first one's journal (another socket) exits 1 at once,
    naming the journal and the holder's pid, and never touches the first one's order."""
    patient = {"normal_timeout_seconds": 60.0, "open_timeout_seconds": 60.0}
    async with DaemonProcess.for_venue(venue, better_orders=patient) as first:
        await first.start()
        async with first.client() as client:
            await client.submit({"plan_id": "held", "legs": [RESTING]})

        async def order_rests() -> bool:
            return any(o["order"]["status"] == "new" for o in (await venue.history())["orders"])

        await _poll(order_rests, "the first daemon's order to rest")
        before = (await venue.history())["orders"]
        directory = short_tempdir()
        config = write_config(directory, venue, journal={"path": str(first.journal_path)})
        async with DaemonProcess(config, directory=directory, owns_directory=True) as second:
            await second.start(wait=False)
            assert await second.wait_exit() == 1, second.output_tail()
            err = _stderr(second)
            assert str(first.journal_path) in err
            assert f"pid {first.pid}" in err
            assert "Traceback" not in err
            assert len(err.strip().splitlines()) == 1, err
        after = (await venue.history())["orders"]
        assert [o["order"]["id"] for o in after] == [o["order"]["id"] for o in before]
        assert [o["order"]["status"] for o in after] == ["new"]
        async with first.client() as client:
            assert (await client.status("held")).state == "working"
        assert await first.sigterm() == 0


async def test_wrong_api_key_is_one_clear_line(venue: SimVenue) -> None:
    """Keys the venue refuses: exit 1 with one line saying so, not a traceback."""
    directory = short_tempdir()
    config = write_config(directory, venue)
    text = config.read_text(encoding="utf-8").replace(venue.secret_key, "wrong-secret")
    config.write_text(text, encoding="utf-8")
    async with DaemonProcess(config, directory=directory, owns_directory=True) as daemon:
        await daemon.start(wait=False)
        assert await daemon.wait_exit() == 1
        err = _stderr(daemon)
        assert "refused the API keys" in err
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
        assert "wrong-secret" not in err


async def test_unwritable_journal_path_is_one_clear_line(venue: SimVenue, tmp_path: Path) -> None:
    """A journal path under a regular file cannot be created: one line naming it."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")
    journal = blocker / "journal.db"
    directory = short_tempdir()
    config = write_config(directory, venue, journal={"path": str(journal)})
    async with DaemonProcess(config, directory=directory, owns_directory=True) as daemon:
        await daemon.start(wait=False)
        assert await daemon.wait_exit() == 1
        err = _stderr(daemon)
        assert str(journal) in err
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err


async def test_recovery_says_starting_and_honours_sigterm(venue: SimVenue) -> None:
    """Issue 11 §7. An order request is in flight when the daemon is killed, so the next
    start must wait out a long settle window before it can take plans. Meanwhile the socket
    answers: `health` says "recovering 1 order, ≈S s left", `submit` is refused `starting`
    (never `halted`) with the same words — the client waits through it within its timeout —
    and SIGTERM ends the daemon at once (exit 0), not after the recovery."""
    directory = short_tempdir()
    config = write_config(
        directory,
        venue,
        gateway={"request_timeout_seconds": 3.0, "write_window_seconds": 120.0},
        shutdown={"grace_seconds": 5.0},
    )
    plan = {"plan_id": "in-flight", "legs": [{"symbol": "AAPL", "side": "buy", "qty": "1"}]}
    async with DaemonProcess(config, directory=directory, owns_directory=True) as daemon:
        await daemon.start()
        # Held, then refused unplaced: a held POST is otherwise performed even after the
        # client is gone (as at a real venue), and recovery would find it at once.
        await venue.fail_next_requests(status=503, delay=1.5, method="POST", path="/v2/orders")
        async with daemon.client() as client:
            await client.submit(plan)

        async def fault_taken() -> bool:
            return not venue.services.faults.pending()

        await _poll(fault_taken, "the order request to reach the venue")
        daemon.kill9()
        await daemon.wait_exit()

        await daemon.start(wait=False)
        await daemon.wait_log("recovery_started")
        async with daemon.client(timeout=2.0) as client:
            health = await client.health()
            assert health.recovering is not None
            assert health.recovering.startswith("recovering 1 order, ≈")
            with pytest.raises(ControlError) as refused:
                await client.submit({**plan, "plan_id": "another"})
            assert refused.value.code == ErrorCode.STARTING
            assert "recovering 1 order" in refused.value.message
        loop = asyncio.get_running_loop()
        asked = loop.time()
        assert await daemon.sigterm(limit=10.0) == 0, daemon.output_tail()
        assert loop.time() - asked < 5.0 + 2.0, "SIGTERM waited for the recovery"
        assert not any(
            o["order"]["client_order_id"].startswith("xd-")
            and o["order"]["symbol"] == "AAPL"
            and o["order"]["status"] == "rejected"
            for o in (await venue.history())["orders"]
        )
