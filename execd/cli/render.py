"""How the CLI shows status models: rich tables for people, JSON lines for programs.

Pure presentation: functions take the control API's models and return rich
renderables or strings; the commands decide where they are printed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from rich.table import Table
from rich.text import Text

from execd.control.protocol import (
    TERMINAL_PLAN_STATES,
    HaltState,
    Health,
    LegStatus,
    PlanStatus,
    WatchEvent,
)
from execd.domain import display
from execd.domain.calendar import EASTERN
from execd.domain.tca import round_bps, round_usd

NONE = "—"

_STATE_STYLE = {
    "filled": "green",
    "completed": "green",
    "working": "cyan",
    "waiting": "yellow",
    "pending": "dim",
    "accepted": "dim",
    "scheduled": "blue",
    "partial": "yellow",
    "unfilled": "yellow",
    "canceled": "magenta",
    "halted": "magenta",
    "rejected": "red",
    "failed": "red",
}


def to_json(value: Any) -> str:
    """One line of JSON: decimals as strings, datetimes as RFC 3339 (the wire format)."""
    return msgspec.json.encode(value).decode()


def _num(value: Decimal | None) -> str:
    return NONE if value is None else f"{value:f}"


def _bps(value: Decimal | None) -> str:
    return NONE if value is None else f"{round_bps(value):f}"


def _usd(value: Decimal | None) -> str:
    return NONE if value is None else f"{round_usd(value):,f}"


def _time(value: datetime | None) -> str:
    return NONE if value is None else value.isoformat(timespec="seconds")


def _state(state: str) -> Text:
    return Text(state, style=_STATE_STYLE.get(state, ""))


HUMAN_PLACES = Decimal("0.0001")


def human(value: Decimal | None) -> str:
    """A number for people: at most 4 decimals, no trailing zeros (``--json`` keeps all)."""
    if value is None:
        return NONE
    exponent = value.as_tuple().exponent
    fine = isinstance(exponent, int) and exponent < -4
    text = f"{value.quantize(HUMAN_PLACES) if fine else value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def step_name(leg: LegStatus) -> str:
    """The ladder step in words (DESIGN.md "The ladder"): pre-check, open wait, limit,
    re-peg 2/5, fallback, done."""
    if leg.state in ("filled", "unfilled", "canceled", "rejected", "failed") or leg.step >= 5:
        return "done"
    if leg.state == "pending":
        return NONE
    match leg.step:
        case 0:
            return "pre-check"
        case 1:
            return "open wait"
        case 2:
            return "limit"
        case 3:
            most = "" if leg.max_repegs is None else f"/{leg.max_repegs}"
            return f"re-peg {leg.repegs}{most}"
        case _:
            return "fallback"


def _size(leg: LegStatus) -> str:
    """filled/qty, or filled/$notional for a leg sized in dollars (rounded for people)."""
    if leg.qty is not None:
        return f"{human(leg.filled_qty)}/{human(leg.qty)}"
    return f"{human(leg.filled_qty)}/${_num(leg.notional)}"


def all_legs_filled(plan: PlanStatus) -> bool:
    """The CLI's success test for a plan: every leg filled (what `submit --follow` exits 0 on)."""
    return bool(plan.legs) and all(leg.state == "filled" for leg in plan.legs)


def is_finished(plan: PlanStatus) -> bool:
    """True when nothing more will happen to the plan."""
    return plan.state in TERMINAL_PLAN_STATES


def plan_headline(plan: PlanStatus) -> str:
    """One line: id, state, legs filled, and why it ended."""
    filled = sum(1 for leg in plan.legs if leg.state == "filled")
    line = f"plan {plan.plan_id}: {plan.state}, {filled}/{len(plan.legs)} legs filled"
    if plan.state == "scheduled" and plan.scheduled_for is not None:
        line += f", starts {eastern(plan.scheduled_for)}"
    return f"{line} ({plan.reason})" if plan.reason else line


def eastern(value: datetime) -> str:
    """A time as traders read it: US/Eastern, ``2026-03-05 09:25:00 ET``."""
    return value.astimezone(EASTERN).strftime("%Y-%m-%d %H:%M:%S ET")


def legs_table(plan: PlanStatus, *, title: str | None = None) -> Table:
    """Every leg of a plan: what it is, where the ladder is, what it got, why it ended."""
    table = Table(title=title or plan_headline(plan), title_justify="left")
    for name in ("#", "symbol", "side", "urgency", "state", "step", "filled/qty"):
        table.add_column(name, justify="right" if name in {"#", "step"} else "left")
    for name in ("working px", "avg fill", "arrival mid", "slip bps", "repegs"):
        table.add_column(name, justify="right")
    table.add_column("reason")
    for leg in plan.legs:
        table.add_row(
            str(leg.index),
            leg.symbol,
            leg.side,
            leg.urgency,
            _state(leg.state),
            step_name(leg),
            _size(leg),
            _num(leg.limit_price),
            human(leg.avg_fill_price),
            human(leg.arrival_mid),
            _bps(leg.slippage_bps),
            str(leg.repegs),
            leg.reason or "",
        )
    return table


def touch_distance(leg: LegStatus) -> Decimal | None:
    """How far the working limit is beyond the touch it would take, in dollars.

    Buy: limit − ask; sell: bid − limit. Positive = marketable (through the touch),
    negative = resting inside the spread or behind it. None without a limit or a quote.
    """
    if leg.limit_price is None or leg.bid is None or leg.ask is None:
        return None
    if leg.side == "buy":
        return leg.limit_price - leg.ask
    return leg.bid - leg.limit_price


def _elapsed(leg: LegStatus, now: datetime | None) -> str:
    start = leg.started_at
    if start is None:
        return NONE
    end = leg.finished_at or now
    if end is None:
        return NONE
    seconds = max(0, int((end - start).total_seconds()))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _nbbo(leg: LegStatus) -> str:
    if leg.bid is None or leg.ask is None:
        return NONE
    age = "" if leg.quote_age_seconds is None else f" ({leg.quote_age_seconds:.1f}s)"
    return f"{display.price(leg.bid)} × {display.price(leg.ask)}{age}"


def _signed(value: Decimal | None) -> str:
    return NONE if value is None else f"{value:+f}"


def live_table(
    plan_id: str, plan_state: str, legs: Sequence[LegStatus], now: datetime | None = None
) -> Table:
    """The `--follow` view: one row per leg, redrawn on every event and refresh.

    `now` (the venue's clock, as last heard from the daemon) gives running legs their
    elapsed time. Per leg: the NBBO and its age, the working limit and its distance from
    the touch (+ = through it), why a leg waits, and the slippage once it has fills.
    """
    table = Table(title=f"plan {plan_id}: {plan_state}", title_justify="left")
    for name in (
        "#",
        "symbol",
        "side",
        "state",
        "step",
        "elapsed",
        "filled/qty",
        "bid × ask (age)",
        "working px",
        "vs touch",
        "slip bps",
        "waiting for",
    ):
        right = name in {"#", "step", "elapsed", "slip bps", "vs touch"}
        table.add_column(name, justify="right" if right else "left")
    for leg in legs:
        table.add_row(
            str(leg.index),
            leg.symbol,
            leg.side,
            _state(leg.state),
            step_name(leg),
            _elapsed(leg, now),
            _size(leg),
            _nbbo(leg),
            _num(leg.limit_price),
            _signed(touch_distance(leg)),
            _bps(leg.slippage_bps),
            leg.waiting or "",
        )
    return table


def event_line(event: WatchEvent) -> str:
    """A progress event as one plain line (when stdout is not a terminal)."""
    parts = [f"{_time(event.at)} {event.event}", f"plan={event.plan_state}"]
    leg = event.leg
    if leg is not None:
        parts += [
            f"leg={leg.index}",
            leg.symbol,
            leg.side,
            f"state={leg.state}",
            f"step={step_name(leg).replace(' ', '-')}",
            f"filled={_size(leg)}",
        ]
        if leg.bid is not None and leg.ask is not None:
            parts.append(f"nbbo={display.price(leg.bid)}x{display.price(leg.ask)}")
        if leg.limit_price is not None:
            parts.append(f"px={_num(leg.limit_price)}")
        if leg.waiting:
            parts.append(f"waiting={leg.waiting!r}")
        if leg.slippage_bps is not None:
            parts.append(f"slip_bps={_bps(leg.slippage_bps)}")
    if event.message:
        parts.append(event.message)
    return " ".join(parts)


def plans_table(plans: Iterable[PlanStatus]) -> Table:
    """Every plan the daemon knows, one row each."""
    table = Table(title="plans", title_justify="left")
    for name in ("plan", "state", "submitted", "legs filled", "reason"):
        table.add_column(name)
    for plan in plans:
        filled = sum(1 for leg in plan.legs if leg.state == "filled")
        table.add_row(
            plan.plan_id,
            _state(plan.state),
            _time(plan.submitted_at),
            f"{filled}/{len(plan.legs)}",
            _plan_note(plan),
        )
    return table


def _plan_note(plan: PlanStatus) -> str:
    """Why a plan ended, or, while it is held, when it starts."""
    if plan.state == "scheduled" and plan.scheduled_for is not None:
        return f"starts {eastern(plan.scheduled_for)}"
    return plan.reason or ""


def dry_run_table(plan: PlanStatus) -> Table:
    """`submit --dry-run`: the legs as they would run now, nothing sent."""
    when = "now" if plan.scheduled_for is None else eastern(plan.scheduled_for)
    table = Table(
        title=f"dry run of plan {plan.plan_id}: would start {when}; nothing sent",
        title_justify="left",
    )
    for name in ("#", "symbol", "side", "qty", "urgency", "style", "first price", "mid"):
        table.add_column(name, justify="right" if name in {"#", "qty", "first price"} else "left")
    for leg in plan.legs:
        qty = human(leg.qty) if leg.qty is not None else f"${_num(leg.notional)}"
        table.add_row(
            str(leg.index),
            leg.symbol,
            leg.side,
            qty,
            leg.urgency,
            leg.style or NONE,
            _num(leg.limit_price),
            human(leg.arrival_mid),
        )
    return table


def health_table(health: Health) -> Table:
    """The daemon's view of the world: streams, quote ages, request budget, halted."""
    table = Table(title="execd health", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value")

    def up(ok: bool) -> Text:
        return Text("connected", style="green") if ok else Text("DOWN", style="bold red")

    table.add_row("halted", Text("yes", style="magenta") if health.halted else Text("no"))
    if health.journal_error is not None:
        table.add_row("journal", Text(f"UNWRITABLE: {health.journal_error}", style="bold red"))
    if health.recovering is not None:
        table.add_row("starting", Text(health.recovering, style="yellow"))
    table.add_row("market data stream", up(health.market_data_connected))
    table.add_row("trade updates stream", up(health.trade_updates_connected))
    limit = f"/{health.request_budget_limit}" if health.request_budget_limit is not None else ""
    table.add_row("request budget left", f"{health.request_budget_left}{limit}")
    if health.data_budget_left is not None:
        table.add_row(
            "quote-read budget left", f"{health.data_budget_left}/{health.data_budget_limit}"
        )
    table.add_row("venue", health.venue or NONE)
    table.add_row("feed", health.feed or NONE)
    table.add_row("working plans", str(health.working_plans))
    for symbol, age in sorted(health.quote_age_seconds.items()):
        table.add_row(f"quote age {symbol}", f"{age:.2f} s")
    if health.stale_quote_symbols:
        stale = ", ".join(health.stale_quote_symbols)
        table.add_row("stale quotes", Text(stale, style="bold red"))
    for leg in health.legs_holding:
        table.add_row("holding (stale quotes)", Text(leg, style="yellow"))
    return table


def healthy(health: Health) -> bool:
    """Both streams up and the journal writable: what `execd health` exits 0 on
    (monitoring can alert on the rest)."""
    return (
        health.market_data_connected
        and health.trade_updates_connected
        and health.journal_error is None
    )


def halt_line(state: HaltState) -> str:
    """What `execd halt` / `execd resume` print: a halt that left orders working, or could
    not list the venue's, says so first — the user must act at the venue."""
    if state.refused is not None:
        return f"execd not resumed: {state.refused}"
    if not state.halted:
        return "execd resumed: accepting plans"
    lines = []
    if state.listing_failed:
        lines.append("execd halted, but could not list the venue's orders: check the venue")
    if state.still_working:
        lines.append(f"execd halted, but {len(state.still_working)} order(s) still working:")
        lines.extend(f"  {o.client_order_id} ({o.status})" for o in state.still_working)
    lines.append(
        f"execd halted: {state.canceled_orders} working order(s) canceled; "
        "new plans are refused until `execd resume`"
    )
    return "\n".join(lines)
