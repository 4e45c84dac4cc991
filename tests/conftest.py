"""Suite-wide test settings."""

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
