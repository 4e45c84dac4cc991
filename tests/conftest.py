"""Suite-wide test settings."""

import asyncio
import gc
import sys
import threading
from collections.abc import Iterator
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


_TASK_DUMP_LEAD_SECONDS = 10.0
"""How long before pytest-timeout's kill the asyncio tasks are dumped."""


@pytest.fixture(autouse=True)
def _dump_tasks_before_the_timeout(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that runs into pytest-timeout shows where each asyncio task waits.

    pytest-timeout prints the threads' stacks, and an async test's main thread is always
    in the selector: the dump says nothing about which await never returned. Shortly
    before the kill, a timer thread prints every pending task's stack to stderr, which
    pytest shows with the failure. It reads the loop while the loop sleeps in its
    selector (the only state a hang leaves it in); it never touches a task.
    """
    limit = _timeout_seconds(request)
    if limit <= _TASK_DUMP_LEAD_SECONDS:
        yield
        return
    timer = threading.Timer(limit - _TASK_DUMP_LEAD_SECONDS, _dump_pending_tasks)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _timeout_seconds(request: pytest.FixtureRequest) -> float:
    """pytest-timeout's limit for this test: the marker, else ``--timeout``, else the ini
    value (a ``--timeout`` below the ini's would otherwise kill before the dump)."""
    marker = request.node.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    option = request.config.getoption("timeout", None)
    if option is not None:
        return float(option)
    try:
        return float(request.config.getini("timeout") or 0)
    except ValueError:
        return 0.0


def _dump_pending_tasks() -> None:
    loops = [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, asyncio.AbstractEventLoop) and obj.is_running()
    ]
    out = sys.stderr
    print(f"=== {_TASK_DUMP_LEAD_SECONDS:g} s before the timeout: pending asyncio tasks", file=out)
    for loop in loops:
        for task in list(asyncio.all_tasks(loop)):
            print(f"--- {task.get_name()}: {task.get_coro()!r}", file=out)
            task.print_stack(limit=12, file=out)
    out.flush()


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
