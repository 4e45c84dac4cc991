"""A report as JSON, CSV and terminal tables; every figure through `execd.domain.display`.

JSON numbers are decimal *strings* at the precision `display.PRECISION` states (the
header of every JSON report repeats it), null where a figure cannot be computed —
never ``0`` for "unknown", never ``-0``. Times are ISO 8601 in US/Eastern with the
offset, and the zone is named in the header. CSV has one row per leg with the same
names and values as the JSON legs.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from rich.console import Group
from rich.table import Table

from execd.domain import display
from execd.domain.tca_analysis import Summary
from execd.report.build import AnalysedLeg, PlanReport, RangeReport

TIMEZONE = "America/New_York"
SIGN = (
    "slippage bps: positive = cost to us (bought above / sold below the benchmark); "
    "saving_vs_market: positive = execd beat a market order sent at arrival"
)

#: The headings of the `--since` groupings, in the order they are shown.
GROUP_TITLES = {
    "urgency": "by urgency",
    "style": "by style",
    "symbol": "by symbol",
    "time_of_day": "by time of day (US/Eastern, leg start)",
    "completed_at": "by step at which legs completed",
}


def _header(kind: str) -> dict[str, Any]:
    return {"report": kind, "timezone": TIMEZONE, "precision": display.PRECISION, "sign": SIGN}


def summary_dict(s: Summary) -> dict[str, Any]:
    """A summary's figures as JSON-ready strings."""
    return {
        "legs": s.legs,
        "completed": s.completed,
        "completion_rate": display.fraction(s.completion_rate),
        "fallbacks": s.fallbacks,
        "fallback_rate": display.fraction(s.fallback_rate),
        "filled_notional_usd": display.usd(s.filled_notional),
        "vs_arrival_mid_bps": display.bps(s.vs_arrival_mid_bps),
        "vs_nbbo_mid_at_fill_bps": display.bps(s.vs_fill_mid_bps),
        "vs_touch_at_fill_bps": display.bps(s.vs_fill_touch_bps),
        "vs_vwap_bps": display.bps(s.vs_vwap_bps),
        "spread_capture": display.fraction(s.spread_capture),
        "market_order_notional_usd": display.usd(s.market_order_notional),
        "saving_vs_market_usd": display.usd(s.saving_vs_market_usd),
        "saving_vs_market_bps": display.bps(s.saving_vs_market_bps),
    }


def leg_dict(leg: AnalysedLeg) -> dict[str, Any]:
    """One leg's row: identity, outcome, benchmarks and every slippage figure."""
    a, inp, t = leg.analysis, leg.analysis.leg, leg.analysis.tca
    arrival = inp.arrival
    market = a.market_order
    return {
        "plan_id": inp.plan_id,
        "leg": inp.leg_index,
        "symbol": inp.symbol,
        "side": inp.side.value,
        "urgency": inp.urgency,
        "style": inp.style,
        "state": inp.state,
        "reason": inp.reason,
        "feed": inp.feed,
        "requested_qty": display.qty(inp.requested_qty),
        "filled_qty": display.qty(t.filled_qty),
        "fill_count": t.fill_count,
        "avg_fill_price": display.derived_price(t.avg_price),
        "filled_notional_usd": display.usd(t.notional),
        "started_at": display.eastern(inp.started_at),
        "finished_at": display.eastern(inp.finished_at),
        "time_of_day": None if a.bucket is None else a.bucket.value,
        "arrival_bid": display.price(None if arrival is None else arrival.bid),
        "arrival_ask": display.price(None if arrival is None else arrival.ask),
        "arrival_mid": display.derived_price(t.arrival_mid),
        "plan_arrival_mid": display.derived_price(a.plan_arrival_mid),
        "interval_vwap": display.derived_price(t.interval_vwap),
        "vs_arrival_mid_bps": display.bps(t.vs_arrival_mid_bps),
        "vs_plan_arrival_mid_bps": display.bps(a.vs_plan_arrival_mid_bps),
        "vs_nbbo_mid_at_fill_bps": display.bps(t.vs_fill_mid_bps),
        "vs_touch_at_fill_bps": display.bps(t.vs_fill_touch_bps),
        "vs_vwap_bps": display.bps(t.vs_vwap_bps),
        "spread_capture": display.fraction(a.spread_capture),
        "market_order_price": display.price(None if market is None else market.price),
        "market_order_beyond_displayed_qty": display.qty(
            None if market is None else market.beyond_displayed_qty
        ),
        "saving_vs_market_usd": display.usd(a.saving_vs_market_usd),
        "saving_vs_market_bps": display.bps(a.saving_vs_market_bps),
        "time_to_first_fill_seconds": display.seconds(a.time_to_first_fill_seconds),
        "time_to_complete_seconds": display.seconds(a.time_to_complete_seconds),
        "repegs": inp.repegs,
        "fallback_fired": inp.fallback_fired,
        "completed_at": a.completed_at.value,
    }


def _fills(leg: AnalysedLeg) -> list[dict[str, Any]]:
    return [
        {
            "at": display.eastern(f.time),
            "qty": display.qty(f.qty),
            "price": display.price(f.price),
            "bid": display.price(None if f.quote is None else f.quote.bid),
            "ask": display.price(None if f.quote is None else f.quote.ask),
        }
        for f in leg.analysis.leg.fills
    ]


def _decisions(leg: AnalysedLeg) -> list[dict[str, Any]]:
    """The orders the ladder sent, each with the NBBO, spread and quote age it saw."""
    if leg.benchmarks is None:
        return []
    out = []
    for d in leg.benchmarks.decisions:
        if d.kind == "quote":
            continue
        q = d.quote
        out.append(
            {
                "at": display.eastern(d.at),
                "kind": d.kind,
                "order_type": d.order_type,
                "limit_price": display.price(d.limit_price),
                "qty": display.qty(d.qty),
                "bid": display.price(None if q is None else q.bid),
                "ask": display.price(None if q is None else q.ask),
                "spread": None if q is None else display.price_difference(q.spread, q.ask),
                "quote_age_seconds": None if q is None else f"{q.age_seconds:.3f}",
            }
        )
    return out


def plan_dict(report: PlanReport) -> dict[str, Any]:
    """`execd report PLAN_ID --json`."""
    return {
        **_header("plan"),
        "plan": {
            "plan_id": report.plan_id,
            "state": report.state,
            "reason": report.reason,
            "submitted_at": display.eastern(report.submitted_at),
            "finished_at": display.eastern(report.finished_at),
            "summary": summary_dict(report.summary),
        },
        "legs": [
            {**leg_dict(leg), "fills": _fills(leg), "decisions": _decisions(leg)}
            for leg in report.legs
        ],
    }


def range_dict(report: RangeReport) -> dict[str, Any]:
    """`execd report --since DATE --json`."""
    return {
        **_header("range"),
        "since": display.eastern(report.since),
        "until": display.eastern(report.until),
        "plans": [
            {
                "plan_id": p.plan_id,
                "state": p.state,
                "submitted_at": display.eastern(p.submitted_at),
                "legs": len(p.legs),
                "saving_vs_market_usd": display.usd(p.summary.saving_vs_market_usd),
            }
            for p in report.plans
        ],
        "summary": summary_dict(report.summary),
        **{
            f"by_{name}" if not name.startswith("by_") else name: {
                key: summary_dict(s) for key, s in groups.items()
            }
            for name, groups in report.groups.items()
        },
    }


def csv_text(legs: Sequence[AnalysedLeg]) -> str:
    """One row per leg, the JSON leg fields as columns (times US/Eastern, with offset)."""
    out = io.StringIO()
    rows = [leg_dict(leg) for leg in legs]
    fields = list(rows[0]) if rows else list(_EMPTY_FIELDS)
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


_EMPTY_FIELDS = ("plan_id", "leg", "symbol", "side", "state")


# --- terminal tables --------------------------------------------------------------------------


def _cell(text: str | None) -> str:
    return "—" if text is None else text


def legs_table(legs: Sequence[AnalysedLeg], title: str, *, with_plan: bool = True) -> Table:
    """The per-leg table: what filled, at what price, and what it cost vs each benchmark."""
    table = Table(title=title, title_justify="left")
    for name, justify in (
        ("leg", "left"),
        ("side", "left"),
        ("style", "left"),
        ("state", "left"),
        ("filled", "right"),
        ("avg px", "right"),
        ("arrival mid", "right"),
        ("vs arr mid bps", "right"),
        ("vs NBBO@fill bps", "right"),
        ("vs VWAP bps", "right"),
        ("capture", "right"),
        ("saved vs mkt $", "right"),
        ("1st fill s", "right"),
        ("done at", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for leg in legs:
        d = leg_dict(leg)
        table.add_row(
            (f"{leg.analysis.leg.plan_id}" if with_plan else "") + f"#{d['leg']} {d['symbol']}",
            d["side"],
            _cell(d["style"]),
            d["state"],
            f"{d['filled_qty']}/{_cell(d['requested_qty'])}",
            _cell(d["avg_fill_price"]),
            _cell(d["arrival_mid"]),
            _cell(d["vs_arrival_mid_bps"]),
            _cell(d["vs_nbbo_mid_at_fill_bps"]),
            _cell(d["vs_vwap_bps"]),
            _cell(d["spread_capture"]),
            _cell(d["saving_vs_market_usd"]),
            _cell(d["time_to_first_fill_seconds"]),
            d["completed_at"],
        )
    return table


def summary_table(groups: dict[str, Summary], title: str, key: str) -> Table:
    """One row per group: legs, completion and fallback rates, weighted costs, savings."""
    table = Table(title=title, title_justify="left")
    table.add_column(key)
    for name in (
        "legs",
        "completion",
        "fallback rate",
        "notional $",
        "vs arr mid bps",
        "vs NBBO@fill bps",
        "vs VWAP bps",
        "capture",
        "saved vs mkt $",
        "saved bps",
    ):
        table.add_column(name, justify="right")
    for name, s in groups.items():
        d = summary_dict(s)
        table.add_row(
            name,
            str(s.legs),
            _cell(d["completion_rate"]),
            _cell(d["fallback_rate"]),
            _cell(d["filled_notional_usd"]),
            _cell(d["vs_arrival_mid_bps"]),
            _cell(d["vs_nbbo_mid_at_fill_bps"]),
            _cell(d["vs_vwap_bps"]),
            _cell(d["spread_capture"]),
            _cell(d["saving_vs_market_usd"]),
            _cell(d["saving_vs_market_bps"]),
        )
    return table


def plan_view(report: PlanReport) -> Group:
    """`execd report PLAN_ID` for a terminal."""
    head = (
        f"plan {report.plan_id} — {report.state}"
        f"{'' if report.reason is None else f' ({report.reason})'}; submitted "
        f"{display.eastern_short(report.submitted_at)}; times US/Eastern; "
        "bps: + = cost; saved: + = better than a market order at arrival"
    )
    return Group(
        head,
        legs_table(report.legs, "legs", with_plan=False),
        summary_table({"plan": report.summary}, "plan summary (notional-weighted)", "plan"),
    )


def range_view(report: RangeReport) -> Group:
    """`execd report --since DATE` for a terminal."""
    s = report.summary
    head = (
        f"{len(report.plans)} plans, {s.legs} legs from {display.eastern_short(report.since)} "
        f"to {display.eastern_short(report.until) if report.until else 'now'}; total saved vs "
        f"market orders: ${_cell(display.usd(s.saving_vs_market_usd))} "
        f"({_cell(display.bps(s.saving_vs_market_bps))} bps)"
    )
    parts: list[Any] = [head, summary_table({"all": s}, "all legs", "")]
    for name, groups in report.groups.items():
        parts.append(summary_table(groups, GROUP_TITLES.get(name, name), name))
    return Group(*parts)
