"""A local Alpaca market-data websocket that blasts pre-encoded quote frames (item 1's source).

It runs in its own process (so its sending does not share the client's core and GIL) and
speaks the stream's handshake (ALPACA.md §4.1) in MessagePack: ``connected`` → ``auth`` →
``authenticated`` → ``subscribe`` → ``subscription``, then every frame it was built with, then
one frame holding a single quote of `END_SYMBOL` (a connection to `quotes_url` gets only the
first frames, then the end marker: the SDK reads fewer quotes a round). A client has processed
everything when it has seen that quote: every reader compared here handles a connection's
frames in order.

Before the first frame it puts ``time.monotonic()`` on a queue: Linux's monotonic clock is
system-wide, so the client's end time minus it is the wall time of the whole transfer.

Paced (`rate` quotes/s, item 2's background load): the same frames, cycled (each cycle
stamped later than the last, `Restamper`), one every
``QUOTES_PER_FRAME / rate`` seconds on a fixed schedule (a late frame is sent at once, not
skipped), until the client disconnects; no end marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import struct
import time
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import msgpack
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request

END_SYMBOL = "ZZEND"
QUOTES_PER_FRAME = 100


def symbols(count: int) -> list[str]:
    """`count` made-up tickers (S000, S001, …)."""
    return [f"S{i:03d}" for i in range(count)]


def quote_message(symbol: str, n: int, t: datetime) -> dict[str, Any]:
    """One Alpaca quote (§4.3) with prices that move with `n` (two decimals, like the wire)."""
    bid = round(40.0 + (n % 97) * 0.01, 2)
    return {
        "T": "q",
        "S": symbol,
        "bx": "V",
        "bp": bid,
        "bs": 100 * (1 + n % 7),
        "ax": "V",
        "ap": round(bid + 0.02, 2),
        "as": 100 * (1 + n % 5),
        "c": ["R"],
        "z": "C",
        "t": t,
    }


#: a quote's content (everything but `t`) repeats with this period of `n` (`quote_message`).
_CYCLE = 50 * 97 * 7  # lcm of the symbol counts used here (≤ 50), 97, 7 and 5
_STAMP64 = struct.Struct(">BbQ")


def _stamp(micros: int) -> bytes:
    """The time `micros` µs after the Unix epoch as msgpack's Timestamp extension −1 in its
    64-bit form (valid from 1970 to 2514, whole seconds included): what a feed sends for a
    stamped quote."""
    seconds, fraction = divmod(micros, 1_000_000)
    return _STAMP64.pack(0xD7, -1, fraction * 1000 << 34 | seconds)


def _array_header(count: int) -> bytes:
    """A msgpack array header of `count` items, in the shortest form (as msgpack writes it)."""
    return bytes([0x90 | count]) if count < 16 else b"\xdc" + count.to_bytes(2, "big")


def build_frames(quotes: int, symbol_count: int) -> list[bytes]:
    """`quotes` quotes over `symbol_count` symbols, `QUOTES_PER_FRAME` to a msgpack frame,
    stamped 1 µs apart in frame order (a live feed's order).

    The bytes are `msgpack.packb([quote_message(...), ...], datetime=True)`'s, except that
    every stamp takes the 64-bit Timestamp form (`_stamp`); built from each quote's encoded
    content (it repeats every `_CYCLE` quotes) plus its stamp, because packing 10⁶ dicts
    took ≈ 9 s of item 1's 15 s budget. `tests/test_bench.py` checks the two decode alike.
    """
    names = symbols(symbol_count)
    start = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    start_us = int(start.timestamp()) * 1_000_000
    stamp_bytes = len(msgpack.packb(start, datetime=True))
    # each quote's encoding without its stamp (`t` is its last key); it repeats every _CYCLE
    bodies = [
        msgpack.packb(quote_message(names[n % symbol_count], n, start), datetime=True)[
            :-stamp_bytes
        ]
        for n in range(min(quotes, _CYCLE))
    ]
    stamp = _stamp
    frames = []
    for f in range(0, quotes, QUOTES_PER_FRAME):
        batch = range(f, min(f + QUOTES_PER_FRAME, quotes))
        parts = [_array_header(len(batch))]
        for n in batch:
            parts.append(bodies[n % _CYCLE])
            parts.append(stamp(start_us + n))
        frames.append(b"".join(parts))
    return frames


def end_frame() -> bytes:
    """The one-quote frame that marks the end of a run."""
    return bytes(msgpack.packb([quote_message(END_SYMBOL, 0, datetime.now(UTC))], datetime=True))


def quotes_url(url: str, quotes: int) -> str:
    """The feed's `url` asking for only the first `quotes` quotes (a multiple of
    `QUOTES_PER_FRAME`) on that connection: a slow reader's round is shorter."""
    return f"{url}?{urlencode({'quotes': quotes})}"


def _frames_asked(request: Request | None, built: int) -> int:
    """How many frames the connection asked for (`quotes_url`; all of them by default)."""
    if request is None:
        return built
    asked = parse_qs(urlsplit(request.path).query).get("quotes")
    return built if not asked else max(0, min(built, -(-int(asked[0]) // QUOTES_PER_FRAME)))


def _pack(obj: object) -> bytes:
    return bytes(msgpack.packb(obj))


async def _handshake(ws: ServerConnection) -> None:
    await ws.send(_pack([{"T": "success", "msg": "connected"}]))
    msgpack.unpackb(await ws.recv())  # auth: any key will do here
    await ws.send(_pack([{"T": "success", "msg": "authenticated"}]))
    sub = msgpack.unpackb(await ws.recv())
    await ws.send(
        _pack(
            [
                {
                    "T": "subscription",
                    "trades": sub.get("trades", []),
                    "quotes": sub.get("quotes", []),
                    "bars": [],
                }
            ]
        )
    )


async def _paced(ws: ServerConnection, frames: Restamper, rate: float) -> None:
    """Cycle `frames` at `rate` quotes/s until the client goes away, each cycle stamped
    later than the last."""
    interval = QUOTES_PER_FRAME / rate
    began = time.monotonic()
    n = 0
    cycle = 0
    while True:
        for k in range(len(frames)):
            delay = began + n * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await ws.send(frames.frame(k, cycle))
            n += 1
        cycle += 1


class Restamper:
    """`frames` again, every stamp moved a whole number of cycles later.

    Why: a live feed's stamps only move forward. Sent again unchanged, every quote of a
    later cycle is older by venue time than the one the client cached, and the daemon's
    stream drops each on its slow path (a comparison and a debug log call per quote,
    ≈ 1.6 ms a frame, a third of a core at 20k quotes/s): item 2's background load then
    measured that path instead of a live feed's. A cycle spans the frames' quote count in
    µs (`build_frames` stamps quotes 1 µs apart). Each frame is split once into its quotes'
    bytes without their stamp; a frame is then joined with new stamps (msgpack's Timestamp
    extension −1, 64-bit form) as it is sent — re-packing dicts cost ≈ 0.5 ms a frame.
    """

    def __init__(self, frames: list[bytes]) -> None:
        self._span_ns = len(frames) * QUOTES_PER_FRAME * 1000
        self._parts: list[tuple[bytes, list[bytes], list[int]]] = []
        for frame in frames:
            reader = msgpack.Unpacker()
            reader.feed(frame)
            count = reader.read_array_header()
            header = frame[: reader.tell()]
            bodies: list[bytes] = []
            stamps: list[int] = []
            for _ in range(count):
                begin = reader.tell()
                quote = reader.unpack()  # its stamp is "t", the last key: 64-bit form
                end = reader.tell()
                if frame[end - _STAMP64.size : end - _STAMP64.size + 2] != b"\xd7\xff":
                    raise ValueError("a quote's stamp is not msgpack's 64-bit Timestamp")
                bodies.append(frame[begin : end - _STAMP64.size])
                stamps.append(quote["t"].to_unix_nano())
            self._parts.append((header, bodies, stamps))

    def __len__(self) -> int:
        return len(self._parts)

    def frame(self, index: int, cycle: int) -> bytes:
        """Frame `index` of the given cycle (0: the frame as built)."""
        header, bodies, stamps = self._parts[index]
        shift = cycle * self._span_ns
        pack = _STAMP64.pack
        out = [header]
        for body, stamp in zip(bodies, stamps, strict=True):
            seconds, nanos = divmod(stamp + shift, 1_000_000_000)
            out.append(body)
            out.append(pack(0xD7, -1, nanos << 34 | seconds))
        return b"".join(out)


async def _serve(
    port_out: Queue[Any], starts: Queue[Any], quotes: int, symbol_count: int, rate: float | None
) -> None:
    frames = build_frames(quotes, symbol_count)
    # built before the first connection: a quarter of a second, not a stall mid-schedule
    paced = Restamper(frames) if rate is not None else None
    last = end_frame()

    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(Exception):
            await _handshake(ws)
            starts.put(time.monotonic())
            if rate is not None and paced is not None:
                await _paced(ws, paced, rate)
            for frame in frames[: _frames_asked(ws.request, len(frames))]:
                await ws.send(frame)
            await ws.send(last)
            await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, max_size=2**24, compression=None) as server:
        port_out.put(server.sockets[0].getsockname()[1])
        await asyncio.get_running_loop().create_future()


def _main(
    port_out: Queue[Any], starts: Queue[Any], quotes: int, symbol_count: int, rate: float | None
) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(port_out, starts, quotes, symbol_count, rate))


class FeedServer:
    """The feed in a child process: ``with FeedServer(...) as feed: feed.url``.

    `rate`: send paced at this many quotes/s, forever, instead of as fast as possible.
    """

    def __init__(self, quotes: int, symbol_count: int, rate: float | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._port: Queue[Any] = ctx.Queue()
        self.starts: Queue[Any] = ctx.Queue()
        self._process = ctx.Process(
            target=_main,
            args=(self._port, self.starts, quotes, symbol_count, rate),
            name="bench-feed",
            daemon=True,
        )
        self.url = ""

    def __enter__(self) -> FeedServer:
        self._process.start()
        self.url = f"ws://127.0.0.1:{self._port.get(timeout=600)}/v2/sip"
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.join(timeout=10)

    @property
    def pid(self) -> int | None:
        """The feed process's id once started (item 2 pins it, `pinning.py`)."""
        return self._process.pid

    def started_at(self) -> float:
        """The monotonic time the feed began sending the current connection's frames."""
        return float(self.starts.get(timeout=60))
