"""What the exchange's parts share: the engine's state, declared once for the type checker.

:class:`~execd.sim.exchange.Exchange` is assembled from parts with one job each — the REST face
and account views (:mod:`execd.sim.exchange`), the venue-side order lifecycle
(:mod:`execd.sim.lifecycle`) and the market it drives (:mod:`execd.sim.marketdrive`). They share
one object; this base names its attributes and the few methods one part calls in another, so
each module type-checks on its own.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from execd.sim.account import Account
from execd.sim.activity import AccountActivity
from execd.sim.book import SymbolBook
from execd.sim.clock import VenueClock
from execd.sim.config import SimConfig, SymbolSpec
from execd.sim.ledger import Ledger
from execd.sim.market import GeneratedMarket, Instrument, MarketSource
from execd.sim.marketdata import MarketData
from execd.sim.orders import OpenOrders, SimOrder

TradeUpdateListener = Callable[[dict[str, Any]], None]


class EngineState:
    """The engine's attributes (set by ``Exchange.__init__``) and cross-part methods."""

    _config: SimConfig
    _clock: VenueClock
    _now: datetime
    _created: datetime
    _fill_rng: random.Random
    _report_rng: random.Random
    _halted: set[str]
    _halt_token: int
    _tick_token: int
    _source: MarketSource
    _generated: GeneratedMarket | None
    _specs: dict[str, SymbolSpec]
    _insts: dict[str, Instrument]
    _books: dict[str, SymbolBook]
    _account: Account
    _activity: AccountActivity
    _ledger: Ledger
    _md: MarketData
    _orders: dict[str, SimOrder]
    _open_orders: OpenOrders
    _fills: list[dict[str, Any]]
    _trade_listeners: list[TradeUpdateListener]
    _ack: timedelta
    _fill_delay: timedelta
    _replace_rejects: int
    _avg_price_lag: timedelta
    _waiting_market: dict[str, list[SimOrder]]
    _stops: dict[str, list[SimOrder]]

    def _at(self, when: datetime, action: Callable[[], None]) -> None:
        raise NotImplementedError

    def _catch_up(self) -> datetime:
        raise NotImplementedError

    def _mark(self, symbol: str) -> Decimal:
        raise NotImplementedError

    def _uuid(self) -> str:
        raise NotImplementedError

    def _work(self, order: SimOrder) -> None:
        raise NotImplementedError

    def _execute(self, order: SimOrder, fills: list[tuple[Decimal, Decimal]]) -> None:
        raise NotImplementedError

    def _schedule_session_boundary(self, after: datetime) -> None:
        raise NotImplementedError

    def _schedule_minute(self, after: datetime) -> None:
        raise NotImplementedError

    def _routable(self, order: SimOrder, now: datetime) -> bool:
        raise NotImplementedError

    def _route(self, order: SimOrder, now: datetime) -> None:
        raise NotImplementedError

    def _cancel_remainder(self, order: SimOrder) -> None:
        raise NotImplementedError

    def _emit(self, order: SimOrder, event: str, **extra: str | None) -> None:
        raise NotImplementedError

    def _activate_legs(self, parent: SimOrder) -> None:
        raise NotImplementedError

    def _shrink_exit_pair(self, order: SimOrder) -> None:
        raise NotImplementedError

    def _exit_pair(self, order: SimOrder) -> SimOrder | None:
        raise NotImplementedError

    def _fit_to_pair(self, order: SimOrder, partner: SimOrder) -> None:
        raise NotImplementedError

    def _end_legs(self, parent: SimOrder) -> None:
        raise NotImplementedError
