"""The synthetic market: deterministic per seed, and each scenario looks like what it claims."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from execd.domain.calendar import EASTERN
from execd.sim.clock import VenueClock
from execd.sim.config import DEFAULT_TIER, SimConfig
from execd.sim.exchange import Exchange
from execd.sim.market import BookSnapshot, GeneratedMarket


def run(seconds: float, orders: bool = False, **overrides: Any) -> tuple[Exchange, list[Any]]:
    """A venue stepped `seconds` on a manual clock; returns it and every market-data message."""
    fields: dict[str, Any] = {"seed": 5, "start": time(10, 0), "start_date": date(2026, 3, 4)}
    fields.update(overrides)
    config = SimConfig(**fields)
    ex = Exchange(config, VenueClock.from_config(config, monotonic=None))
    md: list[Any] = []
    fills: list[Any] = []
    ex.on_market_data(md.append)
    ex.on_trade_update(lambda e: fills.append((e["event"], e.get("price"), e.get("qty"))))
    ex.advance(1.0)
    if orders:
        ex.submit_order(
            {"symbol": "SOXL", "side": "buy", "type": "market", "qty": 50, "time_in_force": "day"}
        )
    ex.advance(seconds)
    return ex, md + fills


def test_same_seed_same_market_and_fills() -> None:
    """Two venues with one seed publish identical quotes, prints and fills."""
    _, a = run(20, orders=True, scenario="mixed")
    _, b = run(20, orders=True, scenario="mixed")
    assert a == b
    _, c = run(20, orders=True, scenario="mixed", seed=6)
    assert a != c


def test_calm_spreads_are_one_or_two_cents_and_rates_modest() -> None:
    """Calm: 1–2¢ spreads on ≥ $1 names, a few quote updates per second per symbol."""
    _, md = run(60, scenario="calm", symbols=("AAPL", "TQQQ"))
    quotes = [m for m in md if isinstance(m, dict) and m["T"] == "q"]
    spreads = {round(Decimal(str(q["ap"])) - Decimal(str(q["bp"])), 2) for q in quotes}
    assert spreads <= {Decimal("0.01"), Decimal("0.02"), Decimal("0.03"), Decimal("0.04")}
    per_symbol_rate = len(quotes) / 2 / 61
    assert 0.5 < per_symbol_rate < 6


def _spread_at(md: list[Any], symbol: str, after: datetime, before: datetime) -> list[Decimal]:
    return [
        Decimal(str(m["ap"])) - Decimal(str(m["bp"]))
        for m in md
        if isinstance(m, dict) and m["T"] == "q" and m["S"] == symbol and after <= m["t"] < before
    ]


def test_the_open_starts_wide_and_collapses() -> None:
    """Open: spreads of 10–30¢ at 9:30 shrink to a few cents by 9:35."""
    _, md = run(400, scenario="open", start=time(9, 29, 55), symbols=("SPXL",))
    day = date(2026, 3, 4)
    first = _spread_at(
        md,
        "SPXL",
        datetime.combine(day, time(9, 30), EASTERN),
        datetime.combine(day, time(9, 30, 10), EASTERN),
    )
    late = _spread_at(
        md,
        "SPXL",
        datetime.combine(day, time(9, 35), EASTERN),
        datetime.combine(day, time(9, 36), EASTERN),
    )
    assert min(first) >= Decimal("0.08")
    assert max(late) <= Decimal("0.06")


def test_stale_scenario_has_quote_gaps_of_seconds() -> None:
    """Stale: somewhere in a few minutes, one symbol goes several seconds without a quote."""
    _, md = run(180, scenario="stale", symbols=("AAPL",))
    times = [m["t"] for m in md if isinstance(m, dict) and m["T"] == "q"]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert max(gaps) >= 3.0


def test_thin_book_has_small_sizes_and_gaps() -> None:
    """Thin: displayed sizes of a few hundred shares, deeper levels ticks apart."""
    ex, md = run(10, scenario="thin", symbols=("AAPL",))
    sizes = [m["bs"] for m in md if isinstance(m, dict) and m["T"] == "q"]
    assert max(sizes) <= 400
    book = ex._books["AAPL"].snapshot  # the raw book is the engine's; peeking in a test is fine
    assert book is not None
    steps = [a.price - b.price for a, b in zip(book.bids, book.bids[1:], strict=False)]
    assert max(steps) >= 2


def test_silenced_quotes_stop_publishing_but_the_market_moves() -> None:
    """silence_quotes: stale but connected — no quotes for the symbol, trading still works."""
    ex, _ = run(1, symbols=("AAPL",), scenario="calm")
    seen: list[Any] = []
    ex.on_market_data(seen.append)
    ex.silence_quotes("AAPL", 5)
    ex.advance(4)
    assert not [m for m in seen if m["T"] == "q"]
    ex.advance(3)
    assert [m for m in seen if m["T"] == "q"]


def test_minute_bars_carry_n_and_vw() -> None:
    """Bars come out after each minute with `n` and `vw` keys (alpaca-py requires them)."""
    ex, md = run(70, scenario="calm", symbols=("AAPL",))
    bars = [m for m in md if isinstance(m, dict) and m["T"] == "b"]
    assert bars
    assert {"o", "h", "l", "c", "v", "vw", "n", "t"} <= set(bars[0])
    live = ex.bars(["AAPL"], start=ex.started_at)["AAPL"]  # history (before the start) aside
    assert live[-1]["n"] == bars[-1]["n"]


def test_start_time_without_date_lands_on_a_trading_day() -> None:
    """`--start 09:29:50` alone means the latest trading day, so the open really happens."""
    from datetime import time as time_of_day

    from execd.domain.calendar import EASTERN, is_trading_day
    from execd.sim.clock import origin_for

    origin = origin_for(None, time_of_day(9, 29, 50)).astimezone(EASTERN)
    assert is_trading_day(origin.date())
    assert origin.time() == time_of_day(9, 29, 50)


def test_many_symbols_tick_in_time_order_and_each_path_is_its_own() -> None:
    """The generator picks the next event from a heap (2,000 symbols stay cheap): events come
    out in time order, ties in start order, and a symbol's path does not depend on which
    other symbols run (so the heap cannot have changed any market); a duplicate name runs
    once."""
    start = datetime(2026, 3, 4, 10, 0, tzinfo=EASTERN)
    specs = tuple(replace(DEFAULT_TIER, symbol=f"U{i:04d}") for i in range(300))
    names = tuple(s.symbol for s in specs)

    def path(market: GeneratedMarket, symbol: str | None, until: datetime) -> list[Any]:
        out: list[Any] = []
        last = None
        while (t := market.next_time()) is not None and t <= until:
            events = market.pop()
            assert last is None or t >= last
            last = t
            out.extend(e for e in events if symbol is None or e.symbol == symbol)
        return out

    until = datetime(2026, 3, 4, 10, 0, 20, tzinfo=EASTERN)
    crowd = GeneratedMarket(specs, "calm", 5, start, live=(*names, names[0]))
    alone = GeneratedMarket(specs, "calm", 5, start, live=(names[7],))
    everything = path(crowd, None, until)
    mine = [e for e in everything if e.symbol == names[7]]
    assert mine == path(alone, names[7], until)
    snaps = [e for e in everything if isinstance(e, BookSnapshot)]
    assert len({e.symbol for e in snaps}) == 300
    assert sum(1 for e in snaps if e.symbol == names[0]) == sum(
        1
        for e in path(GeneratedMarket(specs, "calm", 5, start, live=(names[0],)), None, until)
        if isinstance(e, BookSnapshot)
    )
