"""The decide micro-benchmark (`execd.bench.decide_cost`) measures what it says: a quiet
quote changes nothing, a reaction is a whole re-peg (cancel, canceled, place, new)."""

from __future__ import annotations

from execd.bench.decide_cost import _count_copies, _Driver
from execd.domain.ladder_types import LadderParams, LegPhase


def test_a_quiet_quote_changes_no_order() -> None:
    """A quote inside the re-peg threshold leaves the working order as it is."""
    d = _Driver(LadderParams())
    working, orders = d.state.working_id, len(d.state.orders)
    assert working is not None
    for _ in range(5):
        d.quiet_quote()
    assert d.state.working_id == working
    assert len(d.state.orders) == orders
    assert d.state.phase is LegPhase.WORKING


def test_a_reaction_is_a_whole_repeg() -> None:
    """Each reaction places a new order (the old one cancelled and confirmed) or, past the
    leg's re-pegs, starts a fresh leg; never a leg left without a working order."""
    d = _Driver(LadderParams())
    placed = 0
    for _ in range(12):
        legs, before = d.legs, d.state.working_id
        d.reaction()
        assert d.state.working_id is not None
        assert d.state.working_id != before
        assert d.state.phase is LegPhase.WORKING
        placed += d.legs == legs
        if d.legs == legs:
            assert d.state.repeg_trigger == "market_moved"
            assert d.state.orders[-2].is_terminal
    assert placed >= 8


def test_the_copies_are_counted() -> None:
    """The copy count wraps the ladder modules' `replace`: a quote makes at least one."""
    copies = _count_copies()
    assert copies["copies_per_quote"] >= 1
    assert copies["copies_per_reaction"] > copies["copies_per_quote"]
