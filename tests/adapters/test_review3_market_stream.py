"""Review (issue 14, third pass): the quote stream's sorted C-level pass (`_on_frame`,
`_on_ordered_quotes`), attacked differentially.

A frame of quotes only takes the fast path; the same frame with one more message (a trade
of a symbol nobody subscribed to, which the stream ignores) takes the per-message path.
Both must leave the same cache: the same newest quote per symbol, never one older by venue
time than what was cached, and a high-water mark no cached quote is stamped after (the
fast path's premise). The marks may differ: a frame with late data for an unsubscribed
symbol raises the fast path's mark by that symbol's stamp, which is only slower, not wrong.
Frames are decoded from msgpack bytes as the wire sends them; the stream is the real one,
never connected (nothing here is I/O: `_on_frame` is the reader's whole body for a frame).

Found sound: a regression guard, not an xfail.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from execd.adapters.backoff import BackoffPolicy
from execd.adapters.market_stream import MarketStream, MarketStreamConfig

from .test_market_stream import T0, ManualClock

_SYMBOLS = ("AAA", "BBB", "CCC")


def _stream(clock: ManualClock) -> MarketStream:
    config = MarketStreamConfig(
        url="ws://127.0.0.1:9/v2/iex",
        key_id="k",
        secret_key="s",
        codec="msgpack",
        backoff=BackoffPolicy(initial=0.01, maximum=0.02),
    )
    stream = MarketStream(config, clock=clock, rand=random.Random(3).random)
    stream.subscribe([*_SYMBOLS[:2], "CCC"])
    stream.unsubscribe(["CCC"])  # late data for CCC: dropped on both paths
    return stream


def _quote(symbol: str, bid: int, offset: int) -> dict[str, Any]:
    return {"T": "q", "S": symbol, "bx": "V", "bp": 10 + bid / 100, "bs": 3, "ax": "V",
            "ap": 11 + bid / 100, "as": 5, "c": ["R"], "z": "C",
            "t": T0 + timedelta(milliseconds=offset)}  # fmt: skip


_IGNORED = {"T": "t", "S": "ZZZ", "i": 1, "x": "V", "p": 10.0, "s": 1, "t": T0, "z": "B"}

_quotes = st.builds(
    _quote,
    st.sampled_from(_SYMBOLS),
    st.integers(0, 99),
    st.integers(-3_000, 3_000),  # before and after the receipt clock: future stamps too
)
_frames = st.lists(
    st.tuples(st.lists(_quotes, min_size=1, max_size=6), st.integers(0, 1_500)),
    min_size=1,
    max_size=6,
)


def _cache(stream: MarketStream) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    for symbol in _SYMBOLS:
        q = stream.quote(symbol)
        if q is not None:
            out[symbol] = (q.bid, q.ask, q.venue_time, q.as_of)
    return out


@settings(max_examples=150, deadline=None)
@given(_frames)
def test_review3_the_fast_path_caches_what_the_per_message_path_caches(
    frames: list[tuple[list[dict[str, Any]], int]],
) -> None:
    fast_clock, slow_clock = ManualClock(), ManualClock()
    fast, slow = _stream(fast_clock), _stream(slow_clock)
    for quotes, gap_ms in frames:
        fast_clock.advance(gap_ms / 1000)
        slow_clock.advance(gap_ms / 1000)
        fast._on_frame(msgspec.msgpack.encode(quotes))
        slow._on_frame(msgspec.msgpack.encode([*quotes, _IGNORED]))
        assert _cache(fast) == _cache(slow)
        for stream in (fast, slow):
            # The fast path's premise: no cached quote counts as stamped after the mark
            # (a mark set too high only costs the per-symbol check; too low loses order).
            for q in (stream.quote(s) for s in _SYMBOLS):
                assert q is None or q.as_of <= stream._high_water
