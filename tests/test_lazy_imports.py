"""The daemon's start-up imports: pandas is deferred (alpaca-py imports it for a request
execd never builds) and still works in full when something touches it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from execd import lazy_imports


def _fresh(code: str) -> dict[str, object]:
    """Run `code` in a fresh interpreter; it prints one JSON line, returned."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_importing_the_daemon_does_not_run_pandas() -> None:
    """`import execd.engine.daemon` leaves pandas deferred, numpy (pandas' own import) and
    aiohttp's server side (the off-by-default /metrics endpoint) not imported at all, while
    alpaca-py's models — the wire format — are there."""
    result = _fresh(
        """
        import json, sys
        import execd.engine.daemon
        from execd.lazy_imports import is_loaded
        print(json.dumps({
            "pandas": is_loaded("pandas"),
            "numpy": "numpy" in sys.modules,
            "web": "aiohttp.web" in sys.modules,
            "models": "alpaca.trading.models" in sys.modules,
        }))
        """
    )
    assert result == {"pandas": False, "numpy": False, "web": False, "models": True}


def test_pandas_works_in_full_when_touched() -> None:
    """What alpaca-py does with pandas still works after the daemon's import: the one
    validator that uses ``pd.Timestamp``, `alpaca.data` (``from pandas import DataFrame``)
    and pandas itself, submodules included."""
    result = _fresh(
        """
        import json
        from datetime import date
        import execd.engine.daemon
        from execd.lazy_imports import is_loaded
        from alpaca.trading.requests import GetCorporateAnnouncementsRequest
        before = is_loaded("pandas")
        request = GetCorporateAnnouncementsRequest(
            ca_types=["dividend"], since=date(2024, 1, 1), until=date(2024, 2, 1)
        )
        after_validator = is_loaded("pandas")
        import alpaca.data
        import pandas as pd
        import pandas.testing
        frame = pd.DataFrame({"a": [1, 2, 3]})
        pandas.testing.assert_frame_equal(frame, frame.copy())
        print(json.dumps({
            "before": before,
            "after_validator": after_validator,
            "since": request.since.isoformat(),
            "sum": int(frame["a"].sum()),
            "stamp": pd.Timestamp("2024-03-01T14:30:00Z").isoformat(),
            "bars": hasattr(alpaca.data, "StockHistoricalDataClient"),
        }))
        """
    )
    assert result == {
        "before": False,
        "after_validator": True,
        "since": "2024-01-01",
        "sum": 6,
        "stamp": "2024-03-01T14:30:00+00:00",
        "bars": True,
    }


def test_pandas_imported_first_is_left_alone() -> None:
    """A process that imported pandas before execd keeps its real module."""
    result = _fresh(
        """
        import json
        import pandas
        import execd
        from execd.lazy_imports import defer, is_loaded
        print(json.dumps({"loaded": is_loaded("pandas"), "deferred": defer("pandas"),
                          "frame": type(pandas.DataFrame()).__name__}))
        """
    )
    assert result == {"loaded": True, "deferred": False, "frame": "DataFrame"}


def test_defer_refuses_what_is_not_installed() -> None:
    """A module that is not installed is not faked: `defer` says no and adds nothing."""
    name = "execd_no_such_module_for_lazy_imports"
    assert lazy_imports.defer(name) is False
    assert name not in sys.modules
    assert lazy_imports.is_loaded(name) is False
