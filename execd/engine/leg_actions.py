"""The order in which a leg performs one decision's actions (pure, no I/O)."""

from __future__ import annotations

from execd.domain.ladder_types import Action, CancelOrder, Note

__all__ = ["cancel_first"]


def cancel_first(actions: list[Action]) -> list[Action]:
    """The decision's actions with a cancel moved ahead of the notes before it.

    A re-peg with ``cancel_and_place`` decides [notes…, CancelOrder]: the notes are log
    lines (``leg_market_moved``, ``leg_repegged``) that cost ~40 µs each, and a cancel of
    an order the journal already knows needs nothing written first (issue 14: the request
    goes out first, its log lines right after; no line is lost). Everything else keeps the
    ladder's order — a place or replace still waits for its intent on disk.
    """
    for index, action in enumerate(actions):
        if isinstance(action, Note):
            continue
        if index == 0 or not isinstance(action, CancelOrder):
            return actions
        return [action, *actions[:index], *actions[index + 1 :]]
    return actions
