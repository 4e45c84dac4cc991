"""The REST gateway's HTTP shell: sessions, the request budget, one attempt, a retried read.

Every request execd sends to Alpaca's REST APIs is one `RestHttp._attempt`: it takes a
slot of the shared `RequestBudget` with the request's priority, makes the last
send-or-not check (`last_check`) and turns aiohttp's failures into "no answer"
(`NoAnswer`) or "never sent" (`NotSent`). The order writes (`rest_writes`) and the
reads (`rest_reads`) are built on it; `rest.RestGateway` puts them together.

Natively async (one aiohttp `ClientSession` per pool, keep-alive, explicit total and
connect timeouts) because alpaca-py's client is synchronous, has no timeout and sleeps in
its retries (ALPACA.md §8.1).

Reads (GET) are repeated with jittered backoff on 429, 5xx, timeouts and resets, then
raise `RateLimited` or `VenueUnavailable`. Reads and writes have a connection pool each,
so a read (the calendar a submit validates against, the look-up that settles a lost
write) never waits for a connection behind order writes a slow venue holds.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import aiohttp
import structlog

from execd.adapters.backoff import BackoffPolicy
from execd.adapters.budget import Priority, QueuePlace, RequestBudget, Withdrawal
from execd.adapters.errors import SendExpired, SendWithdrawn, VenueUnavailable
from execd.adapters.last_check import CheckedRequest, last_check
from execd.adapters.rest_answers import Answer, NoAnswer, NotSent, answer_error

# The gateway's modules log under one name, as the single module did.
log = structlog.get_logger("execd.adapters.rest")

__all__ = ["RestConfig", "RestHttp"]


@dataclass(frozen=True, slots=True)
class RestConfig:
    """Where and how to talk REST. URLs are origins without ``/v2`` (§8.1)."""

    trading_url: str
    data_url: str
    key_id: str
    secret_key: str = field(repr=False)
    #: market-data feed for latest quotes (§5): "iex" for paper-only accounts.
    feed: str = "iex"
    total_timeout: float = 10.0
    connect_timeout: float = 3.0
    #: keep-alive connections per pool. Reads (GET) and writes have a pool each, so a read
    #: never queues behind writes an overloaded venue answers slowly.
    connections: int = 32
    #: attempts for a read (the first try included).
    read_attempts: int = 4
    #: no read attempt starts later than this after the first (seconds): a read waits up
    #: to `total_timeout` for a pooled connection and its answer, so attempts alone would
    #: let an unanswering venue hold a submit for attempts x total_timeout.
    read_window: float = 20.0
    #: attempts for a write, counting every resend after a look-up said 404.
    write_attempts: int = 4
    #: no copy of a write leaves later than this after the first (seconds): what a
    #: restart must wait out before an unanswered order can be called never sent.
    write_window: float = 30.0
    backoff: BackoffPolicy = field(
        default_factory=lambda: BackoffPolicy(initial=0.5, factor=2.0, maximum=8.0)
    )
    user_agent: str = "execd/0.1 aiohttp"


class RestHttp:
    """The machinery under `RestGateway`: two keep-alive pools, the budget, one exchange.

    Use as ``async with``. `clock` gives the venue-corrected current time; `rand` feeds
    the backoff jitter.
    """

    def __init__(
        self,
        config: RestConfig,
        budget: RequestBudget,
        *,
        data_budget: RequestBudget | None = None,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._config = config
        self._budget = budget
        # Alpaca limits the market-data API apart from trading (§0.4): quote reads spend
        # their own budget, never the one that paces orders and cancels.
        self._data_budget = data_budget or RequestBudget(read_reserve=0)
        self._rand = rand
        self._clock = clock
        self._session = session
        self._read_session = session
        self._owns_session = session is None

    async def __aenter__(self) -> Self:
        if self._session is None:
            total, connect = self._config.total_timeout, self._config.connect_timeout
            # A write that cannot get a connection soon fails (and is settled by look-up)
            # rather than go out late at a stale price: `connect` bounds the pool's wait too.
            self._session = self._new_session(aiohttp.ClientTimeout(total, connect=connect))
            # A read waits its turn for a connection, bounded by the total timeout only;
            # `sock_connect` still bounds reaching the venue. Charging the wait to the
            # connect timeout failed reads that were never sent, and each retry went back
            # to the end of the queue (a refused submit on an overloaded venue, issue 14).
            self._read_session = self._new_session(
                aiohttp.ClientTimeout(total, sock_connect=connect)
            )
        return self

    def _new_session(self, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
        """One pool of keep-alive connections (the gateway opens two: reads, writes)."""
        return aiohttp.ClientSession(
            timeout=timeout,
            connector=aiohttp.TCPConnector(limit=self._config.connections, keepalive_timeout=60.0),
            request_class=CheckedRequest,  # `_attempt`'s check, once a connection is had
            headers={
                "APCA-API-KEY-ID": self._config.key_id,
                "APCA-API-SECRET-KEY": self._config.secret_key,
                "User-Agent": self._config.user_agent,
            },
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the sessions (keep-alive connections included) if this gateway opened them."""
        if self._owns_session:
            for session in (self._session, self._read_session):
                if session is not None:
                    await session.close()
        self._session = self._read_session = None

    @property
    def budget(self) -> RequestBudget:
        """The trading API's request budget this gateway spends (for `health`)."""
        return self._budget

    @property
    def data_budget(self) -> RequestBudget:
        """The market-data API's request budget (latest-quote reads)."""
        return self._data_budget

    def _delays(self) -> Iterator[float]:
        return self._config.backoff.delays(self._rand)

    async def _attempt(
        self,
        method: str,
        base: str,
        path: str,
        priority: Priority,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        send_by: float | None = None,
        withdraw: Withdrawal | None = None,
        place: QueuePlace | None = None,
        data_api: bool = False,
    ) -> Answer:
        """One HTTP exchange, inside a budget slot. `NoAnswer` if no status came back.

        `send_by` (loop time): raise `SendExpired` instead of sending once it is reached;
        `withdraw`: raise `SendWithdrawn` instead of sending once it is set (while waiting
        for the slot, at once). Both are checked when the slot is granted and again once
        aiohttp has a pooled connection for the request, right before its first byte is
        written (`last_check`; a place could wait up to the connect timeout for one): a
        request is sent or it is not. A check that fails gives the grant back unused.
        `place`: the budget's line is joined where this request first joined it.
        `data_api`: a market-data request, in the data API's own budget.
        """
        session = self._read_session if method == "GET" else self._session
        if session is None:
            raise RuntimeError("RestGateway used outside `async with`")
        data = None if body is None else json.dumps(body)
        headers = None if body is None else {"Content-Type": "application/json"}

        async def exchange() -> Answer:
            with last_check(check_send_by):
                async with session.request(
                    method, base + path, params=params, data=data, headers=headers
                ) as response:
                    return Answer(response.status, await response.read(), response.headers)

        def check_send_by() -> None:
            if withdraw is not None and withdraw.is_set():
                raise SendWithdrawn(f"{method} {path}: not sent, withdrawn by its caller")
            if send_by is not None and asyncio.get_running_loop().time() >= send_by:
                raise SendExpired(f"{method} {path}: not sent, its pricing quote went stale")

        try:
            budget = self._data_budget if data_api else self._budget
            async with budget.slot(priority, withdraw, place, send_by) as slot:
                slot.penalty = self._config.backoff.initial
                try:
                    check_send_by()
                    answer = await exchange()
                except (SendExpired, SendWithdrawn):
                    slot.unused()  # never sent: the grant goes back whole
                    raise
                slot.observe(answer.status, answer.headers)
                return answer
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            raise NotSent(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise NoAnswer(f"{method} {path}: {type(exc).__name__}: {exc}") from exc

    async def _read(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        base: str | None = None,
        priority: Priority = Priority.READ,
        withdraw: Withdrawal | None = None,
        data_api: bool = False,
    ) -> Answer:
        """A GET, repeated with backoff on 429, 5xx and lost answers (`SendWithdrawn` once
        `withdraw` is set before it is sent)."""
        delays = self._delays()
        last: Exception = VenueUnavailable(path)
        loop = asyncio.get_running_loop()
        closes = loop.time() + self._config.read_window
        for attempt in range(1, self._config.read_attempts + 1):
            try:
                answer = await self._attempt(
                    "GET",
                    base or self._config.trading_url,
                    path,
                    priority,
                    params=params,
                    withdraw=withdraw,
                    data_api=data_api,
                )
            except NoAnswer as exc:
                last = VenueUnavailable(str(exc))
                last.__cause__ = exc
            else:
                if answer.status < 300:
                    return answer
                error = answer_error(answer)
                if answer.status != 429 and answer.status < 500:
                    raise error
                last = error
            if attempt == self._config.read_attempts:
                break
            delay = next(delays)
            if loop.time() + delay > closes:
                break  # the next attempt would start after the read's window
            await self._sleep(delay, "GET " + path, attempt, last)
        raise last

    async def _sleep(self, delay: float, what: str, attempt: int, reason: Exception) -> None:
        log.warning(
            "rest_retrying",
            request=what,
            attempt=attempt,
            delay=round(delay, 3),
            reason=str(reason),
        )
        await asyncio.sleep(delay)
