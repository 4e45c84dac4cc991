"""REST reads: orders, account, positions, assets, clock, calendar and latest quotes.

The half of the REST gateway that changes nothing at the venue. Every read goes through
`RestHttp._read` (retried with backoff, budgeted with its priority; a read that is part
of a write queues and is withdrawn with it) and is parsed with alpaca-py's models
(`Order`, `TradeAccount`, `Position`, `Clock`, `Calendar`, `Asset`); its request models
(`GetOrdersRequest`, `GetCalendarRequest`) build the queries. Latest quotes come from
the market-data API as exact Decimals (`latest_quotes`), batched across callers
(`quote_batch`).
"""

from __future__ import annotations

import asyncio
import random
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

import aiohttp
import msgspec

from execd.adapters.budget import Priority, RequestBudget, Withdrawal
from execd.adapters.errors import MalformedResponse, NotFound
from execd.adapters.latest_quotes import LATEST_QUOTES_CHUNK, parse_latest_quotes
from execd.adapters.quote_batch import LatestQuoteBatcher
from execd.adapters.rest_answers import json_list, parse_model
from execd.adapters.rest_http import RestConfig, RestHttp
from execd.domain.quotes import Quote

with warnings.catch_warnings():
    # alpaca/trading/__init__.py imports its stream module, which imports the deprecated
    # websockets.legacy (SDK code, not ours; execd's streams use websockets' asyncio API).
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from alpaca.trading.models import Asset, Calendar, Clock, Order, Position, TradeAccount
    from alpaca.trading.requests import GetCalendarRequest, GetOrdersRequest

__all__ = ["VenueReads"]


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


class VenueReads(RestHttp):
    """The GETs execd makes, parsed; `quote_batch` coalesces single-symbol quote reads."""

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
        super().__init__(
            config, budget, data_budget=data_budget, rand=rand, clock=clock, session=session
        )
        self.quote_batch = LatestQuoteBatcher(self.latest_quotes)

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
        return parse_model(Order, answer.json())

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
        return parse_model(Order, answer.json())

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
        return [parse_model(Order, item) for item in json_list(answer)]

    async def account(
        self, *, withdraw: Withdrawal | None = None, priority: Priority = Priority.READ
    ) -> TradeAccount:
        """``GET /v2/account`` (§2.1); `SendWithdrawn` once `withdraw` is set before it is
        sent (a release wave of a plan that was stopped meanwhile). `priority`: a plan
        submit's reads queue as `Priority.VALIDATE`."""
        answer = await self._read("/v2/account", priority=priority, withdraw=withdraw)
        return parse_model(TradeAccount, answer.json())

    async def positions(self, *, priority: Priority = Priority.READ) -> list[Position]:
        """``GET /v2/positions`` (§2.2); `priority` as for `account`."""
        answer = await self._read("/v2/positions", priority=priority)
        return [parse_model(Position, item) for item in json_list(answer)]

    async def position(self, symbol: str) -> Position | None:
        """``GET /v2/positions/{symbol}`` (§2.2); None for ``position does not exist``."""
        try:
            answer = await self._read(f"/v2/positions/{symbol}")
        except NotFound:
            return None
        return parse_model(Position, answer.json())

    async def clock(self) -> Clock:
        """``GET /v2/clock`` (§2.3)."""
        return parse_model(Clock, (await self._read("/v2/clock")).json())

    async def calendar(
        self, start: date, end: date, *, priority: Priority = Priority.READ
    ) -> list[Calendar]:
        """``GET /v2/calendar`` (§2.4), both ends inclusive; `priority` as for `account`."""
        request = GetCalendarRequest(start=start, end=end)
        answer = await self._read(
            "/v2/calendar", _query(request.to_request_fields()), priority=priority
        )
        return [parse_model(Calendar, item) for item in json_list(answer)]

    async def asset(self, symbol: str, *, priority: Priority = Priority.READ) -> Asset:
        """``GET /v2/assets/{symbol}`` (§2.5); `NotFound` if unknown. `priority` as for
        `account` (a submit asks at `VALIDATE` about a symbol its cached list lacks)."""
        answer = await self._read(f"/v2/assets/{symbol}", priority=priority)
        return parse_model(Asset, answer.json())

    async def assets(self, *, priority: Priority = Priority.READ) -> list[Asset]:
        """``GET /v2/assets?status=active`` (§2.5): every active asset in one read, so plan
        validation costs one request a day, not one per leg (DESIGN.md O(1) reads).
        `priority` as for `account`."""
        answer = await self._read(
            "/v2/assets", {"status": "active", "asset_class": "us_equity"}, priority=priority
        )
        items = json_list(answer)
        # ~12,000 assets on Alpaca: ~0.3 s of model parsing, kept off the event loop.
        return await asyncio.to_thread(lambda: [parse_model(Asset, item) for item in items])

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
        absent: never valued at zero. Spends the data API's own budget, never the trading one
        (Alpaca limits the two apart, §0.4)."""
        wanted = sorted(set(symbols))
        found: dict[str, Quote] = {}
        for i in range(0, len(wanted), LATEST_QUOTES_CHUNK):
            chunk = wanted[i : i + LATEST_QUOTES_CHUNK]
            answer = await self._read(
                "/v2/stocks/quotes/latest",
                {"symbols": ",".join(chunk), "feed": self._config.feed},
                base=self._config.data_url,
                data_api=True,
            )
            try:
                found.update(parse_latest_quotes(answer.body, chunk, self._clock()))
            except msgspec.DecodeError as exc:
                raise MalformedResponse(f"latest quotes for {chunk[0]}...: {exc}") from exc
        return found
