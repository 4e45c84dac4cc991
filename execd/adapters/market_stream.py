"""The market-data websocket: NBBO cache, per-symbol trade VWAP, one connection.

Protocol (ALPACA.md §4.1): connect → ``[{"T":"success","msg":"connected"}]`` → send
``auth`` → ``authenticated`` → ``subscribe`` quotes and trades for the symbols in
work → data arrays. Like alpaca-py, execd asks for MessagePack (handshake header
``Content-Type: application/msgpack``, §4.2) and decodes with msgspec (wire.py); JSON
works too.

The cache is latest-wins (STYLE.md rule 7): quotes are never queued; a leg reads the
newest NBBO — newest by the quote's own venue time, so a delayed or replayed older quote
never replaces it (review 2) — or awaits `wait_quote(symbol, newer_than)` (one future per symbol). A
quote's `as_of` (see `Quote`) is the quote's *own* venue timestamp (``t``), never
later than its receipt (DESIGN.md "Fresh quote", seed 000's "quotes within 5
seconds"): a silent symbol, a stalled or dropped socket all leave the quote ageing on
the venue clock, and the freshness gates refuse to price from it. (Until issue 10 a
quote read as current while *any* frame arrived on the socket, so a silent symbol
passed.) A quote without ``t`` is stamped with its receipt time.

Reconnection (the shared `execd.adapters.reconnect.Reconnector`, also used by the
order stream): every failure is classified (retry or fatal, `stream_errors`), logged as
``stream_reconnecting`` and followed by a jittered backoff delay from a fresh
`BackoffPolicy.delays` generator after any session that delivered data. 406
``connection limit exceeded`` waits at least `connection_limit_delay` (Alpaca reaps a
dead session only after ~90 s, §9) and never opens a second connection: there is only
ever one socket per `MarketStream`. A watchdog reconnects when nothing at all arrived
for `silence_timeout` seconds while symbols are subscribed (the "silent socket" of
alpaca-py#740). Auth refusals (402/409/411) are fatal after `max_auth_failures`.

The feed's symbol limit (free IEX plan: 30, §0.4): `stream_slots.StreamSlots` decides which
wanted symbols the connection carries; the others wait for a slot and their legs read REST
quotes meanwhile. A 405 refuses only its own subscribe (module `stream_slots`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec
import structlog
import websockets
from websockets.asyncio.client import ClientConnection, connect

from execd.adapters.backoff import BackoffPolicy
from execd.adapters.market_halts import Halts
from execd.adapters.market_values import (
    _STAMP,
    _SYMBOL,
    MarketStreamStatistics,
    QuoteOutage,
    _build,
    _by_venue_time,
    _older,
)
from execd.adapters.reconnect import Reconnector, ReconnectPolicy
from execd.adapters.stream_errors import StreamRefused, StreamSilent, classify_stream_error
from execd.adapters.stream_slots import StreamSlots
from execd.adapters.wire import (
    BrokenMessage,
    Codec,
    Decoded,
    ErrorMsg,
    InvalidQuote,
    InvalidTrade,
    MarketDecoder,
    QuoteMsg,
    StatusMsg,
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
_SYMBOL_LIMIT = 405
#: §4.4 codes that answer a subscribe without changing it (besides 405).
_SUBSCRIBE_REFUSALS = frozenset({400, 410})


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
    #: symbols the feed streams at once (§0.4: free IEX plan 30; None: unlimited).
    symbol_limit: int | None = None


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
        self._decoder = MarketDecoder(config.codec)
        self._slots = StreamSlots(config.symbol_limit)
        #: every symbol wanted, streamed or waiting for a slot (the hot path's filter).
        self._wanted: set[str] = self._slots.wanted
        self._sync_needed = asyncio.Event()
        # The NBBO cache, latest-wins: per symbol the newest valid wire struct, the time
        # its frame arrived, and the Decimal `Quote` built from it when something read it
        # (keyed by the struct it was built from). Three dicts rather than an object per
        # symbol: a frame updates the first two with two C-level `dict.update`s (issue 14).
        self._latest: dict[str, QuoteMsg] = {}
        self._received: dict[str, datetime] = {}
        #: no cached quote counts as stamped later than this (see `_keep_newer`).
        self._high_water = datetime.min.replace(tzinfo=UTC)
        self._built: dict[str, tuple[QuoteMsg, Quote]] = {}
        self._halts = Halts()
        self._quote_arrivals: dict[str, asyncio.Future[None]] = {}
        self._vwap: dict[str, VwapAccumulator] = {}
        #: per symbol, when its last trade or status arrived (quotes: `_received`).
        self._last_message: dict[str, datetime] = {}
        #: loop time of the last frame: the silence watchdog's input.
        self._last_rx = 0.0
        self._generation = 0
        self._connected = asyncio.Event()
        self._connected_at: datetime | None = None
        self._link_changed = asyncio.Event()
        self._link_changes = 0
        self._link_future: asyncio.Future[None] | None = None
        self._last_frame: datetime | None = None
        self._reconnector = Reconnector(
            "market",
            ReconnectPolicy(
                config.backoff, config.max_auth_failures, config.connection_limit_delay
            ),
            rand=rand,
        )
        self._had_data = False
        self._limited = False

    # ------------------------------------------------------------------ subscriptions

    def subscribe(self, symbols: Iterable[str]) -> None:
        """Add symbols (quotes and trades); sent at once if connected, else on connect.
        Beyond the feed's symbol limit they wait, in the order given, for a slot."""
        new = [s for s in dict.fromkeys(symbols) if s not in self._wanted]
        if new:
            idle = not self._slots.any_streamed
            self._slots.want(new)
            if idle and self._slots.any_streamed:
                self._restart_silence_clock()
            for symbol in new:
                self._vwap.setdefault(symbol, VwapAccumulator())
            self._sync_needed.set()
            self._note_waiting()

    def _restart_silence_clock(self) -> None:
        """The first symbol streamed gets a whole `silence_timeout`: the idle watchdog re-arms
        only once per timeout, so without this it would judge the new subscription on the
        idle time before it (review 2). Moving `_last_rx` is enough: the watchdog re-reads it
        when it wakes and sleeps for what is left. No running loop: no watchdog either."""
        with contextlib.suppress(RuntimeError):
            self._last_rx = asyncio.get_running_loop().time()

    def unsubscribe(self, symbols: Iterable[str]) -> None:
        """Drop symbols; their cached quotes stop updating (and age on their own
        timestamps, so the freshness gates soon refuse them)."""
        if self._slots.drop(symbols):
            self._sync_needed.set()
            self._note_waiting()

    def _note_waiting(self) -> None:
        """Say once when the symbol limit starts leaving symbols off the stream (and when it
        stops): their legs are priced from REST latest-quote reads meanwhile."""
        waiting = self._slots.waiting
        if waiting and not self._limited:
            log.warning(
                "stream_symbol_limit",
                stream="market",
                limit=self._slots.limit,
                streamed=len(self._slots.streamed),
                waiting=len(waiting),
                first_waiting=list(waiting[:10]),
            )
        elif not waiting and self._limited:
            log.info("stream_symbol_limit_cleared", stream="market", limit=self._slots.limit)
        self._limited = bool(waiting)

    @property
    def symbols(self) -> frozenset[str]:
        """The symbols execd wants streamed."""
        return frozenset(self._wanted)

    @property
    def streamed(self) -> frozenset[str]:
        """The wanted symbols the connection carries (or is about to): at most the limit."""
        return self._slots.streamed

    @property
    def unstreamed(self) -> frozenset[str]:
        """The wanted symbols the feed's symbol limit leaves off the stream for now."""
        return frozenset(self._slots.waiting)

    @property
    def symbol_limit(self) -> int | None:
        """The feed's symbol limit (None: unlimited), lowered to the venue's after a 405."""
        return self._slots.limit

    # ------------------------------------------------------------------ cache

    def quote(self, symbol: str) -> Quote | None:
        """The newest NBBO for `symbol`; `as_of` is its own venue timestamp (module docstring)."""
        msg = self._latest.get(symbol)
        if msg is None:
            return None
        built = self._built.get(symbol)
        if built is not None and built[0] is msg:
            return built[1]
        quote = _build(msg, self._received[symbol])
        self._built[symbol] = (msg, quote)
        return quote

    async def wait_quote(self, symbol: str, newer_than: datetime | None = None) -> Quote:
        """Wait for a quote of `symbol` received after `newer_than` (any quote if None).

        Returns at once if the cache already holds one. Waits on the symbol's
        `quote_arrival`, never polls; callers bound it with a timeout (the stream may be
        down) — a timeout cancels only this wait, never the shared future.
        """
        while True:
            received = self._received.get(symbol)
            if received is not None and (newer_than is None or received > newer_than):
                quote = self.quote(symbol)
                assert quote is not None
                return quote
            await asyncio.shield(self.quote_arrival(symbol, newer_than))

    def quote_arrival(
        self, symbol: str, newer_than: datetime | None = None
    ) -> asyncio.Future[None]:
        """A future done when a quote (or a status) of `symbol` arrives after `newer_than`;
        done already if the cache holds one.

        One future per symbol, shared by every waiter: await it through `asyncio.wait` or
        `asyncio.shield`, never cancel it. Why a future and not a task around
        `wait_quote`: the quote then wakes `asyncio.wait` directly — one loop turn fewer
        between a quote and the leg's reaction (issue 14 item 2).
        """
        received = self._received.get(symbol)
        loop = asyncio.get_running_loop()
        if received is not None and (newer_than is None or received > newer_than):
            arrived: asyncio.Future[None] = loop.create_future()
            arrived.set_result(None)
            return arrived
        arrival = self._quote_arrivals.get(symbol)
        if arrival is None or arrival.done():
            arrival = self._quote_arrivals[symbol] = loop.create_future()
        return arrival

    def _wake_arrivals(self, symbols: Iterable[str]) -> None:
        """Resolve the quote arrivals of `symbols` that someone waits on (one frame's)."""
        if self._quote_arrivals:
            for symbol in self._quote_arrivals.keys() & symbols:
                self._arrived(symbol)

    def _arrived(self, symbol: str) -> None:
        arrival = self._quote_arrivals.pop(symbol, None)
        if arrival is not None and not arrival.done():  # done: someone cancelled it (a bug)
            arrival.set_result(None)

    def halted(self, symbol: str) -> StatusMsg | None:
        """The status message that halted `symbol`, while it is halted (None: trading).

        From the `statuses` channel (§4.3, `market_halts`): a halt code sets it, a
        resumption clears it; after a gap in the channel (unsubscribed, disconnected) the
        first quote newer than the gap clears it too. DESIGN.md "Fresh quote": a halted
        symbol holds its legs like a stale quote."""
        return self._halts.get(symbol)

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

    @property
    def link_changes(self) -> int:
        """How many times the link came or went: a waiter that read it before its check
        compares it afterwards, so a change between the two is never missed."""
        return self._link_changes

    async def wait_link_change(self, seen: int | None = None) -> None:
        """Return at the next connect or disconnect (what can end a `QuoteOutage`); at
        once when `seen` (a `link_changes` read earlier) is out of date."""
        if seen is not None and seen != self._link_changes:
            return
        await self._link_changed.wait()

    def link_change(self) -> asyncio.Future[None]:
        """A future done at the next connect or disconnect: shared by every waiter (a leg
        adds a done callback to it instead of running a task around `wait_link_change`),
        so never cancel it."""
        future = self._link_future
        if future is None or future.done():
            future = self._link_future = asyncio.get_running_loop().create_future()
        return future

    def outage(self, symbol: str, grace: float) -> QuoteOutage | None:
        """Whether `symbol`'s quote is stale *because of the connection* (None: it is not).

        A quiet symbol on a healthy connection is not an outage (Alpaca does not resend an
        unchanged NBBO). After a reconnection, a symbol whose cached quote came from the
        previous connection is still in outage until a quote arrives on the new one or
        `grace` seconds have passed (a symbol that stays quiet is then the freshness
        gates' business, not the connection's).
        """
        now = self._clock()
        received = self._received.get(symbol)
        quote = self.quote(symbol)
        age = None if quote is None else round(quote.age_seconds(now), 3)
        if not self._connected.is_set() or self._last_frame is None:
            return QuoteOutage("disconnected", age)
        if (now - self._last_frame).total_seconds() > self._config.silence_timeout:
            return QuoteOutage("silent", age)
        since = self._connected_at
        if received is not None and since is not None and received < since:
            until = since + timedelta(seconds=grace)
            if now < until:
                return QuoteOutage("reconnected", age, until)
        return None

    def statistics(self) -> MarketStreamStatistics:
        """Connection state and per-symbol message ages."""
        now = self._clock()
        ages: dict[str, float | None] = {}
        for symbol in sorted(self._wanted):
            last = max(
                (t for t in (self._last_message.get(symbol), self._received.get(symbol)) if t),
                default=None,
            )
            ages[symbol] = None if last is None else (now - last).total_seconds()
        return MarketStreamStatistics(
            connected=self.connected,
            connections=self._generation,
            reconnects=self._reconnector.reconnects,
            subscribed=tuple(sorted(self._wanted)),
            silence=None if self._last_frame is None else (now - self._last_frame).total_seconds(),
            message_age=ages,
            symbol_limit=self._slots.limit,
            unstreamed=self._slots.waiting,
            refused_by_limit=self._slots.refusals,
        )

    # ------------------------------------------------------------------ task

    async def run(self) -> None:
        """Connect, stream, reconnect forever; returns only by cancellation or a fatal error."""
        await self._reconnector.run(
            self._connect_and_stream,
            classify=classify_stream_error,
            had_data=lambda: self._had_data,
            on_disconnect=self._on_disconnect,
            is_auth_refusal=lambda e: isinstance(e, StreamRefused) and e.code in _AUTH_CODES,
            is_limit_refusal=lambda e: isinstance(e, StreamRefused) and e.code == _CONNECTION_LIMIT,
        )

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
            self._reconnector.authenticated()
            self._generation += 1
            self._slots.connected()
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
            # Three tasks, one session: whichever ends first (always by an exception: a
            # closed socket, a refusal, the watchdog's `StreamSilent`, a bug) ends it.
            tasks = {
                asyncio.create_task(self._reader(ws), name="market-stream-reader"),
                asyncio.create_task(self._writer(ws), name="market-stream-writer"),
                asyncio.create_task(self._watchdog(), name="market-stream-watchdog"),
            }
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            finally:
                for task in tasks:
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                    await asyncio.gather(*tasks, return_exceptions=True)

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
                # unsubscribes first: the venue's count never passes the limit between
                for change in self._slots.requests():
                    symbols = change.symbols
                    request = {
                        "action": change.action,
                        "quotes": symbols,
                        "trades": symbols,
                        "statuses": symbols,
                    }
                    await ws.send(encode_market(self._config.codec, request))
                    add, drop = (symbols, []) if change.action == "subscribe" else ([], symbols)
                    self._halts.suspect(drop, self._latest)
                    log.info("stream_subscribing", stream="market", add=add, drop=drop)
        except (asyncio.CancelledError, websockets.ConnectionClosed):
            raise
        except BaseException:
            # A bug here must end the session loudly, not leave a reader without writer.
            await ws.close(1011, "client error")
            raise

    async def _watchdog(self) -> None:
        """Raise `StreamSilent` once nothing at all arrived for `silence_timeout` seconds while
        symbols are subscribed. Nothing subscribed is no fault, even with symbols wanted: a
        feed whose symbol limit leaves them all waiting is quiet by design (review 11; a
        reconnection would only be refused the same way, every `silence_timeout`).

        A timer of its own that wakes at most once per `silence_timeout`, instead of a
        timeout armed around every frame's receive (≈ 10 % of ingest, issue 14).
        """
        loop = asyncio.get_running_loop()
        timeout = self._config.silence_timeout
        self._last_rx = loop.time()
        while True:
            now = loop.time()
            if not self._slots.any_streamed:
                self._last_rx = now
            remaining = self._last_rx + timeout - now
            if remaining <= 0:
                log.warning("stream_silent", stream="market", seconds=timeout)
                raise StreamSilent(f"no message for {timeout} s")
            await asyncio.sleep(remaining)

    async def _reader(self, ws: ClientConnection) -> None:
        """Receive frames and apply each as it arrives (`_on_frame`)."""
        loop = asyncio.get_running_loop()
        on_frame = self._on_frame
        while True:
            frame = await ws.recv()
            self._last_rx = loop.time()
            on_frame(frame)

    def _on_frame(self, frame: bytes | str) -> None:
        """The hot path (issue 14): one decode, one pass that keeps each symbol's newest
        quote *by its venue time* ``t`` (ties: the later in the frame; a delayed quote
        earlier in time never wins, review 2), then the cache update."""
        now = self._clock()
        self._last_frame = now
        try:
            messages = self._decoder.decode(frame)
        except msgspec.DecodeError as exc:
            log.error(
                "stream_frame_undecodable", stream="market", error=str(exc), frame=frame[:200]
            )
            return
        ordered = _by_venue_time(messages)
        if ordered is not None:
            self._on_ordered_quotes(ordered, now)
            return
        latest: dict[str, QuoteMsg] = {}
        others: list[Decoded] = []
        for message in messages:
            if message.__class__ is QuoteMsg:
                # `_older` inline (a call per quote is a measurable share of ingest); one
                # frame shares one receipt time, so no cap at receipt is needed here
                kept = latest.get(message.S)
                if (
                    kept is not None
                    and (t := message.t) is not None
                    and (kept_t := kept.t) is not None
                    and t < kept_t
                ):
                    continue
                latest[message.S] = message
            else:
                others.append(message)
        if latest:
            self._on_quotes(latest, now)
        for message in others:
            self._handle(message, now)

    def _on_ordered_quotes(self, ordered: list[QuoteMsg], now: datetime) -> None:
        """Cache a frame of stamped quotes sorted by venue time (`_by_venue_time`): the
        common frame, in C-level steps only (issue 14 item 1).

        The last quote of a symbol is its newest, so the cache takes the frame's pairs in
        order (last wins: no per-frame dict first). None is older than its symbol's cached
        quote when the frame's first stamp is not before `_high_water` (`_keep_newer`);
        otherwise, or with late data for an unsubscribed symbol, `_on_quotes` judges each
        symbol.
        """
        names = list(map(_SYMBOL, ordered))
        first, last = ordered[0].t, ordered[-1].t
        assert first is not None  # `_by_venue_time`: all stamped
        assert last is not None
        if first < self._high_water or not self._wanted.issuperset(names):
            self._on_quotes(dict(zip(names, ordered, strict=True)), now, (first, last))
            return
        self._had_data = True
        self._latest.update(zip(names, ordered, strict=True))
        self._received.update(dict.fromkeys(names, now))
        # a cached quote counts as stamped no later than its receipt (`_older`)
        self._high_water = max(self._high_water, min(last, now))
        if self._halts.suspects:
            self._halts.quoting(dict(zip(names, ordered, strict=True)))
        self._wake_arrivals(names)

    def _on_quotes(
        self,
        latest: dict[str, QuoteMsg],
        now: datetime,
        span: tuple[datetime, datetime] | None = None,
    ) -> None:
        """Cache one frame's newest quote per symbol and wake their waiters (`span`: the
        frame's earliest and latest venue time, when the caller knows them).

        Every quote here is valid: the decoder drops (and logs) a NaN, infinite or
        negative price or size, or a time without UTC offset, so the previous NBBO stays
        (`wire.QuoteMsg`). A quote older by venue time than the cached one of its symbol
        (a delayed or replayed message) is dropped too: the cache never goes back in time.
        """
        if not latest.keys() <= self._wanted:  # a subset test allocates nothing
            # late data for a recently unsubscribed symbol (§4.1 step 7)
            for symbol in latest.keys() - self._wanted:
                del latest[symbol]
            if not latest:
                return
        if not self._keep_newer(latest, now, span):
            return
        self._had_data = True
        self._latest.update(latest)
        self._received.update(dict.fromkeys(latest, now))
        if self._halts.suspects:
            self._halts.quoting(latest)
        self._wake_arrivals(latest.keys())

    def _keep_newer(
        self,
        latest: dict[str, QuoteMsg],
        now: datetime,
        span: tuple[datetime, datetime] | None = None,
    ) -> bool:
        """Drop from `latest` each quote older by venue time than its symbol's cached one;
        False when none is left.

        Fast path: a frame whose earliest ``t`` (`span`'s first, else computed in C) is not
        before `_high_water` (no cached quote counts as stamped later) holds no older
        quote, and a feed in time order always takes it. Otherwise (a late quote, a quote
        without ``t``) each symbol is compared with its cached quote (`_older`).
        """
        earliest: datetime | None
        latest_t: datetime | None
        if span is not None:
            earliest, latest_t = span
        else:
            stamps = list(map(_STAMP, latest.values()))
            try:
                earliest, latest_t = min(stamps), max(stamps)
            except TypeError:  # a quote without `t`
                earliest = None
                latest_t = max((t for t in stamps if t is not None), default=None)
        if earliest is None or earliest < self._high_water:
            cache, received = self._latest, self._received
            older = [
                s
                for s, m in latest.items()
                if (c := cache.get(s)) is not None and _older(m, c, received[s])
            ]
            for symbol in older:
                log.debug(
                    "stream_quote_older",
                    stream="market",
                    symbol=symbol,
                    t=str(latest[symbol].t),
                    cached_t=str(cache[symbol].t),
                )
                del latest[symbol]
        if latest_t is not None:
            # a cached quote counts as stamped no later than its receipt (`_older`)
            self._high_water = max(self._high_water, min(latest_t, now))
        return bool(latest)

    def _handle(self, message: object, now: datetime) -> None:
        match message:
            case QuoteMsg():
                self._on_quotes({message.S: message}, now)
            case InvalidQuote():
                log.warning(
                    "stream_quote_invalid", stream="market", symbol=message.S, **message.fields
                )
            case InvalidTrade():
                log.warning(
                    "stream_trade_invalid", stream="market", symbol=message.S, **message.fields
                )
            case BrokenMessage():
                log.error(
                    "stream_message_undecodable",
                    stream="market",
                    tag=message.tag,
                    error=message.error,
                    message=repr(message.raw[:200]),  # msgpack is binary: readable, not base64
                )
            case TradeMsg():
                if message.S not in self._wanted:
                    return
                self._had_data = True
                self._last_message[message.S] = now
                # finite and > 0: bounded at decode (`wire.Positive`)
                self.vwap(message.S).add(exact(message.p), exact(message.s))
            case StatusMsg():
                if message.S not in self._wanted:
                    return
                self._had_data = True
                self._halts.on_status(message)
                # A leg waiting for a quote is woken to see the halt (or its end).
                self._arrived(message.S)
            case SubscriptionMsg():
                self._slots.answered({*message.quotes, *message.trades})
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
                if code == _SYMBOL_LIMIT:
                    self._on_symbol_limit()
                elif code in _SUBSCRIBE_REFUSALS:
                    self._slots.failed()
            case _:
                pass

    def _on_symbol_limit(self) -> None:
        """405 (§4.4, "subscriptions unchanged"): the symbols already streamed keep their
        quotes; the refused ones wait for a slot under the limit learned from the venue."""
        refused = self._slots.refused()
        log.error(
            "stream_symbol_limit_refused",
            stream="market",
            limit=self._slots.limit,
            refused=refused,
            streamed=len(self._slots.streamed),
        )
        self._sync_needed.set()
        self._note_waiting()

    def _on_disconnect(self) -> None:
        was_connected = self._connected.is_set()
        if was_connected:
            log.warning("stream_disconnected", stream="market", connection=self._generation)
        self._connected.clear()
        self._halts.suspect(None, self._latest)
        if was_connected:
            self._announce_link_change()

    def _announce_link_change(self) -> None:
        self._link_changes += 1
        event, self._link_changed = self._link_changed, asyncio.Event()
        event.set()
        future, self._link_future = self._link_future, None
        if future is not None and not future.done():
            future.set_result(None)
