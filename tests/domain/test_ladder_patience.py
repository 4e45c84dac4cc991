"""The passive style's patience is honoured to the tick (issue 14 item 6 follow-up).

A passive limit re-checks every `passive_timeout_seconds` (10 s) and crosses when its
patience for the urgency has run out. The re-check timer never runs past the patience left:
a 5 s patience crosses at 5 s, not at the first 10 s re-check, and a 25 s patience at 25 s,
not at 30 s. One microsecond before the patience the leg still waits; at it, it crosses.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from execd.domain.ladder_types import (
    Action,
    CancelOrder,
    PlaceFailed,
    PlaceOrder,
    ReplaceOrder,
    Wake,
)
from execd.domain.order_state import OrderEventKind as K
from execd.domain.types import Urgency
from tests.domain.test_ladder import Leg, cid, leg, notes, of, started

TICK = timedelta(microseconds=1)


def _passive(urgency: Urgency = Urgency.HIGH, **params: Any) -> tuple[Leg, PlaceOrder]:
    """An acknowledged passive limit (AAPL) in a still market."""
    lg = leg(symbol="AAPL", urgency=urgency, **params)
    place = started(lg, "100.00", "100.05")
    lg.update(0, K.NEW)
    return lg, place


def _recheck(lg: Leg) -> list[Action]:
    """At the leg's timer, a fresh and unchanged quote, then the wake-up."""
    assert lg.state.deadline is not None
    lg.now = lg.state.deadline
    lg.quote("100.00", "100.05")
    return lg.send(Wake())


def _crosses(lg: Leg) -> bool:
    """Whether the leg has given up its passive limit (cancel before the fallback)."""
    return "leg_passive_patience_exhausted" in notes(lg.log)


@pytest.mark.parametrize("patience", [1.0, 5.0, 9.5])
def test_patience_shorter_than_the_recheck_ends_the_first_wait(patience: float) -> None:
    """The first re-check timer stops at the patience, not at `passive_timeout_seconds`."""
    lg, _ = _passive(passive_patience_high_seconds=patience)
    placed_at = lg.now
    assert lg.state.deadline == placed_at + timedelta(seconds=patience)
    lg.now = placed_at + timedelta(seconds=patience) - TICK
    lg.quote("100.00", "100.05")
    acts = lg.send(Wake())
    assert not of(acts, CancelOrder)
    assert not _crosses(lg)
    lg.now = placed_at + timedelta(seconds=patience)
    acts = lg.send(Wake())
    assert of(acts, CancelOrder) == [CancelOrder(cid(0))]
    assert _crosses(lg)


@pytest.mark.parametrize("patience", [25.0, 30.0, 10.000001])
def test_a_later_recheck_is_cut_to_the_patience_left(patience: float) -> None:
    """Re-checks every 10 s that leave the price alone; the last one is cut to what is left."""
    lg, _ = _passive(passive_patience_high_seconds=patience)
    placed_at = lg.now
    end = placed_at + timedelta(seconds=patience)
    while lg.state.deadline is not None and lg.state.deadline < end:
        assert lg.state.deadline - lg.now <= timedelta(seconds=10)
        lg.now = lg.state.deadline
        lg.quote("100.00", "100.05")  # a fresh, unchanged quote: the re-check is free
        acts = lg.send(Wake())
        assert not of(acts, CancelOrder), acts
        assert not of(acts, ReplaceOrder), acts
    assert lg.state.deadline == end
    lg.now = end - TICK
    assert not of(lg.send(Wake()), CancelOrder)
    lg.now = end
    assert of(lg.send(Wake()), CancelOrder) == [CancelOrder(cid(0))]
    assert _crosses(lg)


def test_patience_longer_than_the_recheck_keeps_the_recheck() -> None:
    """With more patience left than a re-check, the timer is `passive_timeout_seconds`."""
    lg, _ = _passive(Urgency.NORMAL)
    assert lg.state.deadline == lg.now + timedelta(seconds=10)


def test_marketable_timeout_is_not_cut() -> None:
    """The marketable style has no patience: its 3 s re-peg timeout stands."""
    lg = leg(symbol="TQQQ", urgency=Urgency.HIGH, passive_patience_high_seconds=1.0)
    started(lg)
    assert lg.state.deadline == lg.now + timedelta(seconds=3)


def test_high_urgency_default_crosses_at_seven_seconds() -> None:
    """The default high patience (7 s, chosen for issue 14's p90 ≤ 10 s) is one timer: the
    leg still waits a microsecond before it and crosses at it."""
    lg, _ = _passive()
    placed_at = lg.now
    assert lg.state.deadline == placed_at + timedelta(seconds=7)
    lg.now = lg.state.deadline - TICK
    assert not of(lg.send(Wake()), CancelOrder)
    lg.now = placed_at + timedelta(seconds=7)
    assert of(lg.send(Wake()), CancelOrder) == [CancelOrder(cid(0))]
    assert _crosses(lg)


def test_a_replacement_inside_the_patience_is_placed() -> None:
    """A re-peg by cancel-and-place whose cancel confirms a tick inside the patience places
    the step-3 limit, with a timer for the one tick left."""
    lg, _ = _passive(passive_patience_high_seconds=2.0, repeg_method="cancel_and_place")
    lg.now += timedelta(seconds=1)
    acts = lg.quote("100.50", "100.55")  # a 0.5 % move: re-peg by cancel and place
    assert of(acts, CancelOrder) == [CancelOrder(cid(0))]
    lg.now += timedelta(seconds=1) - TICK  # the cancel confirms a tick inside the patience
    lg.quote("100.50", "100.55")
    acts = lg.update(0, K.CANCELED)
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert place.step == 3
    assert lg.state.deadline == lg.now + TICK


def test_a_replacement_at_the_patience_crosses_instead() -> None:
    """The same, confirmed at the patience: no passive limit placed only to be cancelled at
    its first wake — the leg crosses at once (the step-4 fallback)."""
    lg, _ = _passive(passive_patience_high_seconds=2.0, repeg_method="cancel_and_place")
    lg.now += timedelta(seconds=1)
    lg.quote("100.50", "100.55")
    lg.now += timedelta(seconds=1)
    lg.quote("100.50", "100.55")
    acts = lg.update(0, K.CANCELED)
    (place,) = of(acts, PlaceOrder)
    assert isinstance(place, PlaceOrder)
    assert place.step == 4
    assert _crosses(lg)


def test_a_quote_waited_for_past_the_patience_crosses() -> None:
    """A re-check whose fresh quote arrives only after the patience ran out crosses on that
    quote; it never re-arms a re-check with no time left (a timer at `now`)."""
    lg, _ = _passive(passive_patience_high_seconds=12.0)
    placed_at = lg.now
    lg.now = placed_at + timedelta(seconds=10)
    lg.send(Wake())  # the quote in hand is 10 s old: the re-check asks for a fresh one
    assert lg.state.awaiting is not None
    lg.now = placed_at + timedelta(seconds=13)
    acts = lg.quote("100.00", "100.05")  # the same price, after the 12 s patience
    assert of(acts, CancelOrder) == [CancelOrder(cid(0))]
    assert _crosses(lg)


def test_a_replace_confirmed_past_the_patience_crosses() -> None:
    """A re-peg by PATCH confirmed after the patience ran out cancels the replacement and
    crosses, instead of re-checking it at once."""
    lg, _ = _passive(passive_patience_high_seconds=12.0)  # leg(): repeg_method = "replace"
    placed_at = lg.now
    lg.now = placed_at + timedelta(seconds=11)
    acts = lg.quote("100.50", "100.55")  # a 0.5 % move: PATCH the acknowledged order
    assert of(acts, ReplaceOrder)
    lg.now = placed_at + timedelta(seconds=13)
    acts = lg.update(1, K.NEW)  # the replacement's first event confirms the replace
    assert of(acts, CancelOrder) == [CancelOrder(cid(1))]
    assert _crosses(lg)


def test_a_first_limit_never_sent_does_not_start_the_patience() -> None:
    """The first passive limit waited on the rate limit until its quote went stale and was
    never sent: it never rested, so the patience starts with the limit that is placed
    again, not with the one the venue never saw (at 7 s, a 6 s rate-limit wait would
    otherwise cross at once)."""
    lg = leg(symbol="AAPL", urgency=Urgency.HIGH)
    started(lg, "100.00", "100.05")
    lg.send(PlaceFailed(cid(0), 429, "not sent", not_sent=True), after=6.0)
    [again] = of(lg.quote("100.00", "100.05"), PlaceOrder)
    assert isinstance(again, PlaceOrder)
    assert again.client_order_id == cid(1)
    placed_at = lg.now
    patience = timedelta(seconds=lg.params.passive_patience_high_seconds)
    assert lg.state.first_placed_at == placed_at
    assert lg.state.deadline == placed_at + patience


def test_a_later_limit_never_sent_keeps_the_patience_of_the_first() -> None:
    """A re-placement that was never sent does not restart the patience: the leg has been
    resting at the venue since its first limit."""
    lg, _ = _passive(Urgency.NORMAL, repeg_method="cancel_and_place")
    placed_at = lg.now
    lg.now += timedelta(seconds=10)
    lg.send(Wake())  # the re-check asks for a quote
    lg.quote("100.30", "100.35")  # the market moved: the re-peg cancels...
    lg.update(0, K.CANCELED)  # ...and, once confirmed, places the remainder
    assert lg.state.working_id == cid(1)
    lg.send(PlaceFailed(cid(1), 429, "not sent", not_sent=True), after=6.0)
    assert lg.state.first_placed_at == placed_at


def test_free_rechecks_need_a_patience_to_bound_them() -> None:
    """Defence in depth (the resume stall): should a passive limit ever work with no
    patience start, its unchanged re-checks spend rounds like re-pegs, so the leg still
    crosses after `max_repegs_per_order` of them instead of re-checking until the close."""
    lg, _ = _passive(Urgency.LOW)
    lg.state = replace(lg.state, first_placed_at=None, first_placed_id=None)
    rounds = lg.params.max_repegs_per_order
    for _ in range(rounds):
        acts = _recheck(lg)
        assert not of(acts, CancelOrder), acts
        assert "leg_repeg_skipped" in notes(acts)
    acts = _recheck(lg)
    assert of(acts, CancelOrder) == [CancelOrder(cid(0))]
    assert "leg_repegs_exhausted" in notes(acts)
    assert not of(lg.log, ReplaceOrder)
