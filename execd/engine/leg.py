"""One coroutine per leg: it feeds the ladder and performs what the ladder decides.

The leg owns no socket (DESIGN.md "Shape"). It waits on three inputs — its inbox of order
updates (routed by client order id), the quote cache (latest-wins), and the ladder's one
deadline (a monotonic timer) — turns each into a `LadderEvent`, calls the pure
`decide(state, event, now, params)`, and performs the returned actions through the REST
gateway. Every decision is the ladder's; this module only awaits, translates and logs.

Two safeguards live here because they are about the wire, not the ladder:

* Fills are deduplicated by the order's *cumulative* filled quantity as well as by
  execution id: a reconciliation over REST (after an inbox overflow or a stream outage)
  turns the venue's `filled_qty` into a synthetic fill, and a late stream event for the
  same shares must not count twice (LESSONS.md: re-pegging more than the remainder).
  The translation and the counts live in leg_executions.py; this module does the reads.
* REST failures are fed back with honest status codes: a 4xx refusal is definitive, an
  unknown outcome (timeout, 5xx after the gateway's own look-up) is not, and the ladder
  resolves it by cancel and confirmation rather than by guessing.

The journal (issue 5) sees the leg's orders before the venue does: the intent of every
place and replace is awaited on disk before the request leaves, the venue's answer is
recorded after, and every execution the ladder counts is recorded (once, by execution id)
before the ladder hears of it. A restarted daemon rebuilds the leg from those rows and the
venue's answers, and starts it with `Resume` instead of `Start` (see `ResumePoint`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, assert_never

import structlog

from execd.adapters.budget import Priority, Withdrawal, WriteLine
from execd.adapters.errors import (
    AdapterError,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    SendExpired,
    SendWithdrawn,
    VenueRefused,
)
from execd.adapters.journal import Journal
from execd.adapters.market_stream import MarketStream
from execd.adapters.rest import RestGateway
from execd.adapters.wire import TradeUpdate
from execd.domain.deadline import close_margin, last_send, send_window
from execd.domain.ladder import decide
from execd.domain.ladder_types import (
    Action,
    AdoptedOrder,
    CancelFailed,
    CancelOrder,
    Finish,
    LadderEvent,
    LadderParams,
    LegSpec,
    NeedQuote,
    Note,
    OrderFill,
    OrderType,
    PlaceFailed,
    PlaceOrder,
    QuoteUpdate,
    ReplaceFailed,
    ReplaceOrder,
    Resume,
    Start,
    Stop,
    Timer,
    WaitUntil,
    Wake,
)
from execd.domain.ladder_types import LegState as LadderState
from execd.domain.tca import Fill, leg_report, vwap_between
from execd.engine.benchmarks import BenchmarkCollector
from execd.engine.clock import Clock
from execd.engine.doorbell import Doorbell
from execd.engine.leg_actions import cancel_first
from execd.engine.leg_executions import LegExecutions
from execd.engine.leg_journal import REPLACE_UNSAFE, RISK_REFUSED, UNKNOWN_OUTCOME, LegJournal
from execd.engine.leg_quotes import QuoteFeed
from execd.engine.leg_replace import replace_unsafe
from execd.engine.leg_wash import clear_opposite_side
from execd.engine.order_poll import Snapshot
from execd.engine.quote_hold import QuoteHold
from execd.engine.records import LegRecord, sync_record
from execd.engine.risk import RiskGuard
from execd.engine.router import Inbox

_RESERVED_LOG_KEYS = frozenset({"event", "level", "timestamp", "logger"})
"""Keys every log line carries; a note field of the same name is renamed, never lost."""

_log = structlog.get_logger("execd.leg")

STOPPING = 409
"""The status a place or replace fails with when the leg stopped before it was sent."""


@dataclass(frozen=True, slots=True)
class LegPorts:
    """What a leg may use: the gateway, the quote cache, the clock, the parameters."""

    rest: RestGateway
    quotes: MarketStream
    clock: Clock
    params: LadderParams
    feed: str
    journal: Journal
    risk: RiskGuard
    #: a leg waiting for a fresh quote re-reads it over the data REST API this often.
    rest_quote_interval: float = 1.0


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a leg stood when the daemon stopped, rebuilt from the journal and the venue.

    `orders` are every order the leg ever had, with the executions already counted
    (journaled, or reconciled from the venue's `filled_qty` at start); `order_ids` maps
    the client order ids the venue knows to its ids.
    """

    orders: tuple[AdoptedOrder, ...]
    next_attempt: int
    order_ids: Mapping[str, str] = field(default_factory=dict)

    @property
    def event(self) -> Resume:
        return Resume(self.orders, self.next_attempt)


class LegRunner:
    """Runs the ladder for one leg until it finishes; see the module docstring."""

    def __init__(
        self,
        spec: LegSpec,
        ports: LegPorts,
        inbox: Inbox[TradeUpdate],
        record: LegRecord,
        publish: Callable[[str, LegRecord], None],
        resume: ResumePoint | None = None,
    ) -> None:
        self.spec = spec
        self._ports = ports
        self._inbox = inbox
        self.record = record
        self._publish = publish
        self.state = LadderState.new(spec)
        # Order ids and counted executions; a gap it finds asks for a re-read (_reconcile).
        self._executions = LegExecutions(
            lambda: ports.quotes.quote(spec.symbol), ports.clock.now, self._gap_found
        )
        self._stop_reason: str | None = None
        # Places/replaces whose outcome is unknown (`OutcomeUnknown`): a 404 look-up of one
        # only says the venue has not processed it *yet* (review 6), so it is not taken
        # as refused while the leg runs either (lane ghost): `_absent` decides, counting
        # the cancel's 404 look-ups of each in `_misses`.
        self._uncertain: set[str] = set()
        self._misses: dict[str, int] = {}
        self._stop_delivered = False
        # Set by `stop`: a place or replace still waiting for the request budget leaves the
        # line at once instead of holding the stop up until its grant (then sending nothing,
        # or worse, a new price after the cancel).
        self._withdrawal = Withdrawal()
        # Where the leg's next write waits for the budget (kept after a stale-in-line one).
        self._writes = WriteLine()
        self._bell = Doorbell()  # every input rings it (doorbell.py)
        inbox.bell = self._bell.ring
        self._reread: asyncio.Task[None] | None = None
        self._reconcile_requested = False
        self._snapshot: Snapshot = {}
        self._checked_for: datetime | None = None
        # No quote-driven deadline while the feed is down (quote_hold.py, issue 5).
        self._hold = QuoteHold(
            ports.quotes,
            spec.symbol,
            ports.params.quote_wait_seconds,
            record,
            max_hold=ports.params.stale_quote_max_wait_seconds,
            deadline=spec.deadline,
        )
        self._journal = LegJournal(ports.journal, spec, ports.clock)
        self._feed = QuoteFeed(
            spec.symbol,
            ports.quotes,
            ports.rest,
            ports.clock,
            freshness=ports.params.quote_freshness_seconds,
            rest_interval=ports.rest_quote_interval,
        )
        self._woken_for: datetime | None = None
        self._vwap_start = ports.quotes.vwap(spec.symbol).mark()
        self.bench = BenchmarkCollector(
            ports.feed, lambda: ports.quotes.quote(spec.symbol), ports.clock.now, record
        )
        self._first: LadderEvent = Start()
        if resume is not None:
            self._adopt(resume)

    def _adopt(self, resume: ResumePoint) -> None:
        """Start from `Resume`: count what the venue already executed, know its order ids,
        and re-read the orders once the inbox is registered (an event may have arrived
        between the start-up look-ups and now)."""
        self._first = resume.event
        for order in resume.orders:
            if order.client_order_id not in self.record.client_order_ids:
                self.record.client_order_ids.append(order.client_order_id)
            self._executions.adopt(
                order.client_order_id, sum((e.qty for e in order.executions), Decimal(0))
            )
        for cid, order_id in resume.order_ids.items():
            self._executions.remember(cid, order_id)
        self._reconcile_requested = True

    def _gap_found(self) -> None:
        """The venue reports shares no event told us about: re-read before going on."""
        self._reconcile_requested = True

    # ------------------------------------------------------------------ control

    def cancels(self, client_order_id: str) -> bool:
        """True while this leg, stopped, is cancelling `client_order_id` itself (one of its
        orders): a halt's sweep then leaves that order's DELETE to it."""
        return self._stop_reason is not None and client_order_id in self.record.client_order_ids

    def stop(self, reason: str) -> None:
        """Ask the leg to cancel its working order and finish (plan cancel, halt, shutdown).

        A place or replace of this leg still waiting for the request budget is withdrawn
        here, synchronously: it never reaches the venue. One already granted has either
        been sent (its order is then cancelled like any working order) or is refused at
        the gateway's last check before the send."""
        if self._stop_reason is None:
            self._stop_reason = reason
            self._withdrawal.set()
            self._bell.ring()

    def request_reconcile(self, snapshot: Snapshot | None = None) -> None:
        """Re-read this leg's orders over REST before acting again (stream outage or
        reconnect). `snapshot` (client order id → order, one `GET /v2/orders` for every
        leg) answers for the orders it holds; the others are read one by one."""
        if snapshot is not None:
            self._snapshot = snapshot
        self._reconcile_requested = True
        self._bell.ring()

    # ------------------------------------------------------------------ main loop

    async def run(self) -> Finish:
        """Drive the ladder to its `Finish`; the caller logs and records the result."""
        try:
            return await self._drive()
        finally:
            self._inbox.bell = None
            reread, self._reread = self._reread, None
            if reread is not None:
                reread.cancel()
                # the leg leaves no task behind; its error (not its cancellation) is logged
                # by `_reread_done`
                await asyncio.gather(reread, return_exceptions=True)

    async def _drive(self) -> Finish:
        pending: deque[LadderEvent] = deque([self._first])
        while True:
            while pending:
                event = pending.popleft()
                if isinstance(event, OrderFill):
                    executions, execution_id = self._executions, event.execution_id
                    await self._journal.fill(
                        event,
                        cumulative=executions.take_cumulative(execution_id),
                        # the cache's NBBO when the fill arrived, else the ladder's last quote
                        quote=executions.quote_at(execution_id) or self.state.last_quote,
                    )
                self.state, actions = decide(
                    self.state, event, self._ports.clock.now(), self._ports.params
                )
                finish: Finish | None = None
                for action in cancel_first(actions):
                    follow_up = await self._perform(action)
                    for failed in follow_up:
                        await self._journal.refusal(failed)
                    pending.extend(follow_up)
                    if isinstance(action, Finish):
                        finish = action
                self.bench.observe(event, actions, self.state)
                self._sync_record()
                if finish is not None:
                    return finish
            pending.extend(await self._next_inputs())

    # ------------------------------------------------------------------ actions

    async def _perform(self, action: Action) -> list[LadderEvent]:
        if self._stop_reason is not None:
            # Halt/cancel/shutdown: the venue must see no new price from this leg.
            match action:
                case PlaceOrder():
                    return [PlaceFailed(action.client_order_id, STOPPING, "leg stopping")]
                case ReplaceOrder():
                    new = action.new_client_order_id
                    return [ReplaceFailed(action.client_order_id, new, STOPPING, "leg stopping")]
                case _:
                    pass
        match action:
            case PlaceOrder():
                return await self._place(action)
            case ReplaceOrder():
                return await self._replace(action)
            case CancelOrder():
                return await self._cancel(action)
            case WaitUntil() | NeedQuote():
                return []  # the state carries the deadline and the quote request
            case Note():
                self._note(action)
                return []
            case Finish():
                return []
            case _:
                assert_never(action)

    async def _place(self, action: PlaceOrder) -> list[LadderEvent]:
        cid = action.client_order_id
        self.record.client_order_ids.append(cid)
        limit = action.limit_price if action.order_type is OrderType.LIMIT else None
        structlog.contextvars.bind_contextvars(client_order_id=cid, step=action.step)
        breach = await self._admit(action.qty, limit)
        if breach is not None:
            return [PlaceFailed(cid, RISK_REFUSED, breach)]
        if limit is None or action.step >= 4:
            await clear_opposite_side(
                self._ports.rest,
                action,
                self._ports.params.confirm_timeout_seconds,
                self._withdrawal,
            )
        refused = await self._journal.intent(
            cid,
            kind="place",
            order_type=action.order_type.value,
            qty=action.qty,
            limit_price=limit,
        )
        if refused is not None:
            return [PlaceFailed(cid, *refused)]
        try:
            order = await self._ports.rest.submit_order(
                symbol=action.symbol,
                side=action.side,
                client_order_id=cid,
                qty=action.qty,
                limit_price=limit,
                send_within=self._send_within(action.priced_until),
                withdraw=self._withdrawal,
                queue_place=self._writes.next_place(),
            )
        except VenueRefused as exc:
            return [PlaceFailed(cid, exc.status, exc.message)]
        except SendWithdrawn as exc:
            return [PlaceFailed(cid, STOPPING, str(exc), not_sent=True)]
        except SendExpired as exc:
            self._writes.expired()
            return [PlaceFailed(cid, 429, str(exc), not_sent=True)]
        except RateLimited as exc:
            return [PlaceFailed(cid, 429, str(exc))]
        except (OutcomeUnknown, AdapterError) as exc:
            self._uncertain.add(cid)
            _log.error("order_outcome_unknown", operation="place", error=str(exc))
            return [PlaceFailed(cid, UNKNOWN_OUTCOME, str(exc))]
        self._executions.remember(cid, str(order.id))
        await self._journal.ack(cid, str(order.id), str(order.status.value))
        _log.info(
            "order_placed",
            order_type=action.order_type.value,
            qty=str(action.qty),
            limit_price=None if limit is None else str(limit),
            order_id=str(order.id),
            status=str(order.status.value),
        )
        return []

    def _send_within(self, priced_until: datetime | None) -> float | None:
        """Seconds (from now) in which the order may first be sent: until its pricing
        quote goes stale, and never so late it could reach the venue after the session's
        close (`domain.deadline.last_send`). A rate-limit wait past it sends nothing."""
        ports = self._ports
        margin = close_margin(ports.clock.behind_at_most_seconds, ports.params.close_guard_seconds)
        cutoff = last_send(self.spec.session, margin)
        return send_window(ports.clock.now(), priced_until, cutoff)

    async def _replace(self, action: ReplaceOrder) -> list[LadderEvent]:
        old, new = action.client_order_id, action.new_client_order_id
        self.record.client_order_ids.append(new)
        # A replace is the ladder's step 3 (a re-peg): the log must not keep the step of
        # the order it replaces (issue 10 item 9).
        structlog.contextvars.bind_contextvars(client_order_id=new, step=3)
        # The look-up and the re-read before the PATCH are part of it: they queue as a
        # replace and are withdrawn with it when the leg stops (a stop must not wait for
        # them behind a backlog; nothing was sent).
        try:
            order_id = await self._order_id(old, Priority.REPLACE, self._withdrawal)
            if order_id is None:
                return [ReplaceFailed(old, new, 404, "order not found at the venue")]
            counted = self._executions.counted(old)
            unsafe = await replace_unsafe(
                self._ports.rest, old, order_id, action.qty, counted, self._withdrawal
            )
        except SendWithdrawn as exc:
            return [ReplaceFailed(old, new, STOPPING, str(exc), not_sent=True)]
        except AdapterError as exc:
            return [ReplaceFailed(old, new, UNKNOWN_OUTCOME, f"order look-up failed: {exc}")]
        if unsafe is not None:
            self._reconcile_requested = True  # count the shares it has not heard of first
            return [ReplaceFailed(old, new, REPLACE_UNSAFE, unsafe)]
        breach = await self._admit(action.qty, action.limit_price)
        if breach is not None:
            return [ReplaceFailed(old, new, RISK_REFUSED, breach)]
        refused = await self._journal.intent(
            new,
            kind="replace",
            order_type=OrderType.LIMIT.value,
            qty=action.qty,
            limit_price=action.limit_price,
            replaces=old,
        )
        if refused is not None:
            return [ReplaceFailed(old, new, *refused)]
        try:
            order = await self._ports.rest.replace_order(
                order_id,
                qty=action.qty,
                limit_price=action.limit_price,
                client_order_id=new,
                send_within=self._send_within(action.priced_until),
                withdraw=self._withdrawal,
                queue_place=self._writes.next_place(),
            )
        except VenueRefused as exc:
            return [ReplaceFailed(old, new, exc.status, exc.message)]
        except SendWithdrawn as exc:
            return [ReplaceFailed(old, new, STOPPING, str(exc), not_sent=True)]
        except NotFound as exc:
            return [ReplaceFailed(old, new, 404, str(exc))]
        except SendExpired as exc:
            self._writes.expired()
            return [ReplaceFailed(old, new, 429, str(exc))]
        except RateLimited as exc:
            return [ReplaceFailed(old, new, 429, str(exc))]
        except (OutcomeUnknown, AdapterError) as exc:
            self._uncertain.add(new)
            _log.error("order_outcome_unknown", operation="replace", error=str(exc))
            return [ReplaceFailed(old, new, UNKNOWN_OUTCOME, str(exc))]
        self._executions.remember(new, str(order.id))
        await self._journal.ack(new, str(order.id), str(order.status.value))
        _log.info(
            "order_replace_sent",
            replaces=old,
            qty=str(action.qty),
            limit_price=str(action.limit_price),
            order_id=str(order.id),
        )
        return []

    async def _cancel(self, action: CancelOrder) -> list[LadderEvent]:
        cid = action.client_order_id
        try:
            # part of the cancel: queued as one, never withdrawn by a stop
            order_id = await self._order_id(cid, Priority.CANCEL)
        except AdapterError as exc:
            return [CancelFailed(cid, UNKNOWN_OUTCOME, f"order look-up failed: {exc}")]
        if order_id is None:
            return [self._absent(cid)]
        try:
            await self._ports.rest.cancel_order(order_id)
        except VenueRefused as exc:
            self._reconcile_requested = True  # e.g. already filled: the venue knows more
            return [CancelFailed(cid, exc.status, exc.message)]
        except NotFound as exc:
            self._reconcile_requested = True
            return [CancelFailed(cid, 404, str(exc))]
        except (RateLimited, OutcomeUnknown, AdapterError) as exc:
            _log.error("order_cancel_unconfirmed", client_order_id=cid, error=str(exc))
            return [CancelFailed(cid, UNKNOWN_OUTCOME, str(exc))]
        _log.info("order_cancel_sent", client_order_id=cid, order_id=order_id)
        return []

    def _absent(self, cid: str) -> LadderEvent:
        """What the cancel's 404 look-up of `cid` means.

        A write that was answered and refused, or never sent, made no order: refused. A
        write whose outcome is unknown may still land: the order is kept live and looked
        up again at each CONFIRM timeout — never placed anew beside a copy in flight
        (lane ghost: a running leg used to, and the late copy made two live orders). A
        running leg takes it as not landed only after `max_confirm_retries` further 404s
        and goes on; should it land after all, the ladder counts its shares and cancels it
        at once (`ladder_venue.apply_order_event`). A stopping leg's cancel never gives up
        on it (its re-read at the CONFIRM timeout does: `_reconcile`; a later landing is
        the orphan sweeper's)."""
        if cid in self._uncertain:
            misses = self._misses.get(cid, 0) + 1
            self._misses[cid] = misses
            if self._stop_reason is not None or misses <= self._ports.params.max_confirm_retries:
                _log.warning(
                    "order_cancel_awaits_uncertain_write", client_order_id=cid, look_ups=misses
                )
                return CancelFailed(cid, UNKNOWN_OUTCOME, "not at the venue yet, may land")
            self._uncertain.discard(cid)
            _log.error("order_uncertain_write_given_up", client_order_id=cid, look_ups=misses)
        # The venue never created it: the place was refused or lost before arrival.
        return PlaceFailed(cid, 404, "order not found at the venue")

    def _note(self, note: Note) -> None:
        # A note's field may be named like a key structlog owns (`event`: TypeError,
        # `level`/`timestamp`: silently overwritten): it is logged as `note_<name>`.
        fields: dict[str, Any] = {
            (f"note_{k}" if k in _RESERVED_LOG_KEYS else k): _plain(v)
            for k, v in note.fields.items()
        }
        fields.setdefault("feed", self._ports.feed)
        if note.event == "leg_finished":
            # The plan runner writes the one canonical `leg_finished` summary per leg.
            _log.debug("ladder_finished", **fields)
            return
        getattr(_log, note.level)(note.event, **fields)
        if note.level != "debug":
            self._publish(note.event, self.record)

    async def _admit(self, qty: Decimal, limit_price: Decimal | None) -> str | None:
        """The risk caps' refusal of this order, as the reason the leg ends with."""
        quote = self._feed.cached()
        if limit_price is None and quote is None:
            # A plain market order (legacy mode, or the chosen market fallback) is valued
            # against the order cap at its far side; a leg that has not seen a quote yet
            # reads the latest one once rather than being refused as unvaluable.
            with contextlib.suppress(AdapterError):
                quote = await self._ports.rest.latest_quote(self.spec.symbol)
        breach = self._ports.risk.admit(self.spec.side, self.spec.symbol, qty, limit_price, quote)
        return None if breach is None else f"risk limit: {breach.reason}"

    # ------------------------------------------------------------------ order ids

    async def _order_id(
        self, cid: str, priority: Priority, withdraw: Withdrawal | None = None
    ) -> str | None:
        """The venue's id of one of our orders; None only when the venue says it has none.

        A look-up queues with the priority of the request it is part of (`priority`) and
        is withdrawn with it (`withdraw`: `SendWithdrawn`). Raises `AdapterError` when the
        venue could not be asked: the order may exist, so the caller must not treat it as
        refused (that could place a second live order).
        """
        known = self._executions.order_id(cid)
        if known is not None:
            return known
        order = await self._ports.rest.get_order_by_client_id(cid, priority, withdraw=withdraw)
        if order is None:
            return None
        self._executions.remember(cid, str(order.id))
        return str(order.id)

    # ------------------------------------------------------------------ inputs

    async def _next_inputs(self) -> list[LadderEvent]:
        """Wait for the next thing the ladder must hear about, and translate it."""
        while True:
            # Level-triggered: a ring before this line is answered by the checks below,
            # one after it (during the reconciliation's awaits) skips the next sleep.
            self._bell.reset()
            if (
                self._reconcile_requested
                or self._inbox.overflowed.is_set()
                or self._confirm_overdue()
            ):
                reconciled = await self._reconcile()
                if reconciled:
                    return reconciled
            events = self._ready_inputs()
            if events:
                return events
            if not self._hold.holding and self._feed.wants_rest(self.state):
                self._start_reread()
            elif self._reread is not None:
                self._reread.cancel()  # no longer wanted: no data request for nothing
            await self._sleep(self._timeout())

    async def _sleep(self, seconds: float | None) -> None:
        """Sleep on the doorbell until an input rings it or `seconds` pass (doorbell.py):
        the inbox, `stop`, `request_reconcile`, the REST re-read's end, the symbol's quote
        arrival and the data link's change. Looked at once more here, after the checks,
        so that nothing that happened since them is missed."""
        if self._hold.changed() or self._inbox.overflowed.is_set() or not self._inbox.queue.empty():
            return
        await self._bell.sleep(seconds, (self._feed.arrival(), self._hold.change()))

    def _start_reread(self) -> None:
        """Re-read the quote over REST in a task of its own (the rare case: the ladder waits
        for a quote the stream does not bring); its end rings the bell. It outlives one
        sleep (its own pacing, `QuoteFeed.reread`), never the leg (`run`)."""
        if self._reread is None:
            self._reread = asyncio.ensure_future(self._feed.reread())
            self._reread.add_done_callback(self._reread_done)

    def _reread_done(self, task: asyncio.Task[None]) -> None:
        if self._reread is task:
            self._reread = None
        if not task.cancelled() and (error := task.exception()) is not None:
            _log.error("leg_waiter_failed", error=repr(error))
        self._bell.ring()

    def _ready_inputs(self) -> list[LadderEvent]:
        """Everything that can be fed now without waiting, in priority order."""
        if self._stop_reason is not None and not self._stop_delivered:
            self._stop_delivered = True
            return [Stop(self._stop_reason)]
        events: list[LadderEvent] = []
        while True:
            try:
                update = self._inbox.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            gap_known = self._reconcile_requested
            event = self._executions.translate(update)
            if event is not None:
                events.append(event)
            if self._reconcile_requested and not gap_known:
                break  # the venue knows more than its events said: re-read before going on
        if events:
            return events
        status = self._feed.status_change()
        if status is not None:
            return [status]
        deadline = self.state.deadline
        now = self._ports.clock.now()
        if self._hold.check(now) is None and self._hold.take_resumed():
            # Quotes are live again: the ladder hears the current NBBO before any deadline
            # it missed while holding, so that it prices from it, not from the old one.
            quote = self._feed.offer(self.state, now, force=True)
            if quote is not None:
                return [QuoteUpdate(quote)]
        due = deadline is not None and now >= deadline and self._woken_for != deadline
        if due and not self._hold.holds(self.state.timer):
            self._woken_for = deadline
            return [Wake()]
        if self._hold.holding:
            # The cached quote is frozen: never re-offer it as news. Looked at all the same
            # (the hold's check just read it): only a later arrival wakes the leg.
            self._feed.looked(now)
            return []
        quote = self._feed.offer(self.state, now)
        return [] if quote is None else [QuoteUpdate(quote)]

    def _confirm_overdue(self) -> bool:
        """True once per expired CONFIRM deadline: before the ladder re-sends a cancel, the
        venue is asked, because the confirmation may be an event this leg never received
        (a silent trade_updates socket drops events; ALPACA.md §9)."""
        deadline = self.state.deadline
        if self.state.timer is not Timer.CONFIRM or deadline is None:
            return False
        if self._ports.clock.now() < deadline or self._checked_for == deadline:
            return False
        self._checked_for = deadline
        return True

    def _timeout(self) -> float | None:
        """Seconds until the ladder's deadline or a quote re-offer is due, whichever is first."""
        candidates: list[float] = []
        deadline = self.state.deadline
        now = self._ports.clock.now()
        held = self._hold.holds(self.state.timer)
        if deadline is not None and self._woken_for != deadline and not held:
            remaining = (deadline - now).total_seconds()
            candidates.append(max(remaining, 0.0))
        if self._hold.holding:
            recheck = self._hold.timeout(now)
            if recheck is not None:
                candidates.append(recheck)
        else:
            refeed = self._feed.refeed_in(self.state)
            if refeed is not None:
                candidates.append(refeed)
        return min(candidates) if candidates else None

    async def _reconcile(self) -> list[LadderEvent]:
        """Bring the ladder's view of this leg's orders up to the venue's, over REST.

        Before a stop the reads are background reads, withdrawn by the stop: a leg waiting
        behind a backlogged budget for them would hear its `Stop` (and cancel its order)
        only once they were granted. The re-read is then done after the stop, where it is
        part of the cancel — what it needs to know (did the order end, what filled) — so it
        queues as a cancel and is never withdrawn."""
        self._reconcile_requested = False
        self._inbox.overflowed.clear()
        snapshot, self._snapshot = self._snapshot, {}
        stopping = self._stop_reason is not None
        priority = Priority.CANCEL if stopping else Priority.READ
        withdraw = None if stopping else self._withdrawal
        events: list[LadderEvent] = []
        for tracked in self.state.orders:
            cid = tracked.client_order_id
            if tracked.status.is_terminal and self._executions.order_id(cid) is not None:
                # Final at Alpaca (§1.9), and heard from the venue with every share counted
                # (a terminal event reporting uncounted shares is held back as a gap). A
                # terminal state the leg inferred itself (a 404 look-up: no order id) may be
                # a write still on its way: read again. After a stop these reads go at
                # CANCEL priority: past re-pegs must not flood the cancel lane (review 6).
                continue
            try:
                order = snapshot.get(cid)
                if order is None:
                    order = await self._ports.rest.get_order_by_client_id(
                        cid, priority, withdraw=withdraw
                    )
            except SendWithdrawn:
                # Stopped while waiting in line: hear the stop first, re-read after it.
                self._reconcile_requested = True
                self._snapshot = self._snapshot or snapshot
                break
            except AdapterError as exc:
                _log.warning("reconcile_read_failed", client_order_id=cid, error=str(exc))
                self._reconcile_requested = True
                continue
            if order is None:
                if stopping or cid not in self._uncertain:
                    events.append(PlaceFailed(cid, 404, "order not found at the venue"))
                # else: a copy of it may still land, and a running leg would place anew
                # beside it; the cancel's bounded look-ups decide (`_absent`). A stopping
                # leg places nothing more: it ends, and the orphan sweeper catches a late
                # copy (test_review4_withdraw: a cancel must not wait for every retry).
                continue
            events.extend(self._executions.reconciled(tracked, order))
        _log.info("leg_reconciled", events=len(events))
        return events

    # ------------------------------------------------------------------ record

    def _sync_record(self) -> None:
        if sync_record(self.record, self.state):
            self._publish("leg_updated", self.record)

    def report_fills(self, finish: Finish) -> list[Fill]:
        """The leg's executions as TCA fills, each with the NBBO seen when it arrived."""
        return [
            Fill(
                qty=e.qty,
                price=e.price,
                time=e.timestamp,
                quote=self._executions.quote_at(e.execution_id),
                execution_id=e.execution_id,
            )
            for e in finish.fills
        ]

    def interval_vwap(self) -> Decimal | None:
        """VWAP of the trades printed while the leg ran."""
        end = self._ports.quotes.vwap(self.spec.symbol).mark()
        return vwap_between(self._vwap_start, end)

    def build_report(self, finish: Finish) -> None:
        """Step 5: slippage vs arrival, NBBO at fill, VWAP and a market order."""
        vwap = self.interval_vwap()
        self.record.report = leg_report(
            self.spec.symbol,
            self.spec.side,
            finish.arrival_quote,
            self.report_fills(finish),
            interval_vwap=vwap,
            requested_qty=self.spec.qty,
        )
        self.record.benchmarks = self.bench.result(vwap, finish.arrival_quote)


def _plain(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value
