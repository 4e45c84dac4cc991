"""The shipped unit file is valid and carries the service contract DESIGN.md promises."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "execd.service"


def _directives() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_service_contract() -> None:
    """Type=notify with a watchdog, restart on failure, socket and journal directories."""
    d = _directives()
    assert d["Type"] == ["notify"]
    assert "WatchdogSec" in d
    assert d["Restart"] == ["on-failure"]
    assert d["RuntimeDirectory"] == ["execd"]
    assert d["StateDirectory"] == ["execd"]
    assert "EnvironmentFile" in d
    assert d["User"] == ["execd"]


def test_hardening() -> None:
    """The sandboxing options a money-handling daemon should run under are all present."""
    d = _directives()
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    }.items():
        assert d.get(key) == [value], key
    assert "MemoryMax" in d


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit (ExecStart pointed at this checkout's execd)."""
    execd = Path(sys.executable).with_name("execd")
    unit = tmp_path / "execd.service"
    unit.write_text(UNIT.read_text().replace("/opt/execd/.venv/bin/execd", str(execd)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr.lower(), result.stderr


TEMPLATE = UNIT.with_name("execd@.service")


def test_template_unit_keeps_instances_apart() -> None:
    """execd@.service (issue 15 §6): per-account config, credentials, socket and journal,
    so stopping one instance never removes another's socket; otherwise the same contract."""
    text = TEMPLATE.read_text()
    plain = {k: v for k, v in _directives().items() if k not in _PER_INSTANCE}
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    assert found["RuntimeDirectory"] == ["execd/%i"]
    assert found["StateDirectory"] == ["execd/%i"]
    assert found["EnvironmentFile"] == ["/etc/execd/%i.env"]
    assert found["ExecStart"] == ["/opt/execd/.venv/bin/execd run --config /etc/execd/%i.toml"]
    assert "API__SOCKET_PATH=/run/execd/%i/execd.sock" in found["Environment"][1]
    assert "JOURNAL__PATH=/var/lib/execd/%i/journal.db" in found["Environment"][1]
    for key, values in plain.items():
        assert found.get(key) == values, key


_PER_INSTANCE = {
    "ExecStart",
    "EnvironmentFile",
    "Environment",
    "RuntimeDirectory",
    "StateDirectory",
    "Description",
}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_analyze_verify_template(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts an instance of the template (execd@alice)."""
    execd = Path(sys.executable).with_name("execd")
    unit = tmp_path / "execd@.service"
    unit.write_text(TEMPLATE.read_text().replace("/opt/execd/.venv/bin/execd", str(execd)))
    instance = tmp_path / "execd@alice.service"
    instance.symlink_to(unit)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(instance)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr.lower(), result.stderr
