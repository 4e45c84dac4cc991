"""Risk limits: caps checked before any order leaves, refused with a reason, never clipped.

Issue "risk limits": three caps from the config's ``[risk]`` section, each optional
(None means no cap). A plan above ``max_plan_notional`` is refused at submit; an order
above ``max_order_notional``, or one more than ``max_orders_per_minute`` allows, ends
its leg with a reason. Nothing here shrinks an order to fit: a quietly smaller order is
a rebalance that silently did not happen, which is worse than a loud refusal.

Pure: the engine maps `execd.config.RiskConfig` onto `RiskLimits` (the domain does not
import the config), passes in quotes and monotonic timestamps, and acts on the
`RiskBreach` values returned. Every breach names its numbers so that the one log line
or API answer is enough to see why.

Notional is quantity × the order's limit price; a market order is valued at the far
side of the quote (the ask for a buy, the bid for a sell), as ``RiskConfig`` documents.
Exactly at a cap is allowed; only above it is a breach.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_UP, Decimal
from typing import Literal

from execd.domain.plans import Leg, Plan
from execd.domain.quotes import Quote
from execd.domain.types import Side

RATE_WINDOW_SECONDS = 60.0
"""The rate cap is per sliding minute: an order counts for 60 s after it was sent."""

RiskLimitName = Literal[
    "max_order_notional",
    "max_plan_notional",
    "max_orders_per_minute",
    "max_order_equity_multiple",
    "max_plan_equity_multiple",
]
"""The config key a breach is about (``risk.<name>`` in ``execd.toml``)."""

_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The ``[risk]`` caps as the core sees them; None means no cap.

    Plain fields rather than a ``from_config`` constructor so that the core never
    imports the config layer (tests/test_layering.py); the engine maps one onto the other.
    """

    max_order_notional: Decimal | None = None
    max_plan_notional: Decimal | None = None
    max_orders_per_minute: int | None = None
    max_order_equity_multiple: Decimal | None = None
    """One order may be worth at most this multiple of the account's equity."""
    max_plan_equity_multiple: Decimal | None = None
    """A plan's gross notional may be at most this multiple of the account's equity."""

    def __post_init__(self) -> None:
        # The config validates these too; a non-positive cap here is a mapping bug, and
        # a cap of 0 would refuse everything while looking like "no cap" in a log.
        for name in (
            "max_order_notional",
            "max_plan_notional",
            "max_order_equity_multiple",
            "max_plan_equity_multiple",
        ):
            value: Decimal | None = getattr(self, name)
            if value is not None and not (value.is_finite() and value > 0):
                raise ValueError(f"{name} must be a positive number when set, got {value}")
        if self.max_orders_per_minute is not None and self.max_orders_per_minute < 1:
            raise ValueError(
                f"max_orders_per_minute must be >= 1 when set, got {self.max_orders_per_minute}"
            )

    @property
    def needs_equity(self) -> bool:
        """Whether a cap is relative to equity (the engine must read the account)."""
        return (
            self.max_order_equity_multiple is not None or self.max_plan_equity_multiple is not None
        )

    @property
    def any_notional_cap(self) -> bool:
        """Whether any cap values orders or plans in dollars (absolute or equity-relative)."""
        return (
            self.needs_equity
            or self.max_order_notional is not None
            or self.max_plan_notional is not None
        )


@dataclass(frozen=True, slots=True)
class _Cap:
    """The binding dollar cap of one kind: its amount and how a reason names it."""

    amount: Decimal
    limit: RiskLimitName
    text: str


def _binding_cap(
    absolute: Decimal | None,
    absolute_name: RiskLimitName,
    multiple: Decimal | None,
    multiple_name: RiskLimitName,
    equity: Decimal | None,
) -> _Cap | None:
    """The lower of an absolute cap and `multiple` × `equity`, named with its numbers.

    Equity unknown (None) leaves only the absolute cap: the engine always reads it at
    submit, and a caller that could not is refused there, not here. Negative equity
    counts as zero: an account under water may buy nothing.
    """
    caps: list[_Cap] = []
    if absolute is not None:
        caps.append(_Cap(absolute, absolute_name, f"risk.{absolute_name} {_dollars(absolute)}"))
    if multiple is not None and equity is not None:
        base = max(equity, Decimal(0))
        amount = multiple * base
        text = f"risk.{multiple_name} {_plain(multiple)} x equity {_money(base)}"
        caps.append(_Cap(amount, multiple_name, f"{text} = {_money(amount)}"))
    return min(caps, key=lambda cap: cap.amount, default=None)


@dataclass(frozen=True, slots=True)
class RiskBreach:
    """One cap that would be exceeded: which (`limit`) and a one-line `reason` with the numbers.

    The engine refuses the plan with every breach's reason, or ends the leg with the
    order's; the reason is written for the person reading the log, not parsed.
    """

    limit: RiskLimitName
    reason: str


# ------------------------------------------------------------------------ formatting


def _plain(value: Decimal) -> str:
    """A quantity or price without trailing zeros or an exponent (``500``, ``122.469``)."""
    return f"{value.normalize():f}"


def _money(value: Decimal) -> str:
    """Dollars with thousands separators, rounded *up* to the cent.

    Rounding up keeps a reason truthful: $50,000.004 over a $50,000 cap reads
    "$50,000.01 exceeds $50,000", never "$50,000.00 exceeds $50,000".
    """
    return f"${value.quantize(_CENT, rounding=ROUND_UP):,}"


def _dollars(value: Decimal) -> str:
    """An amount someone configured or wrote, exactly (``$50,000``, ``$2,500.50``)."""
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # caps and leg notionals are finite
    places = 0 if exponent >= 0 else max(2, -exponent)
    return f"${value:,.{places}f}"


# ------------------------------------------------------------------------- one order


def _far_name(side: Side) -> str:
    """Which side of the book an order on `side` takes: ``ask`` for a buy, ``bid`` for a sell."""
    return "ask" if side is Side.BUY else "bid"


def _far_side(side: Side, quote: Quote) -> Decimal | None:
    """The price a market order would take (ask for a buy, bid for a sell), if quoted.

    A zero or negative side means nobody is quoting it (a one-sided book); valuing an
    order at $0 would wave it through every cap, so it is "cannot value" instead.
    """
    price = quote.ask if side is Side.BUY else quote.bid
    return price if price > 0 else None


def _check_quote_symbol(symbol: str, quote: Quote | None) -> None:
    """Another symbol's quote would value the order at the wrong price, silently."""
    if quote is not None and quote.symbol != symbol:
        raise ValueError(f"quote for {quote.symbol} used to value an order in {symbol}")


def order_notional(
    side: Side, qty: Decimal, limit_price: Decimal | None, quote: Quote | None
) -> Decimal | None:
    """The notional a risk cap compares: qty × limit, or qty × far side for a market order.

    `limit_price` None means a market order. Returns None when a market order cannot
    be valued (no quote, or nobody quoting the side it would take); the caller must not
    treat that as zero. A limit order is valued at its limit even with a quote at hand:
    that is the price the order is allowed to trade at, and the definition the config
    documents. A market order can walk past the touch; the far side is the best
    estimate available before it is sent, not a bound.
    """
    if qty <= 0:
        raise ValueError(f"order qty must be > 0, got {qty}")
    if limit_price is not None:
        if limit_price <= 0:
            raise ValueError(f"limit_price must be > 0, got {limit_price}")
        return qty * limit_price
    if quote is None:
        return None
    price = _far_side(side, quote)
    return None if price is None else qty * price


def check_order(
    limits: RiskLimits,
    side: Side,
    symbol: str,
    qty: Decimal,
    limit_price: Decimal | None,
    quote: Quote | None,
    equity: Decimal | None = None,
) -> RiskBreach | None:
    """The order-cap breach of one order about to be placed or replaced, if any.

    The cap is the lower of ``max_order_notional`` and ``max_order_equity_multiple`` ×
    `equity` (the account's equity as last read; None: only the absolute cap applies).
    Call it for every POST and PATCH the ladder asks for, with `limit_price` None for a
    market order (`OrderType.MARKET`) and the order's limit otherwise — including the
    collared fallback, which is a limit order. A market order that cannot be valued
    while a cap is set is a breach: an unknown size is never waved through.
    """
    _check_quote_symbol(symbol, quote)
    cap = _binding_cap(
        limits.max_order_notional,
        "max_order_notional",
        limits.max_order_equity_multiple,
        "max_order_equity_multiple",
        equity,
    )
    if cap is None:
        return None
    what = f"{side.value} {_plain(qty)} {symbol}"
    if limit_price is not None:
        at = _plain(limit_price)
    else:
        far = None if quote is None else _far_side(side, quote)
        if far is None:
            missing = "no quote" if quote is None else f"no {_far_name(side)} quoted"
            return RiskBreach(
                cap.limit,
                f"cannot value a market order without a quote ({what}; {missing}); {cap.text}",
            )
        at = f"{_far_name(side)} {_plain(far)}, market"
    notional = order_notional(side, qty, limit_price, quote)
    assert notional is not None  # a limit, or a market order with a usable far side
    if notional <= cap.amount:
        return None
    return RiskBreach(
        cap.limit, f"order notional {_money(notional)} ({what} @ {at}) exceeds {cap.text}"
    )


# -------------------------------------------------------------------------- one plan


def leg_notional(leg: Leg, quote: Quote | None) -> Decimal | None:
    """A leg's estimated notional at submit: its dollars, or qty × the far side of `quote`.

    A notional leg is worth what the user asked for (sizing never spends more,
    `sizing.qty_for_notional`) and needs no quote. A qty leg is valued at the far side
    — what it would cost to trade now — even when it has a `limit_price`: the limit
    bounds a buy from above but a sell from below, so it is no better an estimate, and
    one rule for both sides is easier to reason about. None: a qty leg with no usable
    quote.
    """
    if leg.notional is not None:
        return leg.notional
    assert leg.qty is not None  # a Leg has exactly one of qty / notional
    _check_quote_symbol(leg.symbol, quote)
    if quote is None:
        return None
    price = _far_side(leg.side, quote)
    return None if price is None else leg.qty * price


def plan_notional(legs: Iterable[tuple[Leg, Quote | None]]) -> Decimal | None:
    """A plan's gross notional (buys and sells both add), or None if any leg cannot be valued.

    Gross, not net: a plan that sells $1M and buys $1M moves $2M through the account,
    and the cap is about how much execd may trade at once, not the change in exposure.
    """
    total = Decimal(0)
    for leg, quote in legs:
        notional = leg_notional(leg, quote)
        if notional is None:
            return None
        total += notional
    return total


def _describe_leg(leg: Leg, quote: Quote | None) -> str:
    """``buy 500 TQQQ @ ask 122.47`` or ``buy $1,500 of AAPL``, for a reason."""
    if leg.notional is not None:
        return f"{leg.side.value} {_dollars(leg.notional)} of {leg.symbol}"
    assert leg.qty is not None
    text = f"{leg.side.value} {_plain(leg.qty)} {leg.symbol}"
    if quote is None:
        return text
    price = quote.ask if leg.side is Side.BUY else quote.bid
    return f"{text} @ {_far_name(leg.side)} {_plain(price)}"


def check_plan(
    limits: RiskLimits,
    plan: Plan,
    quotes: Mapping[str, Quote],
    equity: Decimal | None = None,
    stale: Mapping[str, str] | None = None,
) -> list[RiskBreach]:
    """Every breach of a plan at submit; empty means the plan may run.

    `quotes` maps symbol to its fresh quote (DESIGN.md "Fresh quote": nothing is valued
    from a stale one; symbols may be missing); `stale` maps a symbol that has only a stale
    quote to why (its age, for the refusal); `equity` is the account's equity,
    read at submit (None: the equity-relative caps cannot apply; the engine refuses the
    plan itself rather than pass None while they are set). Per leg, in plan order: a leg
    whose own estimate exceeds the order cap (the
    lower of ``max_order_notional`` and ``max_order_equity_multiple`` × equity) — the
    ladder sends a leg as one order for its whole remainder, never as slices, so such a
    leg's first order would be refused anyway; better to refuse the plan before its
    sells have run. Then the plan's gross total against the plan cap (the lower of
    ``max_plan_notional`` and ``max_plan_equity_multiple`` × equity); when some legs
    could not be valued and the rest already exceed it, that is reported too ("at least").

    A qty leg with no quote at all is not a breach here: its orders are checked one by
    one by `check_order` when they are placed (and a market order that cannot be valued
    then is refused). A qty leg whose symbol has only a stale quote is quoted, but at a
    price nobody may trust now: its own value is unknown, so against the plan cap it counts
    at the most its orders may be worth — the order cap, which each of them is checked
    against when priced. With no order cap nothing bounds it and the plan is refused;
    so is a plan whose valued legs plus that bound exceed the plan cap.
    """
    breaches: list[RiskBreach] = []
    order_cap = _binding_cap(
        limits.max_order_notional,
        "max_order_notional",
        limits.max_order_equity_multiple,
        "max_order_equity_multiple",
        equity,
    )
    plan_cap = _binding_cap(
        limits.max_plan_notional,
        "max_plan_notional",
        limits.max_plan_equity_multiple,
        "max_plan_equity_multiple",
        equity,
    )
    buys = sells = Decimal(0)
    unvalued = 0
    stale = stale or {}
    stale_legs: list[Leg] = []
    for leg in plan.legs:
        quote = quotes.get(leg.symbol)
        notional = leg_notional(leg, quote)
        if notional is None and leg.symbol in stale:
            stale_legs.append(leg)
        if notional is None:
            # No price at all for a qty leg (a symbol not quoted yet): its orders are
            # valued when priced (`check_order`, with the same equity-relative cap) — a
            # leg that waits for a quote waits alone (DESIGN.md), it does not refuse the
            # plan. The valued rest still counts against the plan cap ("at least").
            unvalued += 1
            continue
        if leg.side is Side.BUY:
            buys += notional
        else:
            sells += notional
        if order_cap is not None and notional > order_cap.amount:
            breaches.append(
                RiskBreach(
                    order_cap.limit,
                    f"{leg.label} notional {_money(notional)} ({_describe_leg(leg, quote)})"
                    f" exceeds {order_cap.text};"
                    " a leg is sent as one order, so its first order would be refused",
                )
            )
    total = buys + sells
    if plan_cap is not None and total > plan_cap.amount:
        amount = _money(total)
        if unvalued:
            legs = "leg" if unvalued == 1 else "legs"
            amount = f"at least {amount} ({unvalued} {legs} unvalued)"
        breaches.append(
            RiskBreach(
                plan_cap.limit,
                f"plan notional {amount}, gross of buys {_money(buys)} and sells"
                f" {_money(sells)}, exceeds {plan_cap.text}",
            )
        )
    elif plan_cap is not None and stale_legs:
        breach = _stale_bound_breach(plan_cap, order_cap, total, stale_legs, stale)
        if breach is not None:
            breaches.append(breach)
    return breaches


_NAMED_AT_MOST = 5


def _name_some(items: Iterable[str]) -> str:
    """The first few items and how many more: a refusal stays a readable line however
    many legs it concerns (500 legs without a fresh quote made tens of kilobytes)."""
    items = list(items)
    shown = "; ".join(items[:_NAMED_AT_MOST])
    more = len(items) - _NAMED_AT_MOST
    return f"{shown}; and {more} more" if more > 0 else shown


def _stale_bound_breach(
    plan_cap: _Cap,
    order_cap: _Cap | None,
    valued: Decimal,
    legs: list[Leg],
    why: Mapping[str, str],
) -> RiskBreach | None:
    """The plan cap against the valued legs plus, for each leg with only a stale quote,
    the order cap its orders are held to (`check_plan`); None when it fits."""
    named = _name_some(f"{leg.label}: {why[leg.symbol]}" for leg in legs)
    if order_cap is None:
        return RiskBreach(
            plan_cap.limit,
            f"cannot check {plan_cap.text} without a fresh price, and no order cap bounds"
            f" the orders of a leg without one ({named}); submit again when it is quoted",
        )
    bound = valued + order_cap.amount * len(legs)
    if bound <= plan_cap.amount:
        return None
    return RiskBreach(
        plan_cap.limit,
        f"plan notional could reach {_money(bound)} ({_money(valued)} valued, plus up to"
        f" {order_cap.text} for each leg without a fresh quote: {named}), which exceeds"
        f" {plan_cap.text}; submit again when it is quoted",
    )


# ------------------------------------------------------------------------ order rate


class OrderRateWindow:
    """Orders sent in the last 60 s, over every leg, for ``max_orders_per_minute``.

    Pure: the caller passes monotonic-clock readings (seconds, any origin) and records
    every order it places *and* every replace (each is a new order at Alpaca, and
    each counts against its API rate limit). One window is shared by all legs.

    Sliding, not per calendar minute: an order sent at t counts while ``now - t < 60``,
    so no 60 s stretch ever holds more than the cap (a fixed minute would allow twice
    the cap across its boundary).

    Memory is bounded: timestamps older than the window are dropped on every call, and
    with a cap at most `max_per_minute` are kept — once the cap is reached the oldest
    ones no longer change any answer of `allows`, so `count` reports at most the cap.

    A `now` earlier than one already seen is read as that one. Readings taken just
    before an ``await`` can reach the window slightly out of order; recording one late
    only keeps it in the window a little longer, which errs towards refusing.
    """

    __slots__ = ("_latest", "_max", "_sent")

    def __init__(self, max_per_minute: int | None) -> None:
        if max_per_minute is not None and max_per_minute < 1:
            raise ValueError(f"max_per_minute must be >= 1 when set, got {max_per_minute}")
        self._max = max_per_minute
        self._sent: deque[float] = deque(maxlen=max_per_minute)
        self._latest = float("-inf")

    @property
    def max_per_minute(self) -> int | None:
        """The cap this window enforces; None: no cap, `allows` is always true."""
        return self._max

    def _advance(self, now: float) -> float:
        """Clamp `now` to the latest reading seen and drop what has left the window."""
        now = max(now, self._latest)
        self._latest = now
        horizon = now - RATE_WINDOW_SECONDS
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()
        return now

    def count(self, now: float) -> int:
        """Orders recorded in the 60 s up to `now` (at most `max_per_minute` when capped)."""
        self._advance(now)
        return len(self._sent)

    def allows(self, now: float) -> bool:
        """Whether one more order at `now` stays within the cap (always, with no cap)."""
        if self.max_per_minute is None:
            return True
        return self.count(now) < self.max_per_minute

    def record(self, now: float) -> None:
        """Note one order sent at `now`; call it for each placement and replace that went out."""
        self._sent.append(self._advance(now))


def check_rate(window: OrderRateWindow, now: float) -> RiskBreach | None:
    """The ``max_orders_per_minute`` breach of sending one more order at `now`, if any.

    Check before the order, `OrderRateWindow.record` after it is sent; the engine ends
    the leg with this reason rather than waiting, since a leg that sleeps out the minute
    would trade at a price nobody decided on.
    """
    if window.allows(now):
        return None
    return RiskBreach(
        "max_orders_per_minute",
        f"{window.count(now)} orders in the last 60 s;"
        f" risk.max_orders_per_minute is {window.max_per_minute}",
    )


# ------------------------------------------------------------------------ wash trades


@dataclass(frozen=True, slots=True)
class WorkingLeg:
    """An unfinished leg of another plan, as the wash-trade check sees it."""

    plan_id: str
    label: str
    symbol: str
    side: Side


def wash_conflicts(plan: Plan, working: Iterable[WorkingLeg]) -> list[str]:
    """Why `plan` may not start beside `working` legs: one line per opposite-side pair.

    Alpaca refuses an order that could trade against an opposite-side order of the same
    account ("potential wash trade detected", ALPACA.md §7). Two plans, one buying and
    one selling a symbol, would have one of them refused by the venue mid-run (issue 11
    §10). execd refuses the second plan at submit instead, naming the first: the user
    decides (wait for it, or cancel it) rather than execd silently sequencing trades
    they may no longer want. A plan already refuses a symbol on both sides by itself
    (`execd.domain.plans`).
    """
    # Indexed by symbol: a 500-leg plan beside 1,500 working legs compared every pair
    # (750,000 times, twice per submit: a stall of the daemon's loop, issue 14 item 3).
    others: dict[str, list[WorkingLeg]] = {}
    for other in working:
        if other.plan_id != plan.plan_id:
            others.setdefault(other.symbol, []).append(other)
    errors: list[str] = []
    for leg in plan.legs:
        for other in others.get(leg.symbol, ()):
            if other.side != leg.side:
                errors.append(
                    f"{leg.label}: {leg.side.value} {leg.symbol} while plan {other.plan_id}"
                    f" {other.label} is still {'buying' if other.side is Side.BUY else 'selling'}"
                    f" it (potential wash trade); wait for that plan or cancel it"
                )
    return errors
