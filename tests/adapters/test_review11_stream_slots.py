"""Review 11: `StreamSlots` (the market stream's symbol-limit bookkeeping) with requests
*in flight*, as on a real connection.

test_stream_slots.py answers every batch of requests before the next change; the market
stream's writer sends as soon as a plan asks (`MarketStream._writer`), so with plans starting
and ending together several (un)subscribes are unanswered at once, and the same symbol can
be unsubscribed and subscribed again before the venue answered its first subscribe. The
venue here is the simulator's rule (`execd.sim.streams.handle_data_message`, ALPACA.md
§4.4): a subscribe that would pass the limit is answered 405 and changes nothing; requests
are answered one by one, in order.

Both defects need a venue limit below the one execd was told (`venue.stream_symbol_limit`
set too high, or None with a limit the venue enforces): the module docstring promises that
"a limit configured too high costs one refusal, not the stream".
"""

from __future__ import annotations

from collections import deque

from execd.adapters.stream_slots import SlotRequest, StreamSlots


class Venue:
    """The venue's side of one connection: requests queue until `answer_one` answers the
    oldest, as the simulator would (405: nothing changes)."""

    def __init__(self, slots: StreamSlots, limit: int) -> None:
        self.slots = slots
        self.limit = limit
        self.carried: set[str] = set()
        self.in_flight: deque[SlotRequest] = deque()
        self.refusals = 0

    def send(self) -> None:
        """The writer wakes: everything `requests()` asks for goes on the wire."""
        self.in_flight.extend(self.slots.requests())

    def answer_one(self) -> None:
        request = self.in_flight.popleft()
        if request.action == "unsubscribe":
            self.carried.difference_update(request.symbols)
        elif len(self.carried | set(request.symbols)) > self.limit:
            self.refusals += 1
            self.slots.refused()
            return
        else:
            self.carried.update(request.symbols)
        self.slots.answered(set(self.carried))

    def settle(self, rounds: int = 200) -> None:
        """Send and answer until nothing is left to send; fail after `rounds` round trips
        (the writer re-sends after every 405, so a loop here is a loop on the wire)."""
        for _ in range(rounds):
            self.send()
            if not self.in_flight:
                return
            while self.in_flight:
                self.answer_one()
        raise AssertionError(
            f"never settled: {self.refusals} refusals; the venue carries"
            f" {sorted(self.carried)}, execd believes it streams {sorted(self.slots.streamed)}"
        )


def test_a_refused_subscribe_does_not_forget_a_resubscribe_in_flight() -> None:
    """Told 5, the venue allows 1. B streams. A is asked for (sent); A and B's legs end
    and a new plan asks for A again, and then C (each sent as asked: the writer runs
    between). The venue answers in order: A's first subscribe 405 (B still there),
    unsubscribe A B, A's second subscribe accepted (the venue now carries A), C 405.

    `refused()` for A's *first* subscribe took A out of `_sent` although its second
    subscribe was still in flight, and put A in the waiting queue (the one learned slot
    was C's). So the venue carries A while execd believes it carries nothing: A is never
    unsubscribed (not in `_sent`), and the free slot execd thinks it has goes to C, whose
    subscribe the full venue refuses, C goes back to the head of the queue and takes the
    'free' slot again: subscribe C, 405, subscribe C, 405 ... for ever, each logged at
    error level as ``stream_symbol_limit_refused`` (measured: 200 round trips, 200
    refusals, and nothing but a new want/drop ever ends it). C's leg is priced from REST
    meanwhile, which is the documented fallback, but the connection is flooded and the
    log with it.
    """
    slots = StreamSlots(5)
    venue = Venue(slots, limit=1)
    slots.want(["B"])
    venue.settle()
    assert venue.carried == {"B"}

    slots.want(["A"])
    venue.send()  # subscribe [A]  (1st)
    slots.drop(["A", "B"])
    venue.send()  # unsubscribe [A, B]
    slots.want(["A"])
    venue.send()  # subscribe [A]  (2nd)
    slots.want(["C"])
    venue.send()  # subscribe [C]
    while venue.in_flight:
        venue.answer_one()  # 405, ok, ok (carries A), 405

    venue.settle()  # raises: never settles
    assert venue.carried == slots.streamed
    assert len(venue.carried) == 1


def test_two_refused_batches_in_flight_do_not_teach_a_limit_of_zero() -> None:
    """Told 10 (or None), the venue allows 2. Two plans are submitted back to back: each
    one's symbols go out as one subscribe before the venue answered the first. Both are
    refused (3 > 2, then 3 > 2: nothing changed after the first).

    The first refusal (several symbols: the exact limit is unknown) turns on one symbol
    at a time. The second refusal was *sent* as a batch before that, but `refused()`
    reads `_one_at_a_time` and takes the batch for a single probe: the venue's count
    before it, 0, becomes the limit. From then on `_assign` hands out no slot: no symbol
    ever streams again (the limit is never raised), every leg of every plan is priced
    from 1 s REST re-reads until the daemon restarts, and `stream_symbol_limit` tells the
    user the limit is 0.
    """
    slots = StreamSlots(10)
    venue = Venue(slots, limit=2)
    slots.want(["A", "B", "C"])
    venue.send()  # subscribe [A, B, C]
    slots.want(["D", "E", "F"])
    venue.send()  # subscribe [D, E, F]
    while venue.in_flight:
        venue.answer_one()  # 405, 405
    venue.settle()
    assert slots.limit == 2
    assert len(venue.carried) == 2
    assert venue.carried == slots.streamed


def test_a_symbol_that_leaves_and_comes_back_before_the_answer_streams() -> None:
    """Held up: drop and re-want of a symbol whose subscribe is unanswered, with no
    refusal, ends with the venue carrying it exactly once and execd knowing it."""
    slots = StreamSlots(3)
    venue = Venue(slots, limit=3)
    slots.want(["A"])
    venue.send()
    slots.drop(["A"])
    venue.send()
    slots.want(["A"])
    venue.send()
    while venue.in_flight:
        venue.answer_one()
    venue.settle()
    assert venue.carried == slots.streamed == {"A"}
