"""Issue 10 item 6 on real tapes: does the passive style's patience fill more often at the
touch without losing completion?

Run: ``.venv/bin/python -m tests.tape_passive [TAPE ...]`` (default: every tape in
``../shared/tapes``). Not a test and not part of ``make test``: it replays each tape through
the simulated venue's own matching engine (``execd.sim.exchange.Exchange`` on a manual venue
clock, so a 20-minute tape takes seconds) and drives the pure ladder (`decide`) for passive
legs started every `--every` seconds, buy and sell, 100 shares, at `--urgency` (default
normal; `--urgency high` shows high's patience on the tapes). It compares

* ``seed``: the passive style as it was (re-check every 3 s; every re-check spends one of the
  5 re-peg rounds, so a still market crosses after ~18 s — emulated here as a 3 s timeout
  and an 18 s patience), and
* ``patient``: the defaults (10 s re-checks that spend no round when the price stays,
  the urgency's patience — `passive_patience_{low,normal,high}_seconds` — honoured to the
  tick, re-peg on the 0.10 % move),

and prints, per configuration: legs, completed (whole qty filled), filled passively (every
share at a limit that did not cross the touch it was priced from, i.e. no fallback), and
the mean cost vs the arrival mid in bps (positive = paid), and the p90 time from the leg's
start (or the open, if later) to its finish.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from execd.domain.calendar import EASTERN, session_on
from execd.domain.ladder import decide
from execd.domain.ladder_types import (
    Action,
    CancelFailed,
    CancelOrder,
    Finish,
    LadderEvent,
    LadderParams,
    LegSpec,
    LegState,
    OrderFill,
    OrderReplaced,
    OrderType,
    OrderUpdate,
    PlaceFailed,
    PlaceOrder,
    QuoteUpdate,
    ReplaceFailed,
    ReplaceOrder,
    Start,
    Wake,
)
from execd.domain.order_state import OrderEventKind
from execd.domain.quotes import Quote
from execd.domain.types import Side, Urgency
from execd.sim.clock import VenueClock
from execd.sim.config import SimConfig
from execd.sim.errors import SimError
from execd.sim.exchange import Exchange
from execd.sim.tape import tape_origin

STEP = timedelta(milliseconds=100)
KINDS = {k.value: k for k in OrderEventKind}


@dataclass
class Result:
    completed: bool
    passive: bool
    cost_bps: float | None
    seconds: float


def _quote(message: dict[str, Any]) -> Quote:
    t = message["t"]
    return Quote(
        message["S"],
        Decimal(str(message["bp"])),
        Decimal(str(message["ap"])),
        Decimal(str(message["bs"])),
        Decimal(str(message["as"])),
        t,
        t,
    )


def run_leg(
    tape: Path, start: time, side: Side, params: LadderParams, urgency: Urgency = Urgency.NORMAL
) -> Result | None:
    """One passive leg from `start` (Eastern) on `tape`, to its Finish (or the tape's end)."""
    config = SimConfig(tape=tape, start=start, seed=1, cash=Decimal(10_000_000))
    config = replace(config, positions={s: Decimal(10_000) for s in _symbols(config)})
    clock = VenueClock.manual(tape_origin(tape, start))
    exchange = Exchange(config, clock)
    symbol = _symbols(config)[0]
    quotes: list[Quote] = []
    updates: list[dict[str, Any]] = []
    exchange.on_market_data(lambda m: quotes.append(_quote(m)) if m.get("T") == "q" else None)
    exchange.on_trade_update(updates.append)
    now = clock.now()
    session = session_on(now.astimezone(EASTERN).date())
    spec = LegSpec("tape", 0, symbol, side, Decimal(100), urgency, None, session)
    state = LegState.new(spec)
    ids: dict[str, str] = {}
    pending: list[LadderEvent] = []
    exchange.advance(0.5)  # a first quote
    end = now + timedelta(minutes=15)
    started = False
    started_at = now
    crossed = False
    while now < end:
        now = clock.now()
        if quotes:
            pending.append(QuoteUpdate(quotes[-1]))
            quotes.clear()
        if (not started and state.last_quote is not None) or (not started and pending):
            pending.append(Start())
            started = True
            # like the quality bench: time from the start, or the open if later
            started_at = now if session is None else max(now, session.open)
        for update in updates:
            pending.extend(_translate(update, ids))
        updates.clear()
        if state.deadline is not None and now >= state.deadline:
            pending.append(Wake())
        while pending:
            event = pending.pop(0)
            state, actions = decide(state, event, now, params)
            for action in actions:
                if isinstance(action, Finish):
                    return _result(action, side, crossed, (now - started_at).total_seconds())
                if isinstance(action, PlaceOrder) and action.step == 4:
                    crossed = True
                pending.extend(_perform(exchange, action, ids, symbol))
        exchange.advance(STEP.total_seconds())
    return None


def _symbols(config: SimConfig) -> list[str]:
    from execd.sim.tape import read_tape

    assert config.tape is not None
    return sorted({r.symbol for r in read_tape(config.tape)})


def _translate(update: dict[str, Any], ids: dict[str, str]) -> list[LadderEvent]:
    order = update["order"]
    cid = order["client_order_id"]
    ids[cid] = order["id"]
    event = update["event"]
    if event in ("fill", "partial_fill"):
        return [
            OrderFill(
                cid,
                update["execution_id"],
                Decimal(update["qty"]),
                Decimal(update["price"]),
                datetime.fromisoformat(update["timestamp"].replace("Z", "+00:00")),
                final=event == "fill",
            )
        ]
    if event == "replaced":
        by = order.get("replaced_by")
        new = next((c for c, i in ids.items() if i == by), None)
        return [OrderReplaced(cid, new)]
    kind = KINDS.get(event)
    return [] if kind is None else [OrderUpdate(cid, kind)]


def _perform(
    exchange: Exchange, action: Action, ids: dict[str, str], symbol: str
) -> Iterator[LadderEvent]:
    try:
        match action:
            case PlaceOrder():
                body: dict[str, Any] = {
                    "symbol": symbol,
                    "qty": str(action.qty),
                    "side": action.side.value,
                    "type": action.order_type.value,
                    "time_in_force": "day",
                    "client_order_id": action.client_order_id,
                }
                if action.order_type is OrderType.LIMIT:
                    body["limit_price"] = str(action.limit_price)
                ids[action.client_order_id] = exchange.submit_order(body)["id"]
            case ReplaceOrder():
                answer = exchange.replace_order(
                    ids[action.client_order_id],
                    {
                        "qty": str(action.qty),
                        "limit_price": str(action.limit_price),
                        "client_order_id": action.new_client_order_id,
                    },
                )
                ids[action.new_client_order_id] = answer["id"]
            case CancelOrder():
                exchange.cancel_order(ids[action.client_order_id])
            case _:
                pass
    except SimError as exc:
        match action:
            case PlaceOrder():
                yield PlaceFailed(action.client_order_id, exc.status, str(exc))
            case ReplaceOrder():
                yield ReplaceFailed(
                    action.client_order_id, action.new_client_order_id, exc.status, str(exc)
                )
            case CancelOrder():
                yield CancelFailed(action.client_order_id, exc.status, str(exc))
            case _:
                pass


def _result(finish: Finish, side: Side, crossed: bool, seconds: float) -> Result:
    qty = sum((f.qty for f in finish.fills), Decimal(0))
    arrival = finish.arrival_quote
    cost = None
    if qty and arrival is not None:
        avg = sum((f.qty * f.price for f in finish.fills), Decimal(0)) / qty
        cost = float(side.sign * (avg - arrival.mid) / arrival.mid * 10_000)
    completed = finish.filled_qty >= Decimal(100)
    passive = completed and not crossed
    return Result(completed, passive, cost, seconds)


CONFIGS = {
    "seed": LadderParams(
        passive_timeout_seconds=3.0,
        # the seed's rounds were the same at every urgency
        passive_patience_low_seconds=18.0,
        passive_patience_normal_seconds=18.0,
        passive_patience_high_seconds=18.0,
        market_open_delay_minutes=0,
        min_bid_ask_size=Decimal(1),
    ),
    "patient": LadderParams(market_open_delay_minutes=0, min_bid_ask_size=Decimal(1)),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tapes", nargs="*", type=Path)
    parser.add_argument("--every", type=int, default=120, help="seconds between leg starts")
    parser.add_argument("--urgency", type=Urgency, default=Urgency.NORMAL, choices=list(Urgency))
    args = parser.parse_args(argv)
    tapes = args.tapes or sorted((Path(__file__).parents[2] / "shared" / "tapes").glob("*.jsonl"))
    for name, params in CONFIGS.items():
        results: list[Result] = []
        for tape in tapes:
            origin = tape_origin(tape, None).astimezone(EASTERN)
            first = origin + timedelta(minutes=1)
            for k in range(0, 16 * 60, args.every):
                start = (first + timedelta(seconds=k)).time().replace(microsecond=0)
                for side in (Side.BUY, Side.SELL):
                    result = run_leg(tape, start, side, params, args.urgency)
                    if result is not None:
                        results.append(result)
        costs = [r.cost_bps for r in results if r.cost_bps is not None]
        times = [r.seconds for r in results if r.completed]
        p90 = statistics.quantiles(times, n=10, method="inclusive")[-1] if len(times) > 1 else 0
        print(
            f"{name:8s} urgency={args.urgency} legs={len(results)}"
            f" completed={sum(r.completed for r in results)}"
            f" passive_fills={sum(r.passive for r in results)}"
            f" mean_cost_bps={statistics.fmean(costs) if costs else float('nan'):.2f}"
            f" time_p90_s={p90:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
