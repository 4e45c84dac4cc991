"""The stall sampler (`execd.bench.stalls`) tells a long turn of ours from a process that
was not running, and names the frame that held the loop."""

from __future__ import annotations

import asyncio
import time

from execd.bench.stalls import watch


def _sleeps_in_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # off-CPU: what being descheduled looks like to the loop


def _spins_in_the_loop(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def test_a_stall_is_sampled_with_its_frame_and_its_cpu_share() -> None:
    loop = asyncio.get_running_loop()
    with watch(loop, threshold_ms=15) as off_cpu:
        await asyncio.sleep(0.01)
        _sleeps_in_the_loop(0.12)
        await asyncio.sleep(0.03)  # the watchdog sees the beat again: the stall is closed
    with watch(loop, threshold_ms=15) as on_cpu:
        await asyncio.sleep(0.01)
        _spins_in_the_loop(0.12)
        await asyncio.sleep(0.03)
    sleeping, spinning = off_cpu.summary(), on_cpu.summary()
    assert sleeping["stalls"] >= 1
    assert spinning["stalls"] >= 1
    assert any("_sleeps_in_the_loop" in f for f in sleeping["frames_in_stalls"])
    assert any("_spins_in_the_loop" in f for f in spinning["frames_in_stalls"])
    assert sleeping["cpu_share_in_stalls"] < spinning["cpu_share_in_stalls"]
    assert max(w for w, _ in on_cpu.stalls) >= 100
