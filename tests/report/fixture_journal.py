"""A journal with several plans across urgencies, styles and time-of-day buckets.

Written through the real `Journal` API, the way the daemon writes it (intents, fills
with the NBBO at fill, the leg's status JSON, its benchmarks), with hand-picked
prices so the report's figures can be checked by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import msgspec

from execd.adapters.journal import Journal
from execd.control.protocol import LegState, LegStatus, PricingStyle
from execd.domain.benchmarks import Decision, LegBenchmarks, QuoteMark
from execd.domain.ids import client_order_id
from execd.domain.plans import parse_plan
from execd.domain.quotes import Quote
from execd.domain.types import Side, Urgency

D = Decimal


@dataclass(frozen=True)
class FixtureLeg:
    """One leg of the fixture: its arrival NBBO, its orders (limit or None) and fills."""

    symbol: str
    side: str
    qty: str
    urgency: str
    style: PricingStyle
    start: datetime  # UTC
    bid: str
    ask: str
    limits: tuple[str | None, ...]
    fills: tuple[tuple[str, str], ...]  # (qty, price)
    fallback: bool = False


# 2026-05-11 is a Monday in EDT (UTC−4): 13:31 UTC = 09:31 ET.
DAY = datetime(2026, 5, 11, tzinfo=UTC)

PLANS: dict[str, tuple[FixtureLeg, ...]] = {
    "open-etf": (
        FixtureLeg(
            "TQQQ",
            "buy",
            "100",
            "normal",
            "marketable",
            DAY.replace(hour=13, minute=31),
            "50.00",
            "50.02",
            ("50.03",),
            (("100", "50.02"),),
        ),
    ),
    "normal-window": (
        FixtureLeg(
            "AAPL",
            "sell",
            "50",
            "low",
            "passive",
            DAY.replace(hour=13, minute=33),
            "190.00",
            "190.04",
            ("190.03", "190.02"),
            (("50", "190.02"),),
        ),
        FixtureLeg(
            "MSFT",
            "buy",
            "10",
            "low",
            "passive",
            DAY.replace(hour=13, minute=33, second=5),
            "400.00",
            "400.10",
            ("400.01",),
            (),
        ),
    ),
    "midday-fallback": (
        FixtureLeg(
            "ACME",
            "buy",
            "200",
            "high",
            "passive",
            DAY.replace(hour=16),
            "20.00",
            "20.04",
            ("20.01", "20.02", None),
            (("50", "20.02"), ("150", "20.07")),
            fallback=True,
        ),
    ),
    "close-legacy": (
        FixtureLeg(
            "SQQQ",
            "sell",
            "300",
            "normal",
            "market",
            DAY.replace(hour=19, minute=45),
            "0.9990",
            "0.9995",
            (None,),
            (("300", "0.9985"),),
        ),
    ),
}


def _quote(symbol: str, bid: str, ask: str, at: datetime) -> Quote:
    return Quote(symbol, D(bid), D(ask), D("500"), D("80"), at, at)


async def build(path: Path) -> None:
    """Write the fixture journal at `path`."""
    async with await Journal.open(path) as journal:
        for plan_id, legs in PLANS.items():
            doc = {
                "plan_id": plan_id,
                "legs": [
                    {"symbol": x.symbol, "side": x.side, "qty": x.qty, "urgency": x.urgency}
                    for x in legs
                ],
            }
            plan = parse_plan(doc, lambda: "unused", Urgency.NORMAL)
            submitted = legs[0].start - timedelta(seconds=1)
            await journal.record_plan(plan_id, submitted, plan.to_wire(), legs=plan.legs)
            for index, leg in enumerate(legs):
                await _leg(journal, plan_id, index, leg)
            await journal.update_plan(
                plan_id, "completed", "done", legs[-1].start + timedelta(seconds=30)
            )


async def _leg(journal: Journal, plan_id: str, index: int, leg: FixtureLeg) -> None:
    side = Side(leg.side)
    arrival = _quote(leg.symbol, leg.bid, leg.ask, leg.start)
    mark = QuoteMark.of(arrival, leg.start)
    decisions = [Decision(at=leg.start, kind="quote", quote=mark)]
    previous: str | None = None
    for attempt, limit in enumerate(leg.limits):
        cid = client_order_id(plan_id, index, attempt)
        at = leg.start + timedelta(seconds=2 * attempt)
        replace = previous is not None and limit is not None
        await journal.record_intent(
            cid,
            plan_id=plan_id,
            leg_index=index,
            attempt=attempt,
            kind="replace" if replace else "place",
            order_type="market" if limit is None else "limit",
            side=side,
            qty=D(leg.qty),
            limit_price=None if limit is None else D(limit),
            at=at,
            replaces_client_order_id=previous if replace else None,
        )
        decisions.append(
            Decision(
                at=at,
                kind="replace" if replace else "place",
                quote=QuoteMark.of(arrival, at),
                limit_price=None if limit is None else D(limit),
                qty=D(leg.qty),
            )
        )
        previous = cid
    last_cid = client_order_id(plan_id, index, len(leg.limits) - 1)
    filled = D(0)
    notional = D(0)
    for n, (qty, price) in enumerate(leg.fills):
        # each fill half a second after the order that took it (the last ones)
        order = max(0, len(leg.limits) - len(leg.fills) + n)
        at = leg.start + timedelta(seconds=2 * order + 0.5)
        at_fill = _quote(leg.symbol, leg.bid, leg.ask, at)
        await journal.record_fill(
            f"{plan_id}-{index}-{n}", last_cid, D(qty), D(price), at, quote=at_fill
        )
        filled += D(qty)
        notional += D(qty) * D(price)
    state: LegState = "filled" if filled == D(leg.qty) else "unfilled"
    finished = leg.start + timedelta(seconds=20)
    status = LegStatus(
        index=index,
        symbol=leg.symbol,
        side=side,
        qty=D(leg.qty),
        notional=None,
        urgency=Urgency(leg.urgency),
        state=state,
        step=5,
        filled_qty=filled,
        avg_fill_price=notional / filled if filled else None,
        arrival_mid=arrival.mid,
        repegs=max(0, sum(1 for x in leg.limits if x is not None) - 1),
        started_at=leg.start,
        finished_at=finished,
        style=leg.style,
        market_order_price=arrival.ask if side is Side.BUY else arrival.bid,
    )
    await journal.update_leg(
        plan_id,
        index,
        state=state,
        step="5",
        filled_qty=filled,
        started_at=leg.start,
        finished_at=finished,
        reason="filled" if state == "filled" else "re-pegs exhausted, urgency low",
        report=msgspec.json.encode(status),
    )
    await journal.record_benchmarks(
        plan_id,
        index,
        LegBenchmarks(
            feed="iex",
            plan_arrival=mark,
            leg_arrival=mark,
            interval_vwap=D(leg.ask),
            fallback_fired=leg.fallback,
            decisions=tuple(decisions),
        ),
    )
