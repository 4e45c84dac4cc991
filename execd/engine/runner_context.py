"""What every plan runner shares: the engine's ports, router, subscriptions and asset facts
(`RunnerContext`), and how a release wave reads the account (`account_figures`).

Split from `runner` (which re-exports these names) to keep that module to its job, running
one plan's legs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import structlog
from alpaca.trading.models import TradeAccount

from execd.adapters.market_stream import MarketStream
from execd.adapters.rest import RestGateway
from execd.adapters.wire import TradeUpdate
from execd.domain.sizing import account_figure
from execd.engine.ledger import Commitments
from execd.engine.leg import LegPorts
from execd.engine.router import OrderRouter
from execd.engine.start_gate import StartGate

_log = structlog.get_logger("execd.plan")


@dataclass(frozen=True, slots=True)
class AssetFacts:
    """What the runner needs to know about a symbol (from `/v2/assets`)."""

    symbol: str
    tradable: bool
    fractionable: bool


@dataclass(slots=True)
class RunnerContext:
    """Shared by every plan: the ports, the router, subscriptions and asset facts."""

    ports: LegPorts
    router: OrderRouter[TradeUpdate]
    assets: dict[str, AssetFacts]
    overlap_buys: bool
    subscribe: Callable[[str], None]
    unsubscribe: Callable[[str], None]
    use_margin: bool = False
    shrink_tolerance_percent: Decimal = Decimal(1)
    max_leg_seconds: float = 23_400.0
    ledger: Commitments = field(default_factory=Commitments)
    """Buys and sells started by every plan (one per engine: plans size against it)."""
    starts: StartGate = field(default_factory=StartGate)
    """Every plan's leg starts, a bounded number per loop turn (one per engine)."""

    @property
    def rest(self) -> RestGateway:
        return self.ports.rest

    @property
    def quotes(self) -> MarketStream:
        return self.ports.quotes

    def now(self) -> datetime:
        return self.ports.clock.now()


def account_figures(account: TradeAccount, margin: bool) -> tuple[Decimal, Decimal | None] | str:
    """The buying power the buys spend and, on cash (`margin` False), the cash itself; or,
    when a figure the sizing needs is missing, unparsable or not finite, why the read is
    unusable (logged at error with the field and its value)."""
    names = ("buying_power",) if margin else ("non_marginable_buying_power", "cash")
    values: list[Decimal] = []
    for name in names:
        raw = getattr(account, name)
        value = account_figure(raw)
        if value is None:
            _log.error(
                "buy_release_account_unusable",
                field=name,
                value=raw,
                hint="nothing is sized from it; the account is read again until the deadline",
            )
            return f"the account's {name} reads {raw!r}"
        values.append(value)
    return (values[0], None) if margin else (values[0], values[1])
