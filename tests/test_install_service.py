"""`make install-service`, dry-run into a staging directory (DESTDIR): nothing touches the
real /etc, /opt, user database or systemd. The commands that would (useradd, pip, systemctl)
are replaced by `echo` so the test sees that they would have run, and with what."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from execd.config import load_settings

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "execd.service"
ENV_EXAMPLE = REPO / "systemd" / "execd.env.example"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _install(destdir: Path, *overrides: str) -> str:
    """Run the target into `destdir` with every privileged command stubbed; its output."""
    # Never the real root: every path the target writes is under DESTDIR.
    assert destdir.is_absolute()
    assert destdir.resolve() != Path("/")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(REPO),
            "install-service",
            f"DESTDIR={destdir}",
            f"PYTHON={sys.executable}",
            "VENV_FLAGS=--without-pip",  # a real venv without pip: no index, no 5 s ensurepip
            "PIP=echo PIP",
            "SYSTEMCTL=echo SYSTEMCTL",
            "USERADD=echo USERADD",
            "ROOT_OWNER=",
            "CONFIG_OWNER=",
            *overrides,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _directive(unit: str, key: str) -> str:
    values = [line.partition("=")[2] for line in unit.splitlines() if line.startswith(f"{key}=")]
    assert len(values) == 1, (key, values)
    return values[0]


def test_files_land_with_their_modes(tmp_path: Path) -> None:
    """Unit 0644, config directory 0750, execd.toml 0640 (paper, systemd's socket and journal
    paths, a valid configuration), execd.env 0600 from the example, a venv where ExecStart
    points; the user is created, the checkout pip-installed, systemd reloaded."""
    out = _install(tmp_path)

    unit = tmp_path / "etc/systemd/system/execd.service"
    assert unit.read_text() == UNIT.read_text()  # default paths: installed as shipped
    assert _mode(unit) == 0o644
    assert _directive(unit.read_text(), "EnvironmentFile") == "/etc/execd/execd.env"

    confdir = tmp_path / "etc/execd"
    assert _mode(confdir) == 0o750
    config = confdir / "execd.toml"
    assert _mode(config) == 0o640
    values = tomllib.loads(config.read_text())
    assert values["venue"]["kind"] == "paper"
    assert values["api"]["socket_path"] == "/run/execd/execd.sock"  # RuntimeDirectory=execd
    assert values["api"]["socket_group"] == "execd"
    assert values["journal"]["path"] == "/var/lib/execd/journal.db"  # StateDirectory=execd
    settings = load_settings(config)  # the whole file is still a valid configuration
    assert str(settings.api.socket_path) == "/run/execd/execd.sock"

    env_file = confdir / "execd.env"
    assert _mode(env_file) == 0o600
    assert env_file.read_text() == ENV_EXAMPLE.read_text()
    assert "APCA_API_KEY_ID=" in env_file.read_text()
    assert "APCA_API_SECRET_KEY=" in env_file.read_text()

    prefix = tmp_path / "opt/execd"
    exec_start = _directive(unit.read_text(), "ExecStart").split()[0]
    assert Path(exec_start).parent == Path("/opt/execd/.venv/bin")
    assert (prefix / ".venv/bin/python").exists()
    assert (prefix / "README.md").read_text() == (REPO / "README.md").read_text()

    assert f"PIP install --quiet --upgrade {REPO}" in out
    assert "SYSTEMCTL daemon-reload" in out
    assert "systemctl enable --now execd" in out
    user_exists = subprocess.run(["id", "-u", "execd"], capture_output=True, check=False)
    if user_exists.returncode != 0:
        assert "USERADD --system" in out
        assert out.split("USERADD", 1)[1].splitlines()[0].rstrip().endswith(" execd")


def test_rerun_keeps_configuration_and_refreshes_the_unit(tmp_path: Path) -> None:
    """A second run never overwrites execd.toml or execd.env (nor their modes), replaces a
    stale unit and reuses the venv."""
    _install(tmp_path)
    config = tmp_path / "etc/execd/execd.toml"
    env_file = tmp_path / "etc/execd/execd.env"
    unit = tmp_path / "etc/systemd/system/execd.service"
    config.write_text('[venue]\nkind = "live"\n')
    env_file.write_text("APCA_API_KEY_ID=mine\nAPCA_API_SECRET_KEY=secret\n")
    unit.write_text("stale")
    marker = tmp_path / "opt/execd/.venv/marker"
    marker.write_text("venv kept")

    out = _install(tmp_path)

    assert config.read_text() == '[venue]\nkind = "live"\n'
    assert env_file.read_text() == "APCA_API_KEY_ID=mine\nAPCA_API_SECRET_KEY=secret\n"
    assert _mode(env_file) == 0o600
    assert f"kept {config}" in out
    assert f"kept {env_file}" in out
    assert unit.read_text() == UNIT.read_text()
    assert marker.exists()


def test_prefix_and_confdir_rewrite_the_unit(tmp_path: Path) -> None:
    """PREFIX and CONFDIR move the venv and the configuration, and the unit follows them."""
    _install(tmp_path, "PREFIX=/srv/xd", "CONFDIR=/etc/xd")
    unit = (tmp_path / "etc/systemd/system/execd.service").read_text()
    assert (
        _directive(unit, "ExecStart") == "/srv/xd/.venv/bin/execd run --config /etc/xd/execd.toml"
    )
    assert _directive(unit, "EnvironmentFile") == "/etc/xd/execd.env"
    assert _directive(unit, "Documentation") == "file:///srv/xd/README.md"
    assert "/opt/execd" not in unit
    assert "/etc/execd" not in unit
    assert (tmp_path / "srv/xd/.venv/bin/python").exists()
    assert (tmp_path / "etc/xd/execd.toml").exists()
    assert (tmp_path / "etc/xd/execd.env").exists()
    assert not (tmp_path / "opt").exists()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_installed_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit as installed (ExecStart pointed at this
    checkout's execd, since the staged venv has no execd installed)."""
    _install(tmp_path, "PREFIX=/srv/xd")
    installed = (tmp_path / "etc/systemd/system/execd.service").read_text()
    execd = Path(sys.executable).with_name("execd")
    unit = tmp_path / "execd.service"
    unit.write_text(installed.replace("/srv/xd/.venv/bin/execd", str(execd)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr.lower(), result.stderr


def test_account_installs_one_template_instance(tmp_path: Path) -> None:
    """`make install-service ACCOUNT=alice` (issue 15 §6): the template unit, alice.toml and
    alice.env; the socket and journal paths are the unit's, per instance, not the file's."""
    out = _install(tmp_path, "ACCOUNT=alice")
    unit = tmp_path / "etc/systemd/system/execd@.service"
    assert unit.read_text() == (REPO / "systemd" / "execd@.service").read_text()
    config = tmp_path / "etc/execd/alice.toml"
    assert _mode(config) == 0o640
    values = tomllib.loads(config.read_text())
    assert values["venue"]["kind"] == "paper"
    assert "socket_path" not in values["api"]  # API__SOCKET_PATH=/run/execd/%i/execd.sock
    assert _mode(tmp_path / "etc/execd/alice.env") == 0o600
    assert not (tmp_path / "etc/execd/execd.toml").exists()
    assert "systemctl enable --now execd@alice" in out
