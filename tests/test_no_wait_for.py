"""No `asyncio.wait_for` in execd: a bounded wait is ``async with asyncio.timeout(...)``.

On Python 3.11 (execd's floor) `asyncio.wait_for` loses a cancellation that arrives once
the awaited thing has completed (CPython gh-86296; 3.12 rewrote it on top of `timeout`).
A task cancelled at that instant — a shutdown, a halt, a plan's stop — carries on as if
nothing happened, and whoever awaits it waits forever: the venue's engine did exactly that
and hung `test_a_restart_never_adopts_a_replacement_larger_than_what_is_left` in CI
(tests/sim/test_venue_close.py). `asyncio.timeout` propagates a foreign cancellation.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "execd"


def _wait_for_uses(path: Path) -> list[int]:
    """Lines of `path` that name asyncio's `wait_for` (attribute or import)."""
    lines: list[int] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "wait_for"
            and isinstance(node.value, ast.Name)
            and node.value.id == "asyncio"
        ):
            lines.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and node.module == "asyncio":
            lines.extend(node.lineno for alias in node.names if alias.name == "wait_for")
    return lines


def test_the_package_never_uses_asyncio_wait_for() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line in _wait_for_uses(path)
    ]
    assert not found, f"use `async with asyncio.timeout(...)` instead: {found}"


def test_the_check_sees_both_spellings(tmp_path: Path) -> None:
    """The scan is not vacuous: it finds the call and the import."""
    module = tmp_path / "m.py"
    module.write_text(
        "import asyncio\nfrom asyncio import wait_for\n\n"
        "async def f(e):\n    await asyncio.wait_for(e.wait(), 1)\n",
        encoding="utf-8",
    )
    assert sorted(_wait_for_uses(module)) == [2, 5]
