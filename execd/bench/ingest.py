"""Item 1 — quote ingest: the daemon's `MarketStream` against alpaca-py and the floor.

Three readers take the same frames (100 msgpack quotes each, over `SYMBOLS` symbols) from the
same local feed (feed.py, its own process), in interleaved rounds with the order rotated, so
machine noise hits all three alike:

- ``ingest_quotes_per_s`` — the daemon's real `MarketStream` (its reader, decoder and NBBO
  cache; not a copy), done when its cache holds the end marker;
- ``ingest_sdk_quotes_per_s`` — alpaca-py's `StockDataStream` with a trivial async handler;
- ``ingest_floor_quotes_per_s`` — `websockets` receiving and msgspec decoding each frame into a
  small struct with the fields the cache needs (symbol, bid/ask, sizes, time), nothing else.

Rate = quotes / (reader saw the end marker − feed started sending), one monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import warnings
from collections.abc import Awaitable, Callable
from datetime import datetime

import msgspec
import msgspec.msgpack
from websockets.asyncio.client import connect

from execd.adapters.market_stream import MarketStream, MarketStreamConfig
from execd.bench.feed import END_SYMBOL, FeedServer, symbols
from execd.bench.results import Figure, Target

SYMBOLS = 50

Reader = Callable[[str, list[str]], Awaitable[float]]


class _FloorQuote(msgspec.Struct, tag_field="T", tag="q"):
    """The least a quote cache needs from a quote message."""

    S: str
    bp: float
    bs: int
    ap: float
    as_: int = msgspec.field(name="as")
    t: datetime | None = None


async def read_with_market_stream(url: str, names: list[str]) -> float:
    """The daemon's own stream task; returns the monotonic time the end marker was cached."""
    stream = MarketStream(MarketStreamConfig(url=url, key_id="bench", secret_key="bench"))
    stream.subscribe([*names, END_SYMBOL])
    task = asyncio.create_task(stream.run(), name="bench-market-stream")
    try:
        await stream.wait_quote(END_SYMBOL)
        return time.monotonic()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def read_with_sdk(url: str, names: list[str]) -> float:
    """alpaca-py's `StockDataStream` (its msgpack + pydantic path) with a trivial handler."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from alpaca.data.live.stock import StockDataStream

    done = asyncio.Event()
    ended = 0.0

    async def handler(quote: object) -> None:
        nonlocal ended
        if getattr(quote, "symbol", None) == END_SYMBOL:
            ended = time.monotonic()
            done.set()

    stream = StockDataStream("bench", "bench", url_override=url)
    stream.subscribe_quotes(handler, *names, END_SYMBOL)
    task = asyncio.create_task(stream._run_forever(), name="bench-sdk-stream")
    try:
        await done.wait()
        return ended
    finally:
        await stream.stop_ws()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await stream.close()


async def read_floor(url: str, names: list[str]) -> float:
    """websockets + msgspec into a small struct: what Python can do at all on these frames."""
    decode = msgspec.msgpack.Decoder(list[_FloorQuote]).decode
    control = msgspec.msgpack.Decoder().decode
    encode = msgspec.msgpack.encode
    async with connect(
        url, additional_headers={"Content-Type": "application/msgpack"}, max_size=2**24
    ) as ws:
        control(await ws.recv(decode=False))
        await ws.send(encode({"action": "auth", "key": "bench", "secret": "bench"}))
        control(await ws.recv(decode=False))
        await ws.send(encode({"action": "subscribe", "quotes": [*names, END_SYMBOL]}))
        control(await ws.recv(decode=False))
        while True:
            quotes = decode(await ws.recv(decode=False))
            if quotes and quotes[-1].S == END_SYMBOL:
                return time.monotonic()


READERS: dict[str, Reader] = {
    "floor": read_floor,
    "daemon": read_with_market_stream,
    "sdk": read_with_sdk,
}


async def _rounds(feed: FeedServer, quotes: int, rounds: int) -> dict[str, list[float]]:
    names = symbols(SYMBOLS)
    order = list(READERS)
    rates: dict[str, list[float]] = {k: [] for k in READERS}
    for r in range(rounds):
        for name in order[r % 3 :] + order[: r % 3]:  # rotate who goes first
            ended = await READERS[name](feed.url, names)
            began = await asyncio.to_thread(feed.started_at)
            rates[name].append(quotes / (ended - began))
    return rates


def run(quotes: int, rounds: int) -> list[Figure]:
    """Measure item 1 and return its figures."""
    import uvloop

    with FeedServer(quotes, SYMBOLS) as feed:
        rates = uvloop.run(_rounds(feed, quotes, rounds))
    daemon = statistics.median(rates["daemon"])
    sdk = statistics.median(rates["sdk"])
    floor = statistics.median(rates["floor"])
    per_round = f"{rounds} interleaved rounds of {quotes:,} quotes, median"
    return [
        Figure(
            "1 ingest",
            "ingest_quotes_per_s",
            daemon,
            "q/s",
            "ingest_sdk_quotes_per_s",
            sdk,
            (Target("min", 20, "ratio"),),
            per_round,
        ),
        Figure(
            "1 ingest",
            "ingest_quotes_per_s",
            daemon,
            "q/s",
            "ingest_floor_quotes_per_s",
            floor,
            (Target("min", 0.8, "ratio"),),
            per_round,
        ),
    ]
