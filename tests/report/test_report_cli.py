"""Issue 13 item 3: `execd report` on a fixture journal — one plan, a range, JSON, CSV, HTML."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from execd.cli.main import main
from execd.report import html as report_html
from tests.report.fixture_journal import PLANS, build


class Run:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self) -> Any:
        return json.loads(self.out)


def execd(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return Run(code, out, err)


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The fixture journal: 4 plans, 5 legs across urgencies, styles and buckets."""
    path = tmp_path_factory.mktemp("report") / "journal.db"
    asyncio.run(build(path))
    return str(path)


def _numbers(value: Any) -> Iterator[str]:
    """Every string leaf of a JSON document."""
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, str):
        yield value


def test_plan_json_figures_are_rounded_strings(
    capsys: pytest.CaptureFixture[str], journal: str
) -> None:
    """The fallback leg by hand: 50 @ 20.02 + 150 @ 20.07 = avg 20.0575 vs mid 20.02."""
    run = execd(capsys, "report", "midday-fallback", "--json", "--journal", journal)
    assert run.code == 0, run.err
    doc = run.json()
    assert doc["timezone"] == "America/New_York"
    [leg] = doc["legs"]
    assert leg["avg_fill_price"] == "20.058"  # 20.0575 to a tenth of a cent, half-even
    assert leg["vs_arrival_mid_bps"] == "18.73"  # 0.0375 / 20.02 × 10⁴ = 18.7313
    assert leg["spread_capture"] == "-0.8750"  # (20.04 − 20.0575) / 0.02
    assert leg["saving_vs_market_usd"] == "-3.50"  # (20.04 − 20.0575) × 200
    assert leg["completed_at"] == "step 4 fallback"
    assert leg["fallback_fired"] is True
    assert leg["started_at"] == "2026-05-11T12:00:00.000-04:00"
    assert leg["market_order_beyond_displayed_qty"] == "120"  # 80 shown at the ask
    assert [f["price"] for f in leg["fills"]] == ["20.02", "20.07"]
    # the orders sent, each with the NBBO, spread and quote age it was decided on
    assert [(x["kind"], x["limit_price"]) for x in leg["decisions"]] == [
        ("place", "20.01"),
        ("replace", "20.02"),
        ("place", None),
    ]
    assert leg["decisions"][0]["spread"] == "0.04"
    assert leg["decisions"][0]["quote_age_seconds"] == "0.000"
    for text in _numbers(doc):
        assert text != "-0"
        assert not re.fullmatch(r"-?\d+\.\d{5,}", text), text  # nothing unrounded


def test_since_aggregates_every_grouping(capsys: pytest.CaptureFixture[str], journal: str) -> None:
    """--since: by urgency, style, symbol, time of day and completion step; rates; total."""
    run = execd(capsys, "report", "--since", "2026-05-11", "--json", "--journal", journal)
    assert run.code == 0, run.err
    doc = run.json()
    assert [p["plan_id"] for p in doc["plans"]] == list(PLANS)
    assert set(doc["by_urgency"]) == {"low", "normal", "high"}
    assert set(doc["by_style"]) == {"marketable", "passive", "legacy"}
    assert list(doc["by_time_of_day"]) == ["09:30-09:32", "09:32-09:35", "regular", "last 30 min"]
    assert set(doc["by_completed_at"]) == {
        "step 2 limit",
        "step 3 re-peg",
        "step 4 fallback",
        "market (legacy)",
        "not filled",
    }
    summary = doc["summary"]
    assert (summary["legs"], summary["completion_rate"], summary["fallback_rate"]) == (
        5,
        "0.8000",
        "0.2000",
    )
    # TQQQ 0.00, AAPL +1.00, ACME −3.50, SQQQ −0.15 (MSFT never filled: not measured)
    assert summary["saving_vs_market_usd"] == "-2.65"
    assert doc["by_symbol"]["MSFT"]["saving_vs_market_usd"] is None
    later = execd(capsys, "report", "--since", "2026-05-12", "--json", "--journal", journal)
    assert later.json()["summary"]["legs"] == 0
    window = execd(
        capsys,
        "report",
        "--since",
        "2026-05-11T09:32:00",
        "--until",
        "2026-05-11T12:30:00-04:00",
        "--json",
        "--journal",
        journal,
    )
    assert [p["plan_id"] for p in window.json()["plans"]] == ["normal-window", "midday-fallback"]


def test_csv_has_one_row_per_leg(capsys: pytest.CaptureFixture[str], journal: str) -> None:
    """The CSV's columns are the JSON leg fields; empty cells for unknown figures."""
    run = execd(capsys, "report", "--since", "2026-05-11", "--csv", "--journal", journal)
    assert run.code == 0, run.err
    rows = list(csv.DictReader(io.StringIO(run.out)))
    assert len(rows) == 5
    msft = next(r for r in rows if r["symbol"] == "MSFT")
    assert (msft["state"], msft["avg_fill_price"], msft["completed_at"]) == (
        "unfilled",
        "",
        "not filled",
    )
    assert next(r for r in rows if r["symbol"] == "SQQQ")["avg_fill_price"] == "0.99850"


def test_table_names_the_zone_and_the_sign(
    capsys: pytest.CaptureFixture[str], journal: str
) -> None:
    """The terminal view: per-leg table and plan summary, times in EDT, the sign spelled."""
    run = execd(capsys, "report", "normal-window", "--journal", journal)
    assert run.code == 0, run.err
    assert "EDT" in run.out
    assert "+ = cost" in run.out
    assert "plan summary" in run.out
    assert "MSFT" in run.out
    assert "190.020" in run.out


class _Structure(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def classed(self, tag: str, cls: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and cls in (a.get("class") or "").split()]


def _parse(path: Path) -> _Structure:
    parser = _Structure()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _self_contained(page: _Structure) -> None:
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "img", "iframe", "object", "embed"), tag
        for name in ("src", "href", "xlink:href", "srcset", "action"):
            assert name not in attrs, (tag, attrs)
        assert "url(" not in (attrs.get("style") or "")


def test_html_for_a_plan_has_one_chart_per_leg(
    capsys: pytest.CaptureFixture[str], journal: str, tmp_path: Path
) -> None:
    """Self-contained; per leg: band, arrival mid, limit steps, fills (sized), market tick."""
    out = tmp_path / "plan.html"
    run = execd(capsys, "report", "normal-window", "--html", str(out), "--journal", journal)
    assert run.code == 0, run.err
    page = _parse(out)
    _self_contained(page)
    assert "http" not in out.read_text()
    charts = page.classed("svg", "leg-chart")
    assert len(charts) == len(PLANS["normal-window"]) == len(page.classed("section", "leg"))
    assert len(page.classed("polygon", "band")) == 2
    assert len(page.classed("line", "arrival-mid")) == 2
    assert len(page.classed("path", "limit")) == 2  # AAPL place + replace (one run); MSFT
    assert len(page.classed("circle", "fill")) == 1  # only AAPL filled

    fallback = tmp_path / "fallback.html"
    execd(capsys, "report", "midday-fallback", "--html", str(fallback), "--journal", journal)
    page = _parse(fallback)
    radii = sorted(float(c["r"] or 0) for c in page.classed("circle", "fill"))
    assert radii[0] < radii[1]  # 50 shares draw smaller than 150
    assert len(page.classed("line", "market-order")) == 1


def test_html_for_a_range_has_the_cost_distribution(
    capsys: pytest.CaptureFixture[str], journal: str, tmp_path: Path
) -> None:
    """A range page: the cost chart vs the market order, the groupings, a chart per leg."""
    out = tmp_path / "range.html"
    run = execd(capsys, "report", "--since", "2026-05-11", "--html", str(out), "--journal", journal)
    assert run.code == 0, run.err
    page = _parse(out)
    _self_contained(page)
    assert len(page.classed("svg", "cost-chart")) == 1
    assert len(page.classed("rect", "bin")) >= 2  # savings both sides of zero
    assert len(page.classed("svg", "leg-chart")) == 5
    text = out.read_text()
    for heading in ("By urgency", "By style", "By symbol", "By time of day", "By step"):
        assert heading in text


def test_hostile_plan_ids_are_escaped(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A plan id with markup is text in the page, never markup."""
    from execd.adapters.journal import Journal
    from execd.domain.plans import parse_plan
    from execd.domain.types import Urgency
    from tests.report.fixture_journal import FixtureLeg, _leg

    path = tmp_path / "j.db"
    evil = '<script>alert("x")</script>'

    async def write() -> None:
        async with await Journal.open(path) as j:
            doc = {"plan_id": "p", "legs": [{"symbol": "TQQQ", "side": "buy", "qty": "1"}]}
            plan = parse_plan(doc, lambda: "unused", Urgency.NORMAL)
            leg = PLANS["open-etf"][0]
            await j.record_plan("p", leg.start, plan.to_wire(), legs=plan.legs)
            await _leg(j, "p", 0, FixtureLeg(**{**leg.__dict__, "qty": "1", "fills": ()}))
            await j.update_leg("p", 0, reason=evil)

    asyncio.run(write())
    out = tmp_path / "p.html"
    run = execd(capsys, "report", "p", "--html", str(out), "--journal", str(path))
    assert run.code == 0, run.err
    assert "<script" not in out.read_text()
    assert "provisional" in run.err  # the plan never finished


def test_usage_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], journal: str, tmp_path: Path
) -> None:
    """Exit 2 for bad arguments, 1 for an unknown plan, 3 for no journal; one stderr line."""
    cases = [
        (["report", "--journal", journal], 2),
        (["report", "p", "--since", "2026-05-11", "--journal", journal], 2),
        (["report", "--since", "yesterday", "--journal", journal], 2),
        (["report", "--since", "2026-05-12", "--until", "2026-05-10", "--journal", journal], 2),
        (["report", "nope", "--journal", journal], 1),
        (["report", "p", "--journal", str(tmp_path / "missing.db")], 3),
    ]
    for argv, code in cases:
        run = execd(capsys, *argv)
        assert run.code == code, (argv, run.err)
        assert len(run.err.strip().splitlines()) == 1, run.err
        assert run.out == ""
    assert not (tmp_path / "missing.db").exists()


def test_a_sub_second_legs_axis_labels_are_distinct() -> None:
    """A marketable limit filled in 0.3 s: one-decimal labels repeated (+0.1s, +0.1s)."""
    labels = report_html.elapsed_labels(0.3, 5)
    assert len(set(labels)) == 6
    assert labels[-1] == "+300ms"
    assert len(set(report_html.elapsed_labels(1.2, 5))) == 6
    assert report_html.elapsed_labels(120.0, 5)[1] == "+24s"


def test_a_market_order_at_the_right_edge_is_labelled_to_its_left() -> None:
    """The fallback is usually a leg's last event: its label ran off the chart's right edge."""
    at_edge = report_html._market_label(890.0)
    assert 'text-anchor="end"' in at_edge
    assert 'x="886.0"' in at_edge
    assert "text-anchor" not in report_html._market_label(300.0)
