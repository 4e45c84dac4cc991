"""The request budget's pure accounting: who goes next, and when (no asyncio, no I/O).

`BudgetLedger` takes `now` (monotonic seconds) in every call and never sleeps; the asyncio
shell around it is `execd.adapters.budget.RequestBudget`, whose docstring explains the
priorities, the reserves, the pacing and the read share. Tested with a fake clock
(tests/adapters/test_budget*.py).
"""

from __future__ import annotations

import contextlib
import itertools
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum

import structlog

log = structlog.get_logger("execd.adapters.budget")

__all__ = ["BudgetLedger", "BudgetStatistics", "Priority", "parse_rate_limit_headers"]


class Priority(IntEnum):
    """Who goes first when requests wait for the budget (lower value first).

    `VALIDATE` is a plan submit's reads of the venue (calendar, assets, positions,
    account): a user waits at the control socket for the answer, so they go before the
    backlog of new orders (at 30 requests a minute a submit took ~90 s behind it), never
    before a cancel or a re-peg. A submit costs a few of them whatever its size (DESIGN.md
    "O(1) reads"), and they keep the new orders' reserve (they never take a cancel's slot).
    Their lead over the running plans' requests (new orders and background reads) is
    bounded (`BudgetLedger.validate_lead`): a client that retries a refused submit in a
    loop pays reads every time and must not stall running legs — nor the reads they need
    before a place (a wave of buys is released on one account read).
    """

    CANCEL = 0
    REPLACE = 1
    VALIDATE = 2
    NEW_ORDER = 3
    READ = 4


_ORDER = tuple(Priority)
_WRITES = (Priority.REPLACE, Priority.NEW_ORDER)
_RUNNING = (Priority.NEW_ORDER, Priority.READ)
"""The running plans' requests that a submit's validation reads pass only on lead credit."""
_VALIDATE_LAST = (
    Priority.CANCEL,
    Priority.REPLACE,
    Priority.NEW_ORDER,
    Priority.READ,
    Priority.VALIDATE,
)
"""The order of `Priority` once submits' reads have taken their share (`_best_waiting`)."""


@dataclass(frozen=True, slots=True)
class BudgetStatistics:
    """A snapshot of the budget for `health` (trio's `statistics()` naming)."""

    limit: int
    #: grants still possible right now (local window and venue view combined).
    remaining: int
    in_flight: int
    waiting: Mapping[Priority, int]
    #: the venue's X-RateLimit-Remaining, minus what we sent since (None: no view).
    venue_remaining: int | None
    #: monotonic time until which a 429 blocks everything (None: not blocked).
    blocked_until: float | None
    #: 429 answers since start (for the metrics endpoint).
    rate_limited_total: int = 0


@dataclass(slots=True)
class BudgetLedger:
    """Pure accounting of the request budget. All times are monotonic seconds.

    A ticket is any hashable int the caller picks. Lifecycle: `enqueue` → returned
    by `grant` → `complete` exactly once (with what the response said). A ticket
    removed with `withdraw` before its grant costs nothing.
    """

    limit: int = 190
    window: float = 60.0
    read_reserve: int = 10
    #: slots only cancels may use: new orders and replaces stop this short of the limit,
    #: so a cancel (the kill switch, a re-peg's cancel) never waits for a window that a
    #: burst of new orders spent. Reads stop `read_reserve` further short.
    cancel_reserve: int = 0
    #: pacing (None: none): beyond a burst of this many, new orders, replaces and reads are
    #: granted at most at the window's rate ((limit - cancel_reserve) per window), a token
    #: bucket. Without it a backlog spends the whole window in a second and nothing frees
    #: until it slides: a cancel beyond the reserve then waits up to the window.
    burst: int | None = None
    _tokens: float = 0.0
    _tokens_at: float | None = None
    #: the last `grant` stopped at the window (or the venue's view), not at the pacing.
    _window_held: bool = False
    rate_limited_total: int = 0
    _waiting: dict[Priority, deque[int]] = field(
        default_factory=lambda: {p: deque() for p in Priority}
    )
    _sent: deque[float] = field(default_factory=deque)
    _in_flight: int = 0
    _venue_remaining: int | None = None
    _venue_reset_at: float | None = None
    _blocked_until: float | None = None
    #: during a block, one cancel may probe the venue at most this often (seconds).
    probe_interval: float = 1.0
    _next_probe: float = float("-inf")
    #: how many validation reads in a row may pass the running plans' waiting requests,
    #: new orders and background reads (`_best_waiting`). A submit costs 1-2: the
    #: positions, the account for a targets plan or equity caps; the calendar and the
    #: asset list once a venue day.
    validate_lead: int = 2
    #: the lead credit a running plan's grant (a new order, a background read) earns back
    #: while validation reads wait: 0.5 caps submits retried in a loop at one grant in
    #: three (running legs keep two).
    validate_refill: float = 0.5
    _lead_credit: float = 0.0
    #: the refill each contended running grant earned, by ticket (with its grant time, so
    #: that entries leave with the window): taken back if the grant goes `unused`.
    _earned: dict[int, tuple[float, float]] = field(default_factory=dict)
    #: a waiting background read goes after at most this many writes (new orders,
    #: replaces) granted while it waited, and may then use their reserve: under a steady
    #: backlog the window never has the read reserve free, and the account read that
    #: releases a plan's wave of buys waited for the whole backlog (the FULL budget run:
    #: 9 plans of 10 never started). Reads get at most one grant in `read_share + 1`.
    read_share: int = 4
    _writes_since_read: int = 0
    #: the writes in `_writes_since_read`, by ticket (with their grant time, to leave with
    #: the window): `unused` takes them off again.
    _read_share_counted: dict[int, float] = field(default_factory=dict)
    #: each waiting ticket's seniority (`enqueue`).
    _rank: dict[int, int] = field(default_factory=dict)
    _arrivals: Iterator[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        if self.burst is not None and self.burst < 1:
            raise ValueError("burst must be >= 1 (None: no pacing)")
        self._tokens = float(self.burst or 0)
        if self.validate_lead < 1 or not 0 < self.validate_refill <= 1:
            raise ValueError("validate_lead must be >= 1 and 0 < validate_refill <= 1")
        self._lead_credit = float(self.validate_lead)
        if self.read_reserve < 0 or self.cancel_reserve < 0:
            raise ValueError("read_reserve and cancel_reserve must be >= 0")
        if self.read_reserve + self.cancel_reserve >= self.limit:
            raise ValueError(
                f"read_reserve {self.read_reserve} + cancel_reserve {self.cancel_reserve}"
                f" leave no slot of the limit {self.limit} for new orders"
            )

    # -- queue -------------------------------------------------------------

    def enqueue(self, ticket: int, priority: Priority, seniority: int | None = None) -> int:
        """Put a request in line behind others of the same priority that queued before it;
        its seniority.

        `seniority` (default: a new one, after every other) is what an earlier `enqueue`
        of the same request returned: a
        write asked again because its pricing quote went stale in line goes back to where
        it stood, not to the end. Otherwise a line longer than a quote's freshness sends
        nothing at all: each write reaches the front stale, is priced again and queues
        again behind the rest (the FULL budget run: 3 of 4 new-order grants given back).
        """
        rank = next(self._arrivals) if seniority is None else seniority
        line = self._waiting[priority]
        self._rank[ticket] = rank
        if not line or self._rank[line[-1]] <= rank:
            line.append(ticket)
        else:
            at = next(i for i, waiting in enumerate(line) if self._rank[waiting] > rank)
            line.insert(at, ticket)
        return rank

    def withdraw(self, ticket: int) -> bool:
        """Take a waiting ticket out of line (its caller gave up). True if it was waiting."""
        for line in self._waiting.values():
            with contextlib.suppress(ValueError):
                line.remove(ticket)
                del self._rank[ticket]
                return True
        return False

    def grant(self, now: float) -> list[int]:
        """Grant as many waiting tickets as the budget allows now, best priority first.

        During a 429 block, cancels keep probing: one cancel at a time, at most one per
        `probe_interval`, with nothing else in flight (issue 11 §6: a cancel that waits
        out a block leaves an order working that the leg wanted gone).
        """
        self._expire(now)
        granted: list[int] = []
        if self._blocked_until is not None:
            cancels = self._waiting[Priority.CANCEL]
            if cancels and self._in_flight == 0 and now >= self._next_probe:
                self._next_probe = now + self.probe_interval
                self._sent.append(now)
                self._in_flight += 1
                granted.append(self._pop(Priority.CANCEL))
            return granted
        self._refill(now)
        self._window_held = False
        while (priority := self._best_waiting()) is not None:
            # Strict priority: nothing of a lower priority passes a waiting higher one
            # (but a background read's share, `read_share`). A submit's validation reads
            # pass a waiting background read (into the read reserve too) only on a whole
            # lead credit, never free (review 7).
            if self._available() <= self._reserve(priority):
                self._window_held = True
                break
            if not self._paced_ok(priority):
                break
            self._spend_token(priority)
            contended = bool(self._waiting[Priority.VALIDATE]) and self._running_waits()
            ticket = self._pop(priority)
            if contended:
                self._charge_lead(priority, ticket, now)
            self._count_read_share(priority, ticket, now)
            self._sent.append(now)
            self._in_flight += 1
            if self._venue_remaining is not None:
                self._venue_remaining -= 1
            granted.append(ticket)
        return granted

    def _best_waiting(self) -> Priority | None:
        """The priority whose first ticket goes next (None: nobody waits).

        `VALIDATE` goes before a running plan's waiting request (`NEW_ORDER`, `READ`) only
        while it holds a whole lead credit (`validate_lead`); otherwise it waits behind
        them. A submit's few reads pass a backlog of new orders at once, but submits
        retried in a loop (every submit pays its reads, refused ones too) get at most a
        bounded share of the grants running legs wait for. Background reads are in that
        share too: a leg's place may wait on one (its wave's account read, a wash check),
        and reads that always lost to a line of validation reads never went (review 6).
        """
        order = _ORDER
        if self._lead_credit < 1.0 and self._running_waits():
            order = _VALIDATE_LAST
        if self._read_due():
            return Priority.READ
        for priority in order:
            if self._waiting[priority]:
                return priority
        return None

    def _read_due(self) -> bool:
        """A background read has waited out its share (`read_share`) and goes next,
        after any waiting cancel."""
        return (
            bool(self._waiting[Priority.READ])
            and self._writes_since_read >= self.read_share
            and not self._waiting[Priority.CANCEL]
        )

    def _count_read_share(self, priority: Priority, ticket: int, now: float) -> None:
        """Count the writes granted while a background read waits (`read_share`); a write
        given back unsent (`unused`) is taken off the count again (review 9: four stale
        give-backs let a read pass orders that had sent nothing)."""
        if priority is Priority.READ:
            self._writes_since_read = 0
            self._read_share_counted.clear()
        elif priority in _WRITES and self._waiting[Priority.READ]:
            self._writes_since_read += 1
            self._read_share_counted[ticket] = now

    def _pop(self, priority: Priority) -> int:
        ticket = self._waiting[priority].popleft()
        self._rank.pop(ticket, None)
        return ticket

    def _spend_token(self, priority: Priority) -> None:
        """Take a pacing token. Cancels take one too, but never wait for it: they may
        borrow down to `-burst`, which the requests behind them pay back by waiting.
        Unpaced cancels let a re-peg backlog (a cancel and a new order each) send twice the
        pace and spend the window in its first half, then nothing for the second."""
        if self.burst is None:
            return
        if priority is Priority.CANCEL:
            self._tokens = max(self._tokens - 1.0, -float(self.burst))
        else:
            self._tokens -= 1.0

    def _running_waits(self) -> bool:
        return any(self._waiting[p] for p in _RUNNING)

    def _charge_lead(self, priority: Priority, ticket: int, now: float) -> None:
        """Account for a grant made while validation reads and running plans' requests
        both waited: a validation read that passed them spends a credit, a running plan's
        grant earns `validate_refill` back (up to `validate_lead`; taken back by `unused`:
        a leg whose quote went stale in line sends nothing, and must not earn the reads
        the grant). Grants nobody else waited for cost nothing."""
        if priority is Priority.VALIDATE:
            self._lead_credit -= 1.0
        elif priority in _RUNNING:
            before = self._lead_credit
            self._lead_credit = min(
                float(self.validate_lead), self._lead_credit + self.validate_refill
            )
            if self._lead_credit > before:
                self._earned[ticket] = (now, self._lead_credit - before)

    def unused(
        self, now: float, granted_at: float, priority: Priority, ticket: int | None = None
    ) -> None:
        """Give back a grant whose request was never sent (checked right before the send).

        The venue never counted it: it leaves the sliding window and the venue's view,
        returns what is left of its pacing token, and is no longer in flight. (`complete` is
        for requests that went out.) The lead credit the grant earned (`ticket`'s,
        `_charge_lead`) is taken back:
        legs whose quotes went stale in line give back grant after grant, and each had
        earned the validation reads half a grant — spam then took every real one (review
        6). The token has been growing back since the grant at the pacing rate, and once
        the bucket is full that growth is lost to the cap: refunding the whole token then
        would let two paced requests out where the burst allows one. So the refund is the
        part not yet grown back, `1 - rate × (now - granted_at)` — never more than the grant
        took, possibly less (the budget may under-use, never over-use)."""
        self._in_flight = max(0, self._in_flight - 1)
        if self._venue_remaining is not None:
            # The grant lowered the venue's view; the venue never counted it (a line of
            # writes stale in line drove the view to the reserve: 40 s with nothing sent).
            self._venue_remaining += 1
        if ticket is not None and self._read_share_counted.pop(ticket, None) is not None:
            self._writes_since_read = max(0, self._writes_since_read - 1)
        earned = self._earned.pop(ticket, None) if ticket is not None else None
        if earned is not None:
            self._lead_credit = max(0.0, self._lead_credit - earned[1])
        with contextlib.suppress(ValueError):  # already slid out of the window
            self._sent.remove(granted_at)
        if self.burst is not None:
            self._refill(now)
            refund = max(0.0, 1.0 - max(0.0, now - granted_at) * self._rate())
            self._tokens = min(float(self.burst), self._tokens + refund)

    def complete(
        self,
        now: float,
        *,
        remaining: int | None = None,
        reset_at: float | None = None,
        rate_limited: bool = False,
        penalty: float = 1.0,
    ) -> None:
        """Account for the end of a granted request and what its response said.

        `remaining`/`reset_at` come from ``X-RateLimit-Remaining``/``-Reset`` (the
        reset already converted to monotonic time). Requests still in flight may have
        been counted by the venue after this response was computed, so they are
        subtracted too: the ledger may under-use the budget, never over-use it. A 429
        blocks every grant until the venue's reset, or for `penalty` seconds (the
        caller's backoff delay) when the response named no reset.
        """
        self._in_flight = max(0, self._in_flight - 1)
        if remaining is not None:
            # Not floored: requests in flight owe the view even where the venue says 0, so
            # that a grant given back (`unused`) repays its own debt and no more (review 9).
            self._venue_remaining = remaining - self._in_flight
            self._venue_reset_at = reset_at if reset_at is not None else now + self.window
        if rate_limited:
            # Only "nothing left until the reset" earns a block to the reset. A 429 whose
            # headers still show requests remaining (a burst or concurrency limit, or
            # another account's window) or name no usable reset gets the short backoff:
            # blocking to the window's end stalled every plan for up to a minute per 429.
            honest_reset = reset_at is not None and reset_at > now and not remaining
            until = reset_at if honest_reset and reset_at is not None else now + penalty
            self._blocked_until = max(self._blocked_until or until, until)
            self._venue_remaining = 0
            self._venue_reset_at = until
            self.rate_limited_total += 1
            log.warning("rate_limited", blocked_for=round(until - now, 3))

    # -- questions -----------------------------------------------------------

    def next_change(self, now: float) -> float | None:
        """When a waiting ticket could next be granted (None: nobody waits, or now).

        The shell arms one timer for this time; grants that complete earlier (a
        response lifting the venue view) re-run `grant` directly.
        """
        self._expire(now)
        if not any(self._waiting.values()):
            return None
        candidates: list[float] = []
        reserve = self._min_reserve_waiting()
        if self._blocked_until is not None:
            if self._waiting[Priority.CANCEL] and self._in_flight == 0:
                return min(self._blocked_until, max(self._next_probe, now))
            candidates.append(self._blocked_until)
        if self._venue_remaining is not None and self._venue_remaining <= reserve:
            assert self._venue_reset_at is not None
            candidates.append(self._venue_reset_at)
        if len(self._sent) >= self.limit - reserve:
            index = len(self._sent) - (self.limit - reserve)
            candidates.append(self._sent[index] + self.window)
        if self.burst is not None and not self._waiting[Priority.CANCEL]:
            self._refill(now)
            if self._tokens < 1.0:
                candidates.append(now + (1.0 - self._tokens) / self._rate())
        if not candidates:
            return None
        return max(candidates)

    def statistics(self, now: float) -> BudgetStatistics:
        """Counts for health: what is left, what is in flight, who waits."""
        self._expire(now)
        return BudgetStatistics(
            limit=self.limit,
            remaining=max(0, self._available()),
            in_flight=self._in_flight,
            waiting={p: len(line) for p, line in self._waiting.items()},
            venue_remaining=(
                None if self._venue_remaining is None else max(0, self._venue_remaining)
            ),
            blocked_until=self._blocked_until,
            rate_limited_total=self.rate_limited_total,
        )

    # -- internals -----------------------------------------------------------

    def _rate(self) -> float:
        return (self.limit - self.cancel_reserve) / self.window

    def _refill(self, now: float) -> None:
        """Grow the pacing tokens for the time since the last refill.

        While the window held the line (`_window_held`: the last `grant` stopped at the
        window, whatever the tokens; the shell calls it again only when a slot slides out,
        so the refill then covers the whole hold), tokens grow to one at most: saved up,
        they would all go the moment the window slid, another burst the window must then
        absorb — every minute a burst and a stall (a re-peg backlog stalled 6 s a minute)."""
        if self.burst is None:
            return
        if self._tokens_at is not None and now > self._tokens_at:
            cap = max(self._tokens, 1.0) if self._window_held else float(self.burst)
            self._tokens = min(cap, self._tokens + (now - self._tokens_at) * self._rate())
        if self._tokens_at is None or now > self._tokens_at:
            self._tokens_at = now

    def _paced_ok(self, priority: Priority) -> bool:
        """Cancels are never paced; the rest need a token when pacing is on."""
        return priority is Priority.CANCEL or self.burst is None or self._tokens >= 1.0

    def _reserve(self, priority: Priority) -> int:
        """The slots a ticket of this priority must leave to the ones above it."""
        if priority is Priority.CANCEL:
            return 0
        if priority is Priority.READ and not self._read_due():
            return self.cancel_reserve + self.read_reserve
        return self.cancel_reserve

    def _min_reserve_waiting(self) -> int:
        """The reserve that applies to the best waiting ticket (the one `grant` tries
        first: a background read's reserve when it goes before validation reads)."""
        best = self._best_waiting()
        return 0 if best is None else self._reserve(best)

    def _available(self) -> int:
        if self._blocked_until is not None:
            return 0
        local = self.limit - len(self._sent)
        if self._venue_remaining is None:
            return local
        return min(local, self._venue_remaining)

    def _expire(self, now: float) -> None:
        cutoff = now - self.window
        # `sent + window <= now`, the very sum `next_change` wakes at: `sent <= now - window`
        # can differ from it in the last bit, and the timer then woke to grant nothing.
        while self._sent and self._sent[0] + self.window <= now:
            self._sent.popleft()
        counted = self._read_share_counted
        while counted and next(iter(counted.values())) <= cutoff:
            del counted[next(iter(counted))]
        while self._earned and next(iter(self._earned.values()))[0] <= cutoff:
            del self._earned[next(iter(self._earned))]
        if self._blocked_until is not None and now >= self._blocked_until:
            self._blocked_until = None
        if self._venue_reset_at is not None and now >= self._venue_reset_at:
            self._venue_remaining = None
            self._venue_reset_at = None


def parse_rate_limit_headers(
    headers: Mapping[str, str], *, wall_now: float, mono_now: float
) -> tuple[int | None, float | None]:
    """Read ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (UNIX seconds, §0.4).

    Returns (remaining, reset as monotonic time); None for a header that is absent or
    unreadable. A reset in the past is ignored; so is one more than a window ahead
    (a skewed clock must not freeze the budget).
    """
    remaining: int | None = None
    reset_at: float | None = None
    raw_remaining = headers.get("X-RateLimit-Remaining")
    if raw_remaining is not None:
        with contextlib.suppress(ValueError):
            remaining = max(0, int(raw_remaining))
    raw_reset = headers.get("X-RateLimit-Reset")
    if raw_reset is not None:
        with contextlib.suppress(ValueError):
            delta = float(raw_reset) - wall_now
            if 0 < delta <= 120:
                reset_at = mono_now + delta
    return remaining, reset_at
