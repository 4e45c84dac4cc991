"""Schema v3: the NBBO at each fill and each leg's benchmarks, read back by the report reader."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from execd.adapters.journal import Journal, UnknownRecord
from execd.adapters.journal_reads import JournalReader
from execd.adapters.journal_rows import JournalError, JournalVersionError
from execd.adapters.journal_schema import MIGRATIONS
from execd.domain.benchmarks import Decision, LegBenchmarks, QuoteMark
from execd.domain.ids import client_order_id
from execd.domain.plans import parse_plan
from execd.domain.quotes import Quote
from execd.domain.types import Urgency
from tests.adapters.test_journal_schema import CID, build_v1_file

T0 = datetime(2026, 5, 11, 13, 30, tzinfo=UTC)
QUOTE = Quote(
    "TQQQ",
    Decimal("50.00"),
    Decimal("50.02"),
    Decimal("300"),
    Decimal("200"),
    T0,
    T0 + timedelta(seconds=1),
)


async def test_fill_keeps_its_nbbo_and_leg_keeps_its_benchmarks(tmp_path: Path) -> None:
    """record_fill(quote=) and record_benchmarks round-trip through the read-only reader."""
    path = tmp_path / "journal.db"
    plan = parse_plan(
        {"plan_id": "p1", "legs": [{"symbol": "TQQQ", "side": "buy", "qty": "10"}]},
        lambda: "unused",
        Urgency.NORMAL,
    )
    cid = client_order_id("p1", 0, 0)
    mark = QuoteMark.of(QUOTE, T0 + timedelta(seconds=2))
    bench = LegBenchmarks(
        feed="iex",
        plan_arrival=None,
        leg_arrival=mark,
        interval_vwap=Decimal("50.013"),
        fallback_fired=True,
        decisions=(
            Decision(at=T0, kind="quote", quote=mark),
            Decision(
                at=T0, kind="place", quote=mark, limit_price=Decimal("50.03"), qty=Decimal("10")
            ),
        ),
    )
    async with await Journal.open(path) as j:
        assert await j.record_plan("p1", T0, plan.to_wire(), legs=plan.legs)
        await j.record_intent(
            cid,
            plan_id="p1",
            leg_index=0,
            attempt=0,
            kind="place",
            order_type="limit",
            side=plan.legs[0].side,
            qty=Decimal("10"),
            limit_price=Decimal("50.03"),
            at=T0,
        )
        assert await j.record_fill("e1", cid, Decimal("4"), Decimal("50.02"), T0, quote=QUOTE)
        assert await j.record_fill("e2", cid, Decimal("6"), Decimal("50.03"), T0)
        await j.record_benchmarks("p1", 0, bench)
        await j.record_benchmarks("p1", 0, bench)  # a rewrite replaces, never duplicates
        with pytest.raises(UnknownRecord):
            await j.record_benchmarks("p1", 7, bench)
    with JournalReader.open(path) as reader:
        assert reader.plan_ids() == ("p1",)
        assert reader.plan_ids(since=T0 + timedelta(days=1)) == ()
        history = reader.plan("p1")
        assert history is not None
        [leg] = history.legs
        first, second = leg.fills
        assert first.quote is not None
        assert (first.quote.bid, first.quote.ask, first.quote.ask_size) == (
            Decimal("50.00"),
            Decimal("50.02"),
            Decimal("200"),
        )
        assert second.quote is None
        assert leg.benchmarks == bench
        assert [o.limit_price for o in leg.orders] == [Decimal("50.03")]
        assert reader.plan("nope") is None


async def test_v1_file_migrates_to_v4_and_old_fills_have_no_nbbo(tmp_path: Path) -> None:
    """An old journal gains the columns; its fills report without an NBBO, never a fake one."""
    path = tmp_path / "journal.db"
    build_v1_file(path)
    async with await Journal.open(path):
        pass
    with JournalReader.open(path) as reader:
        assert reader.has_benchmarks
        history = reader.plan("old-plan")
        assert history is not None
        [fill] = history.legs[0].fills
        assert (fill.fill.client_order_id, fill.quote) == (CID, None)
        assert history.legs[0].benchmarks is None


def _build_v2_file(path: Path) -> None:
    build_v1_file(path)
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[1].statements:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.close()


def test_reader_reports_an_unmigrated_file_and_never_writes(tmp_path: Path) -> None:
    """A v2 file is read as it is (no benchmarks), and stays v2: the reader never migrates.
    A v1 file is refused with the way out (the daemon migrates at start)."""
    path = tmp_path / "journal.db"
    _build_v2_file(path)
    before = path.read_bytes()
    with JournalReader.open(path) as reader:
        assert not reader.has_benchmarks
        history = reader.plan("old-plan")
        assert history is not None
        assert history.legs[0].fills[0].quote is None
    assert path.read_bytes() == before
    old = tmp_path / "v1.db"
    build_v1_file(old)
    with pytest.raises(JournalVersionError, match="execd run"):
        JournalReader.open(old)


def test_reader_refuses_missing_foreign_and_newer_files(tmp_path: Path) -> None:
    """Clear errors, and nothing is created where no journal was."""
    missing = tmp_path / "none.db"
    with pytest.raises(JournalError, match="no journal"):
        JournalReader.open(missing)
    assert not missing.exists()
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="not an execd journal"):
        JournalReader.open(other)
    newer = tmp_path / "newer.db"
    build_v1_file(newer)
    conn = sqlite3.connect(newer)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(JournalVersionError):
        JournalReader.open(newer)


async def test_reader_reads_while_the_daemon_holds_the_journal(tmp_path: Path) -> None:
    """The report reads a consistent snapshot while the journal is open for writing."""
    path = tmp_path / "journal.db"
    plan = parse_plan(
        {"plan_id": "p1", "legs": [{"symbol": "TQQQ", "side": "buy", "qty": "10"}]},
        lambda: "unused",
        Urgency.NORMAL,
    )
    async with await Journal.open(path) as j:
        assert await j.record_plan("p1", T0, plan.to_wire(), legs=plan.legs)
        with JournalReader.open(path) as reader:
            assert reader.plan_ids() == ("p1",)
            await j.update_leg("p1", 0, state="filled")
            history = reader.plan("p1")
            assert history is not None
            assert history.legs[0].leg.state == "filled"
