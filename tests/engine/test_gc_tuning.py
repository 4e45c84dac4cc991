"""Issue 14 item 2: the daemon tunes the cyclic garbage collector once it is ready.

`execd run` (a child process) says what it applied in its `gc_tuned` log line; the context
manager itself is checked in-process, including that it undoes everything on exit.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from datetime import date, time
from pathlib import Path

import pytest

from execd.config import ConfigError, load_settings
from execd.engine.daemon import gc_tuning
from execd.engine.gc_tuning import GcTuning, tuned_gc
from execd.sim.config import SimConfig
from execd.sim.venue import SimVenue
from tests.process import DaemonProcess


@pytest.fixture
async def venue() -> AsyncIterator[SimVenue]:
    config = SimConfig(scenario="calm", seed=1, start=time(10, 0), start_date=date(2026, 3, 4))
    async with SimVenue(config) as running:
        yield running


@pytest.mark.slow
async def test_execd_run_freezes_start_up_objects_and_raises_thresholds(venue: SimVenue) -> None:
    """The real daemon, by default: its start-up objects frozen (tens of thousands:
    alpaca-py, pydantic, aiohttp), the young generation collected every 10,000 objects."""
    async with DaemonProcess.for_venue(venue) as daemon:
        await daemon.start()
        line = await daemon.wait_log("gc_tuned")
        assert line["frozen_objects"] > 10_000, line
        assert line["thresholds"] == [10_000, 20, 20], line
        assert line["previous_thresholds"] == list(gc.get_threshold()), line
        await daemon.wait_log("daemon_ready")  # stdout is read line by line: not yet, maybe
        events = [entry["event"] for entry in daemon.log_events()]
        assert events.index("gc_tuned") < events.index("daemon_ready"), events
        assert await daemon.sigterm() == 0, daemon.output_tail()


@pytest.mark.slow
async def test_execd_run_without_freeze_when_configured(venue: SimVenue) -> None:
    """`[runtime] gc_freeze = false` freezes nothing; the thresholds are the configured ones."""
    runtime = {"gc_freeze": False, "gc_thresholds": [700, 10, 10]}
    async with DaemonProcess.for_venue(venue, runtime=runtime) as daemon:
        await daemon.start()
        line = await daemon.wait_log("gc_tuned")
        assert line["frozen_objects"] == 0, line
        assert line["thresholds"] == [700, 10, 10], line
        assert await daemon.sigterm() == 0, daemon.output_tail()


def test_tuned_gc_applies_and_undoes() -> None:
    """Inside: the thresholds set and the live objects frozen; after: both undone."""
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with tuned_gc(GcTuning(freeze=True, thresholds=(12_345, 7, 9))) as frozen:
        assert gc.get_threshold() == (12_345, 7, 9)
        assert frozen > 0
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_tuned_gc_undoes_after_an_error() -> None:
    """A body that raises still leaves the collector as it found it."""
    before = gc.get_threshold()
    with (
        pytest.raises(RuntimeError, match="boom"),
        tuned_gc(GcTuning(freeze=True, thresholds=(5_000, 10, 10))),
    ):
        raise RuntimeError("boom")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_default_settings_tune_the_collector(tmp_path: Path) -> None:
    """The defaults are the tuned ones, not Python's (700, 10, 10) without freeze."""
    config = tmp_path / "execd.toml"
    config.write_text("", encoding="utf-8")
    assert gc_tuning(load_settings(config)) == GcTuning(freeze=True, thresholds=(10_000, 20, 20))


@pytest.mark.parametrize(
    "thresholds",
    [[0, 10, 10], [700, 0, 10], [-1, 10, 10], [10**9, 10, 10], [700, 10], [700, 10, 10, 10]],
)
def test_hostile_thresholds_are_refused(tmp_path: Path, thresholds: list[int]) -> None:
    """0 would turn collection off (memory grows without bound); absurd values, a wrong
    count: refused at start with the key named."""
    config = tmp_path / "execd.toml"
    config.write_text(f"[runtime]\ngc_thresholds = {thresholds}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"runtime\.gc_thresholds"):
        load_settings(config)
