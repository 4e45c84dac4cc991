"""What a simulated venue is: its market, its account and its latencies.

A plain frozen dataclass so the CLI, ``SimVenue`` and tests build it the same way; the engine
reads it once at construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, time
from decimal import Decimal
from pathlib import Path

SCENARIOS = ("calm", "open", "fast", "thin", "stale", "mixed")


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One tradable asset of the venue: its starting price and Alpaca asset attributes."""

    symbol: str
    price: Decimal
    exchange: str = "NASDAQ"
    name: str = ""
    # Typical size of one displayed quote level, in shares (scaled by the scenario).
    lot: int = 300
    # Daily volatility as a fraction of price: sets how far the synthetic mid wanders.
    daily_vol: float = 0.02
    fractionable: bool = True
    # Shortable without a locate (§1.10: only easy-to-borrow assets can be sold short).
    easy_to_borrow: bool = True


# The seed's leveraged ETFs, two ordinary names and a sub-dollar stock. MULN is the one
# non-fractionable asset, so tests can exercise `asset "X" is not fractionable`.
DEFAULT_SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("TQQQ", Decimal("62.40"), "NASDAQ", "ProShares UltraPro QQQ", 900, 0.04),
    SymbolSpec("SPXL", Decimal("148.20"), "ARCA", "Direxion Daily S&P 500 Bull 3X", 300, 0.03),
    SymbolSpec("TECL", Decimal("81.35"), "ARCA", "Direxion Daily Technology Bull 3X", 300, 0.04),
    SymbolSpec("UVXY", Decimal("24.10"), "BATS", "ProShares Ultra VIX Short-Term", 600, 0.06),
    SymbolSpec("LABU", Decimal("104.70"), "ARCA", "Direxion Daily S&P Biotech Bull 3X", 300, 0.05),
    SymbolSpec("LABD", Decimal("8.42"), "ARCA", "Direxion Daily S&P Biotech Bear 3X", 1500, 0.05),
    SymbolSpec(
        "SOXL", Decimal("31.55"), "ARCA", "Direxion Daily Semiconductor Bull 3X", 1200, 0.05
    ),
    SymbolSpec("AAPL", Decimal("189.60"), "NASDAQ", "Apple Inc. Common Stock", 400, 0.015),
    SymbolSpec("SPY", Decimal("521.30"), "ARCA", "SPDR S&P 500 ETF Trust", 500, 0.01),
    SymbolSpec("MULN", Decimal("0.4321"), "NASDAQ", "Mullen Automotive", 20000, 0.08, False, False),
)


@dataclass(frozen=True, slots=True)
class HaltEvent:
    """A scheduled trading halt: `symbol` halts at Eastern time `at` for `seconds` (None: until
    resumed through ``/sim/``)."""

    symbol: str
    at: time
    seconds: float | None = 300.0


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything that makes one simulated venue; deterministic for a given `seed` (and tape).

    `start` is the Eastern time of day the venue clock starts at on `start_date` (missing parts are
    taken from the wall clock by `VenueClock.from_config`). With a `tape`, the clock follows the
    tape's timestamps instead (its date) and `start` selects where in the tape to begin.
    """

    scenario: str = "mixed"
    tape: Path | None = None
    seed: int = 1
    start: time | None = None
    start_date: date | None = None
    speed: float = 1.0
    symbols: tuple[str, ...] | None = None
    prices: Mapping[str, Decimal] = field(default_factory=dict)
    cash: Decimal = Decimal("100000")
    positions: Mapping[str, Decimal] = field(default_factory=dict)
    ack_latency_s: float = 0.003
    fill_latency_s: float = 0.005
    key_id: str = "SIMKEY"
    secret_key: str = "SIMSECRET"
    # How fast liquidity we took from the book comes back: half of it every this many seconds.
    refill_half_life_s: float = 2.0
    # Depth levels behind the NBBO on each side.
    depth_levels: int = 8
    extra_symbols: tuple[SymbolSpec, ...] = ()
    # Alpaca paper partially fills about 10 % of eligible orders at random, then re-evaluates the
    # remainder (ALPACA.md §6). Drawn from its own random stream, never the market's.
    partial_fill_rate: float = 0.10
    # A paper account is a margin account (ALPACA.md §2.1): 2 (Reg T) or 4; 1 is a cash account.
    multiplier: int = 2
    shorting_enabled: bool = True
    # Scenario events: trading halts on the venue's start day.
    halts: tuple[HaltEvent, ...] = ()

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}; expected one of {SCENARIOS}")
        if self.speed <= 0:
            raise ValueError("speed must be positive")
        if self.multiplier not in (1, 2, 4):
            raise ValueError("multiplier must be 1, 2 or 4")
        if not 0.0 <= self.partial_fill_rate <= 1.0:  # also refuses NaN
            raise ValueError("partial_fill_rate must be between 0 and 1")

    def symbol_specs(self) -> tuple[SymbolSpec, ...]:
        """The venue's assets: defaults filtered by `symbols`, unknown names at $50, overrides."""
        known = {s.symbol: s for s in (*DEFAULT_SYMBOLS, *self.extra_symbols)}
        names = self.symbols if self.symbols is not None else tuple(known)
        out: list[SymbolSpec] = []
        for name in names:
            spec = known.get(name) or SymbolSpec(name, Decimal("50.00"))
            if name in self.prices:
                spec = replace(spec, price=Decimal(self.prices[name]))
            out.append(spec)
        return tuple(out)
