"""The ladder's vocabulary: parameters, the leg's inputs, events in, actions out, state.

`ladder.decide` is a step function (STYLE.md "The ladder is a step
function"): the leg coroutine feeds it one `LadderEvent` at a time with the
venue-clock `now` and performs the `Action`s it returns. Everything here is a
frozen value; nothing does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from execd.domain.calendar import TradingSession
from execd.domain.market_time import PhaseWindows
from execd.domain.order_state import Execution, OrderEventKind, OrderState, OrderStatus
from execd.domain.quotes import Quote
from execd.domain.spread import PremarketAssessment, SpreadRules
from execd.domain.types import Side, Urgency

#: The collared fallback's default reach beyond the far side (see config.py for the data).
DEFAULT_FALLBACK_COLLAR_BPS = Decimal(50)

_ZERO = Decimal(0)

LEVERAGED_ETF_SYMBOLS = frozenset({"TQQQ", "SPXL", "TECL", "UVXY", "LABU", "LABD", "SOXL"})


class PricingStyle(StrEnum):
    """DESIGN.md "Two pricing styles, one ladder"."""

    MARKETABLE = "marketable"  # seed 003: ask + n ticks / bid − n ticks, fast timeouts
    PASSIVE = "passive"  # seed 000: bid + 1¢ / ask − 1¢, re-peg on market moves
    LEGACY = "legacy"  # seed 000 legacy mode: no ladder, one plain market order


@dataclass(frozen=True, slots=True)
class LadderParams:
    """Every ladder parameter, with the seed's name and default where the seed names one.

    The config layer maps `config/execd.toml` onto these names; keep them stable.
    Seed 000 (`ExecutionConfig`): enable_smart_execution … ask_anchor_offset_cents.
    Seed 003 (`better_orders` config, `FastExecutionParams`, `SpreadAssessment`):
    better_orders_enabled (`enabled`), leveraged_etf_symbols, max_slippage_bps,
    aggressive_timeout_seconds, max_repegs, enable_premarket_assessment,
    open/normal timeouts, tick_aggression, spread classes, premarket budgets and
    waits, wide_spread_wait_seconds, the phase windows. The last group is execd's
    own (DESIGN.md "no silent stall").
    """

    # --- seed 000: smart execution --------------------------------------------------
    enable_smart_execution: bool = True
    market_open_delay_minutes: int = 5
    max_spread_percent: Decimal = Decimal("0.25")
    repeg_threshold_percent: Decimal = Decimal("0.10")
    max_repegs_per_order: int = 5
    # Seed prose says "$100 at bid/ask levels"; the parameter is a size: shares.
    min_bid_ask_size: Decimal = Decimal("100")
    quote_freshness_seconds: float = 5.0
    # Named "cents" by the seed but holding dollars (Decimal("0.01") = one cent).
    bid_anchor_offset_cents: Decimal = Decimal("0.01")
    ask_anchor_offset_cents: Decimal = Decimal("0.01")
    # --- seed 003: better orders ------------------------------------------------------
    better_orders_enabled: bool = True
    leveraged_etf_symbols: frozenset[str] = LEVERAGED_ETF_SYMBOLS
    apply_to: Literal["listed", "all"] = "listed"
    max_slippage_bps: Decimal = Decimal(20)
    open_timeout_seconds: float = 2.0
    normal_timeout_seconds: float = 3.0
    aggressive_timeout_seconds: float | None = None
    max_repegs: int = 2
    tick_aggression: int = 1
    tight_spread_max_cents: Decimal = Decimal(3)
    normal_spread_max_cents: Decimal = Decimal(5)
    wide_spread_wait_seconds: float = 90.0
    premarket_tight_slippage_bps: Decimal = Decimal(5)
    premarket_normal_slippage_bps: Decimal = Decimal(10)
    premarket_wide_slippage_bps: Decimal = Decimal(15)
    recommended_wait_tight_minutes: float = 0.0
    recommended_wait_normal_minutes: float = 1.0
    recommended_wait_wide_minutes: float = 2.0
    enable_premarket_assessment: bool = True
    wait_for_spreads_minutes: float = 2.0
    normal_until_minutes: float = 5.0
    # --- execd: venue handling and liveness -------------------------------------------
    # "replace": PATCH (DESIGN.md step 3). "cancel_and_place": cancel, wait for the
    # confirmed cancel, place the remainder; slower, but no replace race can
    # over-fill the leg (ALPACA.md §1.7, GH Alpaca-API#165).
    repeg_method: Literal["replace", "cancel_and_place"] = "cancel_and_place"
    quote_wait_seconds: float = 5.0
    validation_rechecks: int = 1
    confirm_timeout_seconds: float = 10.0
    max_confirm_retries: int = 3
    fallback_timeout_seconds: float = 30.0
    # DESIGN.md "Fresh quote": a leg with no fresh quote holds (places and re-pegs
    # nothing) at most this long, then ends `quote_stale`. A halted symbol holds alike.
    stale_quote_max_wait_seconds: float = 60.0
    # Issue 10 item 7: a failed seed-000 gate (spread, size, crossed/locked/empty book)
    # at normal or low urgency waits this long for a quote that passes, re-checking each
    # new quote, before the urgency's fallback applies. High urgency does not wait.
    gate_wait_seconds: float = 60.0
    # Issue 10 item 6: the passive style (seed 000) waits like a passive order. Its limit
    # re-checks every `passive_timeout_seconds`; a re-check that does not move the price
    # spends no re-peg round (only a real re-peg — the 0.10 % move — does); and it crosses
    # to the fallback once its patience for the leg's urgency has run out — exactly then: a
    # re-check timer never runs past the patience left. High's 7 s is issue 14's p90 ≤ 10 s
    # (execd/bench/README.md §6).
    passive_timeout_seconds: float = 10.0
    passive_patience_low_seconds: float = 300.0
    passive_patience_normal_seconds: float = 120.0
    passive_patience_high_seconds: float = 7.0
    # No new order or replace leaves later than the session's close minus this travel
    # allowance and the venue clock's uncertainty (`domain.deadline.close_margin`): a day
    # order that reaches Alpaca after the close is queued for the next trading day.
    close_guard_seconds: float = 1.0
    # DESIGN.md "The fallback is capped by default": "collared" is a marketable limit
    # `fallback_collar_bps` beyond the far side of a fresh quote, re-priced at most
    # `fallback_reprices` times; "market" is the seed's plain market order, only when
    # chosen. Legacy mode ignores both (plain market orders, seed 000).
    fallback_order: Literal["collared", "market"] = "collared"
    fallback_collar_bps: Decimal = DEFAULT_FALLBACK_COLLAR_BPS
    fallback_reprices: int = 2

    def __post_init__(self) -> None:
        if self.tick_aggression < 0:
            raise ValueError("tick_aggression must not be negative")
        if self.max_repegs < 0 or self.max_repegs_per_order < 0:
            raise ValueError("re-peg limits must not be negative")
        if self.fallback_collar_bps <= 0:
            raise ValueError("fallback_collar_bps must be positive")
        if self.fallback_order not in ("collared", "market"):
            raise ValueError(f"unknown fallback_order {self.fallback_order!r}")
        if self.fallback_reprices < 0:
            raise ValueError("fallback_reprices must not be negative")
        if not 0 <= self.close_guard_seconds < float("inf"):
            raise ValueError(f"close_guard_seconds must be >= 0: {self.close_guard_seconds}")
        if self.apply_to not in ("listed", "all"):
            raise ValueError(f"apply_to must be 'listed' or 'all', not {self.apply_to!r}")
        if self.repeg_method not in ("replace", "cancel_and_place"):
            raise ValueError(f"unknown repeg_method {self.repeg_method!r}")
        if self.stale_quote_max_wait_seconds < 0 or self.gate_wait_seconds < 0:
            raise ValueError("stale_quote_max_wait_seconds and gate_wait_seconds must be >= 0")
        for name in (
            "quote_wait_seconds",
            "confirm_timeout_seconds",
            "fallback_timeout_seconds",
            "passive_timeout_seconds",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive (every wait needs a deadline)")

    def passive_patience(self, urgency: Urgency) -> timedelta:
        """How long the passive style works its limit before crossing, per urgency."""
        seconds = {
            Urgency.LOW: self.passive_patience_low_seconds,
            Urgency.NORMAL: self.passive_patience_normal_seconds,
            Urgency.HIGH: self.passive_patience_high_seconds,
        }[urgency]
        return timedelta(seconds=seconds)

    @property
    def spread_rules(self) -> SpreadRules:
        """Seed 003's spread classes and their pre-market consequences."""
        return SpreadRules(
            tight_max_cents=self.tight_spread_max_cents,
            normal_max_cents=self.normal_spread_max_cents,
            tight_slippage_bps=self.premarket_tight_slippage_bps,
            normal_slippage_bps=self.premarket_normal_slippage_bps,
            wide_slippage_bps=self.premarket_wide_slippage_bps,
            tight_wait=timedelta(minutes=self.recommended_wait_tight_minutes),
            normal_wait=timedelta(minutes=self.recommended_wait_normal_minutes),
            wide_wait=timedelta(minutes=self.recommended_wait_wide_minutes),
        )

    @property
    def phase_windows(self) -> PhaseWindows:
        """Seed 003's 9:30–9:32 / 9:32–9:35 windows as offsets from the open."""
        return PhaseWindows(
            wait_for_spreads=timedelta(minutes=self.wait_for_spreads_minutes),
            normal_until=timedelta(minutes=self.normal_until_minutes),
        )


@dataclass(frozen=True, slots=True)
class LegSpec:
    """One leg of a plan: what to trade, how urgently, within what limit, on which day."""

    plan_id: str
    leg_index: int
    symbol: str
    side: Side
    qty: Decimal
    urgency: Urgency = Urgency.NORMAL
    limit_price: Decimal | None = None
    session: TradingSession | None = None
    # DESIGN.md "Every leg has a deadline" (`execd.domain.deadline.leg_deadline`): at it
    # the leg cancels what works and ends `deadline_reached`; every hold waits within it.
    deadline: datetime | None = None

    def __post_init__(self) -> None:
        if self.deadline is not None and self.deadline.tzinfo is None:
            raise ValueError("leg deadline must be timezone-aware")
        if self.qty <= 0:
            raise ValueError(f"leg qty must be positive: {self.qty}")
        if self.limit_price is not None and self.limit_price <= 0:
            raise ValueError(f"limit_price must be positive: {self.limit_price}")


# ----------------------------------------------------------------------------- events


class OrderType(StrEnum):
    """The two order types the ladder sends."""

    LIMIT = "limit"
    MARKET = "market"


@dataclass(frozen=True, slots=True)
class Start:
    """Begin the leg."""


@dataclass(frozen=True, slots=True)
class AdoptedOrder:
    """One of the leg's orders as the venue (or the journal) knows it at restart.

    `fallback` is True when execd sent it as the step-4 fallback (the journal's
    `PlaceOrder.step == 4`): a collared or capped fallback limit is then watched
    like a market order, never re-pegged. A MARKET order is always a fallback.
    """

    client_order_id: str
    qty: Decimal
    status: OrderStatus
    order_type: OrderType  # LIMIT or MARKET
    limit_price: Decimal | None
    executions: tuple[Execution, ...] = ()
    fallback: bool = False

    def __post_init__(self) -> None:
        if self.qty <= 0:
            raise ValueError(f"adopted order qty must be positive: {self.qty}")
        # A non-positive execution would un-count real shares, and the ladder
        # sizes every new order from these executions.
        if any(e.qty <= 0 for e in self.executions):
            raise ValueError(f"adopted order {self.client_order_id}: non-positive execution")

    @property
    def unique_executions(self) -> tuple[Execution, ...]:
        """The executions, each execution id counted once (a journal and a venue may
        both report the same one)."""
        seen: set[str] = set()
        out: list[Execution] = []
        for e in self.executions:
            if e.execution_id not in seen:
                seen.add(e.execution_id)
                out.append(e)
        return tuple(out)

    def as_order_state(self) -> OrderState:
        """The ladder's bookkeeping of this order."""
        return OrderState(self.client_order_id, self.qty, self.status, self.unique_executions)


@dataclass(frozen=True, slots=True)
class Resume:
    """Begin a leg that was running before a restart, with its orders so far.

    The ladder adopts a single sound working order, cancels anything else still
    live, and only ever places what the loaded executions leave to trade.
    """

    orders: tuple[AdoptedOrder, ...]
    next_attempt: int  # the attempt number the next new client order id uses

    def __post_init__(self) -> None:
        if self.next_attempt < 0:
            raise ValueError(f"next_attempt must not be negative: {self.next_attempt}")
        cids = [o.client_order_id for o in self.orders]
        if len(set(cids)) != len(cids):
            raise ValueError("resumed orders must have distinct client order ids")


@dataclass(frozen=True, slots=True)
class QuoteUpdate:
    """The newest NBBO from the quote cache (latest-wins, STYLE.md §7)."""

    quote: Quote


@dataclass(frozen=True, slots=True)
class Wake:
    """A deadline the ladder asked for (`WaitUntil`) has passed on the venue clock."""


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A non-fill `trade_updates` event for one of the leg's orders (ALPACA.md §3.4).

    `kind` is never a fill kind (use `OrderFill`) and never `replaced` (use
    `OrderReplaced`). `reason` carries the venue's words for rejections.
    """

    client_order_id: str
    kind: OrderEventKind
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OrderFill:
    """A `fill` (`final`) or `partial_fill` with its execution (ALPACA.md §3.3)."""

    client_order_id: str
    execution_id: str
    qty: Decimal
    price: Decimal
    timestamp: datetime
    final: bool = False


@dataclass(frozen=True, slots=True)
class OrderReplaced:
    """`replaced` on the old order, naming the new order's client id (ALPACA.md §1.7)."""

    client_order_id: str
    new_client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class PlaceFailed:
    """POST /v2/orders did not succeed. A 4xx `status` means the order does not exist;
    anything else (0 for a transport error, 5xx) means its fate is unknown.

    `not_sent`: the order was never sent because the quote that priced it went stale
    while it waited for the rate limit (`PlaceOrder.priced_until`; status 429), or because
    the leg was stopped while it waited (withdrawn; status 409). It does not exist and
    the leg prices it again from a fresh quote instead of ending (a stopped leg ends)."""

    client_order_id: str
    status: int
    message: str
    not_sent: bool = False


@dataclass(frozen=True, slots=True)
class ReplaceFailed:
    """PATCH /v2/orders/{id} did not succeed (e.g. 422 while still `accepted`, §1.7).

    `not_sent`: the PATCH never left (the leg was stopped while it waited for the request
    budget; status 409): the venue never saw it, so the replacement is gone, not refused
    (the journal closes it `not_sent`, like an unsent place). The ladder treats it as any
    4xx: the old order is untouched and still the leg's."""

    client_order_id: str
    new_client_order_id: str
    status: int
    message: str
    not_sent: bool = False


@dataclass(frozen=True, slots=True)
class CancelFailed:
    """DELETE /v2/orders/{id} did not succeed (422 when already filled, 404, §1.8)."""

    client_order_id: str
    status: int
    message: str


@dataclass(frozen=True, slots=True)
class TradingStatus:
    """The symbol's trading status changed (market-data `statuses`, ALPACA.md §4.3).

    While `halted`, the leg holds exactly as for a stale quote (DESIGN.md "Fresh quote"):
    nothing is priced, re-pegged or sent; it goes on when trading resumes.
    """

    halted: bool
    code: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Stop:
    """Plan cancel or halt: cancel the working order and finish once confirmed."""

    reason: str


VenueEvent = OrderUpdate | OrderFill | OrderReplaced | PlaceFailed | ReplaceFailed | CancelFailed
LadderEvent = Start | Resume | QuoteUpdate | Wake | TradingStatus | VenueEvent | Stop


# ---------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """POST a day order. `step` is the ladder step (2 first limit, 3 re-price, 4 fallback)."""

    client_order_id: str
    symbol: str
    order_type: OrderType
    side: Side
    qty: Decimal
    limit_price: Decimal | None
    step: int
    #: When the quote that priced this order stops being fresh (venue clock); the order
    #: is not sent for the first time after it (DESIGN.md "Fresh quote"). None: its price
    #: does not come from a quote (a market order, a limit at the plan's cap).
    priced_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReplaceOrder:
    """PATCH the working order into a new one with `new_client_order_id` (ALPACA.md §1.7).

    `qty` is always sent: Alpaca copies the *original* qty otherwise, even after
    a partial fill (GH Alpaca-API#165).
    """

    client_order_id: str
    new_client_order_id: str
    qty: Decimal
    limit_price: Decimal
    #: As `PlaceOrder.priced_until`: not sent for the first time after it.
    priced_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """DELETE one order; the cancel is confirmed only by `canceled` on the stream (§1.8)."""

    client_order_id: str


@dataclass(frozen=True, slots=True)
class WaitUntil:
    """Call `decide` with `Wake` at `deadline` (venue clock). Replaces any earlier timer."""

    deadline: datetime


@dataclass(frozen=True, slots=True)
class NeedQuote:
    """Deliver a `QuoteUpdate` whose `as_of` is later than `newer_than`."""

    newer_than: datetime


@dataclass(frozen=True, slots=True)
class Note:
    """A decision-log fact: stable snake_case `event`, data in `fields` (STYLE.md §8)."""

    event: str
    fields: Mapping[str, object] = field(default_factory=dict)
    level: Literal["debug", "info", "warning", "error"] = "info"


class Outcome(StrEnum):
    """How a leg ended."""

    FILLED = "filled"  # the whole qty executed
    ENDED = "ended"  # ended cleanly with a reason (may hold a partial fill)
    STOPPED = "stopped"  # plan cancel or halt
    FAILED = "failed"  # the venue refused the leg's order
    UNRESOLVED = "unresolved"  # the venue never confirmed; reconcile over REST


@dataclass(frozen=True, slots=True)
class Finish:
    """The leg is over; everything the step-5 report needs."""

    outcome: Outcome
    reason: str
    filled_qty: Decimal
    fills: tuple[Execution, ...]
    arrival_quote: Quote | None
    style: PricingStyle | None
    style_reason: str
    repegs: int


Action = PlaceOrder | ReplaceOrder | CancelOrder | WaitUntil | NeedQuote | Note | Finish


# ------------------------------------------------------------------------------ state


class LegPhase(StrEnum):
    """Where the leg is; every phase but PENDING and DONE has a deadline."""

    PENDING = "pending"  # before Start
    PRE_OPEN = "pre_open"  # step 0: holding until the open (+ waits)
    OPEN_WAIT = "open_wait"  # step 1: open delay / waiting for spreads
    AWAIT_QUOTE = "await_quote"  # no order; waiting for a fresh quote to price from
    WORKING = "working"  # one order working (steps 2–4)
    REPLACING = "replacing"  # a replace is in flight
    CANCELING = "canceling"  # cancels in flight; next move waits for confirmation
    DONE = "done"


class Timer(StrEnum):
    """What the single deadline means when it passes."""

    HOLD = "hold"  # pre-open / open delay / spread wait over: assess
    QUOTE = "quote"  # no fresh quote arrived in time
    REPEG = "repeg"  # the working limit's timeout
    CONFIRM = "confirm"  # the venue has not confirmed a replace or cancel
    FALLBACK = "fallback"  # the fallback order has not filled


class QuotePurpose(StrEnum):
    """Why the leg is waiting for a quote."""

    ASSESS = "assess"  # step 1–2: first placement
    REPEG = "repeg"  # step 3: re-peg the working order
    REPRICE = "reprice"  # step 3: place the remainder after a confirmed cancel
    FALLBACK = "fallback"  # step 4: price the collared fallback


class AfterCancel(StrEnum):
    """What to do once every order of the leg is confirmed terminal."""

    REPRICE = "reprice"
    FALLBACK = "fallback"
    FINISH = "finish"


@dataclass(frozen=True)  # not slots: `ladder_replace.replace` copies its __dict__ in C
class LegState:
    """Everything the ladder knows about one leg. Build the first one with `LegState.new`;
    the ladder's modules make the next with `ladder_replace.replace`."""

    spec: LegSpec
    phase: LegPhase = LegPhase.PENDING
    style: PricingStyle | None = None
    style_reason: str = ""
    attempt: int = 0
    orders: tuple[OrderState, ...] = ()
    working_id: str | None = None
    replace_to: str | None = None
    pending_limit: Decimal | None = None
    pending_mid: Decimal | None = None
    after_cancel: AfterCancel | None = None
    end_outcome: Outcome | None = None
    end_reason: str = ""
    deadline: datetime | None = None
    timer: Timer | None = None
    awaiting: QuotePurpose | None = None
    quote_after: datetime | None = None
    repeg_trigger: str = ""
    last_quote: Quote | None = None
    arrival_quote: Quote | None = None
    premarket: PremarketAssessment | None = None
    budget_bps: Decimal | None = None
    priced_mid: Decimal | None = None
    limit_price: Decimal | None = None
    repeg_rounds: int = 0
    repegs: int = 0
    spread_waits: int = 0
    rechecks: int = 0
    confirm_retries: int = 0
    in_fallback: bool = False
    fallback_reprices: int = 0
    stale_since: datetime | None = None  # holding for a fresh quote since (venue clock)
    gate_since: datetime | None = None  # waiting for a quote that passes the gates since
    halted: str | None = None  # the symbol's halt (status code and reason) while halted
    first_placed_at: datetime | None = None  # the first limit's time (passive patience)
    first_placed_id: str | None = None  # that limit's client id (undone if never sent)
    stray_fills: tuple[Execution, ...] = ()
    result: Finish | None = None

    @staticmethod
    def new(spec: LegSpec) -> LegState:
        """The state of a leg that has not started."""
        return LegState(spec=spec)

    def order(self, client_order_id: str) -> OrderState | None:
        """The leg's order with this client id, if it is one of ours."""
        return next((o for o in self.orders if o.client_order_id == client_order_id), None)

    @property
    def live_orders(self) -> tuple[OrderState, ...]:
        """Orders not yet confirmed terminal (including ones the venue has not answered)."""
        return tuple(o for o in self.orders if not o.is_terminal)

    @property
    def executed_qty(self) -> Decimal:
        """Shares certainly executed for the leg, over all its orders."""
        # The same additions in the same order as `sum(…, Decimal(0))` over each (a sum's
        # exponent depends on its terms: 0 + 1E+2 is 100), without two generators.
        total = _ZERO
        for o in self.orders:
            total += o.executed_qty
        stray = _ZERO
        for e in self.stray_fills:
            stray += e.qty
        return total + stray

    @property
    def remaining(self) -> Decimal:
        """What is left to trade: never re-buy what the venue says is done."""
        return self.spec.qty - self.executed_qty

    @property
    def fills(self) -> tuple[Execution, ...]:
        """Every execution of the leg, in arrival order per order."""
        return tuple(e for o in self.orders for e in o.executions) + self.stray_fills
