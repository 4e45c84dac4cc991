"""`StreamSlots`, the market stream's symbol-limit bookkeeping (sans-I/O): the venue's
behaviour is modelled by a tiny pure function (ALPACA.md §4.4: 405 changes nothing)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execd.adapters.stream_slots import SlotRequest, StreamSlots


def venue_answers(
    slots: StreamSlots, venue: set[str], limit: int | None, requests: list[SlotRequest]
) -> None:
    """Answer each request in order as Alpaca does: subscribe past the limit → 405."""
    for request in requests:
        if request.action == "unsubscribe":
            venue.difference_update(request.symbols)
            slots.answered(venue)
        elif limit is not None and len(venue | set(request.symbols)) > limit:
            slots.refused()
        else:
            venue.update(request.symbols)
            slots.answered(venue)


def settle(slots: StreamSlots, venue: set[str], limit: int | None) -> None:
    """Send and answer until nothing is left to send (bounded)."""
    for _ in range(200):
        requests = slots.requests()
        if not requests:
            return
        venue_answers(slots, venue, limit, requests)
    raise AssertionError("the slots never settled")


def test_symbols_beyond_the_limit_wait_in_order() -> None:
    """Three slots: the first three asked stream, the others wait in request order and take
    the slot of a symbol given up; a slotted symbol is never displaced by a newer one."""
    slots = StreamSlots(3)
    slots.want(["A", "B", "C", "D", "E"])
    assert slots.streamed == {"A", "B", "C"}
    assert slots.waiting == ("D", "E")
    slots.want(["F"])
    assert list(slots.waiting) == ["D", "E", "F"]
    slots.drop(["B"])
    assert slots.streamed == {"A", "C", "D"}
    assert list(slots.waiting) == ["E", "F"]


def test_unsubscribes_go_before_subscribes() -> None:
    """A freed slot is given up at the venue before it is handed on."""
    slots = StreamSlots(2)
    venue: set[str] = set()
    slots.want(["A", "B", "C"])
    settle(slots, venue, 2)
    slots.drop(["A"])
    assert [r.action for r in slots.requests()] == ["unsubscribe", "subscribe"]


def test_a_refused_single_symbol_teaches_the_exact_limit() -> None:
    """Told ten, the venue allows two: the third symbol's own subscribe is refused; the
    limit becomes two and the refused symbol waits at the head of the queue."""
    slots = StreamSlots(10)
    venue: set[str] = set()
    for symbol in ["A", "B", "C", "D"]:
        slots.want([symbol])
        venue_answers(slots, venue, 2, slots.requests())
    assert slots.limit == 2
    assert venue == {"A", "B"}
    assert slots.streamed == {"A", "B"}
    assert slots.waiting == ("C", "D")
    assert slots.refusals == 1  # D is never asked for: the limit is known by then


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(min_value=0, max_value=6),
    told=st.one_of(st.none(), st.integers(min_value=0, max_value=10)),
    steps=st.lists(
        st.tuples(st.booleans(), st.lists(st.sampled_from("ABCDEFGHIJ"), max_size=4)),
        max_size=12,
    ),
)
def test_the_stream_settles_on_the_venue_s_limit(
    limit: int, told: int | None, steps: list[tuple[bool, list[str]]]
) -> None:
    """Whatever the limit execd is told (or none), after each change settles: the venue
    carries only wanted symbols, never more than its limit, as many as fit (when execd was
    told no less than the truth or nothing), and exactly what `streamed` says."""
    slots = StreamSlots(told)
    venue: set[str] = set()
    for add, symbols in steps:
        (slots.want if add else slots.drop)(symbols)
        settle(slots, venue, limit)
        assert venue <= slots.wanted
        assert len(venue) <= limit
        assert venue == slots.streamed
        assert set(slots.waiting) == slots.wanted - venue
        if told is None or told >= limit:
            assert len(venue) == min(limit, len(slots.wanted))


def test_hostile_inputs() -> None:
    """Duplicates, unknown drops and a zero limit: nothing breaks, nothing streams twice."""
    slots = StreamSlots(0)
    assert slots.want(["A", "A", "B"])
    assert not slots.want(["A"])
    assert slots.streamed == frozenset()
    assert slots.waiting == ("A", "B")
    assert not slots.drop(["Z"])
    assert slots.requests() == []
    unlimited = StreamSlots(None)
    unlimited.want(f"S{i}" for i in range(5000))
    (request,) = unlimited.requests()
    assert len(request.symbols) == 5000


def test_a_limit_below_zero_is_refused() -> None:
    """A negative limit is a caller's bug, not 'no stream'."""
    with pytest.raises(ValueError, match="symbol limit"):
        StreamSlots(-1)


class InFlightVenue:
    """The venue's side of one connection with requests in flight, as the market stream's
    writer sends them (review 11): every request waits on the wire until answered, in order;
    a subscribe that would pass the limit is refused (405) and changes nothing."""

    def __init__(self, slots: StreamSlots, limit: int) -> None:
        self.slots = slots
        self.limit = limit
        self.carried: set[str] = set()
        self.in_flight: list[SlotRequest] = []

    def send(self) -> None:
        self.in_flight.extend(self.slots.requests())

    def answer_one(self) -> None:
        request = self.in_flight.pop(0)
        if request.action == "unsubscribe":
            self.carried.difference_update(request.symbols)
        elif len(self.carried | set(request.symbols)) > self.limit:
            self.slots.refused()
            return
        else:
            self.carried.update(request.symbols)
        self.slots.answered(set(self.carried))

    def settle(self) -> None:
        for _ in range(200):
            while self.in_flight:
                self.answer_one()
            self.send()
            if not self.in_flight:
                return
        raise AssertionError("the slots never settled: a loop on the wire")


Step = tuple[str, list[str]]

steps_in_flight = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(["want", "want", "drop"]),
            st.lists(st.sampled_from("ABCDEF"), min_size=1, max_size=3, unique=True),
        ),
        # several sends before the answers: the requests pile up in flight
        st.tuples(st.sampled_from(["send", "send", "answer", "reconnect"]), st.just([])),
    ),
    max_size=40,
)


@settings(max_examples=500, deadline=None)
@given(
    limit=st.integers(min_value=0, max_value=4),
    told=st.one_of(st.none(), st.integers(min_value=0, max_value=8)),
    steps=steps_in_flight,
)
def test_the_stream_settles_with_requests_in_flight(
    limit: int, told: int | None, steps: list[Step]
) -> None:
    """Wants, drops, sends and answers interleave in any order (several requests in flight,
    a symbol dropped and wanted again before its subscribe is answered, a reconnection
    dropping whatever is in flight): the learned limit never falls below the venue's when
    execd was told no less, and once the wire is quiet the venue carries exactly what
    `streamed` says, only wanted symbols, as many as fit, without a loop of refusals."""
    slots = StreamSlots(told)
    venue = InFlightVenue(slots, limit)
    for action, symbols in steps:
        if action == "want":
            slots.want(symbols)
        elif action == "drop":
            slots.drop(symbols)
        elif action == "send":
            venue.send()
        elif action == "answer" and venue.in_flight:
            venue.answer_one()
        elif action == "reconnect":
            venue.carried.clear()
            venue.in_flight.clear()
            slots.connected()
        assert len(venue.carried) <= limit
        if told is None or told >= limit:
            assert slots.limit is None or slots.limit >= limit
    venue.settle()
    assert venue.carried <= slots.wanted
    assert venue.carried == slots.streamed
    assert set(slots.waiting) == slots.wanted - venue.carried
    if told is None or told >= limit:
        assert len(venue.carried) == min(limit, len(slots.wanted))
        assert slots.limit is None or slots.limit >= limit


def test_two_refused_batches_teach_no_limit_below_the_venue_s_when_told_none() -> None:
    """Review 11's second defect with no configured limit (a paid plan assumed, the venue
    enforcing 2): the batches refused in flight teach an upper bound, the probes the rest."""
    slots = StreamSlots(None)
    venue = InFlightVenue(slots, 2)
    slots.want(["A", "B", "C"])
    venue.send()
    slots.want(["D", "E", "F"])
    venue.send()
    venue.settle()
    assert slots.limit == 2
    assert venue.carried == slots.streamed == {"A", "B"}  # the first asked, first served
    assert slots.waiting == ("C", "D", "E", "F")
