"""Item 2 — reaction latency: a working leg's quote moves beyond the re-peg threshold; how long
until the venue receives the replace.

The venue is the simulator in its own process (`reaction_venue.py`: a real venue is not in the
daemon's process), replaying a scripted tape: `SYMBOLS` symbols whose
NBBO steps up 0.2 % (twice the default `repeg_threshold_percent`) every `JUMP_EVERY_S`,
staggered across symbols. The probe (`reaction_probe.py`, in the venue's process, one
monotonic clock) stamps what the issue defines: the moment the websocket frame carrying the
symbol's quote is handed to the transport, and the moment the first bytes of the re-peg's first
request (the cancel with the default ``cancel_and_place``, else the replace) reach the venue's
HTTP server. Latency = request − the latest frame of that symbol before it; one more than
`MAX_ATTRIBUTED_S` after it is not counted (a timeout re-peg, not a reaction). Rounds one to
three stamped the quote's publish and the request's handler instead: still measured, as
``reaction_handler_p99_us``.

- ``reaction_p50_us`` / ``reaction_p99_us`` / ``reaction_max_us``: the real daemon
  (`running_daemon` against that venue) keeping a one-leg plan of a passive buy (normal
  urgency, production ladder settings) working on every symbol until enough events
  (`run_daemon`).
- ``reaction_sdk_p99_us``: the SDK's documented way on an identical fresh venue — a
  `StockDataStream` handler that, when the mid moved beyond the threshold, calls
  `TradingClient.replace_order_by_id` through `asyncio.to_thread`.

Background load (issue 14: ~20k quotes/s on other symbols): the simulator cannot generate it
without saturating itself, so item 1's feed (feed.py,
its own process, pre-encoded frames) sends `BACKGROUND_RATE` quotes/s paced, and each side
reads them in the same loop with its own quote code: the daemon with a second `MarketStream`,
the SDK with a second `StockDataStream`. On a second socket, so a reaction's frame never
queues behind a background frame in the same socket buffer (one frame costs ~0.1 ms to
handle).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import os
import statistics
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from execd.adapters.market_stream import MarketStream, MarketStreamConfig
from execd.bench.feed import FeedServer
from execd.bench.feed import symbols as feed_symbols
from execd.bench.logging_rate import per_line_us
from execd.bench.pinning import pin, pinned_process, split_cores
from execd.bench.reaction_probe import Probe
from execd.bench.reaction_venue import VenueProcess
from execd.bench.results import Figure, Target
from execd.config import load_settings
from execd.domain.calendar import EASTERN
from execd.engine.core import Engine
from execd.engine.daemon import running_daemon
from execd.logs import configure_logging

SYMBOLS = 30  # the simulated IEX stream allows 30 symbols per connection (free plan)
# Each symbol moves every 0.75 s (40 moves/s in all). At 0.5 s (50/s) with the venue in the
# daemon's loop, the two needed ~70 % of a core on this machine: reactions then queued behind
# each other's work and the figure measured the saturation, not the path.
JUMP_EVERY_S = 0.75
STEP = Decimal("0.10")  # on $50: 0.2 %, twice the default re-peg threshold
TAPE_SECONDS = 120
DAY = datetime(2026, 3, 4, 10, 0, tzinfo=EASTERN)
QTY = 100
MAX_REPEGS = 5  # the default `max_repegs_per_order`: the SDK baseline re-pegs as often
ROUNDS = 2
CASH = Decimal(10**9)  # waves of buys must never run out of buying power
BACKGROUND_RATE = 20_000  # quotes/s on other symbols (issue 14), from feed.py's process
BACKGROUND_SYMBOLS = 50
BACKGROUND_QUOTES = 20_000  # the feed's cycle of pre-encoded frames
_OVER = frozenset({"filled", "unfilled", "canceled", "rejected", "failed"})


def symbols() -> list[str]:
    """The scripted symbols."""
    return [f"RX{i:02d}" for i in range(SYMBOLS)]


def write_tape(path: Path, seconds: float = TAPE_SECONDS) -> Path:
    """Every symbol steps up `STEP` every `JUMP_EVERY_S` for `seconds`, staggered across
    symbols."""
    lines: list[tuple[datetime, str]] = []
    names = symbols()
    for k, symbol in enumerate(names):
        offset = k * JUMP_EVERY_S / len(names)
        n = 0
        while (at := offset + n * JUMP_EVERY_S) < seconds:
            bid = Decimal(50) + STEP * n
            t = DAY + timedelta(seconds=at)
            message = {
                "T": "q",
                "S": symbol,
                "bx": "Q",
                "bp": float(bid),
                "bs": 500,
                "ax": "Q",
                "ap": float(bid + Decimal("0.02")),
                "as": 500,
                "c": ["R"],
                "z": "C",
                "t": t.isoformat(),
            }
            lines.append((t, json.dumps(message)))
            n += 1
    lines.sort(key=lambda item: item[0])
    path.write_text("".join(line + "\n" for _, line in lines), encoding="utf-8")
    return path


class GcPauses:
    """Every cyclic collection's duration while `installed` (`gc.callbacks`), in seconds.

    Installed once the daemon is ready: the full collection before `gc.freeze` at start
    (engine/gc_tuning.py) is no reaction's pause."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._began)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Record the collections of the block."""
        gc.callbacks.append(self)
        try:
            yield
        finally:
            gc.callbacks.remove(self)


async def _past_repegs(engine: Engine, plan_id: str) -> None:
    """Return once the plan's one leg is past its re-pegs (step 4, the fallback, or
    finished): what follows is no reaction to a quote, so the symbol's next leg need not
    wait for it. (Waiting for whole plans of 25 legs used to cost ~30 s a wave: the collared
    fallback of a leg chasing the rising tape is partly filled, then works for
    `fallback_timeout_seconds`.)"""
    async for update in engine.watch(plan_id):
        leg = update.leg
        if leg is not None and (leg.step >= 4 or leg.state in _OVER):
            return


async def run_daemon(
    tape: Path,
    events: int,
    background_url: str,
    pauses: GcPauses | None = None,
    venue_cpus: set[int] | None = None,
) -> tuple[Probe, int]:
    """The real daemon against the venue process until `events` replaces: a working leg
    on every symbol at all times (a one-leg plan per symbol, the next submitted as soon as
    the last is past its re-pegs, so the legs start spread like the tape's moves, not
    all in one burst), with the feed's paced quotes on a second `MarketStream` in the same
    loop (the background load).

    It logs as in production (JSON at info, to a file): (probe, lines logged). `pauses`
    records the garbage collector's pauses while the daemon runs.
    """
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="xr", dir="/tmp")))
        log_file = (workdir / "daemon.jsonl").open("w", encoding="utf-8")
        configure_logging("info", "json", log_file)
        config = workdir / "execd.toml"
        config.write_text("", encoding="utf-8")
        venue = stack.enter_context(VenueProcess(tape, CASH, venue_cpus))
        settings = load_settings(
            config,
            venue={"kind": "sim", **{k: v for k, v in venue.urls.items() if k.endswith("_url")}},
            api={"socket_path": str(workdir / "s")},
            journal={"path": str(workdir / "journal.db")},
            # The venue dies with the run: cancelling at shutdown would only wait for budget.
            shutdown={"working_orders": "leave"},
            gateway={"requests_per_minute": 10_000},
        )
        recording = pauses.installed() if pauses is not None else contextlib.nullcontext()
        async with running_daemon(settings) as daemon:
            stack.enter_context(recording)
            background = MarketStream(
                MarketStreamConfig(url=background_url, key_id="bench", secret_key="bench")
            )
            background.subscribe(feed_symbols(BACKGROUND_SYMBOLS))
            load = asyncio.create_task(background.run(), name="bench-background-stream")
            deadline = time.monotonic() + TAPE_SECONDS * 0.8
            # A leg's re-pegs give 6 events (5 re-pegs, then the cancel before its
            # fallback); count 5 to be sure of `events`.
            cycles = math.ceil(events / (SYMBOLS * MAX_REPEGS))

            async def keep_working(k: int, symbol: str) -> None:
                # Symbol k's tape moves at k/SYMBOLS of each period: start its first leg
                # just after, so that the legs' starts are spread like their moves.
                await asyncio.sleep(k * JUMP_EVERY_S / SYMBOLS)
                for n in range(cycles):
                    if time.monotonic() > deadline:
                        return
                    plan = {
                        "plan_id": f"reaction-{symbol}-{n}",
                        "urgency": "normal",
                        "legs": [{"symbol": symbol, "side": "buy", "qty": str(QTY)}],
                    }
                    status = await daemon.engine.submit(plan)
                    await _past_repegs(daemon.engine, status.plan_id)
                    # Its fallback would chase the rising tape, partly filled, for
                    # `fallback_timeout_seconds`: cancelled instead, so resting orders do
                    # not pile up at the venue (whose per-tick matching grows with them).
                    # Its cancels are no reaction to a quote: the probe skips them.
                    await venue.ask("ignore", symbol)
                    await daemon.engine.cancel(status.plan_id)
                    await venue.ask("attend", symbol)

            await asyncio.gather(*(keep_working(k, s) for k, s in enumerate(symbols())))
            load.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await load
            await daemon.shutdown()
        probe = Probe()
        probe.merge(await venue.ask("stop"))
        configure_logging("error", "json")
        log_file.close()
        lines = sum(1 for _ in (workdir / "daemon.jsonl").open(encoding="utf-8"))
    return probe, lines


async def run_sdk(
    tape: Path, events: int, background_url: str, venue_cpus: set[int] | None = None
) -> Probe:
    """alpaca-py's documented way, on an identical fresh venue, with the same background
    load on a second `StockDataStream` (a trivial handler) in the same loop."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from alpaca.data.live.stock import StockDataStream
        from alpaca.trading.client import TradingClient
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import LimitOrderRequest, ReplaceOrderRequest

    with VenueProcess(tape, CASH, venue_cpus) as venue:
        urls = venue.urls
        client = TradingClient(
            urls["key_id"], urls["secret_key"], paper=True, url_override=urls["trading_url"]
        )
        sent = 0
        done = asyncio.Event()
        anchors: dict[str, float] = {}
        orders: dict[str, str] = {}
        repegs: dict[str, int] = defaultdict(int)
        busy: set[str] = set()

        async def on_quote(q: Any) -> None:
            nonlocal sent
            symbol, bid, ask = q.symbol, float(q.bid_price), float(q.ask_price)
            mid = (bid + ask) / 2
            if symbol in busy or repegs[symbol] >= MAX_REPEGS:
                return
            busy.add(symbol)
            try:
                if symbol not in orders:
                    request = LimitOrderRequest(
                        symbol=symbol,
                        qty=QTY,
                        side=OrderSide.BUY,
                        time_in_force=TimeInForce.DAY,
                        limit_price=round(bid + 0.01, 2),
                    )
                    order = await asyncio.to_thread(client.submit_order, request)
                    orders[symbol], anchors[symbol] = str(order.id), mid  # type: ignore[union-attr]
                elif abs(mid - anchors[symbol]) / anchors[symbol] > 0.001:
                    replace = ReplaceOrderRequest(limit_price=round(bid + 0.01, 2))
                    order = await asyncio.to_thread(
                        client.replace_order_by_id, orders[symbol], replace
                    )
                    orders[symbol], anchors[symbol] = str(order.id), mid  # type: ignore[union-attr]
                    repegs[symbol] += 1
                    sent += 1
                    if sent >= events:
                        done.set()
                    elif all(repegs[s] >= MAX_REPEGS for s in symbols()):
                        orders.clear()
                        repegs.clear()  # the next wave: new orders on every symbol
            finally:
                busy.discard(symbol)

        async def ignore(_: object) -> None:
            return None

        stream = StockDataStream(
            urls["key_id"], urls["secret_key"], url_override=urls["data_stream_url"]
        )
        stream.subscribe_quotes(on_quote, *symbols())
        load = StockDataStream("bench", "bench", url_override=background_url)
        load.subscribe_quotes(ignore, *feed_symbols(BACKGROUND_SYMBOLS))
        tasks = [
            asyncio.create_task(stream._run_forever(), name="bench-sdk-stream"),
            asyncio.create_task(load._run_forever(), name="bench-sdk-background"),
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TAPE_SECONDS * 0.8):
                await done.wait()
        for sdk_stream, task in zip((stream, load), tasks, strict=True):
            await sdk_stream.stop_ws()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await sdk_stream.close()
        for symbol in symbols():  # the bulk cancel below is the harness's, no reaction
            await venue.ask("ignore", symbol)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(client.cancel_orders)
        probe = Probe()
        probe.merge(await venue.ask("stop"))
    return probe


def _q(xs: list[float], q: int) -> float:
    if len(xs) < 2:
        return xs[0] * 1e6 if xs else float("nan")
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1] * 1e6


def run(events: int, pinned: bool = True) -> list[Figure]:
    """Measure item 2 (daemon first, then the SDK, each on its own fresh venue).

    `pinned`: the venue and the feed on one core, the daemon or SDK on the other
    (`pinning.py`; a no-op with fewer than two CPUs)."""
    import uvloop

    cores = split_cores() if pinned else None
    venue_cpus, client_cpus = cores if cores is not None else (None, None)
    with (
        tempfile.TemporaryDirectory(prefix="xr") as tmp,
        FeedServer(BACKGROUND_QUOTES, BACKGROUND_SYMBOLS, rate=BACKGROUND_RATE) as feed,
    ):
        if feed.pid is not None:
            pin(feed.pid, venue_cpus)
        tape = write_tape(Path(tmp) / "reaction.jsonl")
        # Interleaved rounds (daemon, SDK, daemon, SDK): machine noise hits both alike.
        ours, lines, sdk, pauses = Probe(), 0, Probe(), GcPauses()
        with pinned_process(client_cpus):
            for _ in range(ROUNDS):
                probe, n = uvloop.run(
                    run_daemon(tape, events // ROUNDS, feed.url, pauses, venue_cpus)
                )
                ours.merge(probe.results())
                lines += n
                sdk.merge(
                    uvloop.run(run_sdk(tape, events // ROUNDS, feed.url, venue_cpus)).results()
                )
    placement = (
        f"venue and feed pinned to CPU {sorted(venue_cpus)}, daemon/SDK to {sorted(client_cpus)}"
        if venue_cpus and client_cpus
        else "not pinned (fewer than 2 CPUs or pinning off)"
    )
    note = (
        f"daemon {len(ours.latencies)} events ({ours.unattributed} requests not after a move, "
        f"{ours.unstamped + sdk.unstamped} unstamped), SDK {len(sdk.latencies)} events; "
        f"frame written -> the request's first bytes at the venue (issue 14's points); "
        f"{BACKGROUND_RATE:,} quotes/s of background load on {BACKGROUND_SYMBOLS} other symbols "
        f"(a second stream in the same loop); {SYMBOLS} one-leg plans working at a time, each "
        f"cancelled once past its re-pegs (no ladder setting changed); {placement}"
    )
    why = (
        "; the tail is waiting, not the path (README §2, round four): the daemon's own "
        "wake-up -> decide -> budget -> request is ~0.6 ms of CPU at p50, while in a round "
        "at load 7-8 its main thread waited 6.3 of 13.6 s in the kernel's run queue and its "
        "loop stalls > 2 ms were 87 % off-CPU; the Python-level share of those stalls (the "
        "log write, other legs' re-pegs, aiohttp, the streams) is small. Pinning the venue "
        f"side apart cut both sides' tails; load average {os.getloadavg()[0]:.1f} at the end"
    )
    worst = max(ours.latencies) * 1e6 if ours.latencies else float("nan")
    per_event = lines / max(1, len(ours.latencies) + ours.unattributed)
    p50 = _q(ours.latencies, 50)
    logging_us = per_event * per_line_us()
    return [
        Figure(
            "2 reaction",
            "reaction_logging_share",
            logging_us / p50,
            "",
            note=f"{per_event:.1f} log lines per replace (all the run's lines) × the pipeline's "
            f"{logging_us / per_event:.0f} µs per line, over reaction_p50_us",
        ),
        Figure("2 reaction", "reaction_p50_us", p50, "us", note=note),
        Figure(
            "2 reaction",
            "reaction_p99_us",
            _q(ours.latencies, 99),
            "us",
            "reaction_sdk_p99_us",
            _q(sdk.latencies, 99),
            (Target("max", 1500), Target("max", 0.5, "ratio")),
            note + why,
        ),
        Figure("2 reaction", "reaction_max_us", worst, "us"),
        Figure(
            "2 reaction",
            "reaction_handler_p99_us",
            _q(ours.handler_latencies, 99),
            "us",
            "reaction_sdk_handler_p99_us",
            _q(sdk.handler_latencies, 99),
            note="rounds one to three's points, same events: the venue publishing the quote "
            "(before its writer task writes the frame) -> the venue's handler "
            "(Exchange.cancel_order / replace_order, after aiohttp parsed and dispatched the "
            f"request); p50 {_q(ours.handler_latencies, 50):,.0f} us, SDK "
            f"{_q(sdk.handler_latencies, 50):,.0f} us",
        ),
        Figure(
            "2 reaction",
            "reaction_gc_pause_max_ms",
            max(pauses.pauses, default=0.0) * 1e3,
            "ms",
            note=f"{len(pauses.pauses)} collections while the daemon ran, "
            f"{sum(pauses.pauses) * 1e3:.0f} ms in all; [runtime] gc_freeze and "
            f"gc_thresholds as configured by default (README §2)",
        ),
        Figure("2 reaction", "reaction_sdk_p50_us", _q(sdk.latencies, 50), "us"),
    ]
