"""Review (issue 14, second pass): `execd.lazy_imports` (pandas deferred with LazyLoader),
attacked with a deferred module whose own import fails (pandas over a numpy of the wrong
ABI, a half-installed wheel).

The defect the review found (a strict xfail then) is fixed and its test passes plainly;
the others pin what was attacked and found sound.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path


def _fresh(code: str, path: Path) -> dict[str, object]:
    """Run `code` in a fresh interpreter with `path` first on sys.path; its last line."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={"PYTHONPATH": str(path), "PATH": ""},
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _broken_package(tmp_path: Path) -> Path:
    package = tmp_path / "execd_review_broken"
    package.mkdir()
    package.joinpath("__init__.py").write_text(
        'HALF = "set before the failure"\n'
        'raise ImportError("numpy.core.multiarray failed to import (simulated)")\n'
        "Timestamp = object\n"
    )
    return tmp_path


def _probe() -> str:
    return """
        import json, sys
        import execd
        from execd.lazy_imports import defer, is_loaded

        def attempt(touch):
            try:
                touch()
            except Exception as exc:
                return type(exc).__name__
            return "ok"

        deferred = defer("execd_review_broken")
        import execd_review_broken as first
        first_touch = attempt(lambda: first.Timestamp)
        def again():
            import execd_review_broken as second
            second.Timestamp
        print(json.dumps({
            "deferred": deferred,
            "first_touch": first_touch,
            "left_in_sys_modules": "execd_review_broken" in sys.modules,
            "is_loaded": is_loaded("execd_review_broken"),
            "second_import": attempt(again),
        }))
        """


def test_review2_a_deferred_module_that_fails_raises_its_import_error_first(
    tmp_path: Path,
) -> None:
    """Sound as far as it goes: the first touch of a deferred module whose code fails raises
    that ImportError (it is not swallowed)."""
    result = _fresh(_probe(), _broken_package(tmp_path))
    assert result["deferred"] is True
    assert result["first_touch"] == "ImportError"


def test_review2_a_failed_deferred_import_is_not_left_half_loaded(tmp_path: Path) -> None:
    """A plain import that fails removes the module from `sys.modules`, so every later
    import raises the same ImportError. The LazyLoader's first touch runs the module's code
    outside the import system: a failure leaves the half-initialised module registered
    (its class already switched to a plain module), `is_loaded` reports it loaded, and
    ``import pandas`` then "works" with half of pandas — the real error is gone from every
    later traceback."""
    result = _fresh(_probe(), _broken_package(tmp_path))
    assert result["left_in_sys_modules"] is False
    assert result["is_loaded"] is False
    assert result["second_import"] == "ImportError"
