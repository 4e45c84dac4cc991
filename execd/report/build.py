"""From journal rows to analysed legs: the one place a report's figures are computed.

Everything `execd report` shows — the table, ``--json``, ``--csv`` and ``--html`` —
is rendered from the `PlanReport` / `RangeReport` built here, so the four can never
disagree. Inputs are what the journal kept (`JournalReader`); when a leg has no
journaled benchmarks (a v2 journal, or a leg that never ran), its arrival NBBO is
rebuilt from the arrival mid and market-order price its status recorded, without
sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import msgspec

from execd.adapters.journal_reads import JournalReader, LegHistory, PlanHistory
from execd.control.protocol import LegStatus
from execd.domain.benchmarks import LegBenchmarks
from execd.domain.quotes import Quote
from execd.domain.tca import Fill
from execd.domain.tca_analysis import (
    GROUPINGS,
    Bucket,
    LegAnalysis,
    LegInput,
    Summary,
    analyse_leg,
    group,
    summarise,
)
from execd.domain.types import Side


@dataclass(frozen=True, slots=True)
class AnalysedLeg:
    """A leg's analysis with the history its chart is drawn from."""

    analysis: LegAnalysis
    history: LegHistory
    benchmarks: LegBenchmarks | None


@dataclass(frozen=True, slots=True)
class PlanReport:
    """One plan: its legs measured, and their notional-weighted summary."""

    plan_id: str
    state: str
    reason: str | None
    submitted_at: datetime
    finished_at: datetime | None
    legs: tuple[AnalysedLeg, ...]
    summary: Summary


@dataclass(frozen=True, slots=True)
class RangeReport:
    """Every plan submitted in [since, until), aggregated every way `GROUPINGS` names."""

    since: datetime | None
    until: datetime | None
    plans: tuple[PlanReport, ...]
    summary: Summary
    groups: dict[str, dict[str, Summary]]

    @property
    def legs(self) -> tuple[AnalysedLeg, ...]:
        return tuple(leg for plan in self.plans for leg in plan.legs)


_BUCKET_ORDER = [b.value for b in Bucket] + ["unknown"]


def _status(history: LegHistory) -> LegStatus | None:
    if history.leg.report is None:
        return None
    try:
        return msgspec.json.decode(history.leg.report, type=LegStatus)
    except msgspec.DecodeError:
        return None


def _rebuilt_arrival(symbol: str, side: Side, status: LegStatus | None) -> Quote | None:
    """The arrival NBBO from the mid and far touch a status kept (sizes unknown: 0)."""
    if status is None or status.arrival_mid is None or status.market_order_price is None:
        return None
    touch, mid = status.market_order_price, status.arrival_mid
    other = 2 * mid - touch
    bid, ask = (other, touch) if side is Side.BUY else (touch, other)
    at = status.started_at or datetime.fromtimestamp(0).astimezone()
    return Quote(symbol, bid, ask, Decimal(0), Decimal(0), at, at)


def _style(status: LegStatus | None) -> str | None:
    if status is None or status.style is None:
        return None
    return "legacy" if status.style == "market" else status.style


def leg_input(history: LegHistory) -> LegInput:
    """What the analysis needs of one journaled leg."""
    row, bench = history.leg, history.benchmarks
    status = _status(history)
    arrival = None
    if bench is not None and bench.leg_arrival is not None:
        arrival = bench.leg_arrival.to_quote(row.symbol)
    if arrival is None:
        arrival = _rebuilt_arrival(row.symbol, row.side, status)
    plan_arrival = None
    if bench is not None and bench.plan_arrival is not None:
        plan_arrival = bench.plan_arrival.to_quote(row.symbol)
    fills = tuple(
        Fill(f.fill.qty, f.fill.price, f.fill.at, f.quote, f.fill.execution_id)
        for f in history.fills
    )
    requested = status.qty if status is not None and status.qty is not None else row.qty
    return LegInput(
        plan_id=row.plan_id,
        leg_index=row.leg_index,
        symbol=row.symbol,
        side=row.side,
        urgency=row.urgency.value,
        style=_style(status),
        requested_qty=requested,
        state=row.state,
        started_at=row.started_at,
        finished_at=row.finished_at,
        repegs=0 if status is None else status.repegs,
        fallback_fired=bench.fallback_fired if bench is not None else False,
        fills=fills,
        arrival=arrival,
        plan_arrival=plan_arrival,
        interval_vwap=(
            bench.interval_vwap
            if bench is not None
            else (None if status is None else status.interval_vwap)
        ),
        reason=row.reason,
        feed=None if bench is None else bench.feed,
    )


def plan_report(history: PlanHistory) -> PlanReport:
    """Measure every leg of one plan."""
    legs = tuple(AnalysedLeg(analyse_leg(leg_input(h)), h, h.benchmarks) for h in history.legs)
    plan = history.plan
    return PlanReport(
        plan_id=plan.plan_id,
        state=plan.state,
        reason=plan.reason,
        submitted_at=plan.submitted_at,
        finished_at=plan.finished_at,
        legs=legs,
        summary=summarise(leg.analysis for leg in legs),
    )


def range_report(
    reader: JournalReader, since: datetime | None, until: datetime | None
) -> RangeReport:
    """Every plan submitted in [since, until), measured and aggregated."""
    plans = []
    for plan_id in reader.plan_ids(since, until):
        history = reader.plan(plan_id)
        if history is not None:
            plans.append(plan_report(history))
    analyses = [leg.analysis for plan in plans for leg in plan.legs]
    groups: dict[str, dict[str, Summary]] = {}
    for name, key in GROUPINGS.items():
        grouped = group(analyses, key)
        if name == "time_of_day":
            grouped = {k: grouped[k] for k in _BUCKET_ORDER if k in grouped}
        groups[name] = grouped
    return RangeReport(since, until, tuple(plans), summarise(analyses), groups)
