"""Suite-wide test settings."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Two shared cores under CI load make per-example deadlines flaky; the suite's
# speed is kept by example counts, not by hypothesis' wall-clock deadline.
settings.register_profile(
    "execd",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("execd")


@pytest.fixture(autouse=True)
def _no_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test sees a piped CLI's environment, whatever runs the suite.

    pytest-xdist workers inherit a ``COLUMNS`` from the controller, which would
    make the CLI's tables narrow (and truncated) only when the suite runs in
    parallel.
    """
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


_TESTS = Path(__file__).resolve().parent

# Tests outside tests/engine/ that run the daemon, a CLI or an interpreter as subprocesses:
# the longest of the rest (seconds each, on a loaded machine tens).
_LONG_ELSEWHERE = frozenset({"test_readme.py", "test_lazy_imports.py"})


def _runs_long(item: pytest.Item) -> bool:
    """A test that waits on a daemon, a venue's clock or a subprocess (seconds, not ms)."""
    path = Path(str(item.path))
    return (
        item.get_closest_marker("slow") is not None
        or _TESTS / "engine" in path.parents
        or (path.parent == _TESTS and path.name in _LONG_ELSEWHERE)
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests first, each group in file order (a stable sort).

    With `-n` (xdist, worksteal) the run then ends on a queue of millisecond unit tests that
    idle workers share out, not on one worker still in a daemon test that started last; a
    serial run does the same work in another order. Tests do not depend on their order.
    """
    items.sort(key=lambda item: not _runs_long(item))
