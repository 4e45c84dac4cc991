"""Suite-wide test settings."""

from hypothesis import HealthCheck, settings

# Two shared cores under CI load make per-example deadlines flaky; the suite's
# speed is kept by example counts, not by hypothesis' wall-clock deadline.
settings.register_profile(
    "execd",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("execd")
