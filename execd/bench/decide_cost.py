"""Our own CPU per quote and per reaction in the ladder's `decide`: a diagnostic, not a figure.

Items 2 and 3 measure the daemon end to end, where the machine's load swamps the few
microseconds `decide` spends per call. This drives the real `decide` in a loop, with no
I/O and no event loop, through the two steps those items repeat most:

- *quote*: a working passive buy hears a quote that does not move the market beyond
  `repeg_threshold_percent` (the common case: most quotes change nothing);
- *reaction*: a quote moves the mid 0.2 % (the reaction bench's tape), the leg cancels
  (the default `cancel_and_place`), hears `canceled`, places the re-peg and hears `new` —
  every `decide` call of one re-peg. After its re-pegs the leg falls back; a fresh leg
  takes its place (its start is not counted).

Production ladder settings (`LadderParams()`), normal urgency. It also counts the
`dataclasses.replace`-style state copies made per step (`LegState` updates).

Run as ``python -m execd.bench.decide_cost [SECONDS]``; compare two versions only when
run back to back on the same machine (the figures are CPU-bound and move with the load).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from execd.domain.calendar import session_on
from execd.domain.ladder import decide
from execd.domain.ladder_types import (
    Action,
    CancelOrder,
    LadderEvent,
    LadderParams,
    LegPhase,
    LegSpec,
    LegState,
    NeedQuote,
    OrderUpdate,
    PlaceOrder,
    QuoteUpdate,
    Start,
)
from execd.domain.order_state import OrderEventKind
from execd.domain.quotes import Quote
from execd.domain.types import Side, Urgency

_DAY = date(2024, 3, 5)
_STEP = Decimal("1.002")  # the reaction tape's move: twice the default threshold
_CENT = Decimal("0.01")
_SPREAD = Decimal("0.05")
_SIZE = Decimal(300)
_QTY = Decimal(100)


class _Driver:
    """One leg driven like the daemon drives it, with a venue that acknowledges at once."""

    def __init__(self, params: LadderParams) -> None:
        session = session_on(_DAY)
        assert session is not None
        self.params = params
        self.session = session
        self.now = session.open + timedelta(hours=1)
        self.bid = Decimal("100.00")
        self.ask = self.bid + _SPREAD
        self.legs = 0
        self.state = self._new_leg()

    def _new_leg(self) -> LegState:
        self.legs += 1
        spec = LegSpec(
            f"plan-{self.legs}", 0, "AAPL", Side.BUY, _QTY, Urgency.NORMAL, None, self.session
        )
        state = LegState.new(spec)
        state, _ = decide(state, QuoteUpdate(self.quote()), self.now, self.params)
        state, acts = decide(state, Start(), self.now, self.params)
        self.state = state
        self._answer(acts)
        return self.state

    def quote(self) -> Quote:
        """The NBBO 1 ms later (the harness's own cost kept small: no new Decimal)."""
        self.now += timedelta(milliseconds=1)
        return Quote("AAPL", self.bid, self.ask, _SIZE, _SIZE, self.now, self.now)

    def send(self, event: LadderEvent) -> list[Action]:
        self.state, acts = decide(self.state, event, self.now, self.params)
        return acts

    def _answer(self, acts: list[Action]) -> None:
        """The venue's answers and the quotes asked for, until the leg waits."""
        pending = list(acts)
        while pending:
            act = pending.pop(0)
            match act:
                case CancelOrder(client_order_id=cid):
                    pending += self.send(OrderUpdate(cid, OrderEventKind.CANCELED))
                case PlaceOrder(client_order_id=cid):
                    pending += self.send(OrderUpdate(cid, OrderEventKind.NEW))
                case NeedQuote():
                    pending += self.send(QuoteUpdate(self.quote()))
                case _:
                    pass

    def quiet_quote(self) -> None:
        """A quote inside the threshold: nothing to do."""
        self.send(QuoteUpdate(self.quote()))

    def reaction(self) -> None:
        """The mid moves 0.2 %: cancel, canceled, place, new."""
        self.bid = (self.bid * _STEP).quantize(_CENT)
        self.ask = self.bid + _SPREAD
        self._answer(self.send(QuoteUpdate(self.quote())))
        s = self.state
        if s.in_fallback or s.phase is LegPhase.DONE or s.working_id is None:
            self.state = self._new_leg()


def _rate(step: Callable[[], None], seconds: float) -> tuple[float, int]:
    """Steps per second of CPU (`process_time`), and how many ran."""
    n = 0
    start = time.process_time()
    while (spent := time.process_time() - start) < seconds:
        for _ in range(50):
            step()
        n += 50
    return n / spent, n


def measure(seconds: float = 2.0) -> dict[str, float]:
    """µs of CPU per quiet quote and per reaction, interleaved in three rounds (medians)."""
    quotes: list[float] = []
    reactions: list[float] = []
    for _ in range(3):
        d = _Driver(LadderParams())
        rate, _ = _rate(d.quiet_quote, seconds / 3)
        quotes.append(1e6 / rate)
        d = _Driver(LadderParams())
        rate, _ = _rate(d.reaction, seconds / 3)
        reactions.append(1e6 / rate)
    return {
        "quote_us": sorted(quotes)[1],
        "reaction_us": sorted(reactions)[1],
    }


def _count_copies() -> dict[str, float]:
    """LegState copies per quiet quote and per reaction (one leg, 200 of each): every
    ladder module's `replace` wrapped for the count, whichever it is."""
    import importlib
    import pkgutil

    import execd.domain

    made = 0
    patched: list[tuple[Any, Callable[..., Any]]] = []

    def wrap(inner: Callable[..., Any]) -> Callable[..., Any]:
        def counting(obj: object, /, **changes: Any) -> Any:
            nonlocal made
            made += isinstance(obj, LegState)
            return inner(obj, **changes)

        return counting

    for info in pkgutil.iter_modules(execd.domain.__path__):
        if info.name.startswith("ladder"):
            module = importlib.import_module(f"execd.domain.{info.name}")
            inner = getattr(module, "replace", None)
            if inner is not None and module.__name__ != "execd.domain.ladder_replace":
                patched.append((module, inner))
                module.__dict__["replace"] = wrap(inner)
    try:
        d = _Driver(LadderParams())
        made = 0
        for _ in range(200):
            d.quiet_quote()
        per_quote = made / 200
        d = _Driver(LadderParams())
        made = 0
        for _ in range(200):
            d.reaction()
        per_reaction = made / 200
    finally:
        for module, inner in patched:
            module.__dict__["replace"] = inner
    return {"copies_per_quote": per_quote, "copies_per_reaction": per_reaction}


def main(argv: list[str]) -> None:
    seconds = float(argv[0]) if argv else 3.0
    figures = measure(seconds)
    copies = _count_copies()
    print(
        f"decide: {figures['quote_us']:.1f} µs per quiet quote, "
        f"{figures['reaction_us']:.1f} µs per reaction (CPU, median of 3 rounds); "
        f"LegState copies: {copies['copies_per_quote']:.1f} per quote, "
        f"{copies['copies_per_reaction']:.1f} per reaction (incl. the fresh legs' share)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
