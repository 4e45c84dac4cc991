"""Pure protocol pieces of the venue's REST face: auth, query parsing, rate limit, faults."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.sim.admin import AdminError, FaultQueue, HttpFault, parse_http_fault
from execd.sim.errors import SimError
from execd.sim.ratelimit import RateLimiter, rate_limit_headers
from execd.sim.server import (
    credentials_from_headers,
    credentials_match,
    parse_bool,
    parse_symbols,
    parse_time,
)


def test_apca_headers_are_credentials() -> None:
    """The APCA key/secret header pair is read as-is (ALPACA.md §0.2)."""
    headers = {"APCA-API-KEY-ID": "K", "APCA-API-SECRET-KEY": "S"}
    assert credentials_from_headers(headers) == ("K", "S")


def test_basic_auth_is_credentials() -> None:
    """``Authorization: Basic base64(key:secret)`` is alpaca-py's alternative (§0.2)."""
    token = base64.b64encode(b"K:S:with:colons").decode()
    assert credentials_from_headers({"Authorization": f"Basic {token}"}) == ("K", "S:with:colons")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"APCA-API-KEY-ID": "K"},
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
    ],
)
def test_missing_or_malformed_credentials(headers: dict[str, str]) -> None:
    """Anything but a full APCA pair or a well-formed Basic token presents no credentials."""
    assert credentials_from_headers(headers) is None


def test_credentials_match_needs_both() -> None:
    """Key and secret must both match the account's."""
    assert credentials_match("K", "S", "K", "S")
    assert not credentials_match("K", "S", "K", "wrong")
    assert not credentials_match("K", "S", "other", "S")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("True", True), ("true", True), ("TRUE", True), ("1", True), ("False", False), ("0", False)],
)
def test_query_booleans_case_insensitive(raw: str, expected: bool) -> None:
    """alpaca-py sends Python's ``True``; the venue accepts any case (§0.3)."""
    assert parse_bool(raw, "nested") is expected


def test_bad_query_boolean_is_422() -> None:
    """A boolean that is neither true nor false is a validation error."""
    with pytest.raises(SimError) as info:
        parse_bool("yes please", "nested")
    assert info.value.status == 422


def test_query_times_accept_offsets_and_unencoded_plus() -> None:
    """RFC 3339 with offset, ``Z``, naive (UTC, like alpaca-py) and a '+' decoded as space."""
    expected = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
    assert parse_time("2026-03-04T15:00:00Z", "after") == expected
    assert parse_time("2026-03-04T10:00:00-05:00", "after") == expected
    assert parse_time("2026-03-04T15:00:00", "after") == expected
    assert parse_time("2026-03-04T15:00:00 00:00", "after") == expected
    assert parse_time(None, "after") is None


def test_symbol_lists() -> None:
    """Comma-separated symbols, blanks ignored (§0.3)."""
    assert parse_symbols("AAPL, TSLA,,") == ["AAPL", "TSLA"]
    assert parse_symbols(None) == []


def test_rate_limiter_fixed_window() -> None:
    """200 per window pass, the 201st is refused, and the window's end restores the budget."""
    limiter = RateLimiter(limit=3, window_seconds=60)
    decisions = [limiter.hit("K", 1000.0 + i) for i in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert {d.reset for d in decisions} == {1060}
    assert limiter.hit("other", 1003.0).allowed  # per key
    fresh = limiter.hit("K", 1060.0)
    assert fresh.allowed
    assert fresh.remaining == 2
    assert fresh.reset == 1120


def test_rate_limit_headers() -> None:
    """The three X-RateLimit headers carry limit, remaining and the epoch reset (§0.4)."""
    limiter = RateLimiter(limit=200)
    headers = rate_limit_headers(limiter.hit("K", 1_679_411_557.5))
    assert headers == {
        "X-RateLimit-Limit": "200",
        "X-RateLimit-Remaining": "199",
        "X-RateLimit-Reset": "1679411618",
    }


@given(
    limit=st.integers(min_value=0, max_value=20),
    gaps=st.lists(st.floats(min_value=0, max_value=30), max_size=80),
)
def test_rate_limiter_never_allows_more_than_limit_per_window(
    limit: int, gaps: list[float]
) -> None:
    """Property: within any one window, at most ``limit`` requests are allowed."""
    limiter = RateLimiter(limit=limit, window_seconds=60)
    now = 0.0
    allowed_per_reset: dict[int, int] = {}
    for gap in gaps:
        now += gap
        decision = limiter.hit("K", now)
        assert 0 <= decision.remaining <= limit
        if decision.allowed:
            allowed_per_reset[decision.reset] = allowed_per_reset.get(decision.reset, 0) + 1
    assert all(count <= limit for count in allowed_per_reset.values())


def test_rate_limiter_configure_validates() -> None:
    """Tightening keeps counts; nonsense budgets are refused."""
    limiter = RateLimiter(limit=10)
    limiter.hit("K", 0.0)
    limiter.configure(1)
    assert not limiter.hit("K", 1.0).allowed
    with pytest.raises(ValueError):
        limiter.configure(-1)
    with pytest.raises(ValueError):
        limiter.configure(5, 0)


def test_fault_queue_matches_and_counts_down() -> None:
    """Faults apply to matching requests only, in order, for their count."""
    queue = FaultQueue()
    queue.add(HttpFault(status=504, method="POST", path="/v2/orders"), count=2)
    queue.add(HttpFault(status=500), count=1)
    assert queue.take("GET", "/v2/account") == HttpFault(status=500)
    assert queue.take("GET", "/v2/account") is None
    first = queue.take("post", "/v2/orders")
    assert first is not None
    assert first.status == 504
    assert queue.take("POST", "/v2/orders/abc") is not None  # path is a prefix
    assert queue.take("POST", "/v2/orders") is None
    assert queue.pending() == []


def test_http_fault_parsing() -> None:
    """The admin body is validated: a fault needs a status or a delay; statuses are errors."""
    fault, count = parse_http_fault({"status": 504, "count": 3, "when": "after"})
    assert (fault.status, fault.when, count) == (504, "after", 3)
    for bad in ({}, {"status": 200}, {"status": 500, "when": "later"}, {"delay": -1}):
        with pytest.raises(AdminError):
            parse_http_fault(bad)
