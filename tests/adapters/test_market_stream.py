"""The market-data stream against a scripted loopback fake (tests/adapters/fake_streams.py)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import structlog.testing

from execd.adapters.backoff import BackoffPolicy
from execd.adapters.errors import StreamAuthError
from execd.adapters.market_stream import MarketStream, MarketStreamConfig
from execd.adapters.wire import Codec

from .conftest import DEADLINE, wait_until
from .fake_streams import FakeDataStream, running

T0 = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)


class ManualClock:
    """A wall clock the test moves by hand (the venue clock in production)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_stream(
    fake: FakeDataStream, clock: ManualClock, codec: Codec = "msgpack", **overrides: Any
) -> MarketStream:
    """A stream with millisecond backoff pointed at the fake."""
    fields: dict[str, Any] = {
        "url": fake.url,
        "key_id": fake.key_id,
        "secret_key": fake.secret_key,
        "codec": codec,
        "backoff": BackoffPolicy(initial=0.01, maximum=0.02),
    }
    fields.update(overrides)
    return MarketStream(MarketStreamConfig(**fields), clock=clock, rand=random.Random(3).random)


@contextlib.asynccontextmanager
async def started(stream: MarketStream) -> AsyncIterator[asyncio.Task[None]]:
    """Run the stream as a supervised task for the block; a crash fails the test."""
    task = asyncio.create_task(stream.run(), name="market-stream")
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def quote(symbol: str, bid: float, ask: float, t: datetime = T0) -> dict[str, Any]:
    """A §4.3 quote message."""
    return {"T": "q", "S": symbol, "bx": "V", "bp": bid, "bs": 3, "ax": "V", "ap": ask,
            "as": 5, "c": ["R"], "z": "C", "t": t}  # fmt: skip


@pytest.fixture
async def fake() -> AsyncIterator[FakeDataStream]:
    """A fresh data-stream fake on loopback."""
    async with running(FakeDataStream(), "/v2/iex") as served:
        yield served


@pytest.mark.parametrize("codec", ["msgpack", "json"])
async def test_handshake_subscribe_and_exact_quotes(fake: FakeDataStream, codec: Codec) -> None:
    """connected → auth → subscribe; quotes land in the cache as exact Decimals."""
    clock = ManualClock()
    stream = make_stream(fake, clock, codec)
    stream.subscribe(["TQQQ"])
    async with started(stream):
        await fake.wait_for("subscription", lambda: fake.subscribed == {"TQQQ"})
        assert fake.received[0] == {"action": "auth", "key": "KEY", "secret": "SECRET"}
        assert fake.codecs == [codec]
        sent = {**quote("TQQQ", 62.41, 62.43), "t": "2026-03-04T15:00:00.000000001Z"}
        await fake.send([sent if codec == "json" else quote("TQQQ", 62.41, 62.43)])
        got = await asyncio.wait_for(stream.wait_quote("TQQQ"), DEADLINE)
    assert (got.bid, got.ask, got.bid_size, got.ask_size) == (
        Decimal("62.41"),
        Decimal("62.43"),
        Decimal(3),
        Decimal(5),
    )
    assert got.venue_time == T0
    assert got.as_of == T0


async def test_wait_quote_wakes_on_a_newer_quote(fake: FakeDataStream) -> None:
    """`wait_quote(newer_than=…)` waits for the next quote, not the cached one."""
    clock = ManualClock()
    stream = make_stream(fake, clock)
    stream.subscribe(["SPY"])
    async with started(stream):
        await fake.wait_for("subscription", lambda: fake.subscribed == {"SPY"})
        await fake.send([quote("SPY", 521.30, 521.32)])
        first = await asyncio.wait_for(stream.wait_quote("SPY"), DEADLINE)
        waiter = asyncio.create_task(stream.wait_quote("SPY", newer_than=first.as_of))
        clock.advance(1)
        await fake.send([quote("SPY", 521.31, 521.33)])
        second = await asyncio.wait_for(waiter, DEADLINE)
    assert second.bid == Decimal("521.31")


async def test_subscribe_and_unsubscribe_while_connected(fake: FakeDataStream) -> None:
    """Legs start and end while connected: the diff goes out, stale symbols freeze."""
    clock = ManualClock()
    stream = make_stream(fake, clock)
    stream.subscribe(["TQQQ"])
    async with started(stream):
        await fake.wait_for("first", lambda: fake.subscribed == {"TQQQ"})
        stream.subscribe(["SPY", "TQQQ"])
        await fake.wait_for("second", lambda: fake.subscribed == {"TQQQ", "SPY"})
        await fake.send([quote("TQQQ", 62.41, 62.43)])
        await asyncio.wait_for(stream.wait_quote("TQQQ"), DEADLINE)
        stream.unsubscribe(["TQQQ"])
        await fake.wait_for("unsubscribed", lambda: fake.subscribed == {"SPY"})
        clock.advance(10)
        # Late data (§4.1 step 7): an unsubscribed symbol's quote in a frame with a
        # subscribed one's is dropped; the subscribed one is cached.
        await fake.send([quote("TQQQ", 70.00, 70.02), quote("SPY", 500.00, 500.01)])
        await asyncio.wait_for(stream.wait_quote("SPY"), DEADLINE)
        frozen = stream.quote("TQQQ")
        assert frozen is not None
        assert frozen.age_seconds(clock.now) == 10
        assert frozen.bid == Decimal("62.41")
    subscribes = [m for m in fake.received if m.get("action") == "subscribe"]
    assert subscribes[1] == {
        "action": "subscribe",
        "quotes": ["SPY"],
        "trades": ["SPY"],
        "statuses": ["SPY"],
    }


async def test_quotes_go_stale_while_down_and_resubscribe_after(fake: FakeDataStream) -> None:
    """A drop freezes as_of; the reconnect resubscribes everything; new quotes are fresh."""
    clock = ManualClock()
    stream = make_stream(fake, clock)
    stream.subscribe(["TQQQ", "SPY"])
    async with started(stream):
        await fake.wait_for("subscribed", lambda: fake.subscribed == {"TQQQ", "SPY"})
        await fake.send([quote("TQQQ", 62.41, 62.43)])
        await asyncio.wait_for(stream.wait_quote("TQQQ"), DEADLINE)
        clock.advance(3)
        live = stream.quote("TQQQ")
        assert live is not None
        assert live.as_of == T0  # its own timestamp: it ages even while connected

        down_at = clock.now
        await fake.drop()
        await wait_until(lambda: not stream.connected)
        clock.advance(7)
        stale = stream.quote("TQQQ")
        assert stale is not None
        assert stale.as_of <= down_at
        assert stale.age_seconds(clock.now) >= 7

        await fake.wait_for(
            "resubscribed", lambda: fake.live and fake.subscribed == {"TQQQ", "SPY"}
        )
        await wait_until(lambda: stream.connected)
        still_stale = stream.quote("TQQQ")
        assert still_stale is not None
        assert still_stale.as_of <= down_at  # an old quote is not revived by the reconnect
        await fake.send([quote("TQQQ", 62.50, 62.52, t=clock.now)])
        fresh = await asyncio.wait_for(stream.wait_quote("TQQQ", newer_than=down_at), DEADLINE)
    assert fresh.as_of == clock.now
    assert fake.connections == 2
    assert stream.statistics().reconnects == 1


async def test_watchdog_reconnects_a_silent_socket(fake: FakeDataStream) -> None:
    """No message at all for `silence_timeout` while subscribed → a new connection."""
    stream = make_stream(fake, ManualClock(), silence_timeout=0.3)
    stream.subscribe(["SPY"])
    async with started(stream):
        await fake.wait_for("second connection", lambda: fake.connections >= 2 and fake.live)
    assert fake.max_open == 1


async def test_connection_limit_backs_off_longer_never_two_sockets(fake: FakeDataStream) -> None:
    """406 waits at least `connection_limit_delay` and never opens a second socket."""
    fake.refuse_auth = [(406, "connection limit exceeded")]
    stream = make_stream(fake, ManualClock(), connection_limit_delay=0.3)
    stream.subscribe(["SPY"])
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with started(stream):
        await fake.wait_for("subscribed", lambda: fake.live and fake.subscribed == {"SPY"})
        elapsed = loop.time() - start
    assert elapsed >= 0.3
    assert fake.connections == 2
    assert fake.max_open == 1


async def test_repeated_auth_failure_is_fatal(fake: FakeDataStream) -> None:
    """402 `auth failed` three times in a row ends run() with StreamAuthError."""
    fake.refuse_auth = [(402, "auth failed")] * 3
    stream = make_stream(fake, ManualClock())
    with pytest.raises(StreamAuthError):
        await asyncio.wait_for(stream.run(), DEADLINE)
    assert fake.connections == 3


async def test_trades_feed_vwap_and_health(fake: FakeDataStream) -> None:
    """Trade prints feed the symbol's VWAP; statistics report connection and ages."""
    clock = ManualClock()
    stream = make_stream(fake, clock)
    stream.subscribe(["SPY"])
    async with started(stream):
        await fake.wait_for("subscribed", lambda: fake.subscribed == {"SPY"})
        await fake.send(
            [
                {"T": "t", "S": "SPY", "i": 1, "x": "V", "p": 100.0, "s": 100, "t": T0, "z": "B"},
                {"T": "b", "S": "SPY", "o": 1, "h": 1, "l": 1, "c": 1, "v": 1, "t": T0,
                 "n": 1, "vw": 1},
                {"T": "t", "S": "SPY", "i": 2, "x": "V", "p": 101.0, "s": 300, "t": T0, "z": "B"},
            ]
        )  # fmt: skip
        await wait_until(lambda: stream.vwap("SPY").volume == 400)
        clock.advance(2)
        stats = stream.statistics()
    assert stream.vwap("SPY").vwap == Decimal("100.75")
    assert stats.connected
    assert stats.subscribed == ("SPY",)
    assert stats.message_age == {"SPY": 2.0}


async def test_a_non_finite_quote_never_reaches_the_cache(fake: FakeDataStream) -> None:
    """msgpack can carry NaN and ±inf as a price or size: such a quote is dropped (logged),
    the previous NBBO stays, and the next good quote is cached — a NaN Decimal must never
    reach a pricing decision, where comparing it raises."""
    clock = ManualClock()
    stream = make_stream(fake, clock)
    stream.subscribe(["SPY", "QQQ"])
    async with started(stream):
        await fake.wait_for("subscription", lambda: fake.subscribed == {"SPY", "QQQ"})
        await fake.send([quote("SPY", 521.30, 521.32)])
        first = await asyncio.wait_for(stream.wait_quote("SPY"), DEADLINE)
        clock.advance(1)
        bad = [
            quote("SPY", float("nan"), 521.32),
            quote("SPY", 521.30, float("inf")),
            {**quote("SPY", 521.30, 521.32), "bs": float("-inf")},
        ]
        await fake.send([*bad, quote("SPY", 521.31, 521.33)])
        second = await asyncio.wait_for(stream.wait_quote("SPY", newer_than=first.as_of), DEADLINE)
        assert (second.bid, second.ask) == (Decimal("521.31"), Decimal("521.33"))
        await fake.send(bad)
        await fake.send([quote("QQQ", 1.0, 1.01)])  # frames are handled in order
        await asyncio.wait_for(stream.wait_quote("QQQ"), DEADLINE)
        current = stream.quote("SPY")
    assert current is not None
    assert (current.bid, current.ask, current.bid_size) == (
        Decimal("521.31"),
        Decimal("521.33"),
        Decimal(3),
    )


async def test_a_negative_quote_is_dropped_and_a_frame_keeps_its_last_good_quote(
    fake: FakeDataStream,
) -> None:
    """A negative price or size is no quote (LESSONS.md: negative limit prices): dropped
    like a NaN, the NBBO stays. Within one frame the cache keeps the symbol's newest valid
    quote, even when a bad one follows it, and a trade in the same frame still counts."""
    clock = ManualClock()
    stream = make_stream(fake, clock)
    stream.subscribe(["SPY"])
    async with started(stream):
        await fake.wait_for("subscription", lambda: fake.subscribed == {"SPY"})
        trade = {"T": "t", "S": "SPY", "i": 1, "x": "V", "p": 521.0, "s": 7, "t": T0, "z": "B"}
        await fake.send(
            [
                quote("SPY", 521.29, 521.31),
                quote("SPY", 521.30, 521.32),
                trade,
                quote("SPY", -521.30, 521.32),
                {**quote("SPY", 521.30, 521.33), "as": -5},
            ]
        )
        await wait_until(lambda: stream.vwap("SPY").volume == 7)
        cached = stream.quote("SPY")
    assert cached is not None
    assert (cached.bid, cached.ask, cached.ask_size) == (
        Decimal("521.30"),
        Decimal("521.32"),
        Decimal(5),
    )


async def test_a_silent_symbol_ages_while_others_stream(fake: FakeDataStream) -> None:
    """Issue 10 item 1: freshness is the quote's own venue timestamp. SPY keeps quoting,
    TQQQ falls silent: TQQQ's quote ages past 5 s although frames keep arriving (it used
    to read as current whenever any frame arrived within `silence_timeout`). A quote
    stamped ahead of our clock is taken as of now, never as fresher."""
    clock = ManualClock()
    stream = make_stream(fake, clock)
    stream.subscribe(["TQQQ", "SPY"])
    async with started(stream):
        await fake.wait_for("subscribed", lambda: fake.subscribed == {"TQQQ", "SPY"})
        await fake.send([quote("TQQQ", 62.41, 62.43, t=clock.now)])
        await asyncio.wait_for(stream.wait_quote("TQQQ"), DEADLINE)
        for _ in range(6):
            clock.advance(1)
            seen = clock.now - timedelta(microseconds=1)
            await fake.send([quote("SPY", 500.00, 500.01, t=clock.now)])
            await asyncio.wait_for(stream.wait_quote("SPY", newer_than=seen), DEADLINE)
        silent = stream.quote("TQQQ")
        spy = stream.quote("SPY")
        assert silent is not None
        assert spy is not None
        assert silent.age_seconds(clock.now) == 6.0
        assert spy.age_seconds(clock.now) == 0.0
        ahead = clock.now + timedelta(seconds=30)
        seen = clock.now - timedelta(microseconds=1)
        await fake.send([quote("TQQQ", 62.41, 62.43, t=ahead)])
        late = await asyncio.wait_for(stream.wait_quote("TQQQ", newer_than=seen), DEADLINE)
        assert late.as_of == clock.now
        assert late.venue_time == ahead


async def test_statuses_mark_a_symbol_halted_until_it_resumes(fake: FakeDataStream) -> None:
    """The `statuses` channel (§4.3 `"T":"s"`): a halt ("H") marks the symbol halted, an
    unrelated status changes nothing, a resumption ("T") clears it; statuses are
    subscribed with the quotes, and a halt of another symbol is not this one's."""
    clock = ManualClock()
    stream = make_stream(fake, clock)
    stream.subscribe(["TQQQ", "SPY"])
    async with started(stream):
        await fake.wait_for("subscribed", lambda: fake.subscribed == {"TQQQ", "SPY"})
        assert stream.halted("TQQQ") is None
        status = {"T": "s", "S": "TQQQ", "sc": "H", "sm": "Trading Halt", "rc": "T12",
                  "rm": "Additional Information Requested", "t": T0, "z": "C"}  # fmt: skip
        await fake.send([status])
        await wait_until(lambda: stream.halted("TQQQ") is not None)
        halt = stream.halted("TQQQ")
        assert halt is not None
        assert (halt.sc, halt.rc) == ("H", "T12")
        assert stream.halted("SPY") is None
        await fake.send([{**status, "sc": "F", "sm": "Short Sale Restriction"}])
        await fake.send([quote("SPY", 500.0, 500.01)])
        await asyncio.wait_for(stream.wait_quote("SPY"), DEADLINE)
        assert stream.halted("TQQQ") is not None
        await fake.send([{**status, "sc": "T", "sm": "Trading Resumption"}])
        await wait_until(lambda: stream.halted("TQQQ") is None)
    assert any("statuses" in m for m in fake.received if isinstance(m, dict)), (
        "statuses were not subscribed"
    )


async def test_a_future_stamped_quote_does_not_freeze_the_cache(fake: FakeDataStream) -> None:
    """Review 2's newest-by-venue-time rule, attacked: one quote stamped an hour ahead (a
    corrupt ``t``) must not make every real quote after it look older. The cached quote
    counts as stamped no later than its receipt (like its `as_of`), so the next real quote
    replaces it; a real quote older than the receipt of the cached one is still dropped."""
    clock = ManualClock()
    stream = make_stream(fake, clock)
    stream.subscribe(["SPY"])
    async with started(stream):
        await fake.wait_for("subscription", lambda: fake.subscribed == {"SPY"})
        await fake.send([quote("SPY", 600.0, 600.02, t=T0 + timedelta(hours=1))])
        first = await asyncio.wait_for(stream.wait_quote("SPY"), DEADLINE)
        assert first.as_of == T0
        clock.advance(1)
        await fake.send([quote("SPY", 500.0, 500.02, t=T0 - timedelta(seconds=1))])
        await fake.send([quote("SPY", 500.1, 500.12, t=T0 + timedelta(seconds=1))])
        second = await asyncio.wait_for(stream.wait_quote("SPY", newer_than=T0), DEADLINE)
    assert (second.bid, second.venue_time) == (Decimal("500.1"), T0 + timedelta(seconds=1))


async def test_bad_messages_are_logged_and_the_rest_of_the_frame_lands(
    fake: FakeDataStream,
) -> None:
    """Review 2: a NaN print is logged `stream_trade_invalid`, a broken quote
    `stream_message_undecodable`; neither ends the stream and the good messages of the
    same frame (a quote, a print) are applied."""
    stream = make_stream(fake, ManualClock())
    stream.subscribe(["SPY"])
    async with started(stream) as task:
        await fake.wait_for("subscription", lambda: fake.subscribed == {"SPY"})
        nan_print = {"T": "t", "S": "SPY", "i": 1, "x": "V", "p": float("nan"), "s": 5, "t": T0}
        good_print = {**nan_print, "i": 2, "p": 10.0, "s": 3}
        with structlog.testing.capture_logs() as logs:
            await fake.send(
                [nan_print, {**quote("SPY", 1.0, 1.01), "bp": None}, quote("SPY", 2.0, 2.01),
                 good_print]
            )  # fmt: skip
            await wait_until(lambda: stream.vwap("SPY").volume == 3)
        cached = stream.quote("SPY")
        assert not task.done()
    events = {e["event"]: e for e in logs}
    assert events["stream_trade_invalid"]["p"] == "nan"
    assert events["stream_message_undecodable"]["tag"] == "q"
    assert cached is not None
    assert cached.bid == Decimal("2.0")
    assert stream.vwap("SPY").vwap == Decimal(10)


def test_the_fast_path_orders_a_frame_of_stamped_quotes_by_venue_time() -> None:
    """The C-level pass (last quote of a symbol wins) takes a frame of stamped quotes sorted
    by venue time, ties in frame order, so each symbol's last quote is its newest (review
    2) whatever order the frame came in; a frame with anything else in it (a status, a
    quote without `t`, even alone) goes through the per-quote pass."""
    from execd.adapters.market_values import _by_venue_time
    from execd.adapters.wire import QuoteMsg, StatusMsg

    t0 = datetime(2026, 5, 11, 14, 0, tzinfo=UTC)

    def q(symbol: str, seconds: float | None, bid: float = 1.0) -> QuoteMsg:
        t = None if seconds is None else t0 + timedelta(seconds=seconds)
        return QuoteMsg(S=symbol, bp=bid, bs=1.0, ap=bid + 0.01, as_=1.0, t=t)

    in_order = [q("A", 0), q("B", 0), q("A", 1)]
    assert _by_venue_time(in_order) == in_order
    newer, older, tie_first, tie_last = q("A", 5), q("A", 1), q("B", 2, 2.0), q("B", 2, 3.0)
    ordered = _by_venue_time([newer, tie_first, older, tie_last])
    assert ordered is not None
    assert [m.t for m in ordered] == sorted(m.t for m in ordered if m.t is not None)
    last = {m.S: m for m in ordered}
    assert last["A"] is newer  # the newer one, although it came first
    assert last["B"] is tie_last  # a tie: the later in the frame
    assert _by_venue_time([q("A", 0), q("B", None)]) is None  # a quote without `t`
    assert _by_venue_time([q("A", None), q("B", None)]) is None
    assert _by_venue_time([q("A", None)]) is None  # alone: never compared, still refused
    assert _by_venue_time([q("A", 0), StatusMsg(S="A", sc="H", sm="halt")]) is None
    assert _by_venue_time([]) is None


async def test_a_frame_of_quotes_only_still_never_turns_a_symbol_back_in_time(
    fake: FakeDataStream,
) -> None:
    """The C-level path judges a quotes-only frame against the cache by the frame's
    *earliest* venue time: a frame whose other quote is newer than everything cached must
    not carry in a quote older than its symbol's cached one (SPY stays at +5 s), and a
    frame out of time order still caches each symbol's newest (QQQ at +7 s)."""
    clock = ManualClock()
    clock.advance(10)
    stream = make_stream(fake, clock)
    stream.subscribe(["SPY", "QQQ"])
    async with started(stream):
        await fake.wait_for("subscription", lambda: fake.subscribed == {"SPY", "QQQ"})
        await fake.send([quote("SPY", 500.10, 500.12, t=T0 + timedelta(seconds=5))])
        first = await asyncio.wait_for(stream.wait_quote("SPY"), DEADLINE)
        await fake.send(
            [
                quote("QQQ", 400.20, 400.22, t=T0 + timedelta(seconds=7)),
                quote("SPY", 499.00, 499.02, t=T0 + timedelta(seconds=1)),
                quote("QQQ", 400.00, 400.02, t=T0 + timedelta(seconds=6)),
            ]
        )
        qqq = await asyncio.wait_for(stream.wait_quote("QQQ"), DEADLINE)
        spy = stream.quote("SPY")
    assert spy is first
    assert (qqq.bid, qqq.venue_time) == (Decimal("400.2"), T0 + timedelta(seconds=7))
