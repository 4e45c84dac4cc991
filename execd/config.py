"""execd's configuration: one typed model, from a TOML file overridden by the environment.

Sources, strongest first:

1. environment variables with ``__`` nesting (``EXECUTION__ENABLE_SMART_EXECUTION=false``,
   ``VENUE__TRADING_URL=...``, ``API__SOCKET_PATH=...``);
2. Alpaca's standard ``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY`` for the venue keys;
3. the TOML file: ``--config PATH``, else ``$EXECD_CONFIG``, else ``config/execd.toml`` in
   the working directory when it exists;
4. the defaults below, which are the seed documents' values under the seeds' own names.

Every key here is read by the code (LESSONS.md: "config values that nothing read"); a test
walks the model and fails on a key that nothing references.
"""

from __future__ import annotations

import contextvars
import ipaddress
import os
import tomllib
from collections.abc import Iterator, Mapping
from datetime import date as _date
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import tomli_w
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from execd.domain.types import Urgency

CONFIG_ENV = "EXECD_CONFIG"
DEFAULT_CONFIG_PATH = Path("config/execd.toml")

# The seed's leveraged ETFs (seed 003 "better_orders.leveraged_etf_symbols").
SEED_LEVERAGED_ETFS = ("TQQQ", "SPXL", "TECL", "UVXY", "LABU", "LABD", "SOXL")

ALPACA_URLS: Mapping[str, Mapping[str, str]] = {
    # ALPACA.md §0.1. Market data is the same host for paper and live keys.
    "paper": {
        "trading_url": "https://paper-api.alpaca.markets",
        "trading_stream_url": "wss://paper-api.alpaca.markets/stream",
        "data_url": "https://data.alpaca.markets",
        "data_stream_url": "wss://stream.data.alpaca.markets/v2/{feed}",
    },
    "live": {
        "trading_url": "https://api.alpaca.markets",
        "trading_stream_url": "wss://api.alpaca.markets/stream",
        "data_url": "https://data.alpaca.markets",
        "data_stream_url": "wss://stream.data.alpaca.markets/v2/{feed}",
    },
}


FREE_IEX_SYMBOLS = 30
"""Symbols the free plan's IEX feed streams on its one connection (ALPACA.md §0.4)."""


class ConfigError(Exception):
    """The configuration cannot be used; `str()` is one line per problem, naming the key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _upper_symbols(values: list[str]) -> list[str]:
    return [value.strip().upper() for value in values]


Symbols = Annotated[list[str], AfterValidator(_upper_symbols)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _ascii_decimals(cls, value: object, info: ValidationInfo) -> object:
        """A Decimal setting written as text (the environment's) must be ASCII digits:
        Python's Decimal reads "٢٠" and "2_0" as 20, which no one means (plans refuse
        them too, `execd.domain.plans`)."""
        if isinstance(value, str) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            decimal = annotation is Decimal or Decimal in get_args(annotation)
            if decimal and (not value.isascii() or "_" in value):
                raise ValueError(f"{value!r} is not a number (ASCII digits only)")
        return value


class ExecutionConfig(_Section):
    """Seed 000, "Smart Execution Strategy": names and defaults are the seed's."""

    enable_smart_execution: bool = True
    """False is the legacy mode: every leg is one plain market order."""
    market_open_delay_minutes: int = Field(5, ge=0, le=390)
    """The passive style places nothing before the open plus this delay (9:30–9:35 ET)."""
    max_spread_percent: Decimal = Field(Decimal("0.25"), gt=0, le=100)
    repeg_threshold_percent: Decimal = Field(Decimal("0.10"), gt=0, le=100)
    max_repegs_per_order: int = Field(5, ge=0, le=100)
    """Re-pegs of the passive style before it crosses."""
    min_bid_ask_size: Decimal = Field(Decimal("100"), ge=0)
    """Minimum displayed size at bid and ask, in shares (the seed's "$100" text names a size)."""
    quote_freshness_seconds: float = Field(5.0, gt=0, le=3600)
    bid_anchor_offset_cents: Decimal = Field(Decimal("0.01"), ge=0, le=1)
    """Dollars above the bid for a passive buy; the seed names it cents but its value is $0.01."""
    ask_anchor_offset_cents: Decimal = Field(Decimal("0.01"), ge=0, le=1)
    default_urgency: Urgency = Urgency.NORMAL
    """Urgency of a plan that names none (low / normal / high, seed 000)."""
    fallback_order: Literal["collared", "market"] = "collared"
    """The smart ladder's step-4 fallback (DESIGN.md "The fallback is capped by default"):
    `collared` is a marketable limit `fallback_collar_bps` beyond the far side of a fresh
    quote, re-priced at most `ladder.fallback_reprices` times; `market` is the seeds' plain
    market order, only when chosen. Legacy mode always sends plain market orders."""
    fallback_collar_bps: Decimal | None = Field(None, gt=0, le=10_000)
    """How far beyond the far side the collared fallback may trade; unset = 50 bps (a set
    value always means `collared`, as it did before `fallback_order`). 50 bps: on the real
    tapes (../shared/tapes) the far side moved at most 22.5 bps against a buyer within the
    30 s fallback window (p99 19.7 bps, IBM's open), and one tick of a $5 stock is 20 bps."""

    @model_validator(mode="after")
    def _collar_means_collared(self) -> ExecutionConfig:
        # A config that set a collar asked for a capped fallback: never read it as market.
        if self.fallback_order == "market" and self.fallback_collar_bps is not None:
            raise ValueError(
                'fallback_collar_bps is set but fallback_order is "market": a plain market'
                " fallback has no collar; remove one of the two"
            )
        return self


class BetterOrdersConfig(_Section):
    """Seed 003, the "better orders" 5-step ladder of marketable limits."""

    enabled: bool = True
    """False: no symbol gets the marketable style; everything uses seed 000's passive style."""
    apply_to: Literal["listed", "all"] = "listed"
    """Which symbols get the marketable style: `listed` (only leveraged_etf_symbols) or `all`."""
    leveraged_etf_symbols: Symbols = Field(default_factory=lambda: list(SEED_LEVERAGED_ETFS))
    max_slippage_bps: Decimal = Field(Decimal("20"), gt=0, le=10_000)
    open_timeout_seconds: float = Field(2.0, gt=0, le=600)
    """Re-peg timeout inside the open window (seed 003 MARKET_OPEN_TIMEOUT)."""
    normal_timeout_seconds: float = Field(3.0, gt=0, le=600)
    """Re-peg timeout after the open window (seed 003 NORMAL_TIMEOUT)."""
    aggressive_timeout_seconds: float | None = Field(None, gt=0, le=600)
    """Seed 003's single `aggressive_timeout_seconds` (2.5 in its sample); when set it
    replaces both timeouts above. Unset by default: DESIGN.md keeps the 2 s / 3 s pair."""
    max_repegs: int = Field(2, ge=0, le=100)
    tick_aggression: int = Field(1, ge=1, le=100)
    """Ticks beyond the far touch for the marketable limit (ask + n ticks, bid - n ticks)."""
    enable_premarket_assessment: bool = True
    wide_spread_wait_seconds: float = Field(90.0, ge=0, le=3600)
    """How long a wide spread waits in the 9:30–9:32 window before re-checking."""
    tight_spread_max_cents: Decimal = Field(Decimal("3"), gt=0)
    normal_spread_max_cents: Decimal = Field(Decimal("5"), gt=0)
    tight_slippage_bps: Decimal = Field(Decimal("5"), gt=0)
    normal_slippage_bps: Decimal = Field(Decimal("10"), gt=0)
    wide_slippage_bps: Decimal = Field(Decimal("15"), gt=0)
    tight_wait_minutes: int = Field(0, ge=0, le=390)
    normal_wait_minutes: int = Field(1, ge=0, le=390)
    wide_wait_minutes: int = Field(2, ge=0, le=390)
    wait_for_spreads_minutes: int = Field(2, ge=0, le=390)
    """Length of the WAIT_FOR_SPREADS window after the open (9:30–9:32)."""
    normal_execution_until_minutes: int = Field(5, ge=0, le=390)
    """End of the NORMAL window after the open (9:32–9:35); STANDARD after it."""

    @model_validator(mode="after")
    def _ordered_bounds(self) -> BetterOrdersConfig:
        if self.normal_spread_max_cents < self.tight_spread_max_cents:
            raise ValueError(
                "normal_spread_max_cents must be >= tight_spread_max_cents"
                f" ({self.normal_spread_max_cents} < {self.tight_spread_max_cents})"
            )
        if self.normal_execution_until_minutes < self.wait_for_spreads_minutes:
            raise ValueError("normal_execution_until_minutes must be >= wait_for_spreads_minutes")
        return self


class LadderConfig(_Section):
    """execd's own liveness rules around the seeds' ladder: every wait has a deadline."""

    repeg_method: Literal["replace", "cancel_and_place"] = "cancel_and_place"
    """`cancel_and_place` (default): cancel, wait for the confirmed cancel, re-read what
    filled, place the remainder — one more round trip, and no over-fill is possible.
    `replace`: PATCH the working order (DESIGN.md step 3's wording). A PATCH races the fills
    of the order it replaces: the replacement carries the remainder computed before the
    PATCH (and Alpaca has been seen to re-create it at the original qty, Alpaca-API#165),
    so a fill landing in flight can over-fill the leg — seen with the venue's random partial
    fills. Over-fill is the worst bug there is, so the safe method is the default."""
    quote_wait_seconds: float = Field(5.0, gt=0, le=600)
    """How long a leg waits for a newer quote before it re-checks the one in hand (a stale
    one makes it hold, bounded by `stale_quote_max_wait_seconds`)."""
    validation_rechecks: int = Field(1, ge=0, le=100)
    """Fewest fresh quotes re-checked after a failed gate before giving up (not for high),
    even once `gate_wait_seconds` has passed."""
    confirm_timeout_seconds: float = Field(10.0, gt=0, le=600)
    """How long a replace or cancel may stay unconfirmed before the cancel is re-sent."""
    max_confirm_retries: int = Field(3, ge=0, le=100)
    """Re-sent cancels before the leg ends UNRESOLVED (loudly) for reconciliation."""
    fallback_timeout_seconds: float = Field(30.0, gt=0, le=3600)
    """How long each fallback order may work before it is re-priced or the leg ends."""
    fallback_reprices: int = Field(2, ge=0, le=20)
    """Times an unfilled collared fallback is re-priced from a fresh quote before the leg
    ends `fallback_unfilled`."""
    stale_quote_max_wait_seconds: float = Field(60.0, ge=0, le=3600)
    """A leg with no fresh quote (older than `execution.quote_freshness_seconds` by its own
    timestamp) or a halted symbol holds — places and re-pegs nothing — at most this long,
    then ends `quote_stale` (within the leg's deadline)."""
    gate_wait_seconds: float = Field(60.0, ge=0, le=3600)
    """A failed gate (spread too wide, size too small, crossed or empty book) at normal or
    low urgency waits this long for a quote that passes before the urgency's fallback; 0 is
    the seed's single re-check. High urgency never waits."""
    max_leg_seconds: float = Field(23_400.0, gt=0, le=7 * 86_400)
    """A leg's deadline when the plan gives none and no trading session is known (the
    session's close is used when it is): 6.5 h, one regular session."""
    close_guard_seconds: float = Field(1.0, ge=0, le=300, allow_inf_nan=False)
    """No new order or replace is sent later than the session's close minus this travel
    allowance and the venue clock's uncertainty (up to one `/v2/clock` round trip, logged
    `behind_at_most_seconds`); a leg's deadline at the close is that much earlier too. At
    Alpaca a day order that arrives after the close is queued for the next trading day."""
    passive_timeout_seconds: float = Field(10.0, gt=0, le=600)
    """The passive style's re-check interval (seed 003's 2 s / 3 s are for marketable
    limits); a re-check that leaves the price unchanged spends no re-peg round."""
    passive_patience_low_seconds: float = Field(300.0, gt=0, le=23_400)
    """How long a low-urgency passive limit works before the leg's last step."""
    passive_patience_normal_seconds: float = Field(120.0, gt=0, le=23_400)
    """How long a normal-urgency passive limit works before it crosses (the fallback)."""
    passive_patience_high_seconds: float = Field(7.0, gt=0, le=23_400)
    """How long a high-urgency passive limit works before it crosses (the fallback); 7 s
    keeps high urgency's p90 time to complete under 10 s (issue 14 item 6, measured in
    execd/bench/README.md §6). Each patience is honoured exactly: the re-check timer is cut
    to the patience left."""
    rest_quote_interval_seconds: float = Field(1.0, gt=0, le=60)
    """A leg waiting for a fresh quote re-reads the latest quote over the data REST API at
    most this often (judged by its own timestamp, like a streamed one)."""


class VenueConfig(_Section):
    """Where orders and data go. Every URL can be overridden (e.g. a separate `execd sim`)."""

    kind: Literal["sim", "paper", "live"] = "sim"
    trading_url: str | None = None
    trading_stream_url: str | None = None
    data_url: str | None = None
    data_stream_url: str | None = None
    feed: Literal["iex", "sip"] = "iex"
    """IEX is what free accounts get: its quote is IEX's own, not the NBBO (LESSONS.md)."""
    stream_symbol_limit: int | None = Field(None, ge=1, le=1_000_000)
    """Symbols the market-data stream may carry at once; None: by feed, 30 on iex (the free
    plan, ALPACA.md §0.4) and unlimited on sip. Legs beyond it are priced from REST
    latest-quote reads until a stream slot frees (a paid plan on iex: set its limit)."""
    key_id: SecretStr | None = None
    secret_key: SecretStr | None = None

    @field_validator("trading_url", "trading_stream_url", "data_url", "data_stream_url")
    @classmethod
    def _url_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError(f"not a URL: {value!r}")
        return value

    def symbol_limit(self) -> int | None:
        """The stream's symbol limit: `stream_symbol_limit`, else the feed's (None: none)."""
        if self.stream_symbol_limit is not None:
            return self.stream_symbol_limit
        return FREE_IEX_SYMBOLS if self.feed == "iex" else None

    def resolved_url(self, name: str) -> str | None:
        """The configured URL, else Alpaca's for paper/live, else None (sim: in-process)."""
        value: str | None = getattr(self, name)
        if value is not None:
            return value
        defaults = ALPACA_URLS.get(self.kind)
        return None if defaults is None else defaults[name].format(feed=self.feed)


class SimSection(_Section):
    """The in-process simulated venue used by `execd run --venue sim` and `make demo`."""

    scenario: Literal["calm", "open", "fast", "thin", "stale", "mixed"] = "mixed"
    tape: Path | None = None
    seed: int = 1
    start: str | None = None
    """Eastern time of day the venue clock starts at (HH:MM[:SS]); None = 10:00:00."""
    speed: float = Field(1.0, gt=0, le=1000)
    symbols: Symbols | None = None
    cash: Decimal = Field(Decimal("100000"), ge=0)
    positions: dict[str, Decimal] = Field(
        default_factory=lambda: {"TQQQ": Decimal(300), "AAPL": Decimal(50)}
    )
    """Shares the simulated account holds at start: what config/sample-plan.json sells."""
    partial_fill_rate: float = Field(0.10, ge=0, le=1)
    """Share of eligible fills the venue splits at random, like Alpaca paper (ALPACA.md §6)."""
    multiplier: Literal[1, 2, 4] = 2
    """The account's margin multiplier, as paper's (2 Reg T, 4 intraday; 1 a cash account)."""
    shorting_enabled: bool = True
    date: str | None = None
    """The venue clock's start date (YYYY-MM-DD); None = the latest trading day."""

    @field_validator("date")
    @classmethod
    def _day(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                _date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"expected YYYY-MM-DD, got {value!r}") from None
        return value

    @field_validator("start")
    @classmethod
    def _time_of_day(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = value.split(":")
        ok = len(parts) in (2, 3) and all(p.isdigit() and len(p) == 2 for p in parts)
        if not ok or int(parts[0]) > 23 or any(int(p) > 59 for p in parts[1:]):
            raise ValueError(f"expected HH:MM or HH:MM:SS, got {value!r}")
        return value


def _runtime_dir() -> Path:
    # systemd's RuntimeDirectory= exports RUNTIME_DIRECTORY (/run/execd).
    if explicit := os.environ.get("RUNTIME_DIRECTORY"):
        return Path(explicit.split(":")[0])
    if xdg := os.environ.get("XDG_RUNTIME_DIR"):
        return Path(xdg) / "execd"
    return Path(f"/tmp/execd-{os.getuid()}")


def _state_dir() -> Path:
    # systemd's StateDirectory= exports STATE_DIRECTORY (/var/lib/execd).
    if explicit := os.environ.get("STATE_DIRECTORY"):
        return Path(explicit.split(":")[0])
    if xdg := os.environ.get("XDG_STATE_HOME"):
        return Path(xdg) / "execd"
    return Path.home() / ".local" / "state" / "execd"


class ApiConfig(_Section):
    """The control socket `execd submit/status/...` talk to."""

    socket_path: Path = Field(default_factory=lambda: _runtime_dir() / "execd.sock")
    socket_group: str | None = None
    """When set, the socket is mode 0660 owned by this group; otherwise 0600."""
    allowed_uids: list[int] = Field(default_factory=list)
    """Peer uids allowed besides the daemon's own (checked with SO_PEERCRED)."""


class JournalConfig(_Section):
    path: Path = Field(default_factory=lambda: _state_dir() / "journal.db")


class RiskConfig(_Section):
    """Caps checked before any order leaves; a breach is refused with a reason, never clipped.

    On by default (issue 11 §1, "fat-finger protection"): a plan is refused at submit when
    one leg is worth more than the order cap or the whole plan more than the plan cap,
    each the lower of a dollar amount and a multiple of the account's equity (read at
    submit). Notional is quantity times the order's limit price (a market order, or a
    qty leg at submit: times the far side of the current quote). A cap can be raised,
    never switched off by accident: there is no "unset" value in the file.
    """

    max_order_notional: Decimal | None = Field(Decimal("1000000"), gt=0)
    """Largest notional (USD) of one order; a larger leg is refused at submit, a larger
    order ends its leg."""
    max_plan_notional: Decimal | None = Field(Decimal("5000000"), gt=0)
    """Largest gross notional (USD, buys plus sells) of a whole plan at submit."""
    max_order_equity_multiple: Decimal | None = Field(Decimal("1"), gt=0, le=1000)
    """One order may be worth at most this multiple of the account's equity."""
    max_plan_equity_multiple: Decimal | None = Field(Decimal("2"), gt=0, le=1000)
    """A plan's gross notional may be at most this multiple of equity; 2 lets a full
    rotation (sell everything, buy something else) through."""
    max_orders_per_minute: int | None = Field(None, ge=1, le=10_000)
    """Orders placed or replaced in any 60 s, over every leg; one more ends its leg."""
    use_margin: bool = False
    """False: buys are sized against the account's cash (`non_marginable_buying_power`);
    True: against its margin `buying_power` (DESIGN.md "Buys spend cash, not margin")."""
    buy_shrink_tolerance_percent: Decimal = Field(Decimal("1"), ge=0, le=100)
    """A buy the cash cannot quite pay for is shrunk only if the shortfall is at most this
    % of the plan's buy total; beyond it the buy is refused with the numbers."""


class ShutdownConfig(_Section):
    working_orders: Literal["cancel", "leave"] = "cancel"
    """On SIGTERM/SIGINT: cancel execd's working orders (and wait for the venue's
    confirmation), or leave them working for the next start to adopt."""
    grace_seconds: float = Field(30.0, gt=0, le=600)
    """One timeout for the whole shutdown: cancels confirmed, plans ended, journal flushed."""


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console", "auto"] = "auto"
    """`auto`: a human renderer on a terminal, JSON lines otherwise (journald)."""

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class PlansConfig(_Section):
    overlap_buys: bool = False
    """False: buys start when every sell of the plan has ended. True: a buy starts as soon
    as buying power covers it."""
    min_trade_notional: Decimal = Field(Decimal("100"), ge=0)
    """Targets plans: a computed trade worth less than this (USD) is not made."""
    premarket_lead_minutes: float = Field(5.0, ge=0, le=600)
    """A plan held for a later session starts this long before its open, so the ladder's
    step 0 assesses that morning's pre-market quotes (seed 003)."""


class RuntimeConfig(_Section):
    """The interpreter's garbage collector while the daemon runs (`engine/gc_tuning.py`)."""

    gc_freeze: bool = True
    """Once ready, move every start-up object out of the collector's reach (`gc.freeze`):
    a full collection then walks only what was made since, not the ~73,000 from start-up."""
    gc_thresholds: tuple[
        Annotated[int, Field(ge=100, le=1_000_000)],
        Annotated[int, Field(ge=1, le=1_000)],
        Annotated[int, Field(ge=1, le=1_000)],
    ] = (10_000, 20, 20)
    """`gc.set_threshold` (young, middle, old): a young collection every this many new
    objects (Python's default is 700, 10, 10). Never 0: that would turn collection off."""


class GatewayConfig(_Section):
    requests_per_minute: int = Field(190, ge=12, le=10_000)
    """Shared trading-API budget; Alpaca allows 200/min per account (ALPACA.md §0.4)."""
    cancel_reserve: int = Field(10, ge=0, le=1_000)
    """Slots of the per-minute budget that only cancels may use: new orders and replaces stop
    this short, so a cancel (and `execd halt`) never waits for a window they spent. Reads
    stop 10 further short. Must leave room: `cancel_reserve + 10 < requests_per_minute`."""
    request_burst: int = Field(20, ge=1, le=10_000)
    """Beyond a burst of this many, orders, reads and cancels are paced at the budget's rate
    instead of spending the minute at once (cancels never wait for the pacing)."""
    data_requests_per_minute: int = Field(190, ge=12, le=10_000)
    """The market-data REST API's own budget (latest-quote re-reads); Alpaca limits it apart
    from trading: 200/min on the free and Basic plans, 10,000 on Algo Trader Plus (ALPACA.md
    §0.4). Quote reads never spend the trading budget, and never exceed this."""
    order_poll_seconds: float = Field(2.0, gt=0, le=60)
    """While the trade_updates stream is down, working orders are read over REST this often
    (one `GET /v2/orders` per poll, lowest priority in the budget), but never more than a
    quarter of `requests_per_minute` (at 190: every 1.26 s at most)."""
    market_data_silence_seconds: float = Field(30.0, gt=0, le=600)
    """No market-data message at all for this long while subscribed: the socket is taken
    for dead and reconnected; until then the cached quotes still read as current."""
    request_timeout_seconds: float = Field(10.0, gt=0, le=300)
    write_window_seconds: float = Field(30.0, gt=0, le=600)
    """No copy of an order request leaves later than this after the first. A restart waits
    this plus the request timeout before it declares an unanswered order never sent."""

    @model_validator(mode="after")
    def _reserves_leave_room(self) -> GatewayConfig:
        # The budget keeps 10 more slots from reads (execd.adapters.budget.read_reserve).
        if self.cancel_reserve + 10 >= self.requests_per_minute:
            raise ValueError(
                f"cancel_reserve {self.cancel_reserve} + 10 read slots leave no room for"
                f" orders in requests_per_minute {self.requests_per_minute}"
            )
        return self


class MetricsConfig(_Section):
    """The Prometheus endpoint (issue 13): off by default, and loopback only when on."""

    enabled: bool = False
    listen: str = "127.0.0.1:9464"
    """HOST:PORT of ``GET /metrics``; HOST must be a loopback address (127.0.0.0/8, ::1 as
    ``[::1]:PORT``, or ``localhost``): the counters describe the account's trading."""

    @field_validator("listen")
    @classmethod
    def _loopback(cls, value: str) -> str:
        host, port = split_listen(value)
        if not 0 < port < 65536:
            raise ValueError(f"port out of range in {value!r}")
        if host != "localhost":
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise ValueError(f"metrics listen on a loopback address only, not {host!r}")
        return value


def split_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` / ``"[::1]:9464"`` → (host, port); ValueError when malformed."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


class NotifyConfig(_Section):
    """Webhook notifications (issue 13): a JSON POST per event, never in trading's way."""

    webhook_urls: list[SecretStr] = Field(default_factory=list)
    """http(s) URLs; each event is POSTed to each. Secret: a URL often carries a token."""
    stream_down_seconds: float = Field(30.0, gt=0, le=86_400)
    """A stream down this long (continuously) is notified once per outage."""
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    max_attempts: int = Field(3, ge=1, le=10)
    """Tries per event and URL (backoff 1 s, 2 s, 4 s... between them), then it is dropped."""
    queue_size: int = Field(100, ge=1, le=10_000)
    """Events waiting to be sent; beyond it new events are dropped (and logged)."""

    apprise_urls: list[SecretStr] = Field(default_factory=list)
    """Apprise URLs (``tgram://…``, ``slack://…``, ``discord://…``, ``mailto://…``): the
    same events as short texts. Needs the optional extra: ``pip install 'execd[apprise]'``."""

    @field_validator("apprise_urls")
    @classmethod
    def _apprise(cls, value: list[SecretStr]) -> list[SecretStr]:
        if not value:
            return value
        try:
            import apprise
        except ImportError:
            raise ValueError(
                "notify.apprise_urls needs the optional apprise package: "
                "pip install 'execd[apprise]'"
            ) from None
        for index, url in enumerate(value):
            if not apprise.Apprise().add(url.get_secret_value()):
                raise ValueError(f"apprise_urls[{index}] is not a URL apprise understands")
        return value

    @field_validator("webhook_urls")
    @classmethod
    def _http(cls, value: list[SecretStr]) -> list[SecretStr]:
        for url in value:
            if not url.get_secret_value().startswith(("http://", "https://")):
                raise ValueError("webhook URLs must be http:// or https://")
        return value


_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "execd_config_file", default=None
)


class _TomlSource(PydanticBaseSettingsSource):
    """The TOML file chosen by `load_settings` (a context variable, not global state)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads the whole file at once

    def __call__(self) -> dict[str, Any]:
        path = _config_file.get()
        if path is None:
            return {}
        with path.open("rb") as handle:
            return tomllib.load(handle)


class _AlpacaKeysSource(PydanticBaseSettingsSource):
    """Alpaca's standard key variables, as alpaca-py and Alpaca's docs name them."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError

    def __call__(self) -> dict[str, Any]:
        venue = {
            key: os.environ[env]
            for key, env in (("key_id", "APCA_API_KEY_ID"), ("secret_key", "APCA_API_SECRET_KEY"))
            if os.environ.get(env)
        }
        return {"venue": venue} if venue else {}


class Settings(BaseSettings):
    """The whole configuration of one execd daemon."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        frozen=True,
    )

    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    better_orders: BetterOrdersConfig = Field(default_factory=BetterOrdersConfig)
    ladder: LadderConfig = Field(default_factory=LadderConfig)
    venue: VenueConfig = Field(default_factory=VenueConfig)
    sim: SimSection = Field(default_factory=SimSection)
    api: ApiConfig = Field(default_factory=ApiConfig)
    journal: JournalConfig = Field(default_factory=JournalConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    shutdown: ShutdownConfig = Field(default_factory=ShutdownConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    plans: PlansConfig = Field(default_factory=PlansConfig)
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        del dotenv_settings, file_secret_settings
        return (
            init_settings,
            env_settings,
            _AlpacaKeysSource(settings_cls),
            _TomlSource(settings_cls),
        )


def config_path(explicit: str | Path | None = None) -> Path | None:
    """The TOML file to read: `--config`, else `$EXECD_CONFIG`, else ./config/execd.toml."""
    chosen = explicit or os.environ.get(CONFIG_ENV)
    if chosen:
        return Path(chosen)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def load_settings(explicit_path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load and validate the configuration, or raise ConfigError naming every bad key.

    `overrides` are section dicts (e.g. ``venue={"kind": "sim"}``) that beat every source;
    the CLI uses them for flags such as ``--venue``.
    """
    path = config_path(explicit_path)
    if path is not None and not path.is_file():
        raise ConfigError([f"config file not found: {path}"])
    token = _config_file.set(path)
    try:
        return _with_overrides(Settings(), overrides)
    except ValidationError as exc:
        raise ConfigError(list(_describe(exc))) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: {exc}"]) from None
    finally:
        _config_file.reset(token)


def _with_overrides(settings: Settings, overrides: Mapping[str, Any]) -> Settings:
    if not overrides:
        return settings
    merged = settings.model_dump()
    for section, values in overrides.items():
        merged[section] = {**merged[section], **values}
    for section in ("venue",):
        for key in ("key_id", "secret_key"):
            secret = getattr(getattr(settings, section), key)
            if secret is not None and merged[section][key] == secret:
                merged[section][key] = secret.get_secret_value()
    return Settings.model_validate(merged)


_MESSAGES: Mapping[str, str] = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "extra_forbidden": "unknown key",
    "literal_error": "must be one of {expected}",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "decimal_parsing": "must be a number",
    "decimal_type": "must be a number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "missing": "is required",
}


def _describe(exc: ValidationError) -> Iterator[str]:
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "config"
        template = _MESSAGES.get(error["type"])
        context = error.get("ctx") or {}
        if template is not None:
            try:
                message = template.format(**context)
            except (KeyError, IndexError):
                message = error["msg"]
        else:
            message = error["msg"].removeprefix("Value error, ")
        yield f"{location}: {message}"


MASK = "********"
"""How a set secret is shown: no character of it and not its length (issue 11 §11)."""


def _mask(secret: SecretStr | None) -> str | None:
    return None if secret is None else MASK


def effective_config(settings: Settings) -> dict[str, Any]:
    """The configuration as plain TOML-able data, secrets masked, unset values left out.

    Decimals stay TOML numbers written exactly (tomli-w prints them from their digits).
    """
    plain: dict[str, Any] = _plain(settings.model_dump(mode="python"))
    return plain


def _plain(value: Any) -> Any:
    match value:
        case dict():
            return {k: _plain(v) for k, v in value.items() if v is not None}
        case list() | tuple():
            return [_plain(v) for v in value]
        case SecretStr():
            return _mask(value)
        case Path():
            return str(value)
        case Enum():
            return value.value
        case Decimal() if value.is_finite() and value == value.to_integral_value():
            # tomli-w writes a whole Decimal as `100.0`; a count of shares reads `100`.
            return int(value)
        case _:
            return value


def render_toml(settings: Settings) -> str:
    """`execd config`: the effective configuration as TOML, with secrets masked."""
    return tomli_w.dumps(effective_config(settings))
