"""`make bench`: speed figures and ratios for execd's hot paths (never timed unit tests).

1. Market-data decoding: execd's msgspec decoder (msgpack frames → Decimal structs) against
   alpaca-py's own stream path (msgpack.unpackb + its pydantic `Quote` model), same frames.
2. The ladder: `decide` steps per second over a realistic leg (quote updates, a placement,
   partial fills, a re-peg), so a regression in the pure core shows as a number.
3. Memory: bytes per cached quote struct.

Figures vary with the machine; the ratios are what to compare between runs.
"""

from __future__ import annotations

import statistics
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgpack

from execd.adapters.wire import MarketDecoder
from execd.domain.ladder import decide
from execd.domain.ladder_types import (
    LadderParams,
    LegSpec,
    LegState,
    OrderFill,
    OrderUpdate,
    PlaceOrder,
    QuoteUpdate,
    Start,
    Wake,
)
from execd.domain.order_state import OrderEventKind
from execd.domain.quotes import Quote
from execd.domain.types import Side

FRAMES = 2_000
QUOTES_PER_FRAME = 10


def _frames() -> list[bytes]:
    start = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    frames = []
    for f in range(FRAMES):
        batch = []
        for q in range(QUOTES_PER_FRAME):
            n = f * QUOTES_PER_FRAME + q
            batch.append(
                {
                    "T": "q",
                    "S": "TQQQ",
                    "bx": "V",
                    "bp": 62.40 + (n % 7) * 0.01,
                    "bs": 300 + n % 11,
                    "ax": "V",
                    "ap": 62.42 + (n % 7) * 0.01,
                    "as": 200 + n % 13,
                    "c": ["R"],
                    "z": "C",
                    "t": start + timedelta(milliseconds=n),
                }
            )
        frames.append(msgpack.packb(batch, datetime=True))
    return frames


def _rate(label: str, count: int, run: Callable[[], object], repeat: int = 5) -> float:
    timings = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        timings.append(time.perf_counter() - began)
    best = count / min(timings)
    spread = statistics.pstdev(count / t for t in timings) / best * 100
    print(f"  {label:<46} {best:>12,.0f} /s  (±{spread:.0f}%)")
    return best


def bench_decoding() -> None:
    print("market-data decoding (msgpack frames of 10 quotes)")
    frames = _frames()
    decoder = MarketDecoder("msgpack")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from alpaca.data.models import Quote as AlpacaQuote

    def ours() -> None:
        for frame in frames:
            decoder.decode(frame)

    def theirs() -> None:
        for frame in frames:
            for message in msgpack.unpackb(frame, timestamp=3):
                AlpacaQuote(message["S"], message)

    total = FRAMES * QUOTES_PER_FRAME
    fast = _rate("execd (msgspec → Decimal structs)", total, ours)
    slow = _rate("alpaca-py path (msgpack + pydantic Quote)", total, theirs)
    print(f"  ratio: execd is {fast / slow:.1f}x alpaca-py's stream decoding")


def bench_ladder() -> None:
    print("ladder decide() (pure step function)")
    now = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    params = LadderParams()
    spec = LegSpec(plan_id="bench", leg_index=0, symbol="TQQQ", side=Side.BUY, qty=Decimal(500))

    def quote(i: int) -> Quote:
        bid = Decimal("62.40") + Decimal(i % 5) / 100
        t = now + timedelta(milliseconds=10 * i)
        return Quote("TQQQ", bid, bid + Decimal("0.02"), Decimal(400), Decimal(400), t, t)

    steps = 0

    def one_leg() -> None:
        nonlocal steps
        state, actions = decide(LegState.new(spec), Start(), now, params)
        steps += 1
        cid = None
        for i in range(200):
            t = now + timedelta(milliseconds=10 * i)
            state, actions = decide(state, QuoteUpdate(quote(i)), t, params)
            steps += 1
            for action in actions:
                if isinstance(action, PlaceOrder):
                    cid = action.client_order_id
                    state, _ = decide(state, OrderUpdate(cid, OrderEventKind.NEW), t, params)
                    steps += 1
            if cid is not None and i % 40 == 39:
                fill = OrderFill(cid, f"x{i}", Decimal(50), Decimal("62.43"), t)
                state, _ = decide(state, fill, t, params)
                steps += 1
        decide(state, Wake(), now + timedelta(seconds=4), params)
        steps += 1

    rounds = 20

    def run() -> None:
        for _ in range(rounds):
            one_leg()

    run()  # warm up and count the steps of one run
    per_run, steps = steps, 0
    _rate("decide() steps", per_run, run)


def bench_memory() -> None:
    print("memory")
    t = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    quotes = [
        Quote("TQQQ", Decimal("62.40"), Decimal("62.42"), Decimal(300), Decimal(200), t, t)
        for _ in range(10_000)
    ]
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    size = sum(stat.size_diff for stat in after.compare_to(before, "lineno"))
    print(f"  {'bytes per cached Quote':<46} {size / len(quotes):>12,.0f}")


def main() -> int:
    print(f"execd benchmarks (Python {sys.version.split()[0]})")
    bench_decoding()
    bench_ladder()
    bench_memory()
    return 0


if __name__ == "__main__":
    sys.exit(main())
