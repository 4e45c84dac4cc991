"""``execd sim`` as a real subprocess: one URL line, a working venue, clean exit on signals."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from datetime import time

import aiohttp
import pytest

from execd.sim.cli import config_from_args, server_options, sim_main
from tests.sim.conftest import DEADLINE, within

URL_KEYS = {"trading_url", "trading_stream_url", "data_url", "data_stream_url", "admin_url"}


async def start_sim(*args: str) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    """Start ``python -m execd.sim.cli`` and read its one JSON line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "execd.sim.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await within(proc.stdout.readline(), 30)
    return proc, json.loads(line)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_sim_prints_urls_serves_and_exits_cleanly(signum: signal.Signals) -> None:
    """``execd sim --scenario open --start 09:29:50`` prints its URLs, serves, exits 0 on signal."""
    proc, urls = await start_sim(
        "--scenario", "open", "--start", "09:29:50", "--key", "K", "--secret", "S"
    )
    try:
        assert set(urls) == URL_KEYS
        assert urls["trading_stream_url"].endswith("/stream")
        assert urls["data_stream_url"].endswith("/v2/iex")
        assert urls["admin_url"].endswith("/sim")
        headers = {"APCA-API-KEY-ID": "K", "APCA-API-SECRET-KEY": "S"}
        async with (
            aiohttp.ClientSession() as http,
            http.get(urls["trading_url"] + "/v2/clock", headers=headers) as resp,
        ):
            assert resp.status == 200
            clock = await resp.json()
        assert "T09:29:5" in clock["timestamp"] or "T09:3" in clock["timestamp"]
    finally:
        proc.send_signal(signum)
        code = await within(proc.wait(), DEADLINE)
    assert proc.stdout is not None
    assert await proc.stdout.read() == b""  # exactly one line
    assert code == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["--scenario", "nope"],
        ["--start", "9h30"],
        ["--speed", "0"],
        ["--port", "70000"],
        ["--positions", "SPY"],
        ["--key", "only-key"],
        ["--scenario", "open", "--tape", "x.tape"],
        ["--tape", "/nonexistent/tape.csv"],
        ["--surprise"],
        ["--data-rate-limit", "0"],
        ["--data-symbol-limit", "-1"],
        ["--data-symbol-limit", "many"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad arguments print one ``execd sim: error:`` line on stderr and return 2."""
    assert sim_main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("execd sim: error: ")


def test_arguments_build_the_config() -> None:
    """Every flag reaches SimConfig under its own name."""
    config, args = config_from_args(
        [
            "--scenario=thin",
            "--seed=9",
            "--start=09:29:50",
            "--speed=2",
            "--symbols=spy,tqqq",
            "--cash=5000",
            "--positions=SPY=10,TQQQ=2.5",
            "--key=K",
            "--secret=S",
            "--port=0",
        ]
    )
    assert config.scenario == "thin"
    assert config.seed == 9
    assert config.start == time(9, 29, 50)
    assert config.speed == 2.0
    assert config.symbols == ("SPY", "TQQQ")
    assert str(config.cash) == "5000"
    assert {k: str(v) for k, v in config.positions.items()} == {"SPY": "10", "TQQQ": "2.5"}
    assert (config.key_id, config.secret_key) == ("K", "S")
    assert args.port == 0


def test_data_plan_limits_reach_the_server_options() -> None:
    """`--data-rate-limit` and `--data-symbol-limit` model a paid market-data plan (the
    scale benchmark streams 2,000 symbols); 0 symbols means unlimited; the defaults are the
    free plan's 200/min and 30 symbols (ALPACA.md §0.4)."""
    _, args = config_from_args(["--data-rate-limit=10000", "--data-symbol-limit=0"])
    options = server_options(args)
    assert (options.data_rate_limit, options.data_symbol_limit) == (10_000, None)
    _, args = config_from_args([])
    options = server_options(args)
    assert (options.rate_limit, options.data_rate_limit, options.data_symbol_limit) == (
        200,
        200,
        30,
    )
