"""Item 2's probe stamps where issue 14 says: the venue writing the quote's frame, and the
venue receiving the re-peg request's first bytes (`execd/bench/reaction_probe.py`).

A real simulated venue on loopback under the probe's loop, a real websocket client and real
HTTP requests: the stamps must bracket what the client saw (the frame is written before the
client reads it; the request's first bytes arrive after the client sent them and before the
venue's handler ran).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import time as dtime
from pathlib import Path

import aiohttp
import msgspec

from execd.bench.pinning import pin, pinned_process, split_cores
from execd.bench.reaction import write_tape
from execd.bench.reaction_probe import Probe, StampingLoop, order_id_of
from execd.sim.config import SimConfig
from execd.sim.venue import SimVenue


def test_order_id_of_reads_only_a_cancel_or_replace_request_line() -> None:
    """The re-peg's first request (DELETE or PATCH of one order); nothing else, no crash."""
    assert order_id_of(b"DELETE /v2/orders/abc-1 HTTP/1.1\r\nHost: x\r\n\r\n") == "abc-1"
    assert order_id_of(b"PATCH /v2/orders/abc-2?x=1 HTTP/1.1\r\n") == "abc-2"
    assert order_id_of(b"DELETE /v2/orders HTTP/1.1\r\n") is None  # the bulk cancel
    assert order_id_of(b"DELETE /v2/orders/ HTTP/1.1\r\n") is None
    assert order_id_of(b"POST /v2/orders HTTP/1.1\r\n") is None
    assert order_id_of(b"GET /v2/orders/abc-3 HTTP/1.1\r\n") is None
    assert order_id_of(b'{"limit_price": 50.31}') is None  # a body chunk
    assert order_id_of(b"DELETE /v2/orders/abc") is None  # a request line cut short
    assert order_id_of(b"") is None
    assert order_id_of(b"DELETE /v2/orders/\xff\xfe HTTP/1.1") == "\ufffd\ufffd"


async def _scenario(tape: Path) -> tuple[Probe, float, float, float, float]:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, StampingLoop)
    config = SimConfig(tape=tape, start=dtime(10, 0))
    async with SimVenue(config) as venue, aiohttp.ClientSession() as http:
        probe = Probe(venue.exchange, venue.hub)
        loop.sink = probe.on_bytes
        headers = {"APCA-API-KEY-ID": venue.key_id, "APCA-API-SECRET-KEY": venue.secret_key}
        body = {
            "symbol": "RX00",
            "qty": "1",
            "side": "buy",
            "type": "limit",
            "time_in_force": "day",
            "limit_price": "40.00",
        }
        async with http.post(f"{venue.trading_url}/v2/orders", json=body, headers=headers) as r:
            assert r.status == 200, await r.text()
            order_id = (await r.json())["id"]
        async with http.ws_connect(venue.data_stream_url) as ws:
            await ws.send_str(
                json.dumps({"action": "auth", "key": venue.key_id, "secret": venue.secret_key})
            )
            await ws.send_str(json.dumps({"action": "subscribe", "quotes": ["RX00"]}))
            deadline = time.monotonic() + 5
            received = 0.0
            while not received:
                assert time.monotonic() < deadline, "no quote frame"
                frame = await ws.receive(timeout=5)
                data = frame.data
                messages = msgspec.msgpack.decode(data) if isinstance(data, bytes) else None
                messages = messages if messages is not None else json.loads(data)
                if any(m.get("T") == "q" for m in messages):
                    received = time.monotonic()
            sent = time.monotonic()
            async with http.delete(
                f"{venue.trading_url}/v2/orders/{order_id}", headers=headers
            ) as r:
                answered = time.monotonic()
                assert r.status == 204, await r.text()
        return probe, probe.written["RX00"][1], received, sent, answered


def test_probe_stamps_the_frame_written_and_the_requests_first_bytes(tmp_path: Path) -> None:
    """One reaction-shaped cancel: frame written ≤ client read it; client sent ≤ first bytes
    ≤ handler ≤ answer; the figure is first bytes − frame written, the handler's beside it."""
    tape = write_tape(tmp_path / "tape.jsonl")
    with asyncio.Runner(loop_factory=StampingLoop) as runner:
        probe, written, received, sent, answered = runner.run(_scenario(tape))
    assert probe.unstamped == 0
    assert probe.unattributed == 0
    assert len(probe.latencies) == 1
    assert len(probe.handler_latencies) == 1
    assert written <= received
    first_bytes = written + probe.latencies[0]
    assert sent <= first_bytes <= answered
    # The handler runs after aiohttp parsed the request, and the publish precedes the write.
    assert probe.handler_latencies[0] >= probe.latencies[0]
    assert probe.first_bytes == {}  # consumed: a later request cannot reuse the stamp


def test_pinning_splits_the_allowed_cpus_and_restores_them() -> None:
    """Item 2's bench condition: two disjoint halves of the allowed CPUs (None with fewer
    than two: a no-op); the process gets its own affinity back after the block."""
    before = os.sched_getaffinity(0)
    cores = split_cores()
    assert pin(os.getpid(), None) is False
    with pinned_process(None):
        assert os.sched_getaffinity(0) == before
    if len(before) < 2:
        assert cores is None
        return
    assert cores is not None
    venue, client = cores
    assert venue
    assert client
    assert not venue & client
    assert venue | client == before
    with pinned_process(client):
        assert os.sched_getaffinity(0) == client
    assert os.sched_getaffinity(0) == before
