"""Item 6 — execution quality: the ladder against plain market orders, in virtual time.

The grid: every synthetic scenario (calm, open, fast, thin, stale, mixed) × seeds × two symbols
(TQQQ, a leveraged ETF priced by the marketable style; AAPL, priced by the passive style under
the default ``apply_to = "listed"``), and every tape in ``../shared/tapes/``; buy and sell; sizes
at multiples of the typical displayed size (the arrival quote's size on the leg's side). Each
case runs on identical fresh venues (same config, same seed, same start): once per urgency with
the ladder (`harness.run_ladder`, the default configuration's `LadderParams`) and once with one
plain market order (`harness.run_market`). Cost is in bps against the arrival mid, positive =
worse than mid; time is start to last fill in venue seconds.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

from execd.bench.harness import LegResult, run_ladder, run_market
from execd.bench.profiles import Profile
from execd.bench.quality_causes import (
    cost_bps,
    excess,
    excess_note,
    high_time_note,
    low_calm_note,
    tail,
)
from execd.bench.results import Figure, Target
from execd.config import load_settings
from execd.domain.calendar import EASTERN, session_on
from execd.domain.ladder import choose_style
from execd.domain.ladder_types import LadderParams, LegSpec, PricingStyle
from execd.domain.types import Side, Urgency
from execd.engine.params import ladder_params
from execd.sim.clock import VenueClock
from execd.sim.config import SCENARIOS, SimConfig
from execd.sim.exchange import Exchange

DAY = date(2026, 3, 4)
"""A plain Wednesday (no holiday, no half day)."""
SYMBOLS = ("TQQQ", "AAPL")
TAPES = Path(__file__).resolve().parents[3] / "shared" / "tapes"
WARMUP_S = 20.0
LIMIT = timedelta(minutes=10)
URGENCIES = (Urgency.LOW, Urgency.NORMAL, Urgency.HIGH)
HOLDINGS = Decimal(10_000_000)


@dataclass(frozen=True, slots=True)
class Case:
    """One venue (scenario or tape, seed, symbol), one side, one size multiple."""

    market: str  # scenario name or tape file name
    tape: Path | None
    seed: int
    symbol: str
    side: Side
    size: int


@dataclass(slots=True)
class Outcome:
    """One case's results: the ladder per urgency and the market order."""

    case: Case
    arrival_mid: Decimal
    half_spread_bps: float
    opens: datetime
    ladder: dict[Urgency, LegResult]
    market: LegResult
    style: PricingStyle
    high_marketable: LegResult | None = None
    """FULL only: high urgency under `better_orders.apply_to = "all"` (marketable everywhere),
    what a high-urgency style switch would give; the same run as `ladder[HIGH]` where the symbol
    is marketable anyway."""


def _config(case: Case) -> SimConfig:
    positions = {case.symbol: HOLDINGS}
    if case.tape is not None:
        return SimConfig(tape=case.tape, seed=case.seed, cash=Decimal(10**10), positions=positions)
    # `mixed` gives each symbol a personality by its position in the venue and everyone a real
    # open: one symbol at 10:30 would be `fast` again (index 0, no open). It carries the bench's
    # symbols (TQQQ fast, AAPL calm) and starts, like `open`, just before the open.
    opening = case.market in ("open", "mixed")
    start = time(9, 29, 50) if opening else time(10, 30)
    symbols = SYMBOLS if case.market == "mixed" and case.symbol in SYMBOLS else (case.symbol,)
    return SimConfig(
        scenario=case.market,
        seed=case.seed,
        start=start,
        start_date=DAY,
        symbols=symbols,
        cash=Decimal(10**10),
        positions=positions,
    )


def fresh_venue(case: Case) -> tuple[Exchange, VenueClock]:
    """A new venue for `case`, warmed up so that it has a quote and some history."""
    config = _config(case)
    clock = VenueClock.from_config(config, monotonic=None)
    exchange = Exchange(config, clock)
    exchange.advance(WARMUP_S if case.tape is None else 5.0)
    return exchange, clock


def _arrival(exchange: Exchange, symbol: str) -> tuple[Decimal, Decimal, Decimal, int, int]:
    q = exchange.latest_quotes([symbol])[symbol]
    bid, ask = Decimal(str(q["bp"])), Decimal(str(q["ap"]))
    return bid, ask, (bid + ask) / 2, int(q["bs"]), int(q["as"])


def tape_symbol(path: Path) -> str:
    """The symbol a tape file trades (its name starts with it)."""
    return path.name.split("-", 1)[0]


def tapes_note() -> str:
    """Said on the cost figures when the real tapes are missing: they live beside the
    checkout (``../shared/tapes``), so a clone elsewhere runs the synthetic scenarios only,
    and the averages differ (session 8: normal 0.57x market without them, 0.46x with)."""
    if any(TAPES.glob("*.jsonl")):
        return ""
    return f"; NO TAPES at {TAPES}: synthetic scenarios only"


def cases(profile: Profile) -> Iterator[Case]:
    """The grid of `profile` (seeds, sizes) over scenarios, symbols and tapes."""
    venues: list[tuple[str, Path | None, int, str]] = []
    for scenario in SCENARIOS:
        for seed in range(1, profile.quality_seeds + 1):
            for symbol in SYMBOLS:
                venues.append((scenario, None, seed, symbol))
    for path in sorted(TAPES.glob("*.jsonl")):
        venues.append((path.name, path, 1, tape_symbol(path)))
    for market, tape, seed, symbol in venues:
        for side in (Side.BUY, Side.SELL):
            for size in profile.quality_sizes:
                yield Case(market, tape, seed, symbol, side, size)


def leg_spec(case: Case, qty: Decimal, urgency: Urgency, clock: VenueClock) -> LegSpec:
    """The leg the daemon would run for `case`: with the venue day's session, as the runner
    gives it (a leg without one ends at once with `no_trading_session`)."""
    return LegSpec(
        plan_id="bench",
        leg_index=0,
        symbol=case.symbol,
        side=case.side,
        qty=qty,
        urgency=urgency,
        session=session_on(clock.now().astimezone(EASTERN).date()),
    )


def run_case(case: Case, params: LadderParams, *, alternatives: bool = False) -> Outcome:
    """Every urgency and the market order on identical fresh venues (with `alternatives`, high
    urgency once more in the marketable style, on another)."""
    exchange, clock = fresh_venue(case)
    bid, ask, mid, bid_size, ask_size = _arrival(exchange, case.symbol)
    typical = ask_size if case.side is Side.BUY else bid_size
    qty = Decimal(max(1, typical * case.size))
    half_spread = float((ask - bid) / 2 / mid * 10_000) if mid > 0 else float("nan")
    market = run_market(exchange, clock, case.symbol, case.side, qty)
    ladder: dict[Urgency, LegResult] = {}
    for urgency in URGENCIES:
        exchange, clock = fresh_venue(case)
        spec = leg_spec(case, qty, urgency, clock)
        ladder[urgency] = run_ladder(exchange, clock, spec, params, LIMIT)
    session = session_on(clock.now().astimezone(EASTERN).date())
    assert session is not None
    style, _ = choose_style(case.symbol, params)
    outcome = Outcome(case, mid, half_spread, session.open, ladder, market, style)
    if alternatives:
        outcome.high_marketable = ladder[Urgency.HIGH]
        if style is not PricingStyle.MARKETABLE:
            exchange, clock = fresh_venue(case)
            spec = leg_spec(case, qty, Urgency.HIGH, clock)
            marketable = replace(params, apply_to="all")
            outcome.high_marketable = run_ladder(exchange, clock, spec, marketable, LIMIT)
    return outcome


def _p90(xs: list[float]) -> float:
    if not xs:
        return float("nan")
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(xs, n=10, method="inclusive")[-1]


def _mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def summarise(outcomes: list[Outcome], params: LadderParams) -> list[Figure]:
    """The item's figures from every case's outcome, run with `params`."""
    item = "6 quality"
    market_costs = [
        c for o in outcomes if (c := cost_bps(o.market, o.case.side, o.arrival_mid)) is not None
    ]
    market_mean = _mean(market_costs)
    n = len(outcomes)
    figures: list[Figure] = []
    for urgency in URGENCIES:
        u = urgency.value
        results = [(o, o.ladder[urgency]) for o in outcomes]
        costs = [
            c for o, r in results if (c := cost_bps(r, o.case.side, o.arrival_mid)) is not None
        ]
        completion = sum(r.complete for _, r in results) / n if n else float("nan")
        times = [t for o, r in results if r.complete and (t := r.seconds(o.opens)) is not None]
        targets: tuple[Target, ...] = ()
        if urgency is Urgency.NORMAL:
            targets = (Target("max", 0.5, "ratio"),)
        figures.append(
            Figure(
                item,
                f"quality_{u}_cost_bps",
                _mean(costs),
                "bps",
                "quality_market_cost_bps",
                market_mean,
                targets,
                f"mean over {len(costs)} legs with fills" + tapes_note(),
            )
        )
        figures.append(
            Figure(
                item,
                f"quality_{u}_cost_p90_bps",
                _p90(costs),
                "bps",
                "quality_market_cost_p90_bps",
                _p90(market_costs),
            )
        )
        completion_targets = (Target("min", 1.0),) if urgency is not Urgency.LOW else ()
        figures.append(
            Figure(item, f"quality_{u}_completion", completion, "", targets=completion_targets)
        )
        high = urgency is Urgency.HIGH
        figures.append(
            Figure(
                item,
                f"quality_{u}_time_p90_s",
                _p90(times),
                "s",
                targets=(Target("max", 10.0),) if high else (),
                note=high_time_note(outcomes, params.passive_patience_high_seconds) if high else "",
            )
        )
    excesses = [e for o in outcomes if (e := excess(o)) is not None]
    figures.append(
        Figure(
            item,
            "quality_normal_excess_p90_bps",
            _p90(excesses),
            "bps",
            targets=(Target("max", 2.0),),
            note="p90 over legs of (normal ladder cost − market cost), same venue; "
            + excess_note(outcomes),
        )
    )
    calm = [o for o in outcomes if o.case.market == "calm"]
    calm_low = [
        c
        for o in calm
        if (c := cost_bps(o.ladder[Urgency.LOW], o.case.side, o.arrival_mid)) is not None
    ]
    quarter = [o.half_spread_bps / 2 for o in calm]
    figures.append(
        Figure(
            item,
            "quality_low_calm_cost_bps",
            _mean(calm_low),
            "bps",
            "quality_calm_quarter_spread_bps",
            _mean(quarter),
            (Target("max", 1.0, "ratio"),),
            low_calm_note(outcomes),
        )
    )
    return figures


def breakdown(outcomes: list[Outcome]) -> str:
    """Per market: mean cost of each urgency and of the market order, and completion."""
    rows = ["market                        n  market   low  normal  high   completion l/n/h"]
    by_market: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_market.setdefault(f"{o.case.market}/{o.case.symbol}", []).append(o)
    for name, group in by_market.items():

        def mean_cost(pick: str, group: list[Outcome] = group) -> str:
            xs = []
            for o in group:
                r = o.market if pick == "market" else o.ladder[Urgency(pick)]
                c = cost_bps(r, o.case.side, o.arrival_mid)
                if c is not None:
                    xs.append(c)
            return f"{_mean(xs):6.1f}"

        done = "/".join(f"{sum(o.ladder[u].complete for o in group)}" for u in URGENCIES)
        rows.append(
            f"{name:<28} {len(group):>2} {mean_cost('market')} {mean_cost('low')} "
            f"{mean_cost('normal')} {mean_cost('high')}   {done}"
        )
    return "\n".join(rows)


def run(profile: Profile) -> list[Figure]:
    """Measure item 6."""
    params = ladder_params(load_settings(_empty_config()))
    # The alternative costs a fifth more venue time: the long profile only (the quick one has
    # a 45 s budget).
    alternatives = profile.name == "full"
    outcomes = [run_case(case, params, alternatives=alternatives) for case in cases(profile)]
    print(breakdown(outcomes))
    print(tail(outcomes))
    figures = summarise(outcomes, params)
    if alternatives:
        figures.extend(high_marketable_figures(outcomes))
    return figures


def high_marketable_figures(outcomes: list[Outcome]) -> list[Figure]:
    """High urgency in the marketable style everywhere (`apply_to = "all"`): its p90 time and
    mean cost — what a per-urgency style switch would buy, and at what price."""
    results = [(o, r) for o in outcomes if (r := o.high_marketable) is not None]
    times = [t for o, r in results if r.complete and (t := r.seconds(o.opens)) is not None]
    costs = [c for o, r in results if (c := cost_bps(r, o.case.side, o.arrival_mid)) is not None]
    done = sum(r.complete for _, r in results) / len(results) if results else float("nan")
    note = 'high urgency with better_orders.apply_to = "all" (not the default)'
    return [
        Figure(
            "6 quality",
            "quality_high_marketable_time_p90_s",
            _p90(times),
            "s",
            targets=(Target("max", 10.0),),
            note=f"{note}; completion {done:.0%}",
        ),
        Figure(
            "6 quality",
            "quality_high_marketable_cost_bps",
            _mean(costs),
            "bps",
            "quality_market_cost_bps",
            _mean(
                [
                    c
                    for o in outcomes
                    if (c := cost_bps(o.market, o.case.side, o.arrival_mid)) is not None
                ]
            ),
            note=note,
        ),
    ]


def _empty_config() -> Path:
    """An empty TOML file: the defaults, whatever config the checkout or environment holds."""
    import tempfile

    path = Path(tempfile.gettempdir()) / "execd-bench-empty.toml"
    path.write_text("", encoding="utf-8")
    return path
