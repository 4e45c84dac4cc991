"""`execd report --html FILE`: one self-contained HTML page, charts as inline SVG.

Nothing is fetched when the file is opened: no script, no stylesheet, font or image
from anywhere, no URL in any ``src`` or ``href`` (a test checks it). Every text that
came from a plan or the venue is escaped.

Per leg, one chart (``<svg class="leg-chart">``) over the leg's working life:

- the bid/ask band the ladder saw (every quote it was fed), shaded between the lines;
- the arrival mid, dashed;
- every limit price the ladder worked, as steps (a place, then each replace; the step
  ends where the order was replaced, cancelled or the leg ended); a market order is
  a vertical tick at the top;
- every fill, a dot whose area is proportional to its quantity.

For a `--since` range, a cost-distribution chart (``<svg class="cost-chart">``): legs
binned by basis points saved against a market order at arrival, right of zero = execd
did better. Then the same tables as the terminal report.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from execd.domain import display
from execd.domain.tca_analysis import Summary
from execd.report.build import AnalysedLeg, PlanReport, RangeReport
from execd.report.formats import GROUP_TITLES, SIGN, leg_dict, summary_dict

_W, _H = 900, 320
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 70, 20, 20, 40

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 6px}
.note{color:#555;margin:2px 0 12px}
table{border-collapse:collapse;margin:8px 0 16px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f4f4f4} td.l,th.l{text-align:left}
.pos{color:#0a7d32} .neg{color:#b3261e} .wide{overflow-x:auto;max-width:100%}
table.legs,table.summary{font-size:12px} table.legs th,table.summary th{white-space:normal}
svg{background:#fff;border:1px solid #ddd;display:block;margin:6px 0}
svg text{font:11px system-ui,sans-serif;fill:#444}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.sw{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _tone(key: str, value: object) -> str:
    """CSS class colouring a signed figure by whether it was good for us: a saving is
    good when positive, a slippage (cost) when negative. Zero and unknown stay neutral."""
    if not isinstance(value, str) or not value.strip("-0."):
        return ""
    negative = value.startswith("-")
    if key.startswith("saving"):
        return "neg" if negative else "pos"
    if key.endswith("_bps"):
        return "pos" if negative else "neg"
    return ""


# --- tables ------------------------------------------------------------------------------------

_LEG_COLUMNS = (
    ("leg", "leg", True),
    ("symbol", "symbol", True),
    ("side", "side", True),
    ("urgency", "urgency", True),
    ("style", "style", True),
    ("state", "state", True),
    ("filled_qty", "filled", False),
    ("avg_fill_price", "avg px", False),
    ("arrival_mid", "arrival mid", False),
    ("vs_arrival_mid_bps", "vs arrival mid bps", False),
    ("vs_nbbo_mid_at_fill_bps", "vs NBBO@fill bps", False),
    ("vs_vwap_bps", "vs VWAP bps", False),
    ("spread_capture", "spread capture", False),
    ("saving_vs_market_usd", "saved vs market $", False),
    ("time_to_first_fill_seconds", "1st fill s", False),
    ("repegs", "re-pegs", False),
    ("completed_at", "completed at", True),
    ("started_at", "started (ET)", True),
)


def _legs_table(legs: Sequence[AnalysedLeg]) -> str:
    head = "".join(
        f'<th class="{"l" if left else ""}">{_e(title)}</th>' for _, title, left in _LEG_COLUMNS
    )
    rows = []
    for leg in legs:
        d = leg_dict(leg)
        d["leg"] = f"{d['plan_id']}#{d['leg']}"
        d["started_at"] = display.eastern_short(leg.analysis.leg.started_at)
        cells = []
        for key, _, left in _LEG_COLUMNS:
            value = d[key]
            text = "—" if value is None else str(value)
            cls = "l" if left else _tone(key, value)
            cells.append(f'<td class="{cls}">{_e(text)}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'<div class="wide"><table class="legs"><tr>{head}</tr>{"".join(rows)}</table></div>'


def _summary_table(groups: dict[str, Summary], key: str) -> str:
    cols = (
        ("legs", "legs"),
        ("completion_rate", "completion rate"),
        ("fallback_rate", "fallback rate"),
        ("filled_notional_usd", "notional $"),
        ("vs_arrival_mid_bps", "vs arrival mid bps"),
        ("vs_nbbo_mid_at_fill_bps", "vs NBBO@fill bps"),
        ("vs_vwap_bps", "vs VWAP bps"),
        ("spread_capture", "capture"),
        ("saving_vs_market_usd", "saved vs market $"),
        ("saving_vs_market_bps", "saved bps"),
    )
    head = f'<th class="l">{_e(key)}</th>' + "".join(f"<th>{_e(t)}</th>" for _, t in cols)
    rows = []
    for name, s in groups.items():
        d = summary_dict(s)
        cells = [f'<td class="l">{_e(name)}</td>']
        for k, _ in cols:
            v = d[k]
            cls = _tone(k, v)
            cells.append(f'<td class="{cls}">{_e("—" if v is None else v)}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'<div class="wide"><table class="summary"><tr>{head}</tr>{"".join(rows)}</table></div>'


# --- the leg chart -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Scale:
    t0: datetime
    t1: datetime
    lo: Decimal
    hi: Decimal

    def x(self, t: datetime) -> float:
        span = max((self.t1 - self.t0).total_seconds(), 1e-3)
        frac = (t - self.t0).total_seconds() / span
        return _PAD_L + max(0.0, min(1.0, frac)) * (_W - _PAD_L - _PAD_R)

    def y(self, p: Decimal) -> float:
        span = float(self.hi - self.lo) or 1.0
        frac = float(p - self.lo) / span
        return _PAD_T + (1.0 - frac) * (_H - _PAD_T - _PAD_B)


def _fmt(x: float) -> str:
    return f"{x:.1f}"


def _step_path(points: Sequence[tuple[datetime, Decimal]], end: datetime, s: _Scale) -> str:
    """A step line through `points` (value held until the next point), ending at `end`."""
    if not points:
        return ""
    parts = [f"M{_fmt(s.x(points[0][0]))},{_fmt(s.y(points[0][1]))}"]
    for (_, p), (t_next, p_next) in itertools.pairwise(points):
        parts.append(f"H{_fmt(s.x(t_next))}")
        if p_next != p:
            parts.append(f"V{_fmt(s.y(p_next))}")
    parts.append(f"H{_fmt(s.x(end))}")
    return "".join(parts)


def _band(
    quotes: Sequence[tuple[datetime, Decimal, Decimal]], end: datetime, s: _Scale
) -> tuple[str, str, str]:
    """(shaded polygon, bid line, ask line) for the bid/ask band as steps."""
    if not quotes:
        return "", "", ""
    bids = [(t, b) for t, b, _ in quotes]
    asks = [(t, a) for t, _, a in quotes]
    ask_line = _step_path(asks, end, s)
    bid_line = _step_path(bids, end, s)
    # polygon: along the ask forwards, back along the bid
    pts: list[str] = []
    for (t, a), nxt in zip(asks, [*asks[1:], (end, asks[-1][1])], strict=True):
        pts += [f"{_fmt(s.x(t))},{_fmt(s.y(a))}", f"{_fmt(s.x(nxt[0]))},{_fmt(s.y(a))}"]
    back: list[str] = []
    for (t, b), nxt in zip(bids, [*bids[1:], (end, bids[-1][1])], strict=True):
        back += [f"{_fmt(s.x(t))},{_fmt(s.y(b))}", f"{_fmt(s.x(nxt[0]))},{_fmt(s.y(b))}"]
    polygon = " ".join(pts + back[::-1])
    return polygon, bid_line, ask_line


_Steps = list[tuple[datetime, Decimal]]


def _limits(leg: AnalysedLeg) -> tuple[list[_Steps], list[datetime]]:
    """The worked limit prices as runs of steps, and the times of market orders."""
    runs: list[_Steps] = []
    markets: list[datetime] = []
    current: _Steps = []
    for order in leg.history.orders:
        if order.limit_price is None:
            markets.append(order.intent_at)
            if current:
                current.append((order.intent_at, current[-1][1]))
                runs.append(current)
                current = []
            continue
        if order.kind == "place" and current:
            current.append((order.intent_at, current[-1][1]))  # cancelled: ends here
            runs.append(current)
            current = []
        current.append((order.intent_at, order.limit_price))
    if current:
        runs.append(current)
    return runs, markets


def leg_chart(leg: AnalysedLeg) -> str:
    """The SVG chart of one leg (see the module docstring)."""
    inp = leg.analysis.leg
    quotes: list[tuple[datetime, Decimal, Decimal]] = []
    if leg.benchmarks is not None:
        for d in leg.benchmarks.decisions:
            if d.quote is not None and d.quote.bid > 0 and d.quote.ask > 0:
                quotes.append((d.at, d.quote.bid, d.quote.ask))
    for f in inp.fills:  # a v2 journal has no decisions: the fills' NBBO still draws a band
        if leg.benchmarks is None and f.quote is not None:
            quotes.append((f.time, f.quote.bid, f.quote.ask))
    quotes.sort(key=lambda q: q[0])
    times = [q[0] for q in quotes] + [f.time for f in inp.fills]
    times += [o.intent_at for o in leg.history.orders]
    if inp.started_at is not None:
        times.append(inp.started_at)
    if inp.finished_at is not None:
        times.append(inp.finished_at)
    title = f"{inp.plan_id} leg {inp.leg_index}: {inp.side.value} {inp.symbol}"
    if not times:
        return (
            f'<svg class="leg-chart" width="{_W}" height="60" role="img" aria-label="{_e(title)}">'
            f'<text x="{_PAD_L}" y="35">no market data or orders recorded for this leg</text></svg>'
        )
    t0, t1 = min(times), max(times)
    runs, markets = _limits(leg)
    # a little room after the last event, so the last fill's dot is not cut in half
    t_end = t1 + max((t1 - t0) * 0.03, timedelta(milliseconds=50))
    arrival_mid = leg.analysis.tca.arrival_mid
    prices = [p for _, b, a in quotes for p in (b, a)]
    prices += [f.price for f in inp.fills] + [p for run in runs for _, p in run]
    if arrival_mid is not None:
        prices.append(arrival_mid)
    if not prices:
        prices = [Decimal(0), Decimal(1)]
    lo, hi = min(prices), max(prices)
    pad = (hi - lo) * Decimal("0.08") or max(hi * Decimal("0.001"), Decimal("0.01"))
    s = _Scale(t0, t_end, lo - pad, hi + pad)
    out = [
        f'<svg class="leg-chart" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" '
        f'role="img" aria-label="{_e(title)}">',
    ]
    out += _axes(s)
    polygon, bid_line, ask_line = _band(quotes, t1, s)
    if polygon:
        out.append(f'<polygon class="band" points="{polygon}" fill="#cfe3f7" stroke="none"/>')
        out.append(
            f'<path class="bid" d="{bid_line}" fill="none" stroke="#2e7d32" stroke-width="1.2"/>'
        )
        out.append(
            f'<path class="ask" d="{ask_line}" fill="none" stroke="#c62828" stroke-width="1.2"/>'
        )
    if arrival_mid is not None:
        y = _fmt(s.y(arrival_mid))
        out.append(
            f'<line class="arrival-mid" x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{y}" y2="{y}" '
            'stroke="#555" stroke-dasharray="6 4"/>'
        )
    for run in runs:
        end = run[-1][0] if len(run) > 1 and run[-1][1] == run[-2][1] else t1
        path = _step_path(run, end, s)
        out.append(
            f'<path class="limit" d="{path}" fill="none" stroke="#1a48c4" stroke-width="2"/>'
        )
        for t, p in run[:-1] if len(run) > 1 and end == run[-1][0] else run:
            # each place/replace also as a mark: an order filled at once leaves no line
            out.append(
                f'<rect class="order-mark" x="{_fmt(s.x(t) - 3)}" y="{_fmt(s.y(p) - 3)}" '
                f'width="6" height="6" fill="#1a48c4"><title>{_e(display.price(p))} at '
                f"{_e(display.eastern_short(t))}</title></rect>"
            )
    for t in markets:
        x = _fmt(s.x(t))
        out.append(
            f'<line class="market-order" x1="{x}" x2="{x}" y1="{_PAD_T}" y2="{_H - _PAD_B}" '
            'stroke="#8e24aa" stroke-width="1.5" stroke-dasharray="2 2"/>'
        )
        out.append(_market_label(s.x(t)))
    biggest = max((f.qty for f in inp.fills), default=Decimal(1))
    for f in inp.fills:
        r = 3 + 9 * math.sqrt(float(f.qty / biggest))
        tip = f"{display.qty(f.qty)} @ {display.price(f.price)} at {display.eastern_short(f.time)}"
        out.append(
            f'<circle class="fill" cx="{_fmt(s.x(f.time))}" cy="{_fmt(s.y(f.price))}" '
            f'r="{r:.1f}" fill="#ff8f00" fill-opacity="0.85" stroke="#6d4c00">'
            f"<title>{_e(tip)}</title></circle>"
        )
    out.append("</svg>")
    return "".join(out)


def elapsed_labels(span_seconds: float, steps: int) -> list[str]:
    """The x axis's ``steps + 1`` labels, with just enough decimals to tell them apart.

    One decimal made a 0.3 s leg's axis read +0.0s, +0.1s, +0.1s, +0.2s...; a sub-second
    leg is common (a marketable limit filled at once), so its ticks are in milliseconds.
    """
    if span_seconds < 1.0:
        return [f"+{span_seconds * 1000 * i / steps:.0f}ms" for i in range(steps + 1)]
    decimals = 0 if span_seconds >= 10 * steps else 1
    return [f"+{span_seconds * i / steps:.{decimals}f}s" for i in range(steps + 1)]


def _market_label(x: float) -> str:
    """A market order's label, on the side of its line that has room (it was cut at the
    right edge when the fallback was the leg's last event, which it usually is)."""
    if x > (_W - _PAD_R) - 110:
        where = f'x="{_fmt(x - 4)}" text-anchor="end"'
    else:
        where = f'x="{_fmt(x + 4)}"'
    y = _H - _PAD_B - 4
    return f'<text class="market-label" {where} y="{y}" fill="#8e24aa">market order</text>'


def _axes(s: _Scale) -> list[str]:
    parts = [
        f'<line x1="{_PAD_L}" x2="{_PAD_L}" y1="{_PAD_T}" y2="{_H - _PAD_B}" stroke="#999"/>',
        f'<line x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{_H - _PAD_B}" y2="{_H - _PAD_B}" '
        'stroke="#999"/>',
    ]
    for i in range(5):
        p = s.lo + (s.hi - s.lo) * Decimal(i) / 4
        y = _fmt(s.y(p))
        parts.append(f'<line x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{y}" y2="{y}" stroke="#eee"/>')
        label = display.derived_price(p) or ""
        parts.append(f'<text x="{_PAD_L - 6}" y="{y}" text-anchor="end" dy="4">{_e(label)}</text>')
    labels = elapsed_labels((s.t1 - s.t0).total_seconds(), 5)
    for i, label in enumerate(labels):
        t = s.t0 + (s.t1 - s.t0) * (i / 5)
        x = _fmt(s.x(t))
        anchor = "end" if i == 5 else "middle"
        parts.append(
            f'<text x="{x}" y="{_H - _PAD_B + 16}" text-anchor="{anchor}">{_e(label)}</text>'
        )
    parts.append(
        f'<text x="{_PAD_L}" y="{_H - 6}">{_e(display.eastern_short(s.t0))}</text>'
        f'<text x="{_W - _PAD_R}" y="{_H - 6}" text-anchor="end">'
        f"{_e(display.eastern_short(s.t1))}</text>"
    )
    return parts


_LEGEND = (
    '<div class="legend">'
    '<span><i class="sw" style="background:#cfe3f7"></i>bid/ask band (NBBO the leg saw)</span>'
    '<span><i class="sw" style="background:#2e7d32"></i>bid</span>'
    '<span><i class="sw" style="background:#c62828"></i>ask</span>'
    '<span><i class="sw" style="background:#555"></i>arrival mid (dashed; the quote when '
    "the ladder began working)</span>"
    '<span><i class="sw" style="background:#1a48c4"></i>limit price worked (■ each '
    "order placed or re-pegged)</span>"
    '<span><i class="sw" style="background:#8e24aa"></i>market order</span>'
    '<span><i class="sw" style="background:#ff8f00;border-radius:50%"></i>fill (area = qty)</span>'
    "</div>"
)


# --- the range's cost distribution -------------------------------------------------------------


def cost_chart(legs: Iterable[AnalysedLeg]) -> str:
    """Legs binned by bps saved vs a market order at arrival (right of 0 = execd better)."""
    values = [
        float(leg.analysis.saving_vs_market_bps)
        for leg in legs
        if leg.analysis.saving_vs_market_bps is not None
    ]
    w, h, pl, pb = 900, 260, 50, 40
    if not values:
        return (
            f'<svg class="cost-chart" width="{w}" height="60"><text x="{pl}" y="35">'
            "no filled legs with a market-order benchmark in this range</text></svg>"
        )
    lo, hi = min([*values, 0.0]), max([*values, 0.0])
    if hi - lo < 1:
        lo, hi = lo - 0.5, hi + 0.5
    bins = 20
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    top = max(counts)
    plot_w, plot_h = w - pl - 20, h - 20 - pb

    def x(v: float) -> float:
        return pl + (v - lo) / (hi - lo) * plot_w

    out = [f'<svg class="cost-chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}">']
    out.append(f'<line x1="{pl}" x2="{w - 20}" y1="{h - pb}" y2="{h - pb}" stroke="#999"/>')
    for i, c in enumerate(counts):
        if not c:
            continue
        left = lo + i * width
        bh = c / top * plot_h
        # green: every leg in the bin beat the market order; red: every one lost to it;
        # grey: the bin straddles zero
        colour = "#0a7d32" if left >= 0 else ("#b3261e" if left + width <= 0 else "#9e9e9e")
        out.append(
            f'<rect class="bin" x="{_fmt(x(left) + 1)}" y="{_fmt(h - pb - bh)}" '
            f'width="{_fmt(max(plot_w / bins - 2, 1))}" height="{_fmt(bh)}" fill="{colour}">'
            f"<title>{c} legs, {left:.2f} to {left + width:.2f} bps</title></rect>"
        )
    zx = _fmt(x(0.0))
    out.append(
        f'<line class="zero" x1="{zx}" x2="{zx}" y1="10" y2="{h - pb}" stroke="#222" '
        'stroke-dasharray="4 3"/>'
    )
    out.append(f'<text x="{zx}" y="12" text-anchor="middle">market order (0)</text>')
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        out.append(f'<text x="{_fmt(x(v))}" y="{h - pb + 16}" text-anchor="middle">{v:.1f}</text>')
    out.append(
        f'<text x="{pl + plot_w / 2}" y="{h - 6}" text-anchor="middle">'
        "bps saved per leg vs a market order at arrival (right of 0: execd did better)</text>"
    )
    out.append(f'<text x="{pl - 8}" y="24" text-anchor="end">{top}</text>')
    out.append("</svg>")
    return "".join(out)


# --- pages ------------------------------------------------------------------------------------


def _page(title: str, body: Sequence[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )


def _leg_sections(legs: Sequence[AnalysedLeg]) -> list[str]:
    parts = [_LEGEND]
    for leg in legs:
        inp = leg.analysis.leg
        d = leg_dict(leg)
        parts.append(
            f'<section class="leg" id="leg-{_e(inp.plan_id)}-{inp.leg_index}">'
            f"<h2>{_e(inp.plan_id)} #{inp.leg_index}: {_e(inp.side.value)} "
            f"{_e(d['requested_qty'] or '')} {_e(inp.symbol)} — {_e(inp.state)}</h2>"
            f'<p class="note">{_e(d["style"] or "not started")}, urgency {_e(inp.urgency)}, '
            f"feed {_e(inp.feed or 'unknown')}; avg {_e(d['avg_fill_price'] or '—')} vs arrival "
            f"mid {_e(d['arrival_mid'] or '—')}: {_e(d['vs_arrival_mid_bps'] or '—')} bps; "
            f"saved vs a market order: {_e(d['saving_vs_market_usd'] or '—')} USD"
            f"{'' if not inp.reason else '; ' + _e(inp.reason)}</p>"
            f"{leg_chart(leg)}</section>"
        )
    return parts


def plan_html(report: PlanReport) -> str:
    """The page for one plan."""
    return _page(
        f"execd report {report.plan_id}",
        [
            f"<h1>execd report — plan {_e(report.plan_id)}</h1>",
            f'<p class="note">{_e(report.state)}'
            f"{'' if not report.reason else ' (' + _e(report.reason) + ')'}; submitted "
            f"{_e(display.eastern_short(report.submitted_at))}; times US/Eastern. {_e(SIGN)}.</p>",
            "<h2>Plan summary (notional-weighted)</h2>",
            _summary_table({"plan": report.summary}, "plan"),
            "<h2>Legs</h2>",
            _legs_table(report.legs),
            *_leg_sections(report.legs),
        ],
    )


def range_html(report: RangeReport, max_leg_charts: int = 200) -> str:
    """The page for a `--since` range: distribution, aggregates, tables, per-leg charts."""
    legs = report.legs
    until = display.eastern_short(report.until) if report.until else "now"
    body = [
        "<h1>execd report — plans since "
        f"{_e(display.eastern_short(report.since))} until {_e(until)}</h1>",
        f'<p class="note">{len(report.plans)} plans, {len(legs)} legs; times US/Eastern. '
        f"{_e(SIGN)}.</p>",
        "<h2>Cost distribution vs the market-order counterfactual</h2>",
        cost_chart(legs),
        "<h2>All legs</h2>",
        _summary_table({"all": report.summary}, ""),
    ]
    for name, groups in report.groups.items():
        title = GROUP_TITLES.get(name, name)
        body.append(f"<h2>{_e(title[:1].upper() + title[1:])}</h2>")
        body.append(_summary_table(groups, name))
    body += ["<h2>Legs</h2>", _legs_table(legs)]
    shown = legs[:max_leg_charts]
    if len(legs) > len(shown):
        body.append(f'<p class="note">charts for the first {len(shown)} legs only</p>')
    body += _leg_sections(shown)
    return _page("execd report", body)
