"""Plan intake: what the engine reads from the venue to accept (or dry-run) a plan.

DESIGN.md "Release costs O(1) reads per wave": a submission reads the positions once (one
``GET /v2/positions``, whatever the number of legs), the asset facts from a cache filled by
one ``GET /v2/assets`` per trading day, the account once when it is a targets plan, and a
fresh quote per symbol only where a price is needed (risk caps, target sizing, dry-run
prices) — from the stream's cache first, then one batched latest-quotes read (chunked) for
all the rest, each judged by its own timestamp (DESIGN.md "Fresh quote"). The rules
themselves are pure (`execd.domain.plans`, `targets`, `risk`, `schedule`); this module
fetches their inputs and hands them over. Its trading-API reads queue as
`Priority.VALIDATE`: a user waits at the socket, so they pass a backlog of new orders.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import structlog
from pydantic import ValidationError

from execd.adapters.budget import Priority
from execd.adapters.errors import AdapterError
from execd.adapters.market_stream import MarketStream
from execd.adapters.rest import RestGateway
from execd.control.protocol import ControlError, ErrorCode
from execd.domain.calendar import TradingSession
from execd.domain.ladder import choose_style
from execd.domain.ladder_types import LadderParams, PricingStyle
from execd.domain.plans import LegInput, Plan, PlanError, PlanInput, build_plan
from execd.domain.prices import apply_cap, marketable_limit, passive_anchor
from execd.domain.quotes import Quote
from execd.domain.risk import check_plan
from execd.domain.sizing import account_figure, sellable_qty
from execd.domain.targets import TargetError, TargetQuote, compute_legs
from execd.domain.types import Side, Urgency
from execd.engine.records import PlanRecord
from execd.engine.risk import RiskGuard
from execd.engine.runner import AssetFacts

_log = structlog.get_logger("execd.intake")


def venue_unavailable(exc: Exception) -> ControlError:
    return ControlError(ErrorCode.INTERNAL, f"venue unavailable: {exc}")


class AssetCache:
    """Asset facts by symbol, from one ``GET /v2/assets`` per trading day.

    `facts` is the dict the plan runner reads too (`RunnerContext.assets`); a symbol the
    list does not have is unknown (or inactive) to the venue.
    """

    def __init__(self, rest: RestGateway, facts: dict[str, AssetFacts]) -> None:
        self._rest = rest
        self.facts = facts
        self._loaded_for: date | None = None
        self._lock = asyncio.Lock()
        self.reads = 0
        """How many times the list was read (tests check the O(1))."""

    async def load(self, day: date) -> None:
        """Read the asset list unless it was read for `day` already."""
        async with self._lock:
            if self._loaded_for == day:
                return
            try:
                assets = await self._rest.assets(priority=Priority.VALIDATE)
            except AdapterError as exc:
                raise venue_unavailable(exc) from None
            self.reads += 1
            for asset in assets:
                symbol = str(asset.symbol)
                self.facts[symbol] = AssetFacts(
                    symbol, bool(asset.tradable), bool(asset.fractionable)
                )
            self._loaded_for = day
            _log.info("assets_loaded", count=len(assets), day=day.isoformat())

    def get(self, symbol: str) -> AssetFacts | None:
        return self.facts.get(symbol)


class SessionCache:
    """The venue's sessions from a venue day, read once per venue day.

    The calendar does not change within a day, and every submit needs it (refused ones
    too: the schedule is checked first): reading it once a day, and once for submits in
    flight together (the lock), makes a submit cost one read fewer — a client retrying a
    refused submit in a loop spends fewer of the grants running legs wait for. A failed
    read is not cached (the next submit tries again)."""

    def __init__(self, read: Callable[[date], Awaitable[list[TradingSession]]]) -> None:
        self._read = read
        self._day: date | None = None
        self._sessions: list[TradingSession] = []
        self._lock = asyncio.Lock()
        self.reads = 0
        """How many times the calendar was read (tests check the caching)."""

    async def on(self, today: date) -> list[TradingSession]:
        """The sessions from `today` (a venue date), read unless read for `today`."""
        async with self._lock:
            if self._day != today:
                self._sessions = await self._read(today)
                self.reads += 1
                self._day = today
            return list(self._sessions)


@dataclass(frozen=True, slots=True)
class Holdings:
    """The account's positions from one ``GET /v2/positions``: each symbol's quantity and
    the part no open order holds (``qty_available``)."""

    total: dict[str, Decimal]
    available: dict[str, Decimal]


async def holdings(rest: RestGateway) -> Holdings:
    """Every position, in one read."""
    try:
        held = await rest.positions(priority=Priority.VALIDATE)
    except AdapterError as exc:
        raise venue_unavailable(exc) from None
    total = {str(p.symbol): Decimal(str(p.qty)) for p in held}
    available = {
        str(p.symbol): Decimal(str(p.qty_available if p.qty_available is not None else p.qty))
        for p in held
    }
    return Holdings(total, available)


def leg_errors(plan: Plan, assets: Callable[[str], AssetFacts | None]) -> list[str]:
    """Unknown/untradable symbols, fractional qty on whole-share assets: each named by its
    leg, before anything is sent."""
    errors: list[str] = []
    for leg in plan:
        facts = assets(leg.symbol)
        where = leg.label
        if facts is None:
            errors.append(f"{where}.symbol: unknown symbol {leg.symbol}")
            continue
        if not facts.tradable:
            errors.append(f"{where}.symbol: {leg.symbol} is not tradable")
        if leg.qty is not None and not facts.fractionable and leg.qty != leg.qty.to_integral():
            errors.append(f"{where}.qty: {leg.symbol} is not fractionable; use whole shares")
    return errors


def committed_sells(plans: Iterable[PlanRecord]) -> dict[str, tuple[Decimal, list[str]]]:
    """Shares the working and scheduled plans' sells have yet to sell, by symbol (with the
    plans): a new sell may take only what they leave of the position. A notional sell not
    sized yet commits nothing here; the runner's check at its start still holds it."""
    committed: dict[str, tuple[Decimal, list[str]]] = {}
    for record in plans:
        if record.finished:
            continue
        for leg in record.legs:
            qty = leg.qty if leg.qty is not None else leg.leg.qty
            if leg.finished or leg.leg.side is not Side.SELL or qty is None:
                continue
            shares, ids = committed.get(leg.leg.symbol, (Decimal(0), []))
            left = max(qty - leg.filled_qty, Decimal(0))
            committed[leg.leg.symbol] = (shares + left, [*ids, record.plan_id])
    return committed


def sell_errors(
    plan: Plan, held: Holdings, committed: Mapping[str, tuple[Decimal, list[str]]]
) -> list[str]:
    """Sells beyond what is free to sell: the position, less what other working or
    scheduled plans are selling (`committed`: shares and plan ids by symbol). execd is
    long-only: a sell never opens a short, so a notional sell needs shares too."""
    errors: list[str] = []
    wanted: dict[str, Decimal] = {}
    for leg in plan:
        if leg.side is not Side.SELL:
            continue
        symbol = leg.symbol
        taken, plans = committed.get(symbol, (Decimal(0), []))
        total = held.total.get(symbol, Decimal(0))
        free = sellable_qty(total, held.available.get(symbol, Decimal(0)), taken)
        free -= wanted.get(symbol, Decimal(0))
        why = f"the position is {total}"
        if taken:
            why += f", {taken} of it being sold by {', '.join(sorted(set(plans)))}"
        if free < total:
            why += f"; {max(free, Decimal(0))} free to sell"
        if leg.qty is not None:
            wanted[symbol] = wanted.get(symbol, Decimal(0)) + leg.qty
            if leg.qty > free:
                errors.append(f"{leg.label}.qty: selling {leg.qty} {symbol} but {why}")
        elif free <= 0:
            errors.append(
                f"{leg.label}.notional: selling ${leg.notional} of {symbol} but {why}"
                " (execd never sells short)"
            )
    return errors


@dataclass(frozen=True, slots=True)
class QuoteLookup:
    """Fresh quotes by symbol, and for the symbols left without one the newest stale quote
    seen (None: never quoted) — so that a refusal can say how old it was."""

    fresh: dict[str, Quote]
    stale: dict[str, Quote | None]

    def why_missing(self, symbol: str, now: datetime, freshness: float, waited: float) -> str:
        """Why `symbol` has no fresh quote, with its newest quote's age."""
        quote = self.stale.get(symbol)
        if quote is None:
            return f"no quote for {symbol} within {waited:g}s"
        return (
            f"{symbol}'s latest quote is {quote.age_seconds(now):.1f}s old, over"
            f" execution.quote_freshness_seconds {freshness:g}, and no fresh one came"
            f" within {waited:g}s"
        )


_CLOCK_STEP_RETRY = 0.05
"""Seconds before a submit-time quote wait looks again after the venue clock stepped back."""


class QuoteSource:
    """A fresh quote per symbol at submit: the stream's cache, else the batched REST latest,
    else the first fresh one the stream sends within `wait_seconds`.

    DESIGN.md "Fresh quote": every quote is judged by its own timestamp (`Quote.as_of`)
    against `freshness_seconds` on the venue clock; nothing is sized or valued from a stale
    one. A symbol with no fresh quote in time is reported with the newest quote seen.
    """

    def __init__(
        self,
        quotes: MarketStream,
        rest: RestGateway,
        clock: Callable[[], datetime],
        freshness_seconds: float,
        wait_seconds: float,
        subscribe: Callable[[str], None],
        unsubscribe: Callable[[str], None],
    ) -> None:
        self._quotes = quotes
        self._rest = rest
        self._clock = clock
        self.freshness = freshness_seconds
        self.wait = wait_seconds
        self._subscribe = subscribe
        self._unsubscribe = unsubscribe

    def _fresh(self, quote: Quote | None) -> bool:
        return quote is not None and quote.age_seconds(self._clock()) <= self.freshness

    async def many(self, symbols: AbstractSet[str]) -> QuoteLookup:
        """Fresh quotes for `symbols`: the stream's cache, then ONE batched REST read
        (`RestGateway.latest_quotes`, chunked) for every symbol the cache has nothing fresh
        for — O(1) reads per plan, not one per leg (a 500-leg plan's 500 reads met the data
        API's 200/min) — then each symbol still without one waits alone, concurrently, for
        the stream. A symbol the batch answer omits is treated like a stale one (it waits,
        and is reported unvalued), never valued at zero."""
        ordered = sorted(symbols)
        cached = {s: self._quotes.quote(s) for s in ordered}
        fresh = {s: q for s, q in cached.items() if q is not None and self._fresh(q)}
        missing = [s for s in ordered if s not in fresh]
        latest: dict[str, Quote] = {}
        if missing:
            try:
                latest = await self._rest.latest_quotes(missing)
            except AdapterError as exc:
                raise venue_unavailable(exc) from None
        waiting: list[tuple[str, Quote | None]] = []
        for symbol in missing:
            quote = latest.get(symbol)
            if quote is not None and self._fresh(quote):
                fresh[symbol] = quote
            else:
                waiting.append((symbol, _newer(cached[symbol], quote)))
        found = await asyncio.gather(*(self._wait(s, newest) for s, newest in waiting))
        stale: dict[str, Quote | None] = {}
        for (symbol, _), (quote, newest) in zip(waiting, found, strict=True):
            if quote is not None:
                fresh[symbol] = quote
            else:
                stale[symbol] = newest
        return QuoteLookup(fresh, stale)

    async def _wait(self, symbol: str, newest: Quote | None) -> tuple[Quote | None, Quote | None]:
        """(the first fresh quote the stream sends within `wait`, None), or (None, the newest
        stale quote seen or None)."""
        self._subscribe(symbol)
        try:
            async with asyncio.timeout(self.wait):
                while True:
                    # The cache first: a quote may have come while the REST read ran.
                    now = self._clock()
                    quote = self._quotes.quote(symbol)
                    if self._fresh(quote):
                        return quote, None
                    newest = _newer(newest, quote)
                    arrived = await self._quotes.wait_quote(symbol, now)
                    if quote is not None and arrived == quote:
                        # The same quote "received after now": the wall clock stepped
                        # back. Look again shortly rather than spin (bounded by the wait).
                        await asyncio.sleep(_CLOCK_STEP_RETRY)
        except TimeoutError:
            return None, newest
        finally:
            self._unsubscribe(symbol)

    def why_missing(self, found: QuoteLookup, symbol: str) -> str:
        return found.why_missing(symbol, self._clock(), self.freshness, self.wait)


def _newer(a: Quote | None, b: Quote | None) -> Quote | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a.as_of >= b.as_of else b


async def risk_errors(
    plan: Plan,
    guard: RiskGuard,
    rest: RestGateway,
    quotes: QuoteSource,
    known_equity: Decimal | None = None,
    *,
    scheduled: bool = False,
) -> list[str]:
    """The `[risk]` caps a plan breaches at submit, valued from fresh quotes only (a leg
    with only a stale one is bounded by the order cap: `check_plan`), against the
    account's equity read now (`known_equity` when intake just read it).

    A `scheduled` plan (held for a later session: after the close, every quote is stale)
    is valued from each symbol's newest quote whatever its age — an indicative check that
    still refuses a fat finger — because bounding every leg by the order cap would refuse
    any plan of more than two legs overnight. Its orders are each checked against the order
    cap from a fresh quote when priced, and its buys are sized against cash then."""
    limits = guard.limits
    if not limits.any_notional_cap:
        return []
    equity: Decimal | None = None
    if limits.needs_equity:
        equity = known_equity if known_equity is not None else await account_equity(rest)
        guard.equity = equity
    found = await quotes.many({leg.symbol for leg in plan if leg.qty is not None})
    guard.remember(found.fresh)
    if scheduled and found.stale:
        newest = {s: q for s, q in found.stale.items() if q is not None}
        _log.info(
            "risk_valued_from_last_quotes",
            plan_id=plan.plan_id,
            symbols=sorted(newest),
            note="scheduled plan: each order is checked against the order cap when priced",
        )
        found = QuoteLookup(
            {**found.fresh, **newest},
            {s: q for s, q in found.stale.items() if q is None},
        )
    stale = {
        symbol: quotes.why_missing(found, symbol)
        for symbol, old in found.stale.items()
        if old is not None
    }
    if found.stale:
        # Valued when their orders are priced (each against the order cap); logged so that
        # a plan cap passed without these legs' prices is never silent.
        _log.warning(
            "risk_legs_unvalued",
            plan_id=plan.plan_id,
            why=[quotes.why_missing(found, s) for s in sorted(found.stale)],
        )
    breaches = check_plan(limits, plan, found.fresh, equity, stale)
    return [f"risk limit: {breach.reason}" for breach in breaches]


async def account_equity(rest: RestGateway) -> Decimal:
    """The account's equity (`GET /v2/account`); unreadable means the plan is refused."""
    try:
        account = await rest.account(priority=Priority.VALIDATE)
    except AdapterError as exc:
        raise venue_unavailable(exc) from None
    try:
        equity = Decimal(str(account.equity))
    except ArithmeticError:
        equity = Decimal("NaN")
    if not equity.is_finite():
        raise ControlError(
            ErrorCode.INTERNAL,
            f"the account's equity is unreadable ({account.equity!r});"
            " the equity-relative risk caps cannot be checked",
        )
    return equity


def build(
    model: PlanInput, default_urgency: Urgency, computed: list[LegInput] | None = None
) -> Plan:
    """The plan of a document (`build_plan`), its errors as one `INVALID_PLAN` refusal."""
    try:
        return build_plan(model, lambda: f"plan-{uuid.uuid4().hex[:12]}", default_urgency, computed)
    except PlanError as exc:
        raise ControlError(ErrorCode.INVALID_PLAN, "; ".join(exc.errors)) from None


def refuse_unknown_targets(model: PlanInput, assets: AssetCache) -> None:
    """Refuse a targets plan naming a symbol the (cached) asset list does not have, before
    any read of the venue (a refused submit spends no request of the running plans)."""
    assert model.targets is not None
    unknown = [s for s in sorted(model.targets) if assets.get(s) is None]
    if unknown:
        raise ControlError(
            ErrorCode.INVALID_PLAN,
            "; ".join(f"targets.{s}: unknown symbol {s}" for s in unknown),
        )


@dataclass(frozen=True, slots=True)
class TargetsResult:
    legs: list[LegInput]
    equity: Decimal


async def target_legs(
    model: PlanInput,
    rest: RestGateway,
    held: Mapping[str, Decimal],
    assets: AssetCache,
    quotes: QuoteSource,
    min_trade_notional: Decimal,
) -> TargetsResult:
    """The legs of a targets plan on the account as it is now (one account read)."""
    assert model.targets is not None
    refuse_unknown_targets(model, assets)
    try:
        account = await rest.account(priority=Priority.VALIDATE)
    except AdapterError as exc:
        raise venue_unavailable(exc) from None
    equity = account_figure(account.equity)
    if equity is None:  # "NaN", "Infinity", "": no plan is sized from it
        raise ControlError(
            ErrorCode.INTERNAL,
            f"the account's equity is unreadable ({account.equity!r});"
            " a targets plan cannot be sized",
        )
    symbols = set(model.targets)
    if model.liquidate_unlisted:
        symbols |= {s for s, q in held.items() if q}
    found = await quotes.many(symbols)
    if found.stale:  # DESIGN.md "Fresh quote": nothing is sized from a stale quote
        raise ControlError(
            ErrorCode.INVALID_PLAN,
            "; ".join(
                f"targets.{s}: cannot size it: {quotes.why_missing(found, s)}"
                for s in sorted(found.stale)
            ),
        )
    fractionable = {s: bool(f.fractionable) for s, f in assets.facts.items() if s in symbols}
    try:
        computed = compute_legs(
            model.targets,
            equity=equity,
            positions=held,
            quotes={s: TargetQuote(q.bid, q.ask) for s, q in found.fresh.items()},
            fractionable=fractionable,
            min_trade_notional=min_trade_notional,
            liquidate_unlisted=model.liquidate_unlisted,
        )
    except TargetError as exc:
        raise ControlError(ErrorCode.INVALID_PLAN, str(exc)) from None
    try:
        legs = [LegInput.model_validate(leg.to_wire()) for leg in computed]
    except ValidationError as exc:  # e.g. a quantity beyond QTY_LIMIT on an absurd account
        raise ControlError(
            ErrorCode.INVALID_PLAN, f"targets: a computed leg is out of bounds: {exc}"
        ) from None
    _log.info(
        "targets_computed",
        equity=str(equity),
        legs=[f"{leg.side.value} {leg.qty:f} {leg.symbol}" for leg in computed],
    )
    return TargetsResult(legs, equity)


def first_price(
    plan: Plan, index: int, quote: Quote | None, params: LadderParams
) -> tuple[PricingStyle, Decimal | None]:
    """A dry run's view of a leg: its pricing style and the first limit it would send now."""
    leg = plan.legs[index]
    style, _why = choose_style(leg.symbol, params)
    if quote is None:
        return style, None
    if style is PricingStyle.MARKETABLE:
        price = marketable_limit(leg.side, quote, params.tick_aggression)
    else:
        offset = (
            params.bid_anchor_offset_cents
            if leg.side is Side.BUY
            else params.ask_anchor_offset_cents
        )
        price = passive_anchor(leg.side, quote, offset)
    return style, apply_cap(leg.side, price, leg.limit_price)


def max_repegs(style: str | None, params: LadderParams) -> int | None:
    """Re-pegs a style allows (for ``re-peg 2/5``)."""
    if style == PricingStyle.MARKETABLE.value:
        return params.max_repegs
    if style == PricingStyle.PASSIVE.value:
        return params.max_repegs_per_order
    return None
