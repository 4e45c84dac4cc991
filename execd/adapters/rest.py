"""The REST gateway: the only code that calls Alpaca's trading and market-data REST APIs.

Natively async (one aiohttp `ClientSession`, keep-alive, explicit total and connect
timeouts) because alpaca-py's client is synchronous, has no timeout and sleeps in
its retries (ALPACA.md §8.1). alpaca-py still defines the wire format: its request
models build every body and query (`MarketOrderRequest`, `LimitOrderRequest`,
`ReplaceOrderRequest`, `GetOrdersRequest`, `GetCalendarRequest`) and its models parse
every trading answer (`Order`, `TradeAccount`, `Position`, `Clock`, `Calendar`,
`Asset`). Its request models type prices as floats, so after `to_request_fields()`
the gateway overwrites ``qty``/``notional``/``limit_price`` with exact decimal
strings — nothing execd sends goes through a binary float (Alpaca accepts strings,
§0.3).

Every request passes through the shared `RequestBudget` with its priority.

Retries, and the rule that matters most
---------------------------------------
Reads (GET) are repeated with jittered backoff on 429, 5xx, timeouts and resets,
then raise `RateLimited` or `VenueUnavailable`. Reads and writes have a connection pool
each, so a read (the calendar a submit validates against, the look-up that settles a
lost write) never waits for a connection behind order writes a slow venue holds.

A write whose answer is lost is never repeated blind. ``POST /v2/orders`` that times
out, is reset or answers 5xx is resolved by asking for the order by its client order
id first: if the venue has it, that is the answer; only when the venue says 404 is
the same request (same client order id) sent again — and Alpaca's "client_order_id
must be unique" (§0.5) turns even an unlucky resend into a refusal, which is itself
resolved by the same look-up. ``PATCH`` is resolved the same way through the *new*
client order id (§1.7). ``DELETE`` is resolved by re-reading the order (§1.8). When
the look-up itself cannot be done, the caller gets `OutcomeUnknown` and must
reconcile before acting. A 429 on a write is repeated after the budget's wait,
because Alpaca rejects it before processing it.
"""

from __future__ import annotations

import asyncio
import json
import random
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
import msgspec
import pydantic
import structlog

from execd.adapters.backoff import BackoffPolicy
from execd.adapters.budget import Priority, RequestBudget, Withdrawal
from execd.adapters.errors import (
    MalformedResponse,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    SendExpired,
    SendWithdrawn,
    Unauthorized,
    VenueRefused,
    VenueUnavailable,
)
from execd.adapters.last_check import CheckedRequest, last_check
from execd.adapters.latest_quotes import LATEST_QUOTES_CHUNK, parse_latest_quotes
from execd.adapters.quote_batch import LatestQuoteBatcher
from execd.domain.quotes import Quote
from execd.domain.types import Side

with warnings.catch_warnings():
    # alpaca/trading/__init__.py imports its stream module, which imports the deprecated
    # websockets.legacy (SDK code, not ours; execd's streams use websockets' asyncio API).
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.models import Asset, Calendar, Clock, Order, Position, TradeAccount
    from alpaca.trading.requests import (
        GetCalendarRequest,
        GetOrdersRequest,
        LimitOrderRequest,
        MarketOrderRequest,
        ReplaceOrderRequest,
    )

log = structlog.get_logger(__name__)

__all__ = ["Order", "RestConfig", "RestGateway", "wire_decimal"]

#: order statuses after which a DELETE can no longer take effect (§1.9).
_TERMINAL = frozenset({"filled", "expired", "replaced", "rejected", "done_for_day"})
_CANCELLING = frozenset({"canceled", "pending_cancel"})
_ALREADY_CANCELED = 'already in "canceled" state'


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


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise MalformedResponse(f"{self.status}: body is not JSON") from exc


class _NoAnswer(Exception):
    """A request that got no HTTP answer (timeout, reset, refused connection)."""


class _NotSent(_NoAnswer):
    """A request that never left: no connection could be had (refused, or none free and
    none opened within the connect timeout). aiohttp raises these before writing a byte,
    so a write that fails so is not uncertain: there is nothing at the venue to settle."""


def wire_decimal(value: Decimal) -> str:
    """A Decimal as Alpaca wants it: plain notation, never an exponent (§0.3)."""
    if not value.is_finite():
        raise ValueError(f"not a finite number: {value}")
    return format(value, "f")


def _query_value(value: Any) -> str:
    """aiohttp's query accepts only str/int/float; alpaca-py's models hold enums and bools."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, list):
        return ",".join(_query_value(v) for v in value)
    return str(value)


def _query(fields: Mapping[str, Any]) -> dict[str, str]:
    return {key: _query_value(value) for key, value in fields.items()}


_M = TypeVar("_M", bound=pydantic.BaseModel)


class RestGateway:
    """Async Alpaca REST client: use as ``async with RestGateway(config, budget) as rest``.

    `clock` gives the venue-corrected current time (stamps `Quote.as_of` on latest
    quotes); `rand` feeds the backoff jitter.
    """

    def __init__(
        self,
        config: RestConfig,
        budget: RequestBudget,
        *,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._config = config
        self._budget = budget
        self._rand = rand
        self._clock = clock
        self._session = session
        self._read_session = session
        self._owns_session = session is None
        self.quote_batch = LatestQuoteBatcher(self.latest_quotes)

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
        """The request budget this gateway spends (for `health`)."""
        return self._budget

    # ------------------------------------------------------------------ orders

    async def submit_order(
        self,
        *,
        symbol: str,
        side: Side,
        client_order_id: str,
        qty: Decimal | None = None,
        notional: Decimal | None = None,
        limit_price: Decimal | None = None,
        time_in_force: str = "day",
        extended_hours: bool = False,
        send_within: float | None = None,
        withdraw: Withdrawal | None = None,
    ) -> Order:
        """``POST /v2/orders`` (§1.1): a limit order when `limit_price` is given, else market.

        Never creates two orders: see the module docstring. Raises `VenueRefused`
        (403/422, e.g. ``insufficient qty available for order …``), `RateLimited`,
        or `OutcomeUnknown`. `send_within` (seconds from now, when its price comes from a
        quote): the order is not sent for the first time after it (`SendExpired`).
        `withdraw` set while no copy can have been sent (waiting for the budget, or only
        429s back): the order is not sent (`SendWithdrawn`); set once a copy may have
        left (a lost answer), no copy is sent again and the outcome is `OutcomeUnknown`.
        """
        common: dict[str, Any] = {
            "symbol": symbol,
            "side": OrderSide(side.value),
            "qty": qty,
            "notional": notional,
            "time_in_force": TimeInForce(time_in_force),
            "client_order_id": client_order_id,
            "extended_hours": extended_hours or None,
        }
        request = (
            MarketOrderRequest(**common)
            if limit_price is None
            else LimitOrderRequest(**common, limit_price=limit_price)
        )
        body: dict[str, Any] = request.to_request_fields()
        _exact(body, qty=qty, notional=notional, limit_price=limit_price)
        return await self._write_order(
            "submit_order",
            "POST",
            "/v2/orders",
            body,
            client_order_id,
            Priority.NEW_ORDER,
            send_within=send_within,
            withdraw=withdraw,
        )

    async def replace_order(
        self,
        order_id: str,
        qty: Decimal | None,
        limit_price: Decimal | None,
        client_order_id: str,
        *,
        send_within: float | None = None,
        withdraw: Withdrawal | None = None,
    ) -> Order:
        """``PATCH /v2/orders/{id}`` (§1.7): the answer is the *new* order (new id).

        `qty` must be whole shares (Alpaca cannot change a fractional qty). A 200 does
        not guarantee the replace: it can still be rejected on the stream if the old
        order fills first. Resolved by the new `client_order_id` when the answer is
        lost. Raises `VenueRefused` (e.g. ``unable to replace order, order isn't sent
        to exchange yet``), `NotFound`, `RateLimited`, `OutcomeUnknown`, and
        `SendExpired`/`SendWithdrawn` as `submit_order` does for `send_within`/`withdraw`.
        """
        if qty is not None and qty != qty.to_integral_value():
            raise ValueError(f"replace qty must be whole shares, got {qty}")
        request = ReplaceOrderRequest(
            qty=int(qty) if qty is not None else None,
            limit_price=limit_price,
            client_order_id=client_order_id,
        )
        body: dict[str, Any] = request.to_request_fields()
        _exact(body, qty=qty, notional=None, limit_price=limit_price)
        return await self._write_order(
            "replace_order",
            "PATCH",
            f"/v2/orders/{order_id}",
            body,
            client_order_id,
            Priority.REPLACE,
            send_within=send_within,
            withdraw=withdraw,
        )

    async def cancel_order(self, order_id: str) -> None:
        """``DELETE /v2/orders/{id}`` (§1.8): returns once the venue accepted the cancel.

        The final ``canceled`` arrives on the stream. Raises `VenueRefused` (422 —
        `.already_filled` for ``order is already in "filled" state``: a fill, not a
        failure), `NotFound`, `RateLimited`, `OutcomeUnknown`. A lost answer is
        resolved by re-reading the order: ``canceled``/``pending_cancel`` means done; a
        terminal status is reported as the venue itself words it; an open order gets
        the DELETE again.
        """
        path = f"/v2/orders/{order_id}"
        delays = self._delays()
        ambiguous = False
        last: Exception = RateLimited("cancel_order rate limited")
        for attempt in range(1, self._config.write_attempts + 1):
            try:
                answer = await self._attempt(
                    "DELETE", self._config.trading_url, path, Priority.CANCEL
                )
            except _NoAnswer as exc:
                ambiguous, last = True, exc
            else:
                if answer.status < 300:
                    return
                if answer.status >= 500:
                    ambiguous, last = True, self._error(answer)
                elif answer.status == 429:
                    last = self._error(answer)
                else:
                    error = self._error(answer)
                    if isinstance(error, VenueRefused) and _ALREADY_CANCELED in error.message:
                        return  # dead already: our earlier DELETE, or the venue's own cancel
                    raise error
            if not ambiguous:
                if attempt == self._config.write_attempts:
                    break
                await self._sleep(next(delays), "cancel_order", attempt, last)
                continue
            # The DELETE may or may not have landed: the order itself says which.
            await self._sleep(next(delays), "cancel_order", attempt, last)
            order = await self._resolve_read(
                "cancel_order", f"/v2/orders/{order_id}", None, order_id, Priority.CANCEL
            )
            if order is None:
                raise NotFound(f"order {order_id} not found after an unanswered cancel")
            status = str(order.status.value)
            log.info(
                "order_outcome_resolved", operation="cancel_order", order_id=order_id, status=status
            )
            if status in _CANCELLING:
                return
            if status in _TERMINAL:
                raise VenueRefused(422, None, f'order is already in "{status}" state')
            ambiguous = False  # still open, so the DELETE did not land: send it again
            if attempt == self._config.write_attempts:
                last = VenueUnavailable(f"cancel of {order_id} not accepted; order is {status}")
                break
        if ambiguous:
            raise OutcomeUnknown("cancel_order", None, order_id) from last
        raise last

    async def get_order(
        self,
        order_id: str,
        priority: Priority = Priority.READ,
        *,
        withdraw: Withdrawal | None = None,
    ) -> Order:
        """``GET /v2/orders/{id}`` (§1.6); `NotFound` if unknown. A read that is part of a
        write (the look-up before a replace) queues with that write's `priority`, and is
        withdrawn with it (`SendWithdrawn` once `withdraw` is set before it is sent)."""
        answer = await self._read(f"/v2/orders/{order_id}", priority=priority, withdraw=withdraw)
        return _parse(Order, answer.json())

    async def get_order_by_client_id(
        self,
        client_order_id: str,
        priority: Priority = Priority.READ,
        *,
        withdraw: Withdrawal | None = None,
    ) -> Order | None:
        """``GET /v2/orders:by_client_order_id`` (§1.6); None when the venue says 404.
        `priority` and `withdraw` as for `get_order`."""
        try:
            answer = await self._read(
                "/v2/orders:by_client_order_id",
                {"client_order_id": client_order_id},
                priority=priority,
                withdraw=withdraw,
            )
        except NotFound:
            return None
        return _parse(Order, answer.json())

    async def list_orders(
        self,
        status: str = "open",
        after: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        nested: bool | None = None,
        *,
        direction: str | None = None,
        symbols: list[str] | None = None,
        after_order_id: str | None = None,
        priority: Priority = Priority.READ,
        withdraw: Withdrawal | None = None,
    ) -> list[Order]:
        """``GET /v2/orders`` (§1.5): `after`/`until` are exclusive, on submission time;
        `after_order_id` is an exclusive cursor in the listing's order (not combined with
        `after`/`until`; alpaca-py's `GetOrdersRequest` lacks it, so it is sent raw).

        At most `limit` (≤ 500) orders come back; reconcile wider ranges page by page. A
        listing that is part of cancelling (the kill switch) queues as a cancel; one that
        is part of sending an order may be withdrawn with it (`SendWithdrawn`).
        """
        request = GetOrdersRequest(
            status=status,
            after=after,
            until=until,
            limit=limit,
            nested=nested,
            direction=direction,
            symbols=symbols,
        )
        query = _query(request.to_request_fields())
        if after_order_id is not None:
            query["after_order_id"] = after_order_id
        answer = await self._read("/v2/orders", query, priority=priority, withdraw=withdraw)
        return [_parse(Order, item) for item in _list(answer)]

    # ------------------------------------------------------------------ account, market

    async def account(
        self, *, withdraw: Withdrawal | None = None, priority: Priority = Priority.READ
    ) -> TradeAccount:
        """``GET /v2/account`` (§2.1); `SendWithdrawn` once `withdraw` is set before it is
        sent (a release wave of a plan that was stopped meanwhile). `priority`: a plan
        submit's reads queue as `Priority.VALIDATE`."""
        answer = await self._read("/v2/account", priority=priority, withdraw=withdraw)
        return _parse(TradeAccount, answer.json())

    async def positions(self, *, priority: Priority = Priority.READ) -> list[Position]:
        """``GET /v2/positions`` (§2.2); `priority` as for `account`."""
        answer = await self._read("/v2/positions", priority=priority)
        return [_parse(Position, item) for item in _list(answer)]

    async def position(self, symbol: str) -> Position | None:
        """``GET /v2/positions/{symbol}`` (§2.2); None for ``position does not exist``."""
        try:
            answer = await self._read(f"/v2/positions/{symbol}")
        except NotFound:
            return None
        return _parse(Position, answer.json())

    async def clock(self) -> Clock:
        """``GET /v2/clock`` (§2.3)."""
        return _parse(Clock, (await self._read("/v2/clock")).json())

    async def calendar(
        self, start: date, end: date, *, priority: Priority = Priority.READ
    ) -> list[Calendar]:
        """``GET /v2/calendar`` (§2.4), both ends inclusive; `priority` as for `account`."""
        request = GetCalendarRequest(start=start, end=end)
        answer = await self._read(
            "/v2/calendar", _query(request.to_request_fields()), priority=priority
        )
        return [_parse(Calendar, item) for item in _list(answer)]

    async def asset(self, symbol: str) -> Asset:
        """``GET /v2/assets/{symbol}`` (§2.5); `NotFound` if unknown."""
        return _parse(Asset, (await self._read(f"/v2/assets/{symbol}")).json())

    async def assets(self, *, priority: Priority = Priority.READ) -> list[Asset]:
        """``GET /v2/assets?status=active`` (§2.5): every active asset in one read, so plan
        validation costs one request a day, not one per leg (DESIGN.md O(1) reads).
        `priority` as for `account`."""
        answer = await self._read(
            "/v2/assets", {"status": "active", "asset_class": "us_equity"}, priority=priority
        )
        items = _list(answer)
        # ~12,000 assets on Alpaca: ~0.3 s of model parsing, kept off the event loop.
        return await asyncio.to_thread(lambda: [_parse(Asset, item) for item in items])

    async def latest_quote(self, symbol: str) -> Quote | None:
        """One symbol's latest quote (None: the venue has none yet), read in a batch with
        every other symbol asked for meanwhile (`quote_batch`: one read per wave)."""
        return await self.quote_batch.get(symbol)

    async def latest_quotes(self, symbols: Iterable[str]) -> dict[str, Quote]:
        """The latest NBBO of each symbol from the market-data REST API (§5), exact Decimals,
        in one read per `LATEST_QUOTES_CHUNK` symbols (``?symbols=A,B,...``): valuing or
        sizing a plan costs O(1) reads, not one per leg (DESIGN.md "O(1) reads per wave").

        `as_of` is each quote's own timestamp ``t`` (capped at receipt), so an answer is
        judged like a streamed quote (DESIGN.md "Fresh quote"); one without ``t`` is stamped
        at receipt. A symbol the answer omits (no quote yet) or that was not asked for is
        absent: never valued at zero. Does not spend the trading budget (market data has
        its own limit)."""
        wanted = sorted(set(symbols))
        found: dict[str, Quote] = {}
        for i in range(0, len(wanted), LATEST_QUOTES_CHUNK):
            chunk = wanted[i : i + LATEST_QUOTES_CHUNK]
            answer = await self._read(
                "/v2/stocks/quotes/latest",
                {"symbols": ",".join(chunk), "feed": self._config.feed},
                base=self._config.data_url,
                priority=None,
            )
            try:
                found.update(parse_latest_quotes(answer.body, chunk, self._clock()))
            except msgspec.DecodeError as exc:
                raise MalformedResponse(f"latest quotes for {chunk[0]}...: {exc}") from exc
        return found

    # ------------------------------------------------------------------ machinery

    def _delays(self) -> Iterator[float]:
        return self._config.backoff.delays(self._rand)

    async def _attempt(
        self,
        method: str,
        base: str,
        path: str,
        priority: Priority | None,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        send_by: float | None = None,
        withdraw: Withdrawal | None = None,
    ) -> _Answer:
        """One HTTP exchange, inside a budget slot. `_NoAnswer` if no status came back.

        `send_by` (loop time): raise `SendExpired` instead of sending once it is reached;
        `withdraw`: raise `SendWithdrawn` instead of sending once it is set (while waiting
        for the slot, at once). Both are checked when the slot is granted and again once
        aiohttp has a pooled connection for the request, right before its first byte is
        written (`last_check`; a place could wait up to the connect timeout for one): a
        request is sent or it is not. A check that fails gives the grant back unused.
        """
        session = self._read_session if method == "GET" else self._session
        if session is None:
            raise RuntimeError("RestGateway used outside `async with`")
        data = None if body is None else json.dumps(body)
        headers = None if body is None else {"Content-Type": "application/json"}

        async def exchange() -> _Answer:
            with last_check(check_send_by):
                async with session.request(
                    method, base + path, params=params, data=data, headers=headers
                ) as response:
                    return _Answer(response.status, await response.read(), response.headers)

        def check_send_by() -> None:
            if withdraw is not None and withdraw.is_set():
                raise SendWithdrawn(f"{method} {path}: not sent, withdrawn by its caller")
            if send_by is not None and asyncio.get_running_loop().time() >= send_by:
                raise SendExpired(f"{method} {path}: not sent, its pricing quote went stale")

        try:
            if priority is None:
                check_send_by()
                return await exchange()
            async with self._budget.slot(priority, withdraw) as slot:
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
            raise _NotSent(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _NoAnswer(f"{method} {path}: {type(exc).__name__}: {exc}") from exc

    async def _read(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        base: str | None = None,
        priority: Priority | None = Priority.READ,
        withdraw: Withdrawal | None = None,
    ) -> _Answer:
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
                )
            except _NoAnswer as exc:
                last = VenueUnavailable(str(exc))
                last.__cause__ = exc
            else:
                if answer.status < 300:
                    return answer
                error = self._error(answer)
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

    async def _write_order(
        self,
        operation: str,
        method: str,
        path: str,
        body: Mapping[str, Any],
        client_order_id: str,
        priority: Priority,
        *,
        send_within: float | None = None,
        withdraw: Withdrawal | None = None,
    ) -> Order:
        """POST or PATCH that yields an order, resolved by client order id when unsure.

        A 429 is a definite "not processed" (ALPACA.md §0.4): it is sent again as soon as
        the budget grants a slot (the budget backs off after it), without using up one of
        the `write_attempts`, until the write window closes (issue 11 §6: a storm of 429s
        used to exhaust the attempts and end the leg).

        While no copy can have reached the venue (nothing sent yet, or only 429s back),
        the write is not sent after `send_within` seconds: `SendExpired`, the order
        does not exist; likewise once `withdraw` is set (`SendWithdrawn`). Once an
        attempt's fate is unknown the exactly-once rules above apply unchanged (the same
        body, resolved by client order id) and `send_within` no longer applies. The
        withdrawal still stops the resending: an uncertain attempt is always settled by a
        look-up before another copy is sent, and a stopped leg's write sends no further
        copy (review 4: a cancelled or halted plan's place used to be re-sent after the
        look-up's 404). But a 404 only proves the venue has not processed the lost copy
        *yet*: the write then ends `OutcomeUnknown`, never `SendWithdrawn` (review 6: a
        late PATCH landed after the replace was called unsent). If the look-up finds it,
        it is the leg's order, returned as usual (the stopping leg cancels it).
        """
        delays = self._delays()
        ambiguous = False
        last: Exception = RateLimited(f"{operation} rate limited")
        loop = asyncio.get_running_loop()
        closes = loop.time() + self._config.write_window
        send_by = None if send_within is None else loop.time() + send_within
        attempt = sent = 0
        while attempt < self._config.write_attempts:
            attempt += 1
            sent += 1
            if sent > 1 and loop.time() > closes:
                log.error(
                    "order_write_window_closed",
                    operation=operation,
                    client_order_id=client_order_id,
                    attempts=sent - 1,
                )
                break
            try:
                answer = await self._attempt(
                    method,
                    self._config.trading_url,
                    path,
                    priority,
                    body=body,
                    send_by=None if ambiguous else send_by,
                    # Every earlier uncertain copy was looked up and found absent (below).
                    withdraw=withdraw,
                )
            except SendWithdrawn as exc:
                if ambiguous:
                    # An earlier copy may have left. A look-up's 404 only says the venue
                    # has not processed it *yet* (a lost answer can still be on its way):
                    # withdrawn or not, its outcome is unknown, never "not sent" (review 6).
                    log.warning(
                        "order_write_withdrawn_uncertain",
                        operation=operation,
                        client_order_id=client_order_id,
                        sent=sent - 1,
                    )
                    raise OutcomeUnknown(operation, client_order_id, None) from exc
                log.info(
                    "order_write_withdrawn",
                    operation=operation,
                    client_order_id=client_order_id,
                    sent=sent - 1,
                )
                raise
            except SendExpired:
                log.warning(
                    "order_write_expired",
                    operation=operation,
                    client_order_id=client_order_id,
                    sent=sent - 1,
                )
                raise
            except _NotSent as exc:
                # Never left (no connection): not uncertain, so no look-up — sent again
                # after the backoff, like any attempt (issue 14: unsent orders on an
                # overloaded venue made a storm of look-ups that timed out in turn).
                last = exc
                log.warning(
                    "order_write_not_sent",
                    operation=operation,
                    client_order_id=client_order_id,
                    attempt=attempt,
                    reason=str(exc),
                )
            except _NoAnswer as exc:
                ambiguous, last = True, exc
            else:
                if answer.status < 300:
                    return _parse(Order, answer.json())
                error = self._error(answer)
                if answer.status >= 500:
                    ambiguous, last = True, error
                elif answer.status == 429:
                    last = error
                    if not ambiguous:
                        attempt -= 1  # not processed: the budget's backoff is the wait
                        log.warning(
                            "order_write_rate_limited",
                            operation=operation,
                            client_order_id=client_order_id,
                            sent=sent,
                        )
                        continue
                else:
                    if ambiguous:
                        # An earlier attempt may have landed: a duplicate client order id
                        # (422) or "pending_replace" refusal is then our own order.
                        found = await self._resolve_by_client_id(
                            operation, client_order_id, priority
                        )
                        if found is not None:
                            return found
                    raise error
            if ambiguous:
                log.warning(
                    "order_outcome_uncertain",
                    operation=operation,
                    client_order_id=client_order_id,
                    attempt=attempt,
                    reason=str(last),
                )
                await asyncio.sleep(next(delays))
                found = await self._resolve_by_client_id(operation, client_order_id, priority)
                if found is not None:
                    return found
                if attempt == self._config.write_attempts:
                    break
                # The venue says it has no such order: sending the same client order id
                # again is safe (a late first copy would make this one a 422 duplicate).
                log.info(
                    "order_resent",
                    operation=operation,
                    client_order_id=client_order_id,
                    attempt=attempt + 1,
                )
            elif attempt < self._config.write_attempts:
                await self._sleep(next(delays), operation, attempt, last)
        if ambiguous:
            raise OutcomeUnknown(operation, client_order_id, None) from last
        if isinstance(last, _NotSent):
            # No copy left: the order does not exist; the leg sends it anew, priced afresh.
            raise SendExpired(f"{operation}: not sent, no connection to the venue") from last
        if isinstance(last, RateLimited):
            # Every answer was a 429 ("not processed", ALPACA.md §0.4): no copy exists, so
            # the order is not sent rather than refused, and the leg sends it anew (priced
            # afresh) until its deadline — a long storm never ends a leg (issue 11 §6).
            raise SendExpired(
                f"{operation}: not sent, rate limited until the write window closed"
            ) from last
        raise last

    async def _resolve_by_client_id(
        self, operation: str, client_order_id: str, priority: Priority
    ) -> Order | None:
        order = await self._resolve_read(
            operation,
            "/v2/orders:by_client_order_id",
            {"client_order_id": client_order_id},
            client_order_id,
            priority,
        )
        log.info(
            "order_outcome_resolved",
            operation=operation,
            client_order_id=client_order_id,
            found=order is not None,
            order_id=None if order is None else str(order.id),
        )
        return order

    async def _resolve_read(
        self,
        operation: str,
        path: str,
        params: Mapping[str, str] | None,
        key: str,
        priority: Priority,
    ) -> Order | None:
        """Read an order to settle an uncertain write.

        None when the venue says 404; `OutcomeUnknown` when it cannot be read at all.
        """
        try:
            answer = await self._read(path, params, priority=priority)
        except NotFound:
            return None
        except (VenueUnavailable, RateLimited) as exc:
            raise OutcomeUnknown(operation, key, None) from exc
        return _parse(Order, answer.json())

    async def _sleep(self, delay: float, what: str, attempt: int, reason: Exception) -> None:
        log.warning(
            "rest_retrying",
            request=what,
            attempt=attempt,
            delay=round(delay, 3),
            reason=str(reason),
        )
        await asyncio.sleep(delay)

    @staticmethod
    def _error(answer: _Answer) -> Exception:
        """Map a non-2xx answer to the errors.py tree, keeping Alpaca's code and message."""
        code: int | None = None
        message = answer.body.decode(errors="replace").strip()
        fields: dict[str, Any] | None = None
        try:
            decoded = json.loads(answer.body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            fields = decoded
            raw_code = decoded.get("code")
            code = raw_code if isinstance(raw_code, int) else None
            message = str(decoded.get("message", message))
        status = answer.status
        if status == 401:
            return Unauthorized(status, code, message, fields)
        if status == 404:
            return NotFound(message, code)
        if status == 429:
            return RateLimited(f"429 {code}: {message}")
        if status >= 500:
            return VenueUnavailable(f"{status} {code}: {message[:200]}")
        return VenueRefused(status, code, message, fields)


def _exact(
    body: dict[str, Any],
    *,
    qty: Decimal | None,
    notional: Decimal | None,
    limit_price: Decimal | None,
) -> None:
    """Replace alpaca-py's float renderings with exact decimal strings (§0.3)."""
    for name, value in (("qty", qty), ("notional", notional), ("limit_price", limit_price)):
        if value is not None:
            body[name] = wire_decimal(value)


def _list(answer: _Answer) -> list[Any]:
    decoded = answer.json()
    if not isinstance(decoded, list):
        raise MalformedResponse(f"expected a JSON array, got {type(decoded).__name__}")
    return decoded


def _parse(model: type[_M], data: Any) -> _M:
    """Parse with alpaca-py's model; its validation error becomes `MalformedResponse`."""
    if not isinstance(data, dict):
        raise MalformedResponse(f"{model.__name__}: expected an object")
    try:
        return model(**data)
    except pydantic.ValidationError as exc:
        raise MalformedResponse(f"{model.__name__}: {exc}") from exc
