"""Tape replay: the venue clock follows the tape, its NBBO and prints drive matching."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from execd.sim.clock import VenueClock
from execd.sim.config import SimConfig
from execd.sim.exchange import Exchange
from execd.sim.tape import read_tape, start_instant, tape_origin

TAPE = Path(__file__).parent / "data" / "IBM-2013-10-07-open-excerpt.jsonl"


def make(start: time | None = None) -> tuple[Exchange, VenueClock, list[dict[str, Any]]]:
    """A replay venue on a manual clock."""
    config = SimConfig(tape=TAPE, start=start, seed=2)
    clock = VenueClock.from_config(config, monotonic=None)
    ex = Exchange(config, clock)
    md: list[dict[str, Any]] = []
    ex.on_market_data(md.append)
    return ex, clock, md


def test_clock_starts_at_the_tape_and_the_tape_sets_the_symbols() -> None:
    """Without `start` the venue begins at the tape's first record, with the tape's symbols."""
    ex, clock, _ = make()
    assert clock.now() == datetime(2013, 10, 7, 13, 28, 3, 783000, tzinfo=UTC)
    assert ex.symbols() == ("IBM",)
    assert ex.clock_json()["is_open"] is False


def test_start_within_the_tape_and_session_rules_apply() -> None:
    """`start` 09:30 ET begins there, primed with the prevailing quote; the market is open."""
    ex, clock, md = make(start=time(9, 30))
    assert clock.now() == datetime(2013, 10, 7, 13, 30, tzinfo=UTC)
    ex.advance(0)
    assert ex.clock_json()["is_open"] is True
    assert md[0]["T"] == "q"


def test_published_quotes_are_the_tapes_nbbo() -> None:
    """Each tape quote comes out with the tape's prices and sizes, in order."""
    ex, _, md = make()
    ex.advance(60)
    records = [r for r in read_tape(TAPE) if r.kind == "q"]
    quotes = [m for m in md if m["T"] == "q"]
    assert len(quotes) >= 10
    for rec, q in zip(records, quotes, strict=False):
        assert (q["bp"], q["ap"]) == (float(rec.fields["bp"]), float(rec.fields["ap"]))
        assert (q["bs"], q["as"]) == (int(rec.fields["bs"]), int(rec.fields["as"]))


def test_a_marketable_buy_fills_at_the_tapes_ask() -> None:
    """During the session a small market buy pays the tape's displayed ask."""
    ex, _, _ = make(start=time(9, 31))
    ex.advance(0)
    ask = ex.latest_quotes(["IBM"])["IBM"]["ap"]
    placed = ex.submit_order(
        {"symbol": "IBM", "side": "buy", "type": "market", "qty": 1, "time_in_force": "day"}
    )
    ex.advance(0.05)
    filled = ex.get_order(placed["id"])
    assert filled["status"] == "filled"
    assert float(filled["filled_avg_price"]) >= ask


def test_the_clock_origin_reads_only_the_first_record() -> None:
    """`tape_origin` parses one record, not the whole tape, and finds the same instant."""
    records = read_tape(TAPE)
    assert read_tape(TAPE, limit=1) == records[:1]
    for start in (None, time(9, 30)):
        assert tape_origin(TAPE, start) == start_instant(records, start)


def test_a_rewritten_tape_is_read_again(tmp_path: Path) -> None:
    """Whole tapes are parsed once per file version and shared; a changed file is re-read, and
    a caller's list is its own (the shared records stay as parsed)."""
    lines = TAPE.read_text(encoding="utf-8").splitlines(keepends=True)
    tape = tmp_path / "t.jsonl"
    tape.write_text("".join(lines[:5]), encoding="utf-8")
    first = read_tape(tape)
    first.clear()
    again = read_tape(tape)
    assert again
    assert again == read_tape(tape)
    tape.write_text("".join(lines[:40]), encoding="utf-8")
    assert len(read_tape(tape)) > len(again)
