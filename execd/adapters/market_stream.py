"""The market-data websocket: NBBO cache, per-symbol trade VWAP, one connection.

Protocol (ALPACA.md §4.1): connect → ``[{"T":"success","msg":"connected"}]`` → send
``auth`` → ``authenticated`` → ``subscribe`` quotes and trades for the symbols in
work → data arrays. Like alpaca-py, execd asks for MessagePack (handshake header
``Content-Type: application/msgpack``, §4.2) and decodes with msgspec (wire.py); JSON
works too.

The cache is latest-wins (STYLE.md rule 7): quotes are never queued; a leg reads the
newest NBBO, or awaits `wait_quote(symbol, newer_than)` (one event per symbol). A
quote's `as_of` (see `Quote`) is its receipt time, and while the connection that
delivered it is up and has delivered *something* within `silence_timeout`, it reads
as "now": Alpaca does not resend an unchanged NBBO. When the connection drops the
quotes freeze at the last moment the connection was known alive, so they go stale
while the stream is down, and freshness gates refuse to price from them.

Reconnection: every failure is classified (retry or fatal), logged as
``stream_reconnecting`` and followed by a jittered backoff delay from a fresh
`BackoffPolicy.delays` generator after any session that delivered data. 406
``connection limit exceeded`` waits at least `connection_limit_delay` (Alpaca reaps a
dead session only after ~90 s, §9) and never opens a second connection: there is only
ever one socket per `MarketStream`. A watchdog reconnects when nothing at all arrived
for `silence_timeout` seconds while symbols are subscribed (the "silent socket" of
alpaca-py#740). Auth refusals (402/409/411) are fatal after `max_auth_failures`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from math import isfinite
from typing import Literal

import msgspec
import structlog
import websockets
from websockets.asyncio.client import ClientConnection, connect

from execd.adapters.backoff import BackoffPolicy
from execd.adapters.errors import StreamAuthError
from execd.adapters.wire import (
    Codec,
    ErrorMsg,
    MarketDecoder,
    QuoteMsg,
    SubscriptionMsg,
    SuccessMsg,
    TradeMsg,
    encode_market,
    exact,
)
from execd.domain.quotes import Quote
from execd.domain.tca import VwapAccumulator

log = structlog.get_logger(__name__)

__all__ = [
    "MarketStream",
    "MarketStreamConfig",
    "MarketStreamStatistics",
    "QuoteOutage",
    "StreamRefused",
    "classify_stream_error",
]

#: §4.4 codes that no retry on the same credentials/plan will fix.
_AUTH_CODES = frozenset({402, 409, 411})
_CONNECTION_LIMIT = 406


class StreamRefused(Exception):
    """The server answered an error message that ends this connection (§4.4)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


class _Silent(Exception):
    """The watchdog fired: no message for `silence_timeout` seconds while subscribed."""


def classify_stream_error(exc: BaseException) -> Literal["retry", "fatal"]:
    """Whether a stream failure is worth a reconnect (websockets' `process_exception`).

    Network and protocol failures, handshake refusals (HTTP 429/5xx on the upgrade)
    and server error messages are retried; anything else is a bug and propagates.
    """
    if isinstance(
        exc,
        OSError
        | TimeoutError
        | websockets.ConnectionClosed
        | websockets.InvalidHandshake
        | websockets.InvalidURI
        | StreamRefused
        | _Silent
        | msgspec.DecodeError,
    ):
        return "retry"
    return "fatal"


@dataclass(frozen=True, slots=True)
class MarketStreamConfig:
    """Where and how to stream market data (full ws URL incl. feed, §0.1)."""

    url: str
    key_id: str
    secret_key: str = field(repr=False)
    codec: Codec = "msgpack"
    #: no message at all for this long while subscribed → reconnect.
    silence_timeout: float = 30.0
    #: connected → authenticated must complete within this (Alpaca allows 10 s, §4.1).
    handshake_timeout: float = 10.0
    #: minimum wait after 406 "connection limit exceeded".
    connection_limit_delay: float = 30.0
    max_auth_failures: int = 3
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)


@dataclass(frozen=True, slots=True)
class MarketStreamStatistics:
    """Stream health for the daemon's `health` answer."""

    connected: bool
    connections: int
    reconnects: int
    subscribed: tuple[str, ...]
    #: seconds since the last frame of any kind (None: none yet).
    silence: float | None
    #: per subscribed symbol, seconds since its last quote or trade (None: none yet).
    message_age: dict[str, float | None]


@dataclass(frozen=True, slots=True)
class QuoteOutage:
    """Why a symbol's cached quote cannot be vouched for by the connection right now.

    `reason`: ``disconnected`` (no authenticated connection), ``silent`` (nothing at all
    arrived for `silence_timeout`; the watchdog is about to reconnect) or ``reconnected``
    (the connection is back but has not yet delivered a quote for the symbol; the cached
    one is from before the outage). `quote_age` is seconds since the cached quote was
    last known current (None: no quote ever). `recheck_at` is when the answer can change
    without any event (the ``reconnected`` grace ending); None otherwise.
    """

    reason: Literal["disconnected", "silent", "reconnected"]
    quote_age: float | None
    recheck_at: datetime | None = None


@dataclass(slots=True)
class _Entry:
    """One symbol's cached NBBO: the wire struct as received (storing it costs nothing),
    and the Decimal `Quote` built from it the first time something reads it.

    Building a `Quote` per message was the largest cost of ingest (issue 14); most
    messages are overwritten before any decision looks at them.
    """

    msg: QuoteMsg
    received_at: datetime
    #: the connection that delivered it; None once frozen (drop or unsubscribe).
    generation: int | None
    #: when it was last known current before `quote()` moves it on (receipt, or the
    #: moment its connection was last known alive once frozen).
    as_of: datetime
    built: Quote | None = None

    def quote(self) -> Quote:
        """The Decimal quote (built once per message)."""
        built = self.built
        if built is None:
            m = self.msg
            built = self.built = Quote(
                symbol=m.S,
                bid=exact(m.bp),
                ask=exact(m.ap),
                bid_size=exact(m.bs),
                ask_size=exact(m.as_),
                venue_time=m.t or self.received_at,
                as_of=self.as_of,
            )
        return built

    def update(self, msg: QuoteMsg, now: datetime, generation: int) -> None:
        """A newer message for the symbol (in place: no allocation per message)."""
        self.msg = msg
        self.received_at = self.as_of = now
        self.generation = generation
        self.built = None

    def freeze(self, as_of: datetime) -> None:
        """No live connection vouches for it any more: it reads as of `as_of` from now on."""
        if as_of != self.as_of:
            self.as_of = as_of
            self.built = None
        self.generation = None


class MarketStream:
    """Quote stream task + NBBO cache. Run `run()` in the daemon's TaskGroup.

    `clock` is the venue-corrected wall clock (execd.engine.clock); `rand` feeds the
    backoff jitter.
    """

    def __init__(
        self,
        config: MarketStreamConfig,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._config = config
        self._clock = clock
        self._rand = rand
        self._decoder = MarketDecoder(config.codec)
        self._wanted: set[str] = set()
        self._sent: set[str] = set()
        self._sync_needed = asyncio.Event()
        self._quotes: dict[str, _Entry] = {}
        self._quote_events: dict[str, asyncio.Event] = {}
        self._vwap: dict[str, VwapAccumulator] = {}
        self._last_message: dict[str, datetime] = {}
        self._generation = 0
        self._connected = asyncio.Event()
        self._connected_at: datetime | None = None
        self._link_changed = asyncio.Event()
        self._last_frame: datetime | None = None
        self._reconnects = 0
        self._auth_failures = 0
        self._had_data = False

    # ------------------------------------------------------------------ subscriptions

    def subscribe(self, symbols: Iterable[str]) -> None:
        """Add symbols (quotes and trades); sent at once if connected, else on connect."""
        new = set(symbols) - self._wanted
        if new:
            self._wanted |= new
            for symbol in new:
                self._vwap.setdefault(symbol, VwapAccumulator())
            self._sync_needed.set()

    def unsubscribe(self, symbols: Iterable[str]) -> None:
        """Drop symbols; their cached quotes freeze (they stop reading as current)."""
        gone = set(symbols) & self._wanted
        if gone:
            self._wanted -= gone
            for symbol in gone:
                self._freeze(symbol)
            self._sync_needed.set()

    @property
    def symbols(self) -> frozenset[str]:
        """The symbols execd wants streamed."""
        return frozenset(self._wanted)

    # ------------------------------------------------------------------ cache

    def quote(self, symbol: str) -> Quote | None:
        """The newest NBBO for `symbol`, with `as_of` as the module docstring explains."""
        entry = self._quotes.get(symbol)
        if entry is None:
            return None
        quote = entry.quote()
        if entry.generation is None or entry.generation != self._generation:
            return quote
        if not self._connected.is_set() or self._last_frame is None:
            return quote
        now = self._clock()
        alive = (
            now
            if (now - self._last_frame).total_seconds() <= self._config.silence_timeout
            else self._last_frame
        )
        if alive <= quote.as_of:
            return quote
        return replace(quote, as_of=alive)

    async def wait_quote(self, symbol: str, newer_than: datetime | None = None) -> Quote:
        """Wait for a quote of `symbol` received after `newer_than` (any quote if None).

        Returns at once if the cache already holds one. Waits on an event per symbol,
        never polls; callers bound it with a timeout (the stream may be down).
        """
        while True:
            entry = self._quotes.get(symbol)
            if entry is not None and (newer_than is None or entry.received_at > newer_than):
                quote = self.quote(symbol)
                assert quote is not None
                return quote
            event = self._quote_events.get(symbol)
            if event is None:
                event = self._quote_events[symbol] = asyncio.Event()
            await event.wait()

    def vwap(self, symbol: str) -> VwapAccumulator:
        """The running trade VWAP of `symbol` since it was first subscribed."""
        return self._vwap.setdefault(symbol, VwapAccumulator())

    # ------------------------------------------------------------------ health

    @property
    def connected(self) -> bool:
        """True while authenticated and reading."""
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        """Return once the stream is authenticated (readiness for systemd's READY=1)."""
        await self._connected.wait()

    async def wait_link_change(self) -> None:
        """Return at the next connect or disconnect (what can end a `QuoteOutage`)."""
        await self._link_changed.wait()

    def outage(self, symbol: str, grace: float) -> QuoteOutage | None:
        """Whether `symbol`'s quote is stale *because of the connection* (None: it is not).

        A quiet symbol on a healthy connection is not an outage (Alpaca does not resend an
        unchanged NBBO). After a reconnection, a symbol whose cached quote came from the
        previous connection is still in outage until a quote arrives on the new one or
        `grace` seconds have passed (a symbol that stays quiet is then the freshness
        gates' business, not the connection's).
        """
        now = self._clock()
        entry = self._quotes.get(symbol)
        quote = self.quote(symbol)
        age = None if quote is None else round(quote.age_seconds(now), 3)
        if not self._connected.is_set() or self._last_frame is None:
            return QuoteOutage("disconnected", age)
        if (now - self._last_frame).total_seconds() > self._config.silence_timeout:
            return QuoteOutage("silent", age)
        since = self._connected_at
        if entry is not None and since is not None and entry.received_at < since:
            until = since + timedelta(seconds=grace)
            if now < until:
                return QuoteOutage("reconnected", age, until)
        return None

    def statistics(self) -> MarketStreamStatistics:
        """Connection state and per-symbol message ages."""
        now = self._clock()
        ages: dict[str, float | None] = {}
        for symbol in sorted(self._wanted):
            last = self._last_message.get(symbol)
            ages[symbol] = None if last is None else (now - last).total_seconds()
        return MarketStreamStatistics(
            connected=self.connected,
            connections=self._generation,
            reconnects=self._reconnects,
            subscribed=tuple(sorted(self._wanted)),
            silence=None if self._last_frame is None else (now - self._last_frame).total_seconds(),
            message_age=ages,
        )

    # ------------------------------------------------------------------ task

    async def run(self) -> None:
        """Connect, stream, reconnect forever; returns only by cancellation or a fatal error."""
        delays = self._delays()
        while True:
            reason: BaseException
            try:
                await self._connect_and_stream()
                reason = ConnectionError("stream ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if classify_stream_error(exc) == "fatal":
                    log.error("stream_crashed", stream="market", error=repr(exc))
                    raise
                reason = exc
            finally:
                self._on_disconnect()
            if self._had_data:
                delays = self._delays()
            delay = next(delays)
            if isinstance(reason, StreamRefused):
                if reason.code in _AUTH_CODES:
                    self._auth_failures += 1
                    if self._auth_failures >= self._config.max_auth_failures:
                        log.error(
                            "stream_auth_failed",
                            stream="market",
                            code=reason.code,
                            message=reason.message,
                        )
                        raise StreamAuthError(str(reason)) from reason
                if reason.code == _CONNECTION_LIMIT:
                    delay = max(delay, self._config.connection_limit_delay)
            self._reconnects += 1
            log.warning(
                "stream_reconnecting",
                stream="market",
                delay=round(delay, 3),
                reason=repr(reason),
                attempt=self._reconnects,
            )
            await asyncio.sleep(delay)

    def _delays(self) -> Iterator[float]:
        return self._config.backoff.delays(self._rand)

    async def _connect_and_stream(self) -> None:
        self._had_data = False
        headers = {"Content-Type": "application/msgpack"} if self._config.codec == "msgpack" else {}
        async with connect(
            self._config.url,
            additional_headers=headers,
            open_timeout=self._config.handshake_timeout,
            ping_interval=10,
            ping_timeout=20,
            max_size=2**24,
        ) as ws:
            async with asyncio.timeout(self._config.handshake_timeout):
                await self._expect(ws, "connected")
                auth = {
                    "action": "auth",
                    "key": self._config.key_id,
                    "secret": self._config.secret_key,
                }
                await ws.send(encode_market(self._config.codec, auth))
                await self._expect(ws, "authenticated")
            self._auth_failures = 0
            self._generation += 1
            self._sent = set()
            self._last_frame = self._connected_at = self._clock()
            self._connected.set()
            self._announce_link_change()
            log.info(
                "stream_connected",
                stream="market",
                url=self._config.url,
                connection=self._generation,
                symbols=len(self._wanted),
            )
            writer = asyncio.create_task(self._writer(ws), name="market-stream-writer")
            try:
                await self._reader(ws)
            finally:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                    await writer

    async def _expect(self, ws: ClientConnection, what: str) -> None:
        """Read control frames until ``success/<what>``; an error message ends the session."""
        while True:
            for message in self._decoder.decode(await ws.recv()):
                if isinstance(message, SuccessMsg) and message.msg == what:
                    return
                if isinstance(message, ErrorMsg):
                    log.error(
                        "stream_error_message",
                        stream="market",
                        code=message.code,
                        message=message.msg,
                        phase=what,
                    )
                    raise StreamRefused(message.code, message.msg)

    async def _writer(self, ws: ClientConnection) -> None:
        """Send subscription changes as they are asked for (also while connected)."""
        try:
            self._sync_needed.set()
            while True:
                await self._sync_needed.wait()
                self._sync_needed.clear()
                add = sorted(self._wanted - self._sent)
                drop = sorted(self._sent - self._wanted)
                if add:
                    request = {"action": "subscribe", "quotes": add, "trades": add}
                    await ws.send(encode_market(self._config.codec, request))
                    self._sent |= set(add)
                if drop:
                    request = {"action": "unsubscribe", "quotes": drop, "trades": drop}
                    await ws.send(encode_market(self._config.codec, request))
                    self._sent -= set(drop)
                if add or drop:
                    log.info("stream_subscribing", stream="market", add=add, drop=drop)
        except (asyncio.CancelledError, websockets.ConnectionClosed):
            raise
        except BaseException:
            # A bug here must end the session loudly, not leave a reader without writer.
            await ws.close(1011, "client error")
            raise

    async def _reader(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        last_rx = loop.time()
        while True:
            deadline = last_rx + self._config.silence_timeout if self._wanted else None
            try:
                async with asyncio.timeout_at(deadline):
                    frame = await ws.recv()
            except TimeoutError:
                log.warning("stream_silent", stream="market", seconds=self._config.silence_timeout)
                raise _Silent(f"no message for {self._config.silence_timeout} s") from None
            last_rx = loop.time()
            now = self._clock()
            self._last_frame = now
            try:
                messages = self._decoder.decode(frame)
            except msgspec.DecodeError as exc:
                log.error(
                    "stream_frame_undecodable", stream="market", error=str(exc), frame=frame[:200]
                )
                continue
            for message in messages:
                if type(message) is QuoteMsg:
                    self._on_quote(message, now)
                else:
                    self._handle(message, now)

    def _on_quote(self, message: QuoteMsg, now: datetime) -> None:
        """The hot path: store the struct, wake a waiter; no Decimal, no allocation."""
        symbol = message.S
        if symbol not in self._wanted:
            return  # late data for a recently unsubscribed symbol (§4.1 step 7)
        if not isfinite(message.bp + message.ap + message.bs + message.as_):
            # msgpack can carry NaN/±inf (one sum catches any of the four): such a number
            # must never become a Decimal a decision compares. The previous NBBO stays.
            log.warning(
                "stream_quote_invalid",
                stream="market",
                symbol=symbol,
                bp=repr(message.bp),
                ap=repr(message.ap),
                bs=repr(message.bs),
                as_=repr(message.as_),
            )
            return
        self._had_data = True
        self._last_message[symbol] = now
        entry = self._quotes.get(symbol)
        if entry is None:
            self._quotes[symbol] = _Entry(message, now, self._generation, now)
        else:
            entry.update(message, now, self._generation)
        if self._quote_events:
            event = self._quote_events.pop(symbol, None)
            if event is not None:
                event.set()

    def _handle(self, message: object, now: datetime) -> None:
        match message:
            case QuoteMsg():
                self._on_quote(message, now)
            case TradeMsg():
                if message.S not in self._wanted:
                    return
                self._had_data = True
                self._last_message[message.S] = now
                if message.p > 0 and message.s > 0:
                    self.vwap(message.S).add(message.p, message.s)
            case SubscriptionMsg():
                log.info(
                    "stream_subscription",
                    stream="market",
                    quotes=message.quotes,
                    trades=message.trades,
                )
            case ErrorMsg(code=code, msg=text):
                log.error("stream_error_message", stream="market", code=code, message=text)
                if code in _AUTH_CODES or code in (_CONNECTION_LIMIT, 500):
                    raise StreamRefused(code, text)
            case _:
                pass

    def _freeze(self, symbol: str) -> None:
        """Stop `symbol`'s quote from reading as current: keep the as_of it has now."""
        entry = self._quotes.get(symbol)
        if entry is None or entry.generation is None:
            return
        current = self.quote(symbol)
        assert current is not None
        entry.freeze(current.as_of)

    def _on_disconnect(self) -> None:
        was_connected = self._connected.is_set()
        if was_connected:
            # Quotes stop reading as current from the last moment the socket was alive.
            last = self._last_frame or self._clock()
            for entry in self._quotes.values():
                if entry.generation == self._generation:
                    entry.freeze(max(entry.as_of, last))
            log.warning("stream_disconnected", stream="market", connection=self._generation)
        self._connected.clear()
        if was_connected:
            self._announce_link_change()

    def _announce_link_change(self) -> None:
        event, self._link_changed = self._link_changed, asyncio.Event()
        event.set()
