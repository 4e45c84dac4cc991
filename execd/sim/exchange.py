"""The simulated venue's engine: Alpaca's order rules over a matching engine, account, market.

Everything here is synchronous and I/O-free except :meth:`Exchange.run`, which only paces the
engine against the venue clock. Venue-side work (acks, matching, fill reports, cancels, market
ticks) is a time-ordered schedule; :meth:`Exchange.advance_to` processes it up to a venue time,
which is how unit tests drive the venue without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from execd.sim.clock import VenueClock
from execd.sim.config import SimConfig

TradeUpdateListener = Callable[[dict[str, Any]], None]
MarketDataListener = Callable[[dict[str, Any]], None]


class Exchange:
    """One Alpaca account on one simulated market. All answers are JSON-ready dicts in Alpaca's wire
    shape (decimals as strings, RFC 3339 timestamps); refusals raise :class:`SimError`."""

    def __init__(self, config: SimConfig, clock: VenueClock) -> None:
        raise NotImplementedError

    # -- driving ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Drive the market (quotes, trades, bars, resting-order fills) in step with the clock until
        cancelled."""
        raise NotImplementedError

    def advance_to(self, when: datetime) -> None:
        """Process every scheduled venue event up to venue time `when` (tests, and `run`)."""
        raise NotImplementedError

    def advance(self, seconds: float) -> None:
        """Manual clocks: move the clock forward `seconds`, processing events at their own times."""
        raise NotImplementedError

    # -- trading ------------------------------------------------------------------------------

    def submit_order(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /v2/orders: validate per Alpaca's rules and accept; the order reaches the book after
        the ack latency."""
        raise NotImplementedError

    def replace_order(self, order_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH /v2/orders/{id}: returns the new order (new id, `replaces`)."""
        raise NotImplementedError

    def cancel_order(self, order_id: str) -> None:
        """DELETE /v2/orders/{id}: accepted (204); `canceled` follows on the stream."""
        raise NotImplementedError

    def cancel_all_orders(self) -> list[dict[str, Any]]:
        """DELETE /v2/orders: 207 entries ``{"id","status","body"}``."""
        raise NotImplementedError

    def get_order(self, order_id: str, nested: bool = False) -> dict[str, Any]:
        """GET /v2/orders/{id}."""
        raise NotImplementedError

    def get_order_by_client_id(self, client_order_id: str) -> dict[str, Any]:
        """GET /v2/orders:by_client_order_id."""
        raise NotImplementedError

    def list_orders(
        self,
        *,
        status: str = "open",
        limit: int = 50,
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "desc",
        symbols: Sequence[str] | None = None,
        side: str | None = None,
        nested: bool = False,
    ) -> list[dict[str, Any]]:
        """GET /v2/orders."""
        raise NotImplementedError

    def account(self) -> dict[str, Any]:
        """GET /v2/account."""
        raise NotImplementedError

    def positions(self) -> list[dict[str, Any]]:
        """GET /v2/positions."""
        raise NotImplementedError

    def position(self, symbol: str) -> dict[str, Any]:
        """GET /v2/positions/{symbol}; 404 `position does not exist`."""
        raise NotImplementedError

    def close_position(
        self, symbol: str, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> dict[str, Any]:
        """DELETE /v2/positions/{symbol}: market-sell the position (or part); returns the order."""
        raise NotImplementedError

    def clock_json(self) -> dict[str, Any]:
        """GET /v2/clock."""
        raise NotImplementedError

    def calendar(self, start: date, end: date) -> list[dict[str, Any]]:
        """GET /v2/calendar (half days included)."""
        raise NotImplementedError

    def asset(self, symbol: str) -> dict[str, Any]:
        """GET /v2/assets/{symbol}; 404 for unknown symbols."""
        raise NotImplementedError

    def assets(self) -> list[dict[str, Any]]:
        """GET /v2/assets."""
        raise NotImplementedError

    # -- market data ---------------------------------------------------------------------------

    def symbols(self) -> tuple[str, ...]:
        """The venue's symbols."""
        raise NotImplementedError

    def latest_quotes(self, symbols: Sequence[str]) -> dict[str, dict[str, Any]]:
        """GET /v2/stocks/quotes/latest → the `quotes` map (REST shape, `t` as RFC 3339 string)."""
        raise NotImplementedError

    def latest_trades(self, symbols: Sequence[str]) -> dict[str, dict[str, Any]]:
        """GET /v2/stocks/trades/latest → the `trades` map."""
        raise NotImplementedError

    def bars(
        self,
        symbols: Sequence[str],
        timeframe: str = "1Min",
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
    ) -> dict[str, list[dict[str, Any]]]:
        """GET /v2/stocks/bars → the `bars` map of completed minute bars."""
        raise NotImplementedError

    # -- streaming -----------------------------------------------------------------------------

    def on_trade_update(self, listener: TradeUpdateListener) -> Callable[[], None]:
        """Call `listener` with every trade_updates `data` payload; returns unsubscribe."""
        raise NotImplementedError

    def on_market_data(self, listener: MarketDataListener) -> Callable[[], None]:
        """Call `listener` with every market-data message (§4.3 "q"/"t"/"b", `t` an aware datetime);
        returns unsubscribe."""
        raise NotImplementedError

    # -- faults and history --------------------------------------------------------------------

    def reject_next_orders(
        self, count: int, status: int, message: str, code: int | None = None
    ) -> None:
        """Make the next `count` order submissions fail with this HTTP error."""
        raise NotImplementedError

    def silence_quotes(self, symbol: str, seconds: float | None) -> None:
        """Stop publishing quotes for `symbol` for `seconds` (None: until called with 0)."""
        raise NotImplementedError

    def set_fill_delay(self, seconds: float) -> None:
        """Set the fill-report latency (seconds) for subsequent matches."""
        raise NotImplementedError

    def history(self) -> dict[str, Any]:
        """Every order ever (incl. replaced) with its events, and every fill with execution_id."""
        raise NotImplementedError
