"""A leg's end: what it writes into the leg's record, its `leg_finished` log line with the
execution figures, and the journal rows of a leg and of a plan's end.

Split from the plan runner (`engine.runner`), which decides *when* a leg ends; this module
only records it, the same way for every leg.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec
import structlog

from execd.adapters.journal import JournalError
from execd.domain.ladder_types import Finish
from execd.domain.tca import round_bps
from execd.engine.leg import LegPorts
from execd.engine.records import LegRecord, PlanRecord, final_leg_state

_log = structlog.get_logger("execd.plan")


def record_finish(leg: LegRecord, finish: Finish, now: datetime, feed: str) -> None:
    """Write a leg's end into its record (state, reason, fills) and log it with its figures."""
    qty = leg.qty or Decimal(0)
    leg.state = final_leg_state(finish, qty)
    leg.step = 5
    leg.reason = finish.reason if leg.reason is None else f"{finish.reason}; {leg.reason}"
    leg.finished_at = now
    leg.limit_price = None
    leg.filled_qty = finish.filled_qty
    report = leg.report
    arrival = finish.arrival_quote
    duration = (leg.finished_at - leg.started_at).total_seconds() if leg.started_at else None
    _log.info(
        "leg_finished",
        state=leg.state,
        outcome=finish.outcome.value,
        reason=finish.reason,
        style=None if finish.style is None else finish.style.value,
        style_reason=finish.style_reason,
        requested_qty=str(qty),
        filled_qty=str(finish.filled_qty),
        avg_fill_price=_s(None if report is None else report.avg_price),
        arrival_bid=_s(None if arrival is None else arrival.bid),
        arrival_ask=_s(None if arrival is None else arrival.ask),
        arrival_mid=_s(None if arrival is None else arrival.mid),
        slippage_vs_arrival_mid_bps=_bps(None if report is None else report.vs_arrival_mid_bps),
        slippage_vs_nbbo_at_fill_bps=_bps(None if report is None else report.vs_fill_mid_bps),
        vs_touch_at_fill_bps=_bps(None if report is None else report.vs_fill_touch_bps),
        vs_vwap_bps=_bps(None if report is None else report.vs_vwap_bps),
        market_order_price=_s(None if report is None else report.market_order_price),
        saving_vs_market_bps=_bps(None if report is None else report.saving_vs_market_bps),
        saving_vs_market_usd=_s(None if report is None else report.saving_vs_market_usd),
        repegs=finish.repegs,
        fallback_fired=leg.fallback_fired,
        fills=len(finish.fills),
        duration_seconds=duration,
        feed=feed,
    )


async def journal_plan_end(
    ports: LegPorts, rec: PlanRecord, state: str, reason: str, at: datetime
) -> None:
    """Every leg as it ended, then the plan's end (which takes it off the restart list)."""
    try:
        for leg in rec.legs:
            await journal_leg(ports, rec.plan_id, leg)
        await ports.journal.update_plan(rec.plan_id, state, reason, at)
    except (JournalError, ValueError) as exc:
        _log.error("journal_plan_end_failed", plan_id=rec.plan_id, error=str(exc))


async def journal_leg(ports: LegPorts, plan_id: str, leg: LegRecord) -> None:
    """Write a leg's state and progress, with its status as the control socket shows it
    (its resolved qty — a notional or shrunk leg — and, once over, its report)."""
    await ports.journal.update_leg(
        plan_id,
        leg.leg.index,
        state=leg.state,
        step=str(leg.step),
        filled_qty=leg.filled_qty,
        avg_fill_price=leg.avg_fill_price,
        reason=leg.reason,
        started_at=leg.started_at,
        finished_at=leg.finished_at,
        report=msgspec.json.encode(leg.to_status()),
        benchmarks=leg.benchmarks if leg.finished else None,
    )


def _s(value: object) -> str | None:
    return None if value is None else str(value)


def _bps(value: Decimal | None) -> str | None:
    """Basis points for a log line, to 2 places (the report itself keeps them exact)."""
    return None if value is None else str(round_bps(value))
