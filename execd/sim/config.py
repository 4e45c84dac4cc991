"""What a simulated venue is: its market, its account and its latencies.

A plain frozen dataclass so the CLI, ``SimVenue`` and tests build it the same way; the engine
reads it once at construction.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, time
from decimal import Decimal
from importlib.resources import files
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
    # The symbol's typical (narrowest usual) NBBO spread, in cents of a >= $1 stock.
    spread_cents: int = 1
    tier: str = "default"


def load_universe() -> tuple[SymbolSpec, ...]:
    """The default universe (``execd/sim/data/universe.csv``): the most-traded US stocks and
    ETFs in labelled tiers, with synthetic per-symbol figures (see the file's header)."""
    text = files("execd.sim").joinpath("data/universe.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return tuple(
        SymbolSpec(
            row["symbol"],
            Decimal(row["price"]),
            row["exchange"],
            row["name"],
            int(row["lot"]),
            float(row["daily_vol"]),
            row["fractionable"] == "true",
            row["easy_to_borrow"] == "true",
            spread_cents=int(row["spread_cents"]),
            tier=row["tier"],
        )
        for row in rows
    )


UNIVERSE: tuple[SymbolSpec, ...] = load_universe()
# The simulator's historical default symbols, whose market runs from the start when no symbols
# are configured: the seed's leveraged ETFs, two ordinary names and a sub-dollar stock. MULN is
# the non-fractionable (and hard-to-borrow) one, so tests can exercise those refusals.
DEFAULT_SYMBOLS: tuple[SymbolSpec, ...] = UNIVERSE[:10]
# A symbol outside the universe (given with --symbols or in config) is a generated instrument of
# this default tier.
DEFAULT_TIER = SymbolSpec("", Decimal("50.00"), "NASDAQ", "", 300, 0.02, tier="default")


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

    def live_symbols(self) -> tuple[str, ...]:
        """The symbols whose market runs from the start: the configured ones, else the ten
        historical defaults (the rest of the universe starts when first used)."""
        if self.symbols is not None:
            return self.symbols
        return tuple(s.symbol for s in DEFAULT_SYMBOLS) + tuple(
            s.symbol for s in self.extra_symbols
        )

    def symbol_specs(self) -> tuple[SymbolSpec, ...]:
        """The venue's assets: the configured symbols first (unknown names in the default tier),
        then the rest of the universe; `prices` override starting prices."""
        known = {s.symbol: s for s in (*UNIVERSE, *self.extra_symbols)}
        names = list(self.live_symbols())
        names += [n for n in known if n not in names]
        out: list[SymbolSpec] = []
        for name in names:
            spec = known.get(name) or replace(DEFAULT_TIER, symbol=name)
            if name in self.prices:
                spec = replace(spec, price=Decimal(self.prices[name]))
            out.append(spec)
        return tuple(out)
