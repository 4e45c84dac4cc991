"""Item 2's venue in its own process: the simulator replaying the scripted tape, with the probe.

A real venue is not in the daemon's process: run in-process, the simulator's own work (its
matching, buying-power checks, frame writing — about a quarter of the loop's samples) counted
against every reaction. Here it runs in a child process (``spawn``) and the probe
(`reaction_probe.py`) stamps the frames written and the requests' first bytes there, on
Linux's system-wide monotonic clock.

The parent talks to it over a pipe: the venue's URLs first, then requests answered in order —
``("ignore", symbol)`` / ``("attend", symbol)`` (requests of that symbol are not reactions
meanwhile: the harness cancelling a plan), ``("stop", None)`` → `Probe.results()`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from datetime import time as dtime
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from execd.bench.pinning import pin
from execd.bench.reaction_probe import Probe, StampingLoop
from execd.sim.config import SimConfig
from execd.sim.server import ServerOptions
from execd.sim.venue import SimVenue

RATE_LIMIT = 10_000  # trading requests/min: the item measures reactions, not the budget


async def _serve(tape: Path, cash: Decimal, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, StampingLoop)
    config = SimConfig(tape=tape, start=dtime(10, 0), cash=cash)
    async with SimVenue(config, options=ServerOptions(rate_limit=RATE_LIMIT)) as venue:
        probe = Probe(venue.exchange, venue.hub)
        loop.sink = probe.on_bytes
        conn.send(
            {
                "trading_url": venue.trading_url,
                "trading_stream_url": venue.trading_stream_url,
                "data_url": venue.data_url,
                "data_stream_url": venue.data_stream_url,
                "key_id": venue.key_id,
                "secret_key": venue.secret_key,
            }
        )
        while True:
            command, symbol = await loop.run_in_executor(None, conn.recv)
            if command == "ignore":
                probe.ignoring.add(symbol)
            elif command == "attend":
                probe.ignoring.discard(symbol)
            elif command == "stop":
                conn.send(probe.results())
                return
            conn.send("ok")


def _main(tape: str, cash: str, conn: Connection) -> None:
    import uvloop

    uvloop.run(_serve(Path(tape), Decimal(cash), conn), loop_factory=StampingLoop)


class VenueProcess:
    """``with VenueProcess(tape, cash) as venue: venue.urls`` — see the module docstring."""

    def __init__(self, tape: Path, cash: Decimal, cpus: set[int] | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_main, args=(str(tape), str(cash), child), name="bench-venue", daemon=True
        )
        self.urls: dict[str, str] = {}
        self._cpus = cpus  # the venue's cores (`pinning.py`; None: wherever the kernel likes)
        self._lock = asyncio.Lock()  # one request on the pipe at a time

    def __enter__(self) -> VenueProcess:
        self._process.start()
        if self._process.pid is not None:
            pin(self._process.pid, self._cpus)
        if not self._conn.poll(120):
            raise RuntimeError("the bench venue did not start")
        self.urls = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.join(timeout=10)

    async def ask(self, command: str, symbol: str | None = None) -> Any:
        """Send one request and await its answer (off the loop: the pipe blocks)."""

        def exchange() -> Any:
            self._conn.send((command, symbol))
            return self._conn.recv()

        async with self._lock:
            return await asyncio.to_thread(exchange)
