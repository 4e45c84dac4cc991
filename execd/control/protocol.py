"""The control API's wire format: framing, requests, responses, status models.

Pure (sans-I/O, like python-websockets' ``protocol.py``): bytes in, values out.
No sockets, no asyncio, no clock. ``server.py`` and ``client.py`` are thin
shells that move bytes; every rule about what a line may contain lives here,
so it is tested without a socket.

Framing: newline-delimited JSON (UTF-8), one request per line. A line longer
than `MAX_LINE_BYTES` (1 MiB, newline excluded) is refused with
``line_too_long`` and skipped up to its newline; blank lines are ignored so a
human with ``socat`` is not punished for pressing Enter.

Requests: ``{"op": "<op>", ...fields}``. Every request gets exactly one final
line, either ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": {"code": "...", "message": "..."}}``. Only ``watch``
sends lines before it: ``{"ok": true, "event": {...}}``, one per progress
event, then the final ``result`` line (the plan's last status). So a client
reads lines until one carries ``result`` or ``error``. A refused request never
closes the connection: the next line is read as usual.

Decimals travel as JSON strings (``"187.42"``) so no float ever touches a price
or a quantity; datetimes as RFC 3339 strings with their offset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, TypeAlias, TypeVar

import msgspec

from execd.domain.types import Side, Urgency

_T = TypeVar("_T")

MAX_LINE_BYTES: Final = 1 << 20
"""Longest request line accepted, newline excluded (1 MiB): a plan of thousands of legs fits."""


# --- errors -------------------------------------------------------------------------------------


class ErrorCode(StrEnum):
    """Machine-readable reasons a request was refused; stable, part of the protocol."""

    LINE_TOO_LONG = "line_too_long"
    """The request line exceeded `MAX_LINE_BYTES`."""
    INVALID_JSON = "invalid_json"
    """The line is not valid UTF-8 JSON."""
    UNKNOWN_OP = "unknown_op"
    """``op`` names no operation this daemon knows."""
    INVALID_REQUEST = "invalid_request"
    """Not an object, ``op`` missing, or a field missing, mistyped or unknown."""
    INVALID_PLAN = "invalid_plan"
    """The engine refused the plan's content (raised by the handler)."""
    NOT_FOUND = "not_found"
    """No plan with that id (raised by the handler)."""
    PLAN_ID_CONFLICT = "plan_id_conflict"
    """The plan_id names an earlier submission of a different document (DESIGN.md
    "A plan's identity"); nothing was sent."""
    HALTED = "halted"
    """The daemon is halted and accepts no new plan until ``resume``."""
    FORBIDDEN = "forbidden"
    """The peer's uid is not allowed on this socket (SO_PEERCRED)."""
    INTERNAL = "internal"
    """The daemon failed while answering; its log has the traceback."""
    STARTING = "starting"
    """The daemon is still reconciling orders with the venue; the message says how many
    and about how long. Nothing was done: a client may retry (the CLI waits through it)."""
    SHUTTING_DOWN = "shutting_down"
    """The daemon is shutting down and takes no new work (not the kill switch)."""
    TOO_MANY_CONNECTIONS = "too_many_connections"
    """The peer already holds `MAX_CONNECTIONS_PER_PEER` connections; this one is closed."""
    IDLE_TIMEOUT = "idle_timeout"
    """No request arrived on the connection for the idle timeout; it is closed."""
    INVALID_RESPONSE = "invalid_response"
    """Client side only: the daemon's answer did not follow this protocol."""


class ControlError(Exception):
    """A refused request: a stable `code` (an `ErrorCode` value) and a one-line `message`.

    The handler raises it to refuse (``not_found``, ``invalid_plan``, ``halted``); the
    client raises it when the daemon answered ``ok: false``. `code` is a plain ``str``
    so a client still reports a code added by a newer daemon.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = str(code)
        self.message = message


# --- framing ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineTooLong:
    """Marker the framer emits, once, for a line over the limit (its bytes are dropped)."""

    limit: int


Frame: TypeAlias = bytes | LineTooLong


class LineFramer:
    """Split a byte stream into lines, enforcing the line limit without buffering past it.

    ``feed`` returns complete lines (newline stripped) in order. A line is reported as
    `LineTooLong` as soon as it is known to exceed the limit; the rest of it, up to and
    including its newline, is discarded so the next line is read normally.
    """

    def __init__(self, limit: int = MAX_LINE_BYTES) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already known to hold no newline
        self._discarding = False

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return every frame they complete."""
        frames: list[Frame] = []
        self._buffer += data
        while True:
            newline = self._buffer.find(b"\n", self._scanned)
            if newline < 0:
                if self._discarding:
                    self._buffer.clear()
                elif len(self._buffer) > self._limit:
                    frames.append(LineTooLong(self._limit))
                    self._discarding = True
                    self._buffer.clear()
                self._scanned = len(self._buffer)
                return frames
            line = bytes(self._buffer[:newline])
            del self._buffer[: newline + 1]
            self._scanned = 0
            if self._discarding:
                self._discarding = False
            elif len(line) > self._limit:
                frames.append(LineTooLong(self._limit))
            else:
                frames.append(line)

    def feed_eof(self) -> list[Frame]:
        """The peer finished sending: an unterminated last line still counts."""
        frames: list[Frame] = []
        if self._buffer and not self._discarding:
            frames.append(bytes(self._buffer))
        self._buffer.clear()
        self._scanned = 0
        self._discarding = False
        return frames


# --- status models (what the engine returns) ----------------------------------------------------

PlanState: TypeAlias = Literal[
    "accepted", "scheduled", "working", "completed", "partial", "canceled", "failed", "halted"
]
"""accepted: validated, nothing sent yet; scheduled: accepted and held for a later session
(or its `not_before`), `scheduled_for` says until when; working: legs running; completed: every leg
filled; partial: ended with some legs (or part of one) unfilled; canceled: by
``cancel``; failed: the plan could not run; halted: stopped by ``halt``."""

LegState: TypeAlias = Literal[
    "pending", "waiting", "working", "filled", "unfilled", "canceled", "rejected", "failed"
]
"""pending: not started (e.g. a buy waiting for sells' buying power); waiting: held by a
market-timing rule (pre-open, wide spread at the open); working: an order is live;
filled; unfilled: ended cleanly without (all) fills, e.g. a low-urgency leg out of
re-pegs; canceled; rejected: by the venue; failed: an error ended it."""

TERMINAL_PLAN_STATES: Final[frozenset[str]] = frozenset(
    {"completed", "partial", "canceled", "failed", "halted"}
)
"""Plan states after which nothing more happens (a ``watch`` ends)."""

TERMINAL_LEG_STATES: Final[frozenset[str]] = frozenset(
    {"filled", "unfilled", "canceled", "rejected", "failed"}
)

PricingStyle: TypeAlias = Literal["marketable", "passive", "market", "legacy"]


class LegStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One leg of a plan as the engine sees it now.

    Slippage sign convention (``execd.domain.tca``): positive bps = cost to us;
    ``saving_vs_market_*`` is the other way round, positive = execd beat a market order
    sent at arrival. A number that cannot be computed yet is null, never zero.
    """

    index: int
    symbol: str
    side: Side
    qty: Decimal | None
    """Shares requested; null when the leg is sized by `notional`."""
    notional: Decimal | None
    """Dollars requested; null when the leg is sized by `qty`."""
    urgency: Urgency
    state: LegState
    step: int
    """Ladder step reached, 0-5 (DESIGN.md, "The ladder")."""
    filled_qty: Decimal = Decimal(0)
    avg_fill_price: Decimal | None = None
    arrival_mid: Decimal | None = None
    slippage_bps: Decimal | None = None
    """Average fill vs arrival mid, bps, positive = cost."""
    repegs: int = 0
    client_order_ids: tuple[str, ...] = ()
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str | None = None
    """Why the leg ended (or is waiting), in words."""
    limit_price: Decimal | None = None
    """The live order's limit price (the "working price"); null without a live limit order."""
    style: PricingStyle | None = None
    interval_vwap: Decimal | None = None
    vs_vwap_bps: Decimal | None = None
    market_order_price: Decimal | None = None
    """What a market order sent at arrival would have paid: the arrival far touch."""
    saving_vs_market_bps: Decimal | None = None
    saving_vs_market_usd: Decimal | None = None
    bid: Decimal | None = None
    """The NBBO bid at the leg's last step (running legs only), for the live view."""
    ask: Decimal | None = None
    quote_age_seconds: float | None = None
    """Age of that NBBO on the venue clock when the leg last looked."""
    waiting: str | None = None
    """Why a running leg has no working order (open delay, stale quote, ...); null otherwise."""
    fallback_fired: bool = False
    """The ladder reached its fallback (step 4) for this leg."""
    max_repegs: int | None = None
    """Re-pegs the leg's style allows (``re-peg 2/5``); null until the style is known."""


class PlanStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A plan and its legs: the ``status``/``submit``/``cancel`` result."""

    plan_id: str
    state: PlanState
    submitted_at: datetime
    legs: tuple[LegStatus, ...]
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str | None = None
    """Why the plan ended, in words."""
    scheduled_for: datetime | None = None
    """A held plan: when it starts (its session's pre-open, or `not_before`); added in 0.3."""
    not_before: str | None = None
    deadline: str | None = None
    """The plan's own times as given (ET ``HH:MM[:SS]`` on its trading day, or RFC 3339)."""
    already_submitted: bool = False
    """``submit`` only: this plan_id and document were submitted before; nothing was sent."""
    dry_run: bool = False
    """``submit`` with ``dry_run``: validated and priced only; nothing sent, nothing kept."""
    warnings: tuple[str, ...] = ()
    """``submit`` only: what the user should know about an accepted plan (e.g. legs the
    feed's symbol limit leaves off the quote stream); optional, older daemons omit it."""


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """What ``health`` answers: can the daemon trade right now, and how fresh is its view."""

    halted: bool
    market_data_connected: bool
    trade_updates_connected: bool
    quote_age_seconds: dict[str, float]
    """Age of the newest NBBO per symbol in work (receive time, monotonic)."""
    request_budget_left: int
    """REST requests left in the current budget window (Alpaca allows ~200/min)."""
    request_budget_limit: int | None = None
    data_budget_left: int | None = None
    """Market-data REST requests (latest-quote re-reads) left in its own budget's window."""
    data_budget_limit: int | None = None
    venue: str | None = None
    feed: str | None = None
    """Market-data feed (iex or sip): on IEX the spread rules measure IEX's own quote."""
    working_plans: int = 0
    stale_quote_symbols: tuple[str, ...] = ()
    """Symbols in work whose quotes are stale because the market-data connection is down,
    silent, or back but has not quoted them yet (their legs hold; added in 0.2, optional)."""
    legs_holding: tuple[str, ...] = ()
    """Legs holding for stale quotes, as ``plan_id[leg] SYMBOL`` (added in 0.2, optional)."""
    journal_error: str | None = None
    """Set once the journal refused a write: the daemon has stopped trading (optional)."""
    journal_path: str | None = None
    """The daemon's journal file, so `execd report --socket` reads the right one."""
    recovering: str | None = None
    """While the daemon reconciles its journal with the venue at start, e.g. ``recovering
    3 orders, ≈25 s left``; plans are answered ``starting`` until then (optional)."""


class WorkingOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An execd order a halt left working, as the venue last listed it."""

    client_order_id: str
    status: str


class HaltState(msgspec.Struct, frozen=True, kw_only=True):
    """What ``halt`` and ``resume`` answer."""

    halted: bool
    canceled_orders: int = 0
    """Working execd orders canceled by this halt (0 for resume)."""
    still_working: tuple[WorkingOrder, ...] = ()
    """execd orders the halt could not cancel by its deadline (refused, or not reached):
    the user must act on them at the venue (added in 0.2, optional)."""
    listing_failed: bool = False
    """No listing of the venue's open orders succeeded: execd orders the halt never saw
    may still be working (added in 0.2, optional)."""
    refused: str | None = None
    """Why this command did not do what it was asked, when it did not: a `resume` that a
    later `halt` overrode (added in 0.2, optional)."""

    @property
    def clean(self) -> bool:
        """A halt that saw the venue's orders and left none of execd's working."""
        return not self.still_working and not self.listing_failed


class WatchEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One progress line of a ``watch`` stream.

    `event` is a stable snake_case name, the same as the log line's (``leg_started``,
    ``leg_repegged``, ``order_filled``, ``leg_finished``, ``plan_state_changed``).
    `leg` is the full, current status of the leg it concerns, so a watcher needs no
    other state to redraw. On subscription the handler should first send one event per
    leg with its current status (``event="snapshot"``) so a late watcher misses nothing.
    """

    plan_id: str
    seq: int
    """Increases by one per event of this plan, from 0."""
    at: datetime
    event: str
    plan_state: PlanState
    leg: LegStatus | None = None
    message: str | None = None


# --- requests -----------------------------------------------------------------------------------

PlanId = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class _Request(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="op"):
    """Base of every request: tagged by ``op``; an unknown field is a mistake, refused."""


class SubmitRequest(_Request, frozen=True, tag="submit"):
    """Submit a plan; its content is the engine's to validate (``invalid_plan``).

    `dry_run`: validate against the venue, compute and price the legs, send and keep
    nothing (the answer has ``dry_run: true``).
    """

    plan: dict[str, Any]
    dry_run: bool = False


class StatusRequest(_Request, frozen=True, tag="status"):
    """One plan's status, or every plan's when `plan_id` is absent."""

    plan_id: PlanId | None = None


class CancelRequest(_Request, frozen=True, tag="cancel"):
    """Cancel a plan's working legs."""

    plan_id: PlanId


class HaltRequest(_Request, frozen=True, tag="halt"):
    """Cancel every working execd order and refuse new plans until ``resume``."""


class ResumeRequest(_Request, frozen=True, tag="resume"):
    """Accept plans again after ``halt``."""


class HealthRequest(_Request, frozen=True, tag="health"):
    """Streams, quote ages, request budget, halted."""


class WatchRequest(_Request, frozen=True, tag="watch"):
    """Stream a plan's progress events until it ends, then its final status."""

    plan_id: PlanId


Request: TypeAlias = (
    SubmitRequest
    | StatusRequest
    | CancelRequest
    | HaltRequest
    | ResumeRequest
    | HealthRequest
    | WatchRequest
)

OPS: Final[tuple[str, ...]] = (
    "submit",
    "status",
    "cancel",
    "halt",
    "resume",
    "health",
    "watch",
)


MAX_NESTING: Final = 32
"""Deepest nesting of arrays/objects a request may have (a plan needs 3). Checked before
the JSON is decoded: a 100,000-deep document exhausts the decoder's recursion instead."""

# A JSON string, quotes and escapes included; possessive, so an unterminated one costs
# one pass and no backtracking.
_JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_PAIRS = (b"[]", b"{}", b"[}", b"{]")


def nested_too_deep(line: bytes, limit: int = MAX_NESTING) -> bool:
    """Whether a JSON text nests arrays/objects deeper than `limit`, brackets inside
    strings excluded.

    All in C-speed byte operations, never a recursion and no per-byte Python loop: strip
    the strings, keep only the brackets, then remove innermost pairs once per level — a
    text still holding brackets after `limit` rounds is deeper. Malformed nesting stops
    early as "not too deep"; the decoder then says what is wrong with it.
    """
    if line.count(b"[") + line.count(b"{") <= limit:
        return False  # the common case: a small request cannot be deep
    brackets = _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", line))
    for _ in range(limit):
        if not brackets:
            return False
        inner = brackets
        for pair in _PAIRS:
            inner = inner.replace(pair, b"")
        if len(inner) == len(brackets):
            return brackets.count(b"[") + brackets.count(b"{") > limit
        brackets = inner
    return bool(brackets)


def decode_request(line: bytes) -> Request:
    """Parse one request line, or raise `ControlError` saying exactly what is wrong.

    Parsed in two passes so the error is specific: JSON first (``invalid_json``), then
    the ``op`` (``unknown_op``), then the op's fields (``invalid_request``). Nesting
    deeper than `MAX_NESTING` is refused before any decoding (``invalid_request``).
    """
    if nested_too_deep(line):
        raise ControlError(
            ErrorCode.INVALID_REQUEST, f"request nested deeper than {MAX_NESTING} levels"
        )
    try:
        raw = msgspec.json.decode(line)
    except RecursionError:  # belt and braces: `nested_too_deep` should have caught it
        raise ControlError(
            ErrorCode.INVALID_REQUEST, f"request nested deeper than {MAX_NESTING} levels"
        ) from None
    except msgspec.DecodeError as exc:
        raise ControlError(ErrorCode.INVALID_JSON, f"request is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ControlError(
            ErrorCode.INVALID_REQUEST, 'a request must be a JSON object with an "op" field'
        )
    op = raw.get("op")
    if op is None:
        raise ControlError(ErrorCode.INVALID_REQUEST, 'request has no "op" field')
    if not isinstance(op, str):
        raise ControlError(ErrorCode.INVALID_REQUEST, '"op" must be a string')
    if op not in OPS:
        raise ControlError(
            ErrorCode.UNKNOWN_OP, f"unknown op {op!r}; expected one of: {', '.join(OPS)}"
        )
    try:
        request: Request = msgspec.convert(raw, type=Request)
    except msgspec.ValidationError as exc:
        raise ControlError(ErrorCode.INVALID_REQUEST, f"{op}: {exc}") from exc
    return request


def encode_request(op: str, fields: Mapping[str, Any]) -> bytes:
    """One request line. Not validated here: the daemon is the judge (and says why)."""
    return msgspec.json.encode({"op": op, **fields}) + b"\n"


# --- responses ----------------------------------------------------------------------------------


def encode_result(result: Any) -> bytes:
    """The final line of a successful request. `result` may hold Structs, Decimals, datetimes."""
    return msgspec.json.encode({"ok": True, "result": result}) + b"\n"


def encode_event(event: WatchEvent) -> bytes:
    """One interim ``watch`` line."""
    return msgspec.json.encode({"ok": True, "event": event}) + b"\n"


def encode_error(code: str, message: str) -> bytes:
    """The final line of a refused request."""
    return msgspec.json.encode({"ok": False, "error": {"code": code, "message": message}}) + b"\n"


def error_line(error: ControlError) -> bytes:
    """`encode_error` for a raised `ControlError`."""
    return encode_error(error.code, error.message)


class _ErrorBody(msgspec.Struct, frozen=True):
    code: str
    message: str


class _Response(msgspec.Struct, frozen=True):
    ok: bool
    result: Any = None
    event: WatchEvent | None = None
    error: _ErrorBody | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """A final, successful answer; `value` is plain JSON data (convert with `as_type`)."""

    value: Any


@dataclass(frozen=True, slots=True)
class Event:
    """An interim ``watch`` line; more lines follow."""

    event: WatchEvent


def decode_response(line: bytes) -> Result | Event:
    """Parse one response line; an ``ok: false`` line raises the daemon's `ControlError`."""
    try:
        response = msgspec.json.decode(line, type=_Response)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ControlError(
            ErrorCode.INVALID_RESPONSE, f"the daemon sent a malformed line: {exc}"
        ) from exc
    if not response.ok:
        if response.error is None:
            raise ControlError(ErrorCode.INVALID_RESPONSE, "error response without an error")
        raise ControlError(response.error.code, response.error.message)
    if response.event is not None:
        return Event(response.event)
    return Result(response.result)


def as_type(value: Any, type_: type[_T]) -> _T:
    """Convert a result's plain data into a status model (decimals from strings)."""
    try:
        return msgspec.convert(value, type=type_)
    except msgspec.ValidationError as exc:
        raise ControlError(
            ErrorCode.INVALID_RESPONSE, f"unexpected result from the daemon: {exc}"
        ) from exc
