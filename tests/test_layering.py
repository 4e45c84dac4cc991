"""The functional core stays pure: imports point inward (STYLE.md "The shape of execd's code")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parents[1] / "execd" / "domain"

# What a pure module may not import: I/O, concurrency, clocks, the environment, randomness,
# and any of execd's own shell packages.
FORBIDDEN = {
    "asyncio",
    "socket",
    "time",
    "os",
    "random",
    "aiohttp",
    "websockets",
    "sqlite3",
    "subprocess",
    "threading",
    "uvloop",
    "structlog",
    "logging",
    "execd.adapters",
    "execd.engine",
    "execd.sim",
    "execd.control",
    "execd.cli",
    "execd.config",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(DOMAIN.glob("*.py")), ids=lambda p: p.name)
def test_domain_module_is_pure(path: Path) -> None:
    """No domain module imports asyncio, sockets, clocks, env or the shell."""
    bad = {
        name
        for name in _imports(path)
        for forbidden in FORBIDDEN
        if name == forbidden or name.startswith(forbidden + ".")
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_domain_never_reads_the_clock() -> None:
    """`now` is always passed in: no datetime.now()/utcnow()/today() in the core."""
    offenders = [
        path.name
        for path in DOMAIN.glob("*.py")
        for call in (".now(", ".utcnow(", ".today(")
        if call in path.read_text()
    ]
    assert not offenders
