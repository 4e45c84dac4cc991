"""Item 6's per-case causes: which cases make a missed target miss, and why.

A figure that misses its target must say why (issue 14: the ladder, the venue model or the
target). These functions split the figures by what explains them — the pricing style a leg
used, and how far the market moved against the leg while it worked — and name the tail cases,
so that the printed note carries the reason measured in the same run rather than a sentence
written once.

A leg's cost against the arrival mid splits exactly into the **drift** (the mid at its last fill
minus the arrival mid, signed against the leg) and what it **paid against the mid at its fill**.
A leg that waits (the open delay, a wide-spread wait, a passive limit the market walked away
from) carries the drift of its wait; a market order at arrival carries none.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from execd.bench.harness import LegResult
from execd.domain.ladder_types import PricingStyle
from execd.domain.types import Side, Urgency

if TYPE_CHECKING:
    from execd.bench.quality import Outcome

HIGH_TIME_TARGET_S = 10.0
OPEN_WINDOW = timedelta(minutes=5)
EXCESS_TARGET_BPS = 2.0


def cost_bps(result: LegResult, side: Side, mid: Decimal) -> float | None:
    """Cost vs the arrival mid in bps (positive = paid more / received less than mid)."""
    avg = result.avg_price
    if avg is None or mid <= 0:
        return None
    signed = (avg - mid) if side is Side.BUY else (mid - avg)
    return float(signed / mid * 10_000)


def drift_bps(result: LegResult, side: Side, mid: Decimal) -> float | None:
    """How far the mid moved against the leg between arrival and its last fill, in bps
    (positive = against: up for a buy, down for a sell)."""
    later = result.mid_at_last_fill
    if later is None or mid <= 0:
        return None
    signed = (later - mid) if side is Side.BUY else (mid - later)
    return float(signed / mid * 10_000)


def _median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def excess(o: Outcome, urgency: Urgency = Urgency.NORMAL) -> float | None:
    """The ladder's cost minus the market order's on the same venue (positive = worse)."""
    ladder = cost_bps(o.ladder[urgency], o.case.side, o.arrival_mid)
    market = cost_bps(o.market, o.case.side, o.arrival_mid)
    return None if ladder is None or market is None else ladder - market


def high_time_note(outcomes: Sequence[Outcome], patience_s: float) -> str:
    """Where high urgency's time goes, by pricing style (`patience_s`: the passive style's
    patience at high urgency, `passive_patience_high_seconds`)."""
    parts = []
    for style in (PricingStyle.MARKETABLE, PricingStyle.PASSIVE):
        times = [
            t
            for o in outcomes
            if o.style is style
            and o.ladder[Urgency.HIGH].complete
            and (t := o.ladder[Urgency.HIGH].seconds(o.opens)) is not None
        ]
        if not times:
            continue
        slow = sum(t > HIGH_TIME_TARGET_S for t in times)
        parts.append(
            f"{style.value} legs: {slow} of {len(times)} over {HIGH_TIME_TARGET_S:g} s, "
            f"max {max(times):.1f} s"
        )
    return (
        "; ".join(parts) + f" — a passive limit that does not fill crosses when high's "
        f"{patience_s:g} s patience (passive_patience_high_seconds) runs out; the rest is "
        "the cancel and the collared fallback"
    )


def excess_note(outcomes: Sequence[Outcome]) -> str:
    """Why the normal-vs-market excess has a tail: the drift over the legs that make it."""
    over = []
    for o in outcomes:
        e = excess(o)
        r = o.ladder[Urgency.NORMAL]
        d = drift_bps(r, o.case.side, o.arrival_mid)
        c = cost_bps(r, o.case.side, o.arrival_mid)
        if e is not None and e > EXCESS_TARGET_BPS and d is not None and c is not None:
            over.append((e, d, c - d, r.seconds(o.opens) or 0.0))
    if not over:
        return "no leg over the target"
    every = [e for o in outcomes if (e := excess(o)) is not None]
    groups = []
    for label, at_open in (("at the open", True), ("later", False)):
        for style in (PricingStyle.MARKETABLE, PricingStyle.PASSIVE):
            xs = [
                e
                for o in outcomes
                if o.style is style
                and at_open_window(o) is at_open
                and (e := excess(o)) is not None
            ]
            if xs:
                groups.append(f"{label}, {style.value}: {_p90(xs):.1f} (n={len(xs)})")
    return (
        f"{len(over)} of {len(every)} legs over {EXCESS_TARGET_BPS:g} bps; on them the mid moved "
        f"against the leg by a median {_median([d for _, d, _, _ in over]):.1f} bps before its "
        f"last fill (median {_median([t for *_, t in over]):.0f} s of waiting) while it paid a "
        f"median {_median([p for _, _, p, _ in over]):.1f} bps vs the mid at its fill; mean "
        f"excess over all legs {statistics.fmean(every):+.1f} bps (drift is symmetric: the "
        f"mirror legs gain it); p90 by group: {'; '.join(groups)}"
    )


def at_open_window(o: Outcome) -> bool:
    """The leg started before the open or in its first five minutes (the open delay, the
    wide-spread wait and the open's jumpy quotes apply)."""
    started = o.ladder[Urgency.NORMAL].started
    return started is not None and started < o.opens + OPEN_WINDOW


def _p90(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return xs[0] if xs else float("nan")
    return statistics.quantiles(xs, n=10, method="inclusive")[-1]


def low_calm_note(outcomes: Sequence[Outcome]) -> str:
    """Low urgency on calm markets by pricing style, each against its own quarter spread."""
    parts = []
    for style in (PricingStyle.MARKETABLE, PricingStyle.PASSIVE):
        group = [o for o in outcomes if o.case.market == "calm" and o.style is style]
        costs = [
            c
            for o in group
            if (c := cost_bps(o.ladder[Urgency.LOW], o.case.side, o.arrival_mid)) is not None
        ]
        if not costs:
            continue
        quarter = statistics.fmean(o.half_spread_bps / 2 for o in group)
        parts.append(
            f"{style.value} ({', '.join(sorted({o.case.symbol for o in group}))}) "
            f"{statistics.fmean(costs):.2f} vs {quarter:.2f} bps"
        )
    return (
        "low urgency on calm markets vs a quarter of the arrival spread; "
        + "; ".join(parts)
        + " — the marketable style (seed 003, leveraged ETFs at every urgency) buys at the ask "
        "+ 1 tick: never less than half the spread"
    )


def tail(outcomes: Sequence[Outcome], n: int = 8) -> str:
    """The `n` cases with the largest normal-vs-market excess, with their drift and wait."""
    rows = [
        "normal's excess tail (ladder − market, bps): drift = mid move against the leg to its "
        "last fill",
        "case                                   excess  drift  vs-mid-at-fill  time s  orders",
    ]
    ranked = sorted(((e, o) for o in outcomes if (e := excess(o)) is not None), key=lambda x: -x[0])
    for e, o in ranked[:n]:
        r = o.ladder[Urgency.NORMAL]
        d = drift_bps(r, o.case.side, o.arrival_mid)
        c = cost_bps(r, o.case.side, o.arrival_mid)
        paid = "" if d is None or c is None else f"{c - d:14.1f}"
        name = f"{o.case.market[:22]}/{o.case.symbol} {o.case.side.value} x{o.case.size}"
        drift = "" if d is None else f"{d:6.1f}"
        seconds = r.seconds(o.opens)
        wait = "" if seconds is None else f"{seconds:7.1f}"
        rows.append(f"{name:<38} {e:6.1f} {drift:>6} {paid:>14} {wait:>7} {r.orders:>7}")
    return "\n".join(rows)
