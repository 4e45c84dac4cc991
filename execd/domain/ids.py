"""Deterministic, short client order ids.

Every order execd sends carries a client order id derived from (plan, leg,
attempt), so that after a crash any order at the venue can be matched to the
leg that owns it, and so that execd only ever touches orders it placed (those
whose id starts with `PREFIX`). Alpaca keeps client order ids unique forever
per account (ALPACA.md §0.5), which also makes a blind resend of the same
attempt fail loudly instead of duplicating the order.

Shape: ``xd-<12 hex of blake2b(plan_id)>-<leg>-<attempt>``, at most 31
characters for 500 legs and 999,999 attempts, well inside the 48 characters
older Alpaca docs allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from hashlib import blake2b

PREFIX = "xd-"
_PATTERN = re.compile(r"^xd-([0-9a-f]{12})-(\d{1,3})-(\d{1,6})$")


@dataclass(frozen=True, slots=True)
class OrderIdParts:
    """What a client order id says about its origin."""

    plan_key: str
    leg_index: int
    attempt: int


def plan_key(plan_id: str) -> str:
    """A 12-hex-digit digest standing for a plan id of up to 64 characters."""
    return blake2b(plan_id.encode(), digest_size=6).hexdigest()


def leg_order_prefix(plan_id: str, leg_index: int) -> str:
    """The prefix shared by every order of one leg (attempt number follows)."""
    return f"{PREFIX}{plan_key(plan_id)}-{leg_index}-"


def client_order_id(plan_id: str, leg_index: int, attempt: int) -> str:
    """The client order id of one attempt of one leg."""
    if not 0 <= leg_index <= 999:
        raise ValueError(f"leg index out of range: {leg_index}")
    if not 0 <= attempt <= 999_999:
        raise ValueError(f"attempt out of range: {attempt}")
    return f"{leg_order_prefix(plan_id, leg_index)}{attempt}"


def parse_client_order_id(value: str) -> OrderIdParts | None:
    """Split an execd client order id, or None for an order execd did not place."""
    match = _PATTERN.match(value)
    if match is None:
        return None
    return OrderIdParts(match[1], int(match[2]), int(match[3]))


def is_execd_order(value: str) -> bool:
    """True only for ids execd itself generated (never cancel anything else)."""
    return parse_client_order_id(value) is not None
