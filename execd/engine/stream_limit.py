"""The submit answer's word on the feed's symbol limit (ALPACA.md §0.4: the free IEX feed
streams 30 symbols on its one connection).

A plan whose legs, with the symbols already in work, need more symbols than the stream may
carry is accepted — a 40-leg rebalance on the free plan is normal — but the user is told at
submit time how many of its legs will be priced from REST latest-quote reads (every
`ladder.rest_quote_interval_seconds`, coalesced into batched reads: `adapters.quote_batch`)
instead of the stream, until a stream slot frees (`adapters.stream_slots`). Said in the
answer's `warnings` and in one warning log line, ``quote_stream_symbol_limit``.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

import msgspec
import structlog

from execd.adapters.market_stream import MarketStream
from execd.control.protocol import PlanStatus
from execd.domain.plans import Plan

_log = structlog.get_logger("execd.engine")


def stream_shortfall(
    plan_symbols: AbstractSet[str], in_work: AbstractSet[str], limit: int | None
) -> int:
    """How many of the plan's symbols would find no stream slot if all its legs worked at
    once beside the symbols in work now (0: all fit, or no limit). Symbols already in work
    are already streamed or already waiting: they add nothing."""
    if limit is None:
        return 0
    new = plan_symbols - in_work
    return min(len(new), max(len(in_work) + len(new) - limit, 0))


def with_stream_warning(
    status: PlanStatus, plan: Plan, quotes: MarketStream, feed: str
) -> PlanStatus:
    """`status` with a warning when the feed's symbol limit leaves some of the plan's legs
    off the stream (logged once as ``quote_stream_symbol_limit``); `status` unchanged else."""
    symbols = plan.symbols()
    limit = quotes.symbol_limit
    short = stream_shortfall(symbols, quotes.symbols, limit)
    if short == 0:
        return status
    legs = short  # a plan has one leg per symbol (a second would be a wash trade)
    _log.warning(
        "quote_stream_symbol_limit",
        plan_id=status.plan_id,
        feed=feed,
        limit=limit,
        plan_symbols=len(symbols),
        symbols_in_work=len(quotes.symbols),
        rest_priced_legs=legs,
        dry_run=status.dry_run,
    )
    text = (
        f"the {feed} feed streams at most {limit} symbols (venue.stream_symbol_limit) and"
        f" {len(quotes.symbols | symbols)} are wanted with this plan's: up to {legs} of its"
        " legs will be priced from REST latest-quote reads (every"
        " ladder.rest_quote_interval_seconds) instead of the stream until a slot frees"
    )
    return msgspec.structs.replace(status, warnings=(*status.warnings, text))
