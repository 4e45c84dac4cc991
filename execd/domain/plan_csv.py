"""CSV plans: what a spreadsheet exports, read into the same document as a JSON plan.

Two shapes, told apart by the header row (column names, any order, case-insensitive)::

    symbol,side,qty,notional,urgency,limit_price      symbol,weight
    TQQQ,sell,150,,,                                   TQQQ,0.40
    SOXL,buy,,4000.00,high,                            SPY,0.30

A legs file needs ``symbol`` and ``side`` and one of ``qty`` / ``notional`` per row
(``urgency`` and ``limit_price`` optional); a weights file becomes a targets plan (the rest
of the equity stays cash). Blank lines and lines starting with ``#`` are skipped. Every
error names its line and column (``plan.csv line 3, column qty: must be > 0``), all of them
at once, as a `PlanError`. The result goes through `parse_document` like any JSON plan.
"""

from __future__ import annotations

import csv
import re
from typing import Any

from pydantic import ValidationError

from execd.domain.plans import MAX_LEGS, LegInput, PlanError, parse_document

LEG_COLUMNS = ("symbol", "side", "qty", "notional", "urgency", "limit_price")
WEIGHT_COLUMNS = ("symbol", "weight")
MAX_LINE_CHARS = 10_000


def _rows(text: str) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every non-blank, non-comment line."""
    out: list[tuple[int, list[str]]] = []
    lines = text.splitlines()
    for number, cells in zip(range(1, len(lines) + 1), csv.reader(lines), strict=False):
        if not any(cell.strip() for cell in cells) or cells[0].lstrip().startswith("#"):
            continue
        out.append((number, [cell.strip() for cell in cells]))
    return out


def parse_plan_csv(text: str, name: str = "plan.csv") -> dict[str, Any]:
    """The plan document of a CSV file (see the module docstring), or `PlanError`."""
    if any(len(line) > MAX_LINE_CHARS for line in text.splitlines()):
        raise PlanError([f"{name}: a line is longer than {MAX_LINE_CHARS} characters"])
    try:
        rows = _rows(text)
    except csv.Error as exc:
        raise PlanError([f"{name}: not valid CSV ({exc})"]) from None
    if not rows:
        raise PlanError([f"{name}: empty (expected a header: symbol,side,qty or symbol,weight)"])
    header_line, header = rows[0]
    columns = [cell.lower() for cell in header]
    where = f"{name} line {header_line}"
    if set(columns) <= set(WEIGHT_COLUMNS) and "weight" in columns:
        allowed: tuple[str, ...] = WEIGHT_COLUMNS
    else:
        allowed = LEG_COLUMNS
    problems = [
        f"{where}, column {i + 1}: unknown column {c!r} (expected {', '.join(allowed)})"
        for i, c in enumerate(columns)
        if c not in allowed
    ]
    problems += [
        f"{where}: column {c!r} appears twice" for c in sorted(set(columns)) if columns.count(c) > 1
    ]
    required = ("symbol", "weight") if allowed is WEIGHT_COLUMNS else ("symbol", "side")
    problems += [f"{where}: the header has no {c!r} column" for c in required if c not in columns]
    if problems:
        raise PlanError(problems)
    body = rows[1:]
    if not body:
        raise PlanError([f"{name}: no rows after the header"])
    if len(body) > MAX_LEGS:
        raise PlanError([f"{name}: at most {MAX_LEGS} rows, got {len(body)}"])
    records: list[tuple[int, dict[str, str]]] = []
    for number, cells in body:
        if len(cells) > len(columns):
            problems.append(
                f"{name} line {number}: {len(cells)} cells, the header has {len(columns)}"
            )
            continue
        records.append((number, {c: v for c, v in zip(columns, cells, strict=False) if v}))
    if problems:
        raise PlanError(problems)
    if allowed is WEIGHT_COLUMNS:
        document: dict[str, Any] = {"targets": {}}
        for number, record in records:
            symbol = record.get("symbol", "")
            if symbol.upper() in document["targets"]:
                problems.append(f"{name} line {number}, column symbol: {symbol} appears twice")
            document["targets"][symbol.upper()] = record.get("weight", "")
        if problems:
            raise PlanError(problems)
        return _checked(document, name, {})
    lines: dict[int, int] = {}
    legs: list[dict[str, str]] = []
    for index, (number, record) in enumerate(records):
        lines[index] = number
        try:
            LegInput.model_validate(record)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                column = ".".join(str(p) for p in error["loc"]) or "row"
                ctx = error.get("ctx") or {}
                text = str(ctx["error"]) if "error" in ctx else error["msg"]
                if error["type"] == "missing":
                    text = "is required"
                problems.append(f"{name} line {number}, column {column}: {text}")
        legs.append(record)
    if problems:
        raise PlanError(problems)
    return _checked({"legs": legs}, name, lines)


_LEG_REF = re.compile(r"legs\[(\d+)\]")


def _checked(document: dict[str, Any], name: str, lines: dict[int, int]) -> dict[str, Any]:
    """Run the plan-wide rules; their ``legs[i]`` become ``line N``."""
    try:
        parse_document(document)
    except PlanError as exc:

        def line(match: re.Match[str]) -> str:
            number = lines.get(int(match.group(1)))
            return match.group(0) if number is None else f"line {number}"

        raise PlanError([f"{name}: " + _LEG_REF.sub(line, e) for e in exc.errors]) from None
    return document
