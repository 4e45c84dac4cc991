"""The backoff generator: pure, deterministic for a given random source."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.adapters.backoff import BackoffPolicy


def test_default_shape_matches_alpaca_py() -> None:
    """Bases 1, 2, 4, 8, 16, 30, 30 …; with rand=0 each wait is the full base."""
    delays = list(itertools.islice(BackoffPolicy().delays(lambda: 0.0), 7))
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_equal_jitter_never_below_half_the_base() -> None:
    """With rand→1 the wait approaches base/2, never less (no reconnect storms)."""
    delays = list(itertools.islice(BackoffPolicy().delays(lambda: 0.999999), 6))
    assert all(d > b / 2 for d, b in zip(delays, [1, 2, 4, 8, 16, 30], strict=True))


def test_same_seed_same_delays() -> None:
    """The random source is passed in, so a seed reproduces the schedule exactly."""
    a = list(itertools.islice(BackoffPolicy().delays(random.Random(7).random), 10))
    b = list(itertools.islice(BackoffPolicy().delays(random.Random(7).random), 10))
    assert a == b


@given(
    initial=st.floats(0.001, 5),
    factor=st.floats(1, 4),
    extra=st.floats(0, 100),
    seed=st.integers(0, 2**32),
)
def test_delays_bounded(initial: float, factor: float, extra: float, seed: int) -> None:
    """Every delay lies within (0, maximum] whatever the parameters."""
    policy = BackoffPolicy(initial=initial, factor=factor, maximum=initial + extra)
    for delay in itertools.islice(policy.delays(random.Random(seed).random), 30):
        assert 0 < delay <= policy.maximum


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": 0}, {"initial": 5, "maximum": 1}, {"factor": 0.5}, {"jitter": 1.5}],
)
def test_rejects_nonsense(kwargs: dict[str, float]) -> None:
    """A policy that could spin or wait negative time is refused at construction."""
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)
